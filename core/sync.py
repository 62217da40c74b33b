"""The sync of one integration: copy the CRM's records and phone numbers into a new cache generation.

How a run goes (:func:`sync_integration`):

1. *Begin* (one transaction): generations of this integration other than the active one are left-overs of a
   run that died (``kill -9``, a lost node) and are deleted; runs still marked running are marked failed; a
   :class:`~core.models.SyncRun` is inserted, and its id is the number of the new generation (unique, so two
   runs can never mix their rows).
2. *Stream*: page by page from the connector. Records seen before (by ``record_id``) are left out; the phone
   fields are normalised with the tenant's country (:func:`core.numbers.split_numbers`) — in a helper process
   once the run turns out to be big, so that the CPU-heavy parsing neither stalls the event loop (the HTTP
   shim shares it) nor slows the download; records and numbers are written in batches with bulk inserts
   (``COPY`` on PostgreSQL), each batch committed on its own so no write lock is held for long. Internal
   numbers (extensions) are not cached; pieces that are not numbers are counted and a few kept as examples.
3. *Finish* (one transaction): unless the guard holds it back, the integration switches to the new
   generation and the old one is deleted. Lookups join the active generation in their query, so every node
   sees the new cache the moment this commits, and never a half-written one.

Whatever goes wrong — the CRM refuses the key, the network fails, the JSON is cut off, the process crashes —
the active generation is untouched and keeps answering lookups; the error is recorded on the run in admin
terms (never a stack trace or a secret).

The guard: a run that finds fewer records than ``Integration.sync_guard_percent`` (default 50) percent of
the records in the active cache does not replace it; it ends as ``SUSPICIOUS`` so that a CRM outage, or an
expired permission that returns an empty list, cannot wipe caller recognition. ``accept_shrink=True``
(``switchboard sync --accept-shrink``) accepts such a result deliberately; ``sync_guard_percent = 0`` turns
the guard off for an integration.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.connector.base import Connector, FetchedRecord, PageProgress
from core.errors import NotFound, SwitchboardError
from core.models import CachedNumber, CachedRecord, Integration, SyncOutcome, SyncRun, SyncRunPublic, Tenant, utcnow
from core.sync_worker import ParsedField, parse_phone_fields, watch_parent
from core.sync_writer import Counts, Writer

log = logging.getLogger("core.sync")

_record = CachedRecord.__table__  # type: ignore[attr-defined]
_number = CachedNumber.__table__  # type: ignore[attr-defined]
_run = SyncRun.__table__  # type: ignore[attr-defined]
_integration = Integration.__table__  # type: ignore[attr-defined]


DEFAULT_BATCH_RECORDS = 5_000
"""Records written per transaction."""

DEFAULT_PARALLEL_AFTER = 2_000
"""Phone fields normalised in this process; beyond, a helper process takes over (``None``: never)."""

PIPELINE_DEPTH = 8
"""Pages being normalised while the next ones download."""

INTERRUPTED = "the sync stopped before it finished (the process ended or the node was lost)"


class SyncError(SwitchboardError):
    """A sync could not start or finish for a reason the admin should know."""

    title = "Sync failed"


class LeaseLost(SyncError):
    """Another node took this integration's sync over; this run must not switch the cache."""

    title = "Sync taken over"


class Fence(Protocol):
    """The claim under which a sync runs (see ``core.scheduler``): checked per page and inside the swap."""

    def check(self) -> None:
        """Raise :class:`LeaseLost` if the claim is known to be lost."""

    def confirm(self, connection: Connection) -> None:
        """Inside the swap transaction: renew the claim, raising :class:`LeaseLost` unless it is still ours."""


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """How far a run has come: pages and records fetched so far over all object types."""

    object_type: str
    pages: int
    records: int


ProgressCallback = Callable[[SyncProgress], None]


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """How to run: accept a shrunken result, who asked, batch sizes (tunable for tests and benchmarks)."""

    accept_shrink: bool = False
    trigger: str = "manual"
    node: str = ""
    batch_records: int = DEFAULT_BATCH_RECORDS
    parallel_after: int | None = DEFAULT_PARALLEL_AFTER


# --- normalising (runs in a worker thread or a helper process) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parsing:
    """A page's new records, their raw phone fields and the parse of those fields under way."""

    records: list[FetchedRecord]
    raws: list[str]
    future: asyncio.Future[list[ParsedField]]


