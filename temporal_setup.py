"""The one setup step a Temporal namespace needs before Loyalloop runs on it: the search attributes
lifecycles set. Without them every start fails with "no mapping defined for search attribute",
which is a missing setup step, not a server that is down."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows import search

SETUP_COMMAND = "loyalloop temporal setup"
# What the server says when a workflow sets an attribute the namespace does not know.
UNMAPPED = "no mapping defined for search attribute"
# Servers that do not let this client change a namespace (Temporal Cloud: tcld or the UI does).
_NOT_ALLOWED = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED)


class SearchAttributesMissing(RuntimeError):
    """The namespace lacks attributes Loyalloop sets: said in one line with the command to run."""


@dataclass(frozen=True)
class Setup:
    registered: list[str]
    already: list[str]


def required() -> list[str]:
    return [key.name for key in search.ALL]


async def missing(client: Client, namespace: str) -> list[str] | None:
    """The attributes the namespace lacks, or None where this client may not list them."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as error:
        if error.status in _NOT_ALLOWED:
            return None
        raise
    known = set(listed.custom_attributes) | set(listed.system_attributes)
    return [name for name in required() if name not in known]


async def register(client: Client, namespace: str) -> Setup:
    """Register what is missing (idempotent). Raises `SetupNotAllowed` with the commands to run
    where this client may not change the namespace."""
    cloud = on_temporal_cloud(client)
    absent = await missing(client, namespace)
    if absent is None:
        raise SetupNotAllowed(namespace, required(), cloud=cloud)
    if absent:
        try:
            await add(client, namespace, absent)
        except RPCError as error:
            if error.status in _NOT_ALLOWED:
                raise SetupNotAllowed(namespace, absent, cloud=cloud) from error
            raise
    return Setup(registered=absent, already=[n for n in required() if n not in absent])


async def add(client: Client, namespace: str, names: list[str]) -> None:
    """Register `names` as Keyword attributes, unchecked (a server that cannot list them, such as
    the time-skipping test server, can still add them)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in names},
        )
    )


class SetupNotAllowed(RuntimeError):
    """This client may not register search attributes: the commands an operator runs instead."""

    def __init__(self, namespace: str, names: list[str], *, cloud: bool) -> None:
        self.commands = manual_commands(namespace, names, cloud=cloud)
        super().__init__(
            f"this client may not register search attributes on namespace {namespace}; "
            "run these instead:\n" + "\n".join(self.commands)
        )


def on_temporal_cloud(client: Client) -> bool:
    host = client.service_client.config.target_host.rpartition(":")[0]
    return host.endswith((".tmprl.cloud", ".api.temporal.io"))


def manual_commands(namespace: str, names: list[str], *, cloud: bool) -> list[str]:
    """Temporal Cloud's tcld there (its namespaces change through the Cloud API), the temporal
    CLI on a self-hosted cluster (with an operator's credentials)."""
    if cloud:
        return [
            f'tcld namespace search-attributes add --namespace {namespace} '
            f'--search-attribute "{name}=Keyword"'
            for name in names
        ]
    return [
        f"temporal operator search-attribute create --namespace {namespace} "
        f"--name {name} --type Keyword"
        for name in names
    ]


async def require(client: Client, namespace: str) -> None:
    """Refuse to run on a namespace without the attributes (where they can be listed)."""
    absent = await missing(client, namespace)
    if absent:
        raise SearchAttributesMissing(
            f"Temporal namespace {namespace} lacks the search attributes {', '.join(absent)}: "
            f"run `{SETUP_COMMAND}` once"
        )
