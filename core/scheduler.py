"""The sync scheduler: when each integration is due (pure cron math), which node runs it (leases), and the loop.

*When.* :func:`next_run` is pure: the cron expression is read in the tenant's time zone on wall-clock time.
A slot that does not exist (the hour skipped when summer time starts) runs when the clocks have jumped, at
the first minute that exists; a slot that happens twice (the hour repeated when summer time ends) runs once,
the first time. The default schedule is nightly at a minute spread per integration
(:func:`core.services.integrations.default_schedule`).

*Who.* Each integration has one :class:`~core.models.SyncLease` row: ``next_run_at`` (the slot it waits for)
and ``owner``/``expires_at`` (who is syncing it). A node claims a due integration with one conditional
``UPDATE`` that compares the row with what it read (a compare-and-swap that works the same on SQLite and
PostgreSQL); only one node's update matches, and it moves ``next_run_at`` on to the next slot in the same
statement, so every slot is synced exactly once however many nodes run the scheduler, and a node that was
down over several slots runs the missed sync once. The owner renews the lease while syncing; a node that dies
stops renewing, its lease expires and another node takes the run over. The swap of the cache generation
renews the lease inside its transaction, so a node that lost its lease can never switch the cache. Nodes
are expected to have clocks kept in step (NTP); the lease's minute is the tolerance.

*Loop.* :class:`SchedulerService` (one of ``switchboard serve``'s services) polls every few seconds, claims
what is due up to a small number of concurrent syncs, runs each as a task and never lets one integration's
failure stop the loop. A sync stopped by a shutdown hands its slot back, so another node (or the next start)
runs it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from core.connector.base import Connector
from core.errors import SwitchboardError
from core.models import Integration, SyncLease, SyncRunPublic, Tenant, utcnow
from core.presets import get_preset
from core.runtime import Runtime
from core.sync import LeaseLost, ProgressCallback, SyncError, SyncOptions, sync_integration

log = logging.getLogger("core.scheduler")

_lease = SyncLease.__table__  # type: ignore[attr-defined]
_integration = Integration.__table__  # type: ignore[attr-defined]
_tenant = Tenant.__table__  # type: ignore[attr-defined]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LEASE_TTL = 60.0
"""Seconds a claim lasts unless renewed; renewed every third of that while syncing."""
POLL_INTERVAL = 2.0
"""Seconds between two looks at what is due (a requested sync starts within this)."""
MAX_CONCURRENT = 2
"""Syncs one node runs at the same time."""
_MAX_CANDIDATES = 10_000  # cron candidates looked at before giving up (a schedule that never matches)


# --- scheduling math ---------------------------------------------------------------------------------------


def zone(name: str | tzinfo) -> tzinfo:
    """The time zone called ``name`` (UTC for an unknown name: the tenant service refuses those anyway)."""
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _exists(wall: datetime, tz: tzinfo) -> bool:
    """Whether the naive wall-clock time ``wall`` happens in ``tz`` (not skipped by a summer-time jump)."""
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def _instant(wall: datetime, tz: tzinfo) -> datetime:
    """When the wall-clock time happens: its first occurrence, or the end of the jump that skipped it."""
    while not _exists(wall, tz):
        wall = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return wall.replace(tzinfo=tz, fold=0)


def next_run(schedule: str, after: datetime, tz: str | tzinfo) -> datetime:
    """The first slot of the cron ``schedule`` strictly after ``after`` (aware), in ``tz``'s wall-clock time.

    Returns the moment in UTC (comparing datetimes of a zone inside a repeated hour with datetimes of another
    zone gives wrong answers in Python, see PEP 495). Skipped slots (spring forward) run at the end of the
    jump; repeated slots (fall back) run once, the first time.
    """
    if after.tzinfo is None:
        raise ValueError("next_run needs an aware datetime")
    where = zone(tz)
    local = after.astimezone(where)
    candidates = croniter(schedule, local.replace(tzinfo=None))
    for _ in range(_MAX_CANDIDATES):
        moment = _instant(candidates.get_next(datetime), where).astimezone(UTC)
        if moment > after:
            return moment
    raise ValueError(f"the schedule {schedule!r} has no slot after {after.isoformat()}")


def is_slot(schedule: str, moment: datetime, tz: str | tzinfo) -> bool:
    """Whether ``moment`` is exactly a slot of ``schedule`` (as :func:`next_run` computes them)."""
    if moment.second or moment.microsecond:
        return False
    return next_run(schedule, moment - timedelta(minutes=1), tz) == moment


# --- leases ------------------------------------------------------------------------------------------------


class SyncBusy(SyncError):
    """The integration is being synced already (by this or another node)."""

    title = "Sync already running"


@dataclass(frozen=True, slots=True)
class Claim:
    """A lease this process holds: which integration, under which owner name, and why it runs."""

    integration_id: int
    owner: str
    trigger: str


@dataclass(frozen=True, slots=True)
class _Row:
    integration_id: int
    preset: str
    schedule: str
    timezone: str
    owner: str | None
    expires_at: datetime | None
    next_run_at: datetime | None


def owner_name(node: str) -> str:
    """A unique owner for one claim: the node's name and a random tag."""
    return f"{node[:100]}/{secrets.token_hex(4)}"


