"""The scheduler: pure cron math (with DST), leases on SQLite and PostgreSQL, the service loop, and two nodes.

The multi-node tests run real scheduler processes (``python -m tests.core.sync_fakes``) against one database.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session
from sqlmodel import select as sql_select

from core.errors import ConnectorError
from core.models import Integration, SyncLease, SyncOutcome, SyncRun, Tenant, utcnow
from core.runtime import Runtime
from core.scheduler import (
    LeaseFence,
    SchedulerService,
    SyncBusy,
    claim_due,
    claim_now,
    is_slot,
    next_run,
    release,
    renew,
)
from core.serve import ServeOptions
from core.services import integrations as integration_svc
from core.services.audit import OPERATOR
from core.services.integrations import default_schedule
from core.services.sync import request_sync, sync_state
from core.sync import LeaseLost
from tests.core.sync_fakes import FakeConnector, pages_of, people
from tests.factories import make_integration, make_tenant

AMS = ZoneInfo("Europe/Amsterdam")
CET = timezone(timedelta(hours=1))
CEST = timezone(timedelta(hours=2))
ROOT = Path(__file__).resolve().parents[2]


# --- next_run: pure, table-tested ------------------------------------------------------------------------

CASES = [
    # (schedule, after, tz, expected next run)
    ("30 2 * * *", datetime(2026, 1, 10, 1, 0, tzinfo=UTC), "UTC", datetime(2026, 1, 10, 2, 30, tzinfo=UTC)),
    ("30 2 * * *", datetime(2026, 1, 10, 2, 30, tzinfo=UTC), "UTC", datetime(2026, 1, 11, 2, 30, tzinfo=UTC)),
    (
        "30 2 * * *",
        datetime(2026, 1, 10, 12, 0, tzinfo=CET),
        "Europe/Amsterdam",
        datetime(2026, 1, 11, 2, 30, tzinfo=CET),
    ),
    (
        "30 2 * * *",
        datetime(2026, 7, 1, 0, 0, tzinfo=UTC),
        "Europe/Amsterdam",
        datetime(2026, 7, 1, 2, 30, tzinfo=CEST),
    ),
    # spring forward, 29 March 2026 02:00 CET -> 03:00 CEST: a slot in the gap runs when the gap ends
    (
        "30 2 * * *",
        datetime(2026, 3, 28, 12, 0, tzinfo=CET),
        "Europe/Amsterdam",
        datetime(2026, 3, 29, 3, 0, tzinfo=CEST),
    ),
    (
        "30 2 * * *",
        datetime(2026, 3, 29, 3, 0, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 3, 30, 2, 30, tzinfo=CEST),
    ),
    (
        "*/15 * * * *",
        datetime(2026, 3, 29, 1, 50, tzinfo=CET),
        "Europe/Amsterdam",
        datetime(2026, 3, 29, 3, 0, tzinfo=CEST),
    ),
    (
        "*/15 * * * *",
        datetime(2026, 3, 29, 3, 0, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 3, 29, 3, 15, tzinfo=CEST),
    ),
    (
        "0 3 * * *",
        datetime(2026, 3, 28, 12, 0, tzinfo=CET),
        "Europe/Amsterdam",
        datetime(2026, 3, 29, 3, 0, tzinfo=CEST),
    ),
    # fall back, 25 October 2026 03:00 CEST -> 02:00 CET: a repeated slot runs once, the first time
    (
        "30 2 * * *",
        datetime(2026, 10, 24, 12, 0, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 10, 25, 2, 30, tzinfo=CEST),
    ),
    (
        "30 2 * * *",
        datetime(2026, 10, 25, 2, 30, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 10, 26, 2, 30, tzinfo=CET),
    ),
    (
        "30 2 * * *",
        datetime(2026, 10, 25, 2, 10, tzinfo=CET),
        "Europe/Amsterdam",
        datetime(2026, 10, 26, 2, 30, tzinfo=CET),
    ),
    (
        "*/30 * * * *",
        datetime(2026, 10, 25, 2, 45, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 10, 25, 3, 0, tzinfo=CET),
    ),
    (
        "0 * * * *",
        datetime(2026, 10, 25, 1, 59, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 10, 25, 2, 0, tzinfo=CEST),
    ),
    (
        "0 * * * *",
        datetime(2026, 10, 25, 2, 0, tzinfo=CEST),
        "Europe/Amsterdam",
        datetime(2026, 10, 25, 3, 0, tzinfo=CET),
    ),
    # weekly, monthly, and an instant given in another zone
    ("0 3 * * 1", datetime(2026, 1, 7, 0, 0, tzinfo=UTC), "Europe/Amsterdam", datetime(2026, 1, 12, 3, 0, tzinfo=CET)),
    ("0 4 1 * *", datetime(2026, 2, 1, 3, 59, tzinfo=UTC), "UTC", datetime(2026, 2, 1, 4, 0, tzinfo=UTC)),
    (
        "0 9 * * *",
        datetime(2026, 1, 10, 8, 30, tzinfo=UTC),
        "America/New_York",
        datetime(2026, 1, 10, 9, 0, tzinfo=ZoneInfo("America/New_York")),
    ),
]


@pytest.mark.parametrize(("schedule", "after", "tz", "expected"), CASES)
def test_next_run(schedule: str, after: datetime, tz: str, expected: datetime) -> None:
    got = next_run(schedule, after, tz)
    assert got == expected and got.tzinfo is UTC


def test_next_run_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run("* * * * *", datetime(2026, 1, 1), "UTC")


def test_slots_are_recognised() -> None:
    assert is_slot("30 2 * * *", datetime(2026, 1, 11, 1, 30, tzinfo=UTC), "Europe/Amsterdam")
    assert not is_slot("30 2 * * *", datetime(2026, 1, 11, 1, 31, tzinfo=UTC), "Europe/Amsterdam")
    assert not is_slot("30 2 * * *", datetime(2026, 1, 11, 1, 30, 5, tzinfo=UTC), "Europe/Amsterdam")
    assert is_slot("30 2 * * *", datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Europe/Amsterdam")  # the jump's end


def test_the_default_schedule_is_nightly_and_spread() -> None:
    schedules = {default_schedule(tenant_slug=f"t{i}", name="HubSpot") for i in range(50)}
    assert len(schedules) > 30
    for schedule in schedules:
        slot = next_run(schedule, datetime(2026, 1, 10, 12, 0, tzinfo=AMS), "Europe/Amsterdam").astimezone(AMS)
        assert slot.date() == datetime(2026, 1, 11).date() and 0 <= slot.hour < 6


# --- leases ----------------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SLOT = datetime(2026, 1, 11, 1, 30, tzinfo=UTC)  # 02:30 in Amsterdam


@pytest.fixture
def nightly(session: Session, runtime: Runtime) -> tuple[Tenant, Integration]:
    tenant = make_tenant(session, country="NL", timezone="Europe/Amsterdam")
    integration = make_integration(session, tenant, runtime.box)
    integration_svc.update_integration(
        session=session, actor=OPERATOR, integration=integration, box=runtime.box,
        expected_version=integration.version, schedule="30 2 * * *",
    )  # fmt: skip
    session.commit()
    return tenant, integration


def lease(engine: Engine, integration: Integration) -> SyncLease:
    with Session(engine) as session:
        row = session.get(SyncLease, integration.id)
        assert row is not None
        return row


def test_a_slot_is_claimed_once_and_the_next_one_set(engine: Engine, nightly: tuple[Tenant, Integration]) -> None:
    _tenant, integration = nightly
    assert claim_due(engine, node="a:1", now=T0, limit=5) == []
    assert lease(engine, integration).next_run_at == SLOT
    assert claim_due(engine, node="a:1", now=SLOT - timedelta(seconds=1), limit=5) == []

    (claim,) = claim_due(engine, node="a:1", now=SLOT + timedelta(seconds=3), limit=5)
    assert (claim.integration_id, claim.trigger) == (integration.id, "schedule")
    assert lease(engine, integration).next_run_at == SLOT + timedelta(days=1)
    assert claim_due(engine, node="b:2", now=SLOT + timedelta(seconds=4), limit=5) == []  # held by a:1
    release(engine, claim, now=SLOT + timedelta(seconds=30))
    assert claim_due(engine, node="b:2", now=SLOT + timedelta(seconds=31), limit=5) == []  # slot consumed


def test_missed_slots_run_once_after_downtime(engine: Engine, nightly: tuple[Tenant, Integration]) -> None:
    _tenant, integration = nightly
    claim_due(engine, node="a:1", now=T0, limit=5)
    later = SLOT + timedelta(days=4, hours=10)  # four nightly slots missed
    (claim,) = claim_due(engine, node="a:1", now=later, limit=5)
    release(engine, claim, now=later)
    assert claim_due(engine, node="a:1", now=later + timedelta(minutes=1), limit=5) == []
    assert lease(engine, integration).next_run_at == SLOT + timedelta(days=5)


def test_a_changed_schedule_moves_the_next_slot(
    engine: Engine, runtime: Runtime, session: Session, nightly: tuple[Tenant, Integration]
) -> None:
    _tenant, integration = nightly
    claim_due(engine, node="a:1", now=T0, limit=5)
    integration = session.get(Integration, integration.id)  # type: ignore[assignment]
    integration_svc.update_integration(
        session=session, actor=OPERATOR, integration=integration, box=runtime.box,
        expected_version=integration.version, schedule="0 23 * * *",
    )  # fmt: skip
    session.commit()
    claim_due(engine, node="a:1", now=T0 + timedelta(minutes=1), limit=5)
    assert lease(engine, integration).next_run_at == datetime(2026, 1, 10, 22, 0, tzinfo=UTC)


def test_many_nodes_claiming_at_once_claim_each_integration_once(
    engine: Engine, runtime: Runtime, session: Session
) -> None:
    tenant = make_tenant(session, country="NL", timezone="Europe/Amsterdam")
    for _ in range(12):
        make_integration(session, tenant, runtime.box)
    session.commit()
    claim_due(engine, node="setup:0", now=T0, limit=0)  # nothing: a limit of 0 claims nothing
    claim_due(engine, node="setup:0", now=T0, limit=100)  # creates the lease rows, nothing due yet
    due = T0 + timedelta(days=1)
    claimed: list[int] = []
    barrier = threading.Barrier(4)

    def node(name: str) -> None:
        barrier.wait()
        claimed.extend(c.integration_id for c in claim_due(engine, node=name, now=due, limit=100))

    threads = [threading.Thread(target=node, args=(f"n{i}:{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 12


def test_a_dead_node_loses_its_lease_to_another(engine: Engine, nightly: tuple[Tenant, Integration]) -> None:
    _tenant, integration = nightly
    claim_due(engine, node="a:1", now=T0, limit=5)
    (first,) = claim_due(engine, node="node-a", now=SLOT, limit=5, ttl=60)
    assert renew(engine, first, now=SLOT + timedelta(seconds=20), ttl=60)
    assert claim_due(engine, node="node-b", now=SLOT + timedelta(seconds=70), limit=5) == []  # renewed: still held
    (second,) = claim_due(engine, node="node-b", now=SLOT + timedelta(seconds=81), limit=5)
    assert second.trigger == "takeover" and second.owner.startswith("node-b/")
    assert not renew(engine, first, now=SLOT + timedelta(seconds=82))  # node-a came back: too late
    fence = LeaseFence(engine, first)
    with engine.begin() as connection, pytest.raises(LeaseLost):
        fence.confirm(connection)
    release(engine, first, now=SLOT + timedelta(seconds=83))  # releasing a lost lease changes nothing
    assert lease(engine, integration).owner == second.owner


def test_a_dead_process_on_this_host_is_noticed_at_once(engine: Engine, nightly: tuple[Tenant, Integration]) -> None:
    _tenant, integration = nightly
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = utcnow()
    claim_now(engine, integration_id=integration.id or 0, node="another-host:1", now=now)
    with pytest.raises(SyncBusy, match="being synced already on another-host:1"):
        claim_now(engine, integration_id=integration.id or 0, node="elsewhere:1", now=now)
    with engine.begin() as connection:  # the same, owned by a live process here: busy
        connection.execute(sa.update(SyncLease.__table__).values(owner=f"{socket.gethostname()}:{os.getpid()}/x"))  # type: ignore[attr-defined]
    with pytest.raises(SyncBusy):
        claim_now(engine, integration_id=integration.id or 0, node="elsewhere:1", now=now)
    with engine.begin() as connection:
        connection.execute(sa.update(SyncLease.__table__).values(owner=f"{socket.gethostname()}:{gone.pid}/x"))  # type: ignore[attr-defined]
    assert claim_now(engine, integration_id=integration.id or 0, node="elsewhere:1", now=now).trigger == "manual"


def test_requested_and_handed_back_syncs_run_at_once(
    engine: Engine, session: Session, nightly: tuple[Tenant, Integration]
) -> None:
    _tenant, integration = nightly
    request_sync(session=session, actor=OPERATOR, integration=integration)
    session.commit()
    (claim,) = claim_due(engine, node="a:1", now=utcnow(), limit=5)
    assert claim.trigger == "request"
    with pytest.raises(SyncBusy):
        request_sync(session=session, actor=OPERATOR, integration=integration)
    release(engine, claim, now=utcnow(), again=True)  # stopped by a shutdown: hand the slot back
    (again,) = claim_due(engine, node="b:2", now=utcnow(), limit=5)
    assert again.integration_id == integration.id


def test_disabled_and_script_only_integrations_are_not_synced(
    engine: Engine, runtime: Runtime, session: Session
) -> None:
    tenant = make_tenant(session)
    off = make_integration(session, tenant, runtime.box)
    integration_svc.set_enabled(session=session, actor=OPERATOR, integration=off, enabled=False)
    make_integration(session, tenant, runtime.box, preset="web-search", settings={}, secrets={})
    session.commit()
    claim_due(engine, node="a:1", now=T0, limit=5)
    assert claim_due(engine, node="a:1", now=T0 + timedelta(days=2), limit=5) == []


# --- the service loop ------------------------------------------------------------------------------------


async def test_the_service_syncs_what_is_due_and_survives_failures(
    runtime: Runtime, session: Session, nightly: tuple[Tenant, Integration]
) -> None:
    tenant, good = nightly
    bad = make_integration(session, tenant, runtime.box)
    session.commit()
    for integration in (good, bad):
        request_sync(session=session, actor=OPERATOR, integration=integration)
    session.commit()

    def factory(_runtime: Runtime, integration_id: int) -> FakeConnector:
        if integration_id == bad.id:
            return FakeConnector([people(0, 5)], fail_at=1, error=ConnectorError("the CRM is down (503)"))
        return FakeConnector(pages_of(people(0, 30), 10))

    service = SchedulerService(runtime, ServeOptions(node="here:1"), poll_interval=0.05, connector_factory=factory)
    assert "scheduler: node here:1" in service.describe()[0]
    before = asyncio.all_tasks()
    await service.start()
    try:
        deadline = time.monotonic() + 30
        while len(finished(runtime.engine)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
    runs = {run.integration_id: run for run in finished(runtime.engine)}
    assert runs[good.id].outcome == SyncOutcome.SUCCESS and runs[good.id].records == 30  # type: ignore[index]
    assert runs[bad.id].outcome == SyncOutcome.FAILED and runs[bad.id].error == "the CRM is down (503)"  # type: ignore[index]
    assert {r.trigger for r in runs.values()} == {"request"} and {r.node for r in runs.values()} == {"here:1"}
    assert asyncio.all_tasks() == before
    state = sync_state(session=session, integration=good)
    assert state.last_success is not None and state.running_on is None and state.next_run_at is not None


async def test_stopping_the_service_stops_a_sync_and_hands_its_slot_back(
    runtime: Runtime, session: Session, nightly: tuple[Tenant, Integration]
) -> None:
    _tenant, integration = nightly
    request_sync(session=session, actor=OPERATOR, integration=integration)
    session.commit()
    gate = asyncio.Event()
    connector = FakeConnector(pages_of(people(0, 30), 10), fail_at=2, gate=gate)
    service = SchedulerService(
        runtime, ServeOptions(node="here:1"), poll_interval=0.05, connector_factory=lambda _r, _i: connector
    )
    await service.start()
    while connector.served < 1:
        await asyncio.sleep(0.02)
    await service.stop()
    (run,) = finished(runtime.engine)
    assert run.outcome == SyncOutcome.FAILED and "stopped before it finished" in (run.error or "")
    row = lease(runtime.engine, integration)
    assert row.owner == "" and row.next_run_at is not None and row.next_run_at <= utcnow()
    assert connector.closed


def finished(engine: Engine) -> list[SyncRun]:
    with Session(engine) as session:
        return list(session.exec(sql_select(SyncRun).where(SyncRun.outcome != SyncOutcome.RUNNING)).all())


# --- two scheduler processes on one database ------------------------------------------------------------


class Node:
    """A scheduler process (``python -m tests.core.sync_fakes``)."""

    def __init__(self, url: str, name: str, *, ttl: float = 5.0, hang: set[int] | None = None) -> None:
        args = [sys.executable, "-m", "tests.core.sync_fakes", url, name, str(ttl), ",".join(map(str, hang or ()))]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.name = name
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 30) -> None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.stop()
            raise AssertionError(f"{self.name} did not start: {self.stderr()}")

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


def runs_by_integration(engine: Engine, outcome: SyncOutcome = SyncOutcome.SUCCESS) -> Counter[int]:
    with Session(engine) as session:
        rows = session.exec(sql_select(SyncRun.integration_id).where(SyncRun.outcome == outcome)).all()
    return Counter(rows)


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def make_due(engine: Engine) -> None:
    """The next slot has come for every idle integration."""
    with engine.begin() as connection:
        connection.execute(
            sa.update(SyncLease.__table__)  # type: ignore[attr-defined]
            .where(SyncLease.__table__.c.owner == "")  # type: ignore[attr-defined]
            .values(next_run_at=utcnow() - timedelta(seconds=1))
        )


@pytest.mark.slow
def test_two_scheduler_processes_sync_each_due_integration_once_per_slot(
    engine: Engine, runtime: Runtime, session: Session
) -> None:
    tenant = make_tenant(session, country="NL", timezone="Europe/Amsterdam")
    ids = [make_integration(session, tenant, runtime.box).id for _ in range(8)]
    session.commit()
    claim_due(engine, node="setup:0", now=utcnow(), limit=100)  # creates the lease rows
    url = engine.url.render_as_string(hide_password=False)
    nodes = [Node(url, "node-a"), Node(url, "node-b")]
    try:
        for node in nodes:
            node.wait_ready()
        for slot in (1, 2):
            make_due(engine)
            wait_for(lambda slot=slot: all(runs_by_integration(engine)[i] >= slot for i in ids))
            time.sleep(1.0)  # time for a duplicate to show, if there were one
            assert runs_by_integration(engine) == Counter({i: slot for i in ids})
    finally:
        codes = [node.stop() for node in nodes]
    assert codes == [0, 0]
    with Session(engine) as session2:
        runs = session2.exec(sql_select(SyncRun)).all()
        assert {run.node for run in runs} == {"node-a", "node-b"}
        assert all(run.records == 250 for run in runs)
        actives = {i.id: i.active_generation for i in session2.exec(sql_select(Integration)).all()}
    assert all(actives[i] is not None for i in ids)


@pytest.mark.slow
def test_a_killed_node_loses_its_sync_to_another(engine: Engine, runtime: Runtime, session: Session) -> None:
    tenant = make_tenant(session, country="NL", timezone="Europe/Amsterdam")
    integration = make_integration(session, tenant, runtime.box)
    session.commit()
    request_sync(session=session, actor=OPERATOR, integration=integration)
    session.commit()
    url = engine.url.render_as_string(hide_password=False)
    first = Node(url, "node-a", ttl=2.0, hang={integration.id or 0})
    second: Node | None = None
    try:
        first.wait_ready()
        wait_for(lambda: runs_by_integration(engine, SyncOutcome.RUNNING)[integration.id] == 1)  # type: ignore[index]
        first.kill()
        second = Node(url, "node-b", ttl=2.0)
        second.wait_ready()
        wait_for(lambda: runs_by_integration(engine)[integration.id] == 1)  # type: ignore[index]
    finally:
        first.stop()
        if second is not None:
            second.stop()
    with Session(engine) as session2:
        runs = session2.exec(sql_select(SyncRun).order_by(SyncRun.id)).all()  # type: ignore[arg-type]
    assert [(r.node, r.trigger, r.outcome) for r in runs] == [
        ("node-a", "request", SyncOutcome.FAILED),
        ("node-b", "takeover", SyncOutcome.SUCCESS),
    ]
    assert runs[1].records == 250
