"""The faults themselves: PostgreSQL connections cut, the worker killed, the intake dying between
storing a purchase and starting its lifecycle; and the audit trail that records, in the
database's own transactions, every write the verdict needs to weigh them."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy
from sqlalchemy.exc import DBAPIError
from temporalio.service import RPCError

from intake.service import LifecycleService
from tests.faults.worker_process import WorkerProcess

T = TypeVar("T")
# The fake provider's message ids (fake_sendgrid.py), as a statement recording one quotes it.
MESSAGE_ID = re.compile(r"fake-[0-9a-f]{16}")


class IntakeCrashed(Exception):
    """The intake process died here: what it committed stays, the rest never happened."""


class CrashingIntake(LifecycleService):
    """The real intake service, dying once at a chosen point for chosen orders:
    `stored` (purchase committed, lifecycle not started), `started` (started, not answered),
    `routed` (a repeat purchase stored and started, not yet routed to the earlier lifecycle)."""

    def __init__(self, *args, crashes: dict[str, str], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.crashes = dict(crashes)
        self.fired: dict[str, str] = {}

    @property
    def crashed(self) -> Counter[str]:
        return Counter(self.fired.values())

    def _crash_once(self, order_id: str, point: str) -> None:
        if self.crashes.get(order_id) == point:
            del self.crashes[order_id]
            self.fired[order_id] = point
            raise IntakeCrashed(f"{point}: {order_id}")

    async def _start(self, workflow_id: str, shop_id: str, order_id: str, customer_id: str) -> bool:
        self._crash_once(order_id, "stored")
        started = await super()._start(workflow_id, shop_id, order_id, customer_id)
        self._crash_once(order_id, "started")
        return started

    async def _route_repeat(self, shop_id: str, order_id: str) -> None:
        self._crash_once(order_id, "routed")
        await super()._route_repeat(shop_id, order_id)


class Retries:
    """What a shop does when the intake fails: try again, counting why."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def __call__(self, call: Callable[[], Awaitable[T]], attempts: int = 200) -> T:
        for _ in range(attempts - 1):
            try:
                return await call()
            except IntakeCrashed:
                self.counts["intake_crashed"] += 1
            except DBAPIError:
                self.counts["database_dropped"] += 1
            except RPCError:
                self.counts["temporal_rpc"] += 1
            await asyncio.sleep(0.2)
        return await call()


@dataclass(frozen=True)
class Cut:
    """One sweep: when (wall clock), how many backends of each `application_name` died, and the
    provider message ids in the statements those backends last ran (a cut that lands while a
    worker records a 202 names that 202's message)."""

    at: float
    terminated: dict[str, int]
    message_ids: frozenset[str] = frozenset()