def node_of(owner: str) -> str:
    """The node part of an owner name."""
    return owner.rpartition("/")[0] or owner


def _dead_here(owner: str) -> bool:
    """Whether the owner is a process on this host (``host:pid``) that no longer exists."""
    host, _, pid = node_of(owner).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def has_api(preset: str) -> bool:
    """Whether integrations of this preset have an API to sync from (not script-only, still shipped)."""
    try:
        return not get_preset(preset).is_script_only
    except SwitchboardError:
        return False


def _free(row: _Row, now: datetime) -> bool:
    """Whether nobody holds the lease (never taken, released, expired, or its owner here has died)."""
    if not row.owner or row.expires_at is None or row.expires_at <= now:
        return True
    return _dead_here(row.owner)


def _insert_missing(connection: Connection, values: Sequence[dict[str, object]]) -> None:
    """Insert lease rows, leaving rows another node inserted meanwhile as they are."""
    if not values:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_lease).on_conflict_do_nothing(index_elements=["integration_id"])
    connection.execute(statement, list(values))


def _read(connection: Connection, integration_ids: Sequence[int] | None = None) -> list[_Row]:
    """The enabled integrations (or those given) with their schedules, time zones and leases."""
    query = (
        sa.select(
            _integration.c.id,
            _integration.c.preset,
            _integration.c.schedule,
            _tenant.c.timezone,
            _lease.c.owner,
            _lease.c.expires_at,
            _lease.c.next_run_at,
        )
        .select_from(
            _integration.join(_tenant, _tenant.c.id == _integration.c.tenant_id).outerjoin(
                _lease, _lease.c.integration_id == _integration.c.id
            )
        )
        .order_by(_lease.c.next_run_at, _integration.c.id)
    )
    if integration_ids is None:
        query = query.where(_integration.c.enabled == sa.true())
    else:
        query = query.where(_integration.c.id.in_(list(integration_ids)))
    return [_Row(*row) for row in connection.execute(query)]


def _swap(connection: Connection, row: _Row, **values: object) -> bool:
    """Update the lease row only if it is still exactly as read; True if this call changed it."""
    result = connection.execute(
        sa.update(_lease)
        .where(
            _lease.c.integration_id == row.integration_id,
            _lease.c.owner == row.owner,
            _lease.c.expires_at == row.expires_at,
            _lease.c.next_run_at.is_not_distinct_from(row.next_run_at),
        )
        .values(**values)
    )
    return bool(result.rowcount == 1)


def _ensure_rows(connection: Connection, rows: list[_Row], now: datetime) -> list[_Row]:
    """Create missing lease rows, correct slots left from a changed schedule; returns the rows re-read."""
    missing = [r for r in rows if r.owner is None]
    _insert_missing(
        connection,
        [
            {
                "integration_id": r.integration_id,
                "owner": "",
                "expires_at": EPOCH,
                "next_run_at": _next(r, now),
            }
            for r in missing
        ],
    )
    stale = [r for r in rows if r.owner == "" and r.next_run_at is not None and r.next_run_at > now]
    for row in stale:
        expected = _next(row, now)
        if expected is not None and expected != row.next_run_at:
            _swap(connection, row, next_run_at=expected)
    if not missing and not stale:
        return rows
    return _read(connection, [r.integration_id for r in rows])


def _next(row: _Row, now: datetime) -> datetime | None:
    """The row's next slot after ``now`` in UTC; None (never) if the schedule cannot be read."""
    try:
        return next_run(row.schedule, now, row.timezone)
    except (ValueError, KeyError) as exc:
        log.warning("integration %s has an unusable schedule %r: %s", row.integration_id, row.schedule, exc)
        return None


def _wanted(row: _Row, now: datetime) -> str | None:
    """Why the row should be claimed now ("takeover", "schedule", "request"), or None."""
    if not _free(row, now):
        return None
    if row.owner:
        return "takeover"  # claimed, never released: its node died during the sync
    if row.next_run_at is not None and row.next_run_at <= now:
        return "schedule" if is_slot(row.schedule, row.next_run_at, row.timezone) else "request"
    return None