class _Parser:
    """Runs :func:`parse_phone_fields` in a thread, then (once the run is big) in one helper process.

    The helper is started with ``spawn`` (safe next to threads); like every ``multiprocessing`` user, a script
    that runs a sync must keep its top-level code under ``if __name__ == "__main__":``.
    """

    def __init__(self, country: str, parallel_after: int | None) -> None:
        self.country = country
        self.parallel_after = parallel_after
        self.fields = 0
        self.pool: ProcessPoolExecutor | None = None

    def submit(self, raws: list[str]) -> asyncio.Future[list[ParsedField]]:
        """Start parsing; the future resolves to one entry per raw field."""
        loop = asyncio.get_running_loop()
        self.fields += len(raws)
        if self.pool is None and self.parallel_after is not None and self.fields > self.parallel_after:
            self.pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=watch_parent,
                initargs=(os.getpid(),),
            )
        executor: Executor | None = self.pool
        return loop.run_in_executor(executor, parse_phone_fields, raws, self.country)

    async def result(self, item: _Parsing) -> list[ParsedField]:
        """The parsed fields; if the helper process died, it is given up and the page parsed here instead."""
        try:
            return await item.future
        except BrokenProcessPool:
            log.warning("the number-parsing helper process stopped; parsing in the sync process instead")
            self.parallel_after = None
            await self.aclose()
            return await asyncio.to_thread(parse_phone_fields, item.raws, self.country)

    async def aclose(self) -> None:
        """Stop the helper process, if one was started."""
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


# --- one run -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Start:
    """What the begin step found and created."""

    run_id: int
    generation: int
    tenant_id: int
    country: str
    active: int | None
    cached_records: int
    guard_percent: int


def _drop_generation(connection: Connection, integration_id: int, generation: int) -> None:
    """Delete one generation: numbers first, so the cascade from records has nothing left to look for."""
    for table in (_number, _record):
        connection.execute(
            sa.delete(table).where(table.c.integration_id == integration_id, table.c.generation == generation)
        )


def _drop_all_but(connection: Connection, integration_id: int, active: int | None) -> None:
    """Delete every generation of the integration except the active one (left-overs of dead runs)."""
    for table in (_number, _record):
        condition = table.c.integration_id == integration_id
        if active is not None:
            condition = sa.and_(condition, table.c.generation != active)
        connection.execute(sa.delete(table).where(condition))


def _begin(engine: Engine, integration_id: int, options: SyncOptions) -> _Start:
    """Clean up after dead runs, record the new run and read what the guard needs."""
    with engine.begin() as connection:
        row = connection.execute(
            sa.select(
                _integration.c.tenant_id,
                _integration.c.active_generation,
                _integration.c.sync_guard_percent,
                Tenant.__table__.c.country,  # type: ignore[attr-defined]
            )
            .join(Tenant.__table__, Tenant.__table__.c.id == _integration.c.tenant_id)  # type: ignore[attr-defined]
            .where(_integration.c.id == integration_id)
        ).first()
        if row is None:
            raise NotFound(f"there is no integration {integration_id}", field="integration")
        tenant_id, active, guard, country = row
        _drop_all_but(connection, integration_id, active)
        now = utcnow()
        connection.execute(
            sa.update(_run)
            .where(_run.c.integration_id == integration_id, _run.c.outcome == SyncOutcome.RUNNING.value)
            .values(outcome=SyncOutcome.FAILED.value, finished_at=now, error=INTERRUPTED)
        )
        run_id = connection.execute(
            sa.insert(_run)
            .values(
                tenant_id=tenant_id,
                integration_id=integration_id,
                trigger=options.trigger[:20],
                node=options.node[:120],
                started_at=now,
                outcome=SyncOutcome.RUNNING.value,
                records=0,
                numbers=0,
                unparsed=0,
                unparsed_examples=[],
                shared_numbers=0,
            )
            .returning(_run.c.id)
        ).scalar_one()
        connection.execute(sa.update(_run).where(_run.c.id == run_id).values(generation=run_id))
        cached = 0
        if active is not None:
            cached = connection.execute(
                sa.select(sa.func.count())
                .select_from(_record)
                .where(_record.c.integration_id == integration_id, _record.c.generation == active)
            ).scalar_one()
    return _Start(run_id, run_id, tenant_id, country, active, cached, guard)


