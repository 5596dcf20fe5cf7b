"""docker-compose.yml is the production stack: it must be valid for Debian's docker-compose,
refuse to start without its secrets, and agree with the code (settings, search attributes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import Settings
from workflows import search

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
REQUIRED = {"POSTGRES_PASSWORD": "ci", "LOYALLOOP_SHOP_KEYS": "ci:ci-key",
            "LOYALLOOP_LINK_SECRET": "ci", "LOYALLOOP_PUBLIC_URL": "https://loyalloop.acme.example"}
LONG_RUNNING = ("postgresql", "temporal", "temporal-ui", "worker", "api")


CLOUD = ROOT / "deploy" / "compose.cloud.yml"
CLOUD_REQUIRED = {**REQUIRED, "TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233",
                  "TEMPORAL_NAMESPACE": "ns.acct"}
APP = ("postgresql", "migrate", "worker", "api")
# What the cloud file's app services may set differently: where Temporal is, and how to reach it.
TEMPORAL_ENV = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS_CERT",
                "TEMPORAL_TLS_KEY", "LOYALLOOP_TEMPORAL_UI"}


def compose_config(file: Path = COMPOSE, **env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    clean = {k: v for k, v in os.environ.items() if k not in CLOUD_REQUIRED}
    return subprocess.run(
        ["docker-compose", "-f", str(file), "config"], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    done = compose_config(**REQUIRED)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_compose_file_is_valid(services: dict[str, Any]) -> None:
    assert set(services) == {"postgresql", "temporal-schema", "temporal", "temporal-admin",
                             "temporal-ui", "migrate", "worker", "api"}


@pytest.mark.parametrize("secret", sorted(REQUIRED))
def test_refuses_to_start_without_a_secret(secret: str) -> None:
    done = compose_config(**{k: v for k, v in REQUIRED.items() if k != secret})
    assert done.returncode != 0
    assert f"set {secret}" in done.stderr


def test_secrets_come_from_the_environment() -> None:
    text = COMPOSE.read_text()
    for name in ("SENDGRID_API_KEY", *REQUIRED):
        assert f"${{{name}" in text, name
    assert "SG." not in text


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_health_checks_and_restart(services: dict[str, Any],
                                                              name: str) -> None:
    assert services[name]["healthcheck"]["test"], name
    assert services[name]["restart"] in ("always", "unless-stopped"), name


def test_workers_run_replicated(services: dict[str, Any]) -> None:
    assert int(services["worker"]["deploy"]["replicas"]) >= 2
    assert "ports" not in services["worker"], "fixed host ports would clash between replicas"


def test_temporal_runs_on_the_postgresql_service(services: dict[str, Any]) -> None:
    env = services["temporal"]["environment"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] == "postgresql"
    assert services["temporal"]["depends_on"] == {
        "temporal-schema": {"condition": "service_completed_successfully"}}


def test_no_service_runs_the_deprecated_auto_setup_image(services: dict[str, Any]) -> None:
    """Temporal no longer updates or patches temporalio/auto-setup."""
    images = {name: service.get("image", "") for name, service in services.items()}
    assert not [name for name, image in images.items() if "auto-setup" in image], images


def test_schema_job_creates_and_migrates_both_temporal_databases(
    services: dict[str, Any],
) -> None:
    job = services["temporal-schema"]
    assert job["image"].startswith("temporalio/admin-tools:")
    assert job["depends_on"]["postgresql"]["condition"] == "service_healthy"
    script = "\n".join(job["command"]).replace("$$", "$")  # config keeps compose's escape
    assert re.search(r"for db in temporal temporal_visibility;", script)
    for step in ("create", "setup-schema -v 0.0",
                 "update-schema -d /etc/temporal/schema/postgresql/v12/$schema/versioned"):
        assert f"$tool {step}" in script, step


def test_admin_job_creates_the_namespace_with_its_retention(services: dict[str, Any]) -> None:
    job = services["temporal-admin"]
    script = "\n".join(job["command"]).replace("$$", "$")
    assert 'namespace create -n "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION"' in script
    assert job["environment"]["TEMPORAL_RETENTION"] == "30d"
    assert job["depends_on"]["temporal"]["condition"] == "service_healthy"


def test_admin_job_registers_every_search_attribute_the_workflow_sets(
    services: dict[str, Any],
) -> None:
    script = " ".join(services["temporal-admin"]["command"])
    registered = set(re.search(r"for name in ([\w ]+?);", script).group(1).split())  # type: ignore[union-attr]
    assert registered == {key.name for key in search.ALL}
    assert "--type Keyword" in script


def test_app_services_only_set_variables_settings_reads(services: dict[str, Any]) -> None:
    known = {(field.validation_alias or name).upper()  # type: ignore[union-attr]
             for name, field in Settings.model_fields.items()}
    for name in ("migrate", "worker", "api"):
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name} sets {unknown}, which settings.py does not read"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.fixture(scope="module")
def cloud() -> dict[str, Any]:
    done = compose_config(CLOUD, **CLOUD_REQUIRED, TEMPORAL_API_KEY="temporal-key-1")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_the_cloud_file_runs_no_temporal_of_its_own(cloud: dict[str, Any]) -> None:
    assert set(cloud) == set(APP)
    for name in ("worker", "api"):
        assert cloud[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}}


def test_the_cloud_file_passes_temporals_address_and_credentials(cloud: dict[str, Any]) -> None:
    for name in ("migrate", "worker", "api"):
        env = cloud[name]["environment"]
        assert (env["TEMPORAL_ADDRESS"], env["TEMPORAL_NAMESPACE"], env["TEMPORAL_API_KEY"]) == (
            "ns.acct.tmprl.cloud:7233", "ns.acct", "temporal-key-1"), name
        # unset, the TLS files are empty, which settings read as none
        assert (env["TEMPORAL_TLS_CERT"], env["TEMPORAL_TLS_KEY"]) == ("", ""), name
        assert Settings(_env_file=None, temporal_tls_cert="").temporal_tls_cert is None
        assert "/etc/temporal-tls:ro" in " ".join(map(str, cloud[name]["volumes"])), name


@pytest.mark.parametrize("secret", ["TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"])
def test_the_cloud_file_refuses_to_start_without_where_temporal_is(secret: str) -> None:
    done = compose_config(CLOUD, **{k: v for k, v in CLOUD_REQUIRED.items() if k != secret})
    assert done.returncode != 0 and f"set {secret}" in done.stderr


@pytest.mark.parametrize("name", APP)
def test_the_cloud_files_app_services_are_the_production_ones(
    services: dict[str, Any], cloud: dict[str, Any], name: str,
) -> None:
    """The cloud file repeats docker-compose.yml's app services (compose cannot extend a
    service with `depends_on`): they may differ only in Temporal's settings, the client
    certificates' folder and the local Temporal they wait for."""
    def comparable(service: dict[str, Any]) -> dict[str, Any]:
        env = {k: v for k, v in service.get("environment", {}).items() if k not in TEMPORAL_ENV}
        depends = {k: v for k, v in service.get("depends_on", {}).items()
                   if not k.startswith("temporal")}
        volumes = [v for v in service.get("volumes", []) if "temporal-tls" not in str(v)]
        return {**service, "environment": env, "depends_on": depends, "volumes": volumes}

    assert comparable(cloud[name]) == comparable(services[name])