def claim_due(
    engine: Engine,
    *,
    node: str,
    now: datetime,
    limit: int,
    ttl: float = LEASE_TTL,
) -> list[Claim]:
    """Claim up to ``limit`` integrations that are due (or whose node died mid-sync) for this node.

    Integrations of script-only (or unknown) presets have nothing to sync and are never claimed.
    """
    if limit <= 0:
        return []
    with engine.begin() as connection:
        rows = _ensure_rows(connection, _read(connection), now)
    claims: list[Claim] = []
    for row in rows:
        trigger = _wanted(row, now)
        if trigger is None or not has_api(row.preset):
            continue
        owner = owner_name(node)
        due = row.next_run_at is not None and row.next_run_at <= now
        next_at = _next(row, now) if due else row.next_run_at
        with engine.begin() as connection:
            taken = _swap(
                connection,
                row,
                owner=owner,
                expires_at=now + timedelta(seconds=ttl),
                next_run_at=next_at,
            )
        if taken:
            claims.append(Claim(row.integration_id, owner, trigger))
            if len(claims) >= limit:
                break
    return claims


def claim_now(
    engine: Engine, *, integration_id: int, node: str, now: datetime, ttl: float = LEASE_TTL, trigger: str = "manual"
) -> Claim:
    """Claim one integration at once (a foreground sync); ``SyncBusy`` if a live node is syncing it."""
    with engine.begin() as connection:
        rows = _read(connection, [integration_id])
        if not rows:
            raise SyncError(f"there is no integration {integration_id}", field="integration")
        (row,) = _ensure_rows(connection, rows, now)
    if not _free(row, now):
        raise SyncBusy(busy_message(row.owner or ""), field="integration")
    owner = owner_name(node)
    with engine.begin() as connection:
        if not _swap(connection, row, owner=owner, expires_at=now + timedelta(seconds=ttl)):
            raise SyncBusy(busy_message(""), field="integration")
    return Claim(integration_id, owner, trigger)


def busy_message(owner: str) -> str:
    """Why a sync cannot start now, and what to do."""
    where = f" on {node_of(owner)}" if owner else ""
    return (
        f"this integration is being synced already{where}; wait for that sync to finish "
        f"(a node that stopped loses its claim within {int(LEASE_TTL)} seconds)"
    )


def renew(engine: Engine, claim: Claim, *, now: datetime, ttl: float = LEASE_TTL) -> bool:
    """Extend the lease; False if it is no longer ours."""
    with engine.begin() as connection:
        return _renew(connection, claim, now=now, ttl=ttl)


def _renew(connection: Connection, claim: Claim, *, now: datetime, ttl: float) -> bool:
    result = connection.execute(
        sa.update(_lease)
        .where(_lease.c.integration_id == claim.integration_id, _lease.c.owner == claim.owner)
        .values(expires_at=now + timedelta(seconds=ttl))
    )
    return bool(result.rowcount == 1)


def release(engine: Engine, claim: Claim, *, now: datetime, again: bool = False) -> None:
    """Give the lease up; with ``again``, make the integration due at once (an interrupted run is redone)."""
    values: dict[str, object] = {"owner": "", "expires_at": now}
    if again:
        values["next_run_at"] = now
    with engine.begin() as connection:
        connection.execute(
            sa.update(_lease)
            .where(_lease.c.integration_id == claim.integration_id, _lease.c.owner == claim.owner)
            .values(**values)
        )