class ConnectionCutter:
    """Terminates every backend of the app database (the worker's and the intake's)."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.database = database
        self.cuts: list[Cut] = []

    @property
    def sweeps(self) -> list[float]:
        return [cut.at for cut in self.cuts]

    def has_cut(self, app_prefix: str) -> bool:
        """Whether some sweep terminated a backend whose application name starts so."""
        return any(app.startswith(app_prefix) for c in self.cuts for app in c.terminated)

    @property
    def terminated(self) -> int:
        return sum(sum(cut.terminated.values()) for cut in self.cuts)

    def cut(self) -> int:
        at = time.time()
        with self.engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT application_name, query, pg_terminate_backend(pid) "
                    "FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": self.database},
            ).all()
        terminated = Counter(app for app, _query, done in rows if done)
        ids = {
            found for _app, query, done in rows if done for found in MESSAGE_ID.findall(query or "")
        }
        cut = Cut(at, dict(terminated), frozenset(ids))
        self.cuts.append(cut)
        return sum(terminated.values())


@dataclass(frozen=True)
class Written:
    """One audited write, as committed: `source` email (an `email_send` row: `key` its
    idempotency key), unsubscribe (`key` shop/customer) or refund (`key` shop/order); `app`
    the writer's application_name; `xact_at` its transaction's start and `at` the write itself
    (wall clock, inside the transaction: a reader of the row saw the database before `at`)."""

    source: str
    key: str
    status: str
    message_id: str | None
    app: str
    xact_at: float
    at: float


# Installed by the test in its own database after the migrations: the product never sees it.
# A trigger writes in the transaction it audits, so a row here exists exactly when that
# transaction committed.
AUDIT_DDL = """
CREATE TABLE fault_audit (
    id bigserial PRIMARY KEY, source text NOT NULL, key text NOT NULL, status text NOT NULL,
    message_id text, app text NOT NULL, xact_at timestamptz NOT NULL, at timestamptz NOT NULL
);
CREATE FUNCTION fault_audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'email_send' THEN
        INSERT INTO fault_audit (source, key, status, message_id, app, xact_at, at)
        VALUES ('email', NEW.idempotency_key, NEW.status, NEW.provider_message_id,
                current_setting('application_name'), transaction_timestamp(), clock_timestamp());
    ELSIF TG_TABLE_NAME = 'shop_customer' THEN
        INSERT INTO fault_audit (source, key, status, app, xact_at, at)
        VALUES ('unsubscribe', NEW.shop_id || '/' || NEW.customer_id, 'unsubscribed',
                current_setting('application_name'), transaction_timestamp(), clock_timestamp());
    ELSE
        INSERT INTO fault_audit (source, key, status, app, xact_at, at)
        VALUES ('refund', NEW.shop_id || '/' || NEW.order_id, 'refunded',
                current_setting('application_name'), transaction_timestamp(), clock_timestamp());
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER fault_audit_email AFTER INSERT OR UPDATE ON email_send
    FOR EACH ROW EXECUTE FUNCTION fault_audit_write();
CREATE TRIGGER fault_audit_unsubscribe AFTER UPDATE OF unsubscribed_at ON shop_customer
    FOR EACH ROW WHEN (OLD.unsubscribed_at IS NULL AND NEW.unsubscribed_at IS NOT NULL)
    EXECUTE FUNCTION fault_audit_write();
CREATE TRIGGER fault_audit_refund AFTER UPDATE OF refunded_amount ON shop_purchase
    FOR EACH ROW WHEN (NEW.refunded_amount > OLD.refunded_amount)
    EXECUTE FUNCTION fault_audit_write();
"""


def install_audit(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(AUDIT_DDL)
    finally:
        engine.dispose()


def read_audit(connection: sqlalchemy.Connection) -> list[Written]:
    rows = connection.execute(
        sqlalchemy.text(
            "SELECT source, key, status, message_id, app, extract(epoch FROM xact_at), "
            "extract(epoch FROM at) FROM fault_audit ORDER BY at, id"
        )
    ).all()
    return [
        Written(source, key, status, message_id, app, float(xact_at), float(at))
        for source, key, status, message_id, app, xact_at, at in rows
    ]


async def run_chaos(
    worker: WorkerProcess,
    cutter: ConnectionCutter,
    rng: random.Random,
    *,
    kills: int,
    phase_s: float,
    stop: asyncio.Event,
    cut_apps: tuple[str, ...] = (),
) -> None:
    """Kill the worker `kills` times and cut connections every few seconds during `phase_s`
    (and after it until a cut has hit both the worker's and the intake's connections: a worker
    slow to start on a loaded machine may hold none for a while), then keep restarting a worker
    that dies on its own until `stop`."""
    kill_at = sorted(rng.uniform(1.0, phase_s) for _ in range(kills))
    started = time.monotonic()
    next_cut = started + rng.uniform(1.0, 3.0)
    while not stop.is_set():
        now = time.monotonic()
        if kill_at and now - started >= kill_at[0]:
            kill_at.pop(0)
            worker.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            worker.start()
        cutting = now - started < phase_s or not all(map(cutter.has_cut, cut_apps))
        if cutting and now >= next_cut:
            await asyncio.to_thread(cutter.cut)
            next_cut = now + rng.uniform(2.0, 4.0)
        worker.ensure_running()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)