def _shared_numbers(connection: Connection, integration_id: int, generation: int) -> int:
    """How many numbers of the generation belong to more than one record."""
    shared = (
        sa.select(_number.c.e164)
        .where(_number.c.integration_id == integration_id, _number.c.generation == generation)
        .group_by(_number.c.e164)
        .having(sa.func.count(sa.distinct(_number.c.record_pk)) > 1)
        .subquery()
    )
    return int(connection.execute(sa.select(sa.func.count()).select_from(shared)).scalar_one())


def shrink_message(records: int, cached: int, percent: int) -> str:
    """Why a run was held back by the guard, and what the admin can do."""
    return (
        f"the CRM returned {records:,} records where the cache holds {cached:,} (under {percent}%), so the cache "
        "was kept: a CRM outage or a lost permission can look like this. If the CRM really has that few records "
        "now, sync again accepting the drop (`switchboard sync --accept-shrink`)."
    )


def _finish(engine: Engine, start: _Start, integration_id: int, counts: Counts, options: SyncOptions,
            fence: Fence | None) -> None:  # fmt: skip
    """Switch to the new generation and drop the old one in one transaction, unless the guard holds it back."""
    with engine.begin() as connection:
        if fence is not None:
            fence.confirm(connection)
        counts.shared = _shared_numbers(connection, integration_id, start.generation)
        guard = start.guard_percent
        shrunk = start.active is not None and counts.records * 100 < start.cached_records * guard
        if shrunk and not options.accept_shrink:
            _drop_generation(connection, integration_id, start.generation)
            _record_end(connection, start, counts, SyncOutcome.SUSPICIOUS,
                        shrink_message(counts.records, start.cached_records, guard))  # fmt: skip
            return
        switched = connection.execute(
            sa.update(_integration)
            .where(
                _integration.c.id == integration_id,
                _integration.c.active_generation.is_not_distinct_from(start.active),
            )
            .values(active_generation=start.generation)
        ).rowcount
        if switched != 1:
            raise SyncError("another sync switched this integration's cache meanwhile; this run's result was dropped")
        if start.active is not None:
            _drop_generation(connection, integration_id, start.active)
        _record_end(connection, start, counts, SyncOutcome.SUCCESS, None)


def _record_end(connection: Connection, start: _Start, counts: Counts, outcome: SyncOutcome, error: str | None) -> None:
    connection.execute(
        sa.update(_run)
        .where(_run.c.id == start.run_id)
        .values(
            finished_at=utcnow(),
            outcome=outcome.value,
            records=counts.records,
            numbers=counts.numbers,
            unparsed=counts.unparsed,
            unparsed_examples=list(counts.examples),
            shared_numbers=counts.shared,
            error=error,
        )
    )


def _fail(engine: Engine, start: _Start, integration_id: int, counts: Counts, error: str) -> None:
    """Drop the half-written generation and record the failure (best effort: the next run cleans up too)."""
    try:
        with engine.begin() as connection:
            _drop_generation(connection, integration_id, start.generation)
            _record_end(connection, start, counts, SyncOutcome.FAILED, error)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not record the failed sync of integration %s: %s", integration_id, type(exc).__name__)


def describe_failure(exc: BaseException) -> str:
    """A failure in admin terms: the error's own message when it is ours, never a stack trace or a secret."""
    if isinstance(exc, SwitchboardError):
        return exc.message
    if isinstance(exc, asyncio.CancelledError):
        return "the sync was stopped before it finished (the server shut down or the command was interrupted)"
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return f"the database failed while the cache was written ({type(exc).__name__}); try again later"
    return f"the sync stopped because of an internal error ({type(exc).__name__}); the server log has details"


def _load_run(engine: Engine, run_id: int) -> SyncRunPublic:
    with engine.connect() as connection:
        row = connection.execute(sa.select(_run).where(_run.c.id == run_id)).mappings().one()
    return SyncRunPublic.model_validate(dict(row))