class LeaseFence:
    """Keeps a claim alive while a sync runs, and lets the sync check it (see :class:`core.sync.Fence`)."""

    def __init__(
        self, engine: Engine, claim: Claim, *, ttl: float = LEASE_TTL, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.engine = engine
        self.claim = claim
        self.ttl = ttl
        self.clock = clock
        self.lost = False

    def check(self) -> None:
        """Raise ``LeaseLost`` once a renewal has found the lease taken."""
        if self.lost:
            raise LeaseLost(
                "another node took this sync over because this node did not renew its claim in time; "
                "that node's sync replaces this one"
            )

    def confirm(self, connection: Connection) -> None:
        """Inside the swap transaction: renew, or raise ``LeaseLost``."""
        if not _renew(connection, self.claim, now=self.clock(), ttl=self.ttl):
            self.lost = True
            self.check()

    async def keep(self) -> None:
        """Renew every third of the lease's life until cancelled or lost."""
        while not self.lost:
            await asyncio.sleep(self.ttl / 3)
            try:
                ok = await asyncio.to_thread(renew, self.engine, self.claim, now=self.clock(), ttl=self.ttl)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("could not renew the sync lease of integration %s: %s", self.claim.integration_id,
                            type(exc).__name__)  # fmt: skip
                continue
            if not ok:
                self.lost = True


# --- running one claimed sync ------------------------------------------------------------------------------

ConnectorFactory = Callable[[Runtime, int], Connector]
"""Builds the connector of an integration (by id) from its stored settings."""


def default_connector_factory(runtime: Runtime, integration_id: int) -> Connector:
    """The integration's preset and stored settings (see ``core.services.setup.open_connector``)."""
    from core.services.setup import open_connector

    return open_connector(runtime=runtime, integration_id=integration_id)


async def run_claim(
    runtime: Runtime,
    claim: Claim,
    *,
    node: str,
    connector_factory: ConnectorFactory | None = None,
    accept_shrink: bool = False,
    progress: ProgressCallback | None = None,
    ttl: float = LEASE_TTL,
    clock: Callable[[], datetime] = utcnow,
    sync_options: SyncOptions | None = None,
) -> SyncRunPublic:
    """Run the claimed sync while renewing the lease, then release it (handing the slot back if stopped)."""
    factory = connector_factory or default_connector_factory
    fence = LeaseFence(runtime.engine, claim, ttl=ttl, clock=clock)
    keeper = asyncio.create_task(fence.keep(), name=f"lease-{claim.integration_id}")
    base = sync_options or SyncOptions()
    options = SyncOptions(
        accept_shrink=accept_shrink,
        trigger=claim.trigger,
        node=node,
        batch_records=base.batch_records,
        parallel_after=base.parallel_after,
    )
    again = False
    try:
        return await sync_integration(
            engine=runtime.engine,
            integration_id=claim.integration_id,
            connector=lambda: factory(runtime, claim.integration_id),
            options=options,
            progress=progress,
            fence=fence,
        )
    except asyncio.CancelledError:
        again = True
        raise
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        try:
            await asyncio.shield(asyncio.to_thread(release, runtime.engine, claim, now=clock(), again=again))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not release the sync lease of integration %s: %s", claim.integration_id,
                        type(exc).__name__)  # fmt: skip


# --- the loop ----------------------------------------------------------------------------------------------


class SchedulerService:
    """``switchboard serve``'s scheduler: polls for due integrations and syncs them, a few at a time."""

    name = "scheduler"

    def __init__(
        self,
        runtime: Runtime,
        options: object,
        *,
        poll_interval: float = POLL_INTERVAL,
        lease_ttl: float = LEASE_TTL,
        max_concurrent: int = MAX_CONCURRENT,
        connector_factory: ConnectorFactory | None = None,
        clock: Callable[[], datetime] = utcnow,
        sync_options: SyncOptions | None = None,
    ) -> None:
        self.runtime = runtime
        self.node = str(getattr(options, "node", "") or f"{socket.gethostname()}:{os.getpid()}")
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.max_concurrent = max(1, max_concurrent)
        self.connector_factory = connector_factory
        self.clock = clock
        self.sync_options = sync_options
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[int, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Start the loop in the background."""
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name="scheduler")

    async def stop(self) -> None:
        """Stop polling, stop running syncs (their slots are handed back) and wait for all of it."""
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    def describe(self) -> list[str]:
        """What the operator sees at start."""
        return [
            f"scheduler: node {self.node}, up to {self.max_concurrent} syncs at a time, "
            f"looking for due syncs every {self.poll_interval:g} s"
        ]

    async def run(self) -> None:
        """Poll and start syncs until stopped; always stops the syncs it started."""
        try:
            while not self._stop.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_interval)
        finally:
            running = list(self._running.values())
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self._running.clear()

    async def tick(self) -> None:
        """Claim what is due (as many as there are free places) and start it; never raises."""
        free = self.max_concurrent - len(self._running)
        if free <= 0:
            return
        try:
            claims = await asyncio.to_thread(
                claim_due,
                self.runtime.engine,
                node=self.node,
                now=self.clock(),
                limit=free,
                ttl=self.lease_ttl,
            )
        except Exception as exc:
            log.warning("the scheduler could not look for due syncs: %s", _why(exc))
            return
        for claim in claims:
            task = asyncio.create_task(self._run_one(claim), name=f"sync-{claim.integration_id}")
            self._running[claim.integration_id] = task

    async def _run_one(self, claim: Claim) -> None:
        try:
            run = await run_claim(
                self.runtime,
                claim,
                node=self.node,
                connector_factory=self.connector_factory,
                ttl=self.lease_ttl,
                clock=self.clock,
                sync_options=self.sync_options,
            )
            log.info(
                "sync of integration %s (%s): %s, %d records, %d numbers%s",
                claim.integration_id,
                claim.trigger,
                run.outcome.value,
                run.records,
                run.numbers,
                f": {run.error}" if run.error else "",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("sync of integration %s could not run: %s", claim.integration_id, _why(exc))
        finally:
            self._running.pop(claim.integration_id, None)


def _why(exc: BaseException) -> str:
    """An exception for the log: our errors by message, others by type only (their text may hold secrets)."""
    return exc.message if isinstance(exc, SwitchboardError) else type(exc).__name__