class _Pipeline:
    """Fetch → de-duplicate → parse (thread or helper process) → write (thread), with a bounded backlog."""

    def __init__(self, writer: Writer, parser: _Parser, options: SyncOptions) -> None:
        self.writer = writer
        self.parser = parser
        self.options = options
        self.seen: set[str] = set()
        self.backlog: collections.deque[_Parsing] = collections.deque()
        self.flushing: asyncio.Future[None] | None = None

    async def feed(self, page: Sequence[FetchedRecord]) -> None:
        """Take one page: start parsing its phone fields and write what is ready."""
        fresh: list[FetchedRecord] = []
        for record in page:
            if record.record_id not in self.seen and len(record.record_id) <= 200:
                self.seen.add(record.record_id)
                fresh.append(record)
        if fresh:
            raws = [raw for record in fresh for _label, raw in record.phones]
            self.backlog.append(_Parsing(fresh, raws, self.parser.submit(raws)))
        while self.backlog and (len(self.backlog) > PIPELINE_DEPTH or self.backlog[0].future.done()):
            await self._take_one()

    async def _take_one(self) -> None:
        item = self.backlog.popleft()
        self.writer.add(item.records, await self.parser.result(item))
        if self.writer.pending >= self.options.batch_records:
            await self._flush()

    async def _flush(self) -> None:
        """Write the queued rows in the background, after the previous batch is written."""
        if self.flushing is not None:
            await self.flushing
        rows = self.writer.take()
        self.flushing = asyncio.ensure_future(asyncio.to_thread(self.writer.write, rows))

    async def drain(self) -> None:
        """Parse and write everything still queued."""
        while self.backlog:
            await self._take_one()
        await self._flush()
        if self.flushing is not None:
            await self.flushing

    async def abandon(self) -> None:
        """After a failure: wait for work in flight (it must not write after the clean-up) and drop the rest."""
        pending: list[asyncio.Future[Any]] = [item.future for item in self.backlog]
        if self.flushing is not None:
            pending.append(self.flushing)
        self.backlog.clear()
        for future in pending:
            with contextlib.suppress(BaseException):
                await asyncio.shield(future)


class _ProgressRelay:
    """Turns the connector's per-object-type progress into totals for the caller."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.pages = 0
        self.per_type: dict[str, int] = {}

    def __call__(self, progress: PageProgress) -> None:
        self.pages += 1
        self.per_type[progress.object_type] = progress.records
        if self.callback is not None:
            try:
                self.callback(SyncProgress(progress.object_type, self.pages, sum(self.per_type.values())))
            except Exception as exc:  # a broken progress display must not break the sync
                log.warning("sync progress callback failed: %s", type(exc).__name__)


async def sync_integration(
    *,
    engine: Engine,
    integration_id: int,
    connector: Connector | Callable[[], Connector],
    options: SyncOptions | None = None,
    progress: ProgressCallback | None = None,
    fence: Fence | None = None,
) -> SyncRunPublic:
    """Sync one integration from ``connector`` into a new cache generation; returns the recorded run.

    ``connector`` is a connector or a function building one (then a failure to build it, such as settings
    that no longer fit the preset, is recorded on the run too); it is closed at the end. The caller must hold
    the integration's sync lease (``core.scheduler``), which makes this the only run of the integration.
    Failures are recorded on the run, not raised; cancelling the task records the run as stopped and
    re-raises. Raises only when the run cannot even be recorded (``NotFound`` for a missing integration, a
    database error).
    """
    options = options or SyncOptions()
    start = await asyncio.to_thread(_begin, engine, integration_id, options)
    writer = Writer(engine, integration_id, start.generation)
    parser = _Parser(start.country, options.parallel_after)
    pipeline = _Pipeline(writer, parser, options)
    source: Connector | None = None
    try:
        try:
            source = connector if isinstance(connector, Connector) else connector()
            async for page in source.fetch(progress=_ProgressRelay(progress)):
                if fence is not None:
                    fence.check()
                await pipeline.feed(page)
            await pipeline.drain()
            await asyncio.to_thread(_finish, engine, start, integration_id, writer.counts, options, fence)
        except BaseException as exc:
            await pipeline.abandon()
            writer.counts.records = len(pipeline.seen)  # what was fetched before it failed
            await asyncio.shield(asyncio.to_thread(_fail, engine, start, integration_id, writer.counts,
                                                   describe_failure(exc)))  # fmt: skip
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            _log_failure(integration_id, exc)
    finally:
        await parser.aclose()
        if source is not None:
            await _close(source)
    return await asyncio.to_thread(_load_run, engine, start.run_id)


async def _close(connector: Connector) -> None:
    try:
        await connector.aclose()
    except Exception as exc:
        log.warning("closing the CRM connection failed: %s", type(exc).__name__)


def _log_failure(integration_id: int, exc: BaseException) -> None:
    """Log a failed run without secrets: our errors by their message, others by type (traceback at DEBUG)."""
    if isinstance(exc, SwitchboardError):
        log.warning("sync of integration %s failed: %s", integration_id, exc.message)
    else:
        log.error("sync of integration %s failed: internal error %s", integration_id, type(exc).__name__)
        log.debug("sync of integration %s failed", integration_id, exc_info=exc)
