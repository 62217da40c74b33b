"""Answering "who is calling?" from the cache: the connections, the in-memory configuration, the result.

One :class:`Lookups` object serves a process (the HTTP shim and ``switchboard lookup`` share it). The hot path
costs one to three indexed queries (built in :mod:`core.lookup_queries`) on a connection kept per thread, with
no ORM objects, in one read transaction on SQLite:

1. *state*: the token (or tenant slug) joined with its tenant and the tenant's integrations (id, version,
   enabled), plus the number and newest change time of the tenant's scripts. This authenticates the caller
   and gives the configuration's fingerprint; the configuration itself (names, notification fields, parsed
   scripts) is cached in memory and reloaded only when the fingerprint changes, so a change saved on any node
   is seen by the next lookup on every node. On SQLite the state rows themselves are kept until any other
   connection commits (``PRAGMA data_version``), so a revoked token is refused by the very next lookup.
2. *exact*: the caller's E.164 in the active cache generation of the tenant's enabled integrations. The
   generation is joined in the same statement, so a sync's new generation is used as soon as it commits. A
   number that arrives written as an E.164 is looked up before it is parsed: on a hit, the cache row's
   national form completes it (see :meth:`Lookups._lookup`); only misses and other writings are parsed.
3. *partial*, only when nothing matched exactly: numbers ending with the caller's last digits (a prefix range
   on the reversed-digits index); :func:`core.matching.choose_partial` decides.

Lookups only read, on autocommit connections; the token's ``last_used_at`` is written at most once a minute
per token by a background thread, so a lookup never waits for a writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.errors import NotFound, SwitchboardError
from core.lookup_queries import (
    EXACT_ROW_LIMIT,
    TOUCH,
    WARM_UP_SQL,
    Prepared,
    Statements,
    as_candidates,
    fingerprint,
    load_rules,
    utc_column,
    warm_up_step,
)
from core.matching import (
    MAX_MATCHES,
    Call,
    CallInput,
    Candidate,
    Match,
    MatchKind,
    TenantRules,
    build_result,
    choose_partial,
    partial_prefix,
    prepare_call,
)
from core.models import utcnow
from core.numbers import PhoneNumber, written_as_e164
from core.security import token_digest

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_MS = 250
"""How long a lookup waits for a locked SQLite file before answering 503 (it runs on the event loop)."""

SQLITE_MMAP_BYTES = 1 << 30
"""How much of the SQLite file the lookup connection reads through a memory map (SQLite maps no more than the
file holds). A new caller's lookup reads pages that are mostly not in SQLite's own page cache; mapped, reading
one costs no ``pread`` and no 4 KiB copy: a tenth of a lookup's CPU. The mapped pages are the kernel's
page cache of the file (shared, dropped first under memory pressure), though they count in the process's RSS."""

STATE_CACHE_SIZE = 4096
"""Tokens (and tenant slugs) whose state rows a lookup thread keeps between database changes (SQLite)."""

TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
"""A token's ``last_used_at`` is updated at most this often."""


class LookupUnavailable(SwitchboardError):
    """The database did not answer; the lookup can be retried."""

    title = "Lookup unavailable"
    http_status = 503


@dataclass(slots=True)  # not frozen: made per lookup, and a frozen __init__ costs four times as much
class LookupResult:
    """A lookup's answer (``body``, JSON-ready) and what metrics need to know about it."""

    tenant_slug: str
    body: dict[str, Any]
    outcome: str  # "exact", "partial" or "none"


# --- the service --------------------------------------------------------------------------------------------


class _PerThread(threading.local):
    connection: Any = None
    version: int | None = None  # SQLite's data_version when ``states`` was last known to be current
    checked: bool = False  # SQLite: ``version`` was read in the current read transaction
    held: bool = False  # SQLite: lookups leave their read transaction open for the next (see hold_snapshot)
    states: dict[str, list[tuple[Any, ...]]]

    def __init__(self) -> None:
        self.states = {}


class Lookups:
    """Answers lookups for any tenant of one database; thread-safe, one connection per calling thread."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        self._statements = Statements.for_dialect(engine.dialect)
        self._sqlite = engine.dialect.name == "sqlite"
        self._errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = _PerThread()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._rules: dict[int, tuple[Sequence[tuple[Any, ...]], TenantRules]] = {}  # with the state last checked
        self._touched: dict[int, float] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-touch")
        self._closed = False

    # connections

    def _connect(self) -> Any:
        """This thread's DBAPI connection, in autocommit mode (reads only) and owned here, not by the pool."""
        connection: Any = self._local.connection
        if connection is None:
            proxied = self._engine.raw_connection()
            proxied.detach()
            connection = proxied.dbapi_connection
            if self._engine.dialect.name == "sqlite":
                connection.isolation_level = None
                # WAL readers wait only in rare moments (e.g. WAL recovery); on the event loop, not for long.
                connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
                # Pages are read through a memory map: no system call and no copy into SQLite's page cache each
                # (so that cache stays at SQLite's default 2 MB: a bigger one measured no faster with the map).
                connection.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            else:
                connection.autocommit = True
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        connection, self._local.connection = self._local.connection, None
        self._local.version = None
        self._local.checked = False
        self._local.states = {}
        if connection is not None:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            _close_quietly(connection)

    def _run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)``; a database failure drops the connection and is tried once more on a new one.

        A second failure (or a failure on a new connection) is :class:`LookupUnavailable`. On SQLite the work
        runs in one read transaction: it sees one snapshot, and the file locks a read transaction takes and
        releases (system calls, together as costly as the queries) are taken once per lookup, not per query,
        or once for several lookups while a snapshot is held (:meth:`hold_snapshot`).
        """
        for attempt in (1, 2):
            fresh = self._local.connection is None
            try:
                connection = self._connect()
                cursor = connection.cursor()
                try:
                    if not self._sqlite:
                        return work(cursor)
                    if not connection.in_transaction:
                        cursor.execute("BEGIN")
                        self._local.checked = False  # a new snapshot: _state asks data_version again
                    try:
                        return work(cursor)
                    finally:
                        if not self._local.held:
                            cursor.execute("COMMIT")  # only read: ends the snapshot and releases the locks
                finally:
                    cursor.close()
            except (self._errors, sa.exc.SQLAlchemyError) as exc:
                self._drop_connection()
                log.warning("lookup database error (attempt %d): %s", attempt, type(exc).__name__)
                if fresh:
                    break
        raise LookupUnavailable("the cache database did not answer; try again in a moment")

    def hold_snapshot(self) -> None:
        """Let this thread's next lookups share one read transaction, until :meth:`release_snapshot`.

        The HTTP shim holds it for the lookups one turn of its event loop runs (on SQLite, where they run on
        the loop), so under load the file locks are taken once per turn instead of once per lookup. Those
        lookups see the database as it was when the first of them started: at most one turn of the loop ago.
        """
        self._local.held = self._sqlite

    def release_snapshot(self) -> None:
        """End the shared read transaction, if any: the next lookup sees every commit made until now."""
        local = self._local
        local.held = False
        connection = local.connection
        if connection is not None and self._sqlite and connection.in_transaction:
            try:
                connection.execute("COMMIT")
            except self._errors as exc:
                log.warning("ending a lookup snapshot failed: %s", type(exc).__name__)
                self._drop_connection()

    def warm_up(self) -> Iterator[None]:
        """Read every page of the cache a lookup may read once, on this thread's connection: one step per item.

        On SQLite the file is read through a memory map (:data:`SQLITE_MMAP_BYTES`), and the first read of a
        page by a connection costs a page fault, which for a new caller's lookup on a fresh process costs
        about a quarter more. The shim takes these steps before it answers (see
        :meth:`core.shim.app.Shim.warm_up`), so callers right after a start are answered as fast as later
        ones. Each step reads :data:`~core.lookup_queries.WARM_UP_ROWS` entries of one b-tree. On PostgreSQL,
        which keeps its own cache, there is nothing to do.
        """
        if not self._sqlite:
            return
        for statement, start in WARM_UP_SQL:
            after: Any = start
            while after is not None:
                after = self._run(partial(warm_up_step, statement=statement, after=after))
                yield

    def close(self) -> None:
        """Close every connection this object opened and stop the background writer."""
        self._closed = True
        self._writer.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            _close_quietly(connection)

    # configuration

    def _rules_for(self, cursor: Any, state: Sequence[tuple[Any, ...]]) -> TenantRules:
        tenant_id = state[0][0]
        known = self._rules.get(tenant_id)
        if known is not None and known[0] is state:
            return known[1]  # the very rows it was checked against (kept by _state): nothing to compare
        rules = known[1] if known is not None else None
        if rules is None or rules.fingerprint != fingerprint(state):
            rules = load_rules(cursor, self._statements, state)
        self._rules[tenant_id] = (state, rules)
        return rules

    def _state(self, cursor: Any, statement: Prepared, key: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The tenant's state rows (see the module docstring), read again only when the database changed.

        On SQLite, ``PRAGMA data_version`` tells whether any other connection committed since the rows were
        read (a token revoked, a setting saved, a sync finished: anything), at a third of the cost of the
        query; until then the rows this thread read are still the database's. It is asked once per read
        transaction, so once for all the lookups sharing a snapshot (:meth:`hold_snapshot`). On PostgreSQL
        there is no such cheap check, and the query runs every time.
        """
        if not self._sqlite:
            return statement.rows(cursor, params)
        local = self._local
        if not local.checked:  # once per read transaction: within one, the snapshot (and so the rows) stays put
            cursor.execute("PRAGMA data_version")
            version = cursor.fetchone()[0]
            local.checked = True
            if version != local.version:
                local.states = {}
                local.version = version
        state = local.states.get(key)
        if state is None:
            state = statement.rows(cursor, params)
            if state:  # unknown tokens are not kept: guessing them must not fill memory
                if len(local.states) >= STATE_CACHE_SIZE:
                    local.states.clear()
                local.states[key] = state
        return state

    # lookups

    def by_token(self, token: str, call: CallInput) -> LookupResult | None:
        """Look a call up for the tenant owning ``token``; None for a missing, unknown or revoked token."""
        if not token or len(token) > 200:
            return None
        digest = token_digest(token)

        def work(cursor: Any) -> LookupResult | None:
            state = self._state(cursor, self._statements.state_by_token, "token:" + digest, {"digest": digest})
            if not state:
                return None
            rules = self._rules_for(cursor, state)
            self._touch_later(state[0][11], state[0][12])
            return self._lookup(cursor, rules, call)

        return self._run(work)

    def by_tenant(self, slug: str, call: CallInput) -> LookupResult:
        """Look a call up for the tenant ``slug`` (the operator's ``switchboard lookup``)."""

        def work(cursor: Any) -> LookupResult:
            key = (slug or "").strip().lower()
            state = self._state(cursor, self._statements.state_by_slug, "slug:" + key, {"slug": key})
            if not state:
                raise NotFound(f"there is no tenant {slug!r}; `switchboard tenant list` shows them", field="tenant")
            return self._lookup(cursor, self._rules_for(cursor, state), call)

        return self._run(work)

    def _lookup(self, cursor: Any, rules: TenantRules, call_input: CallInput) -> LookupResult:
        # A caller's number written as an E.164 is tried in the cache before it is parsed: every E.164 there came
        # out of core.numbers.normalize with the tenant's country and reads back as itself, so a hit is a valid
        # number, and the row has its national form. Parsing (a third of a lookup's time) is left for the rest.
        caller = None
        known = None
        e164 = written_as_e164(call_input.caller_number)
        if e164 is not None:
            rows = self._statements.exact.rows(cursor, {"e164": e164, "tenant_id": rules.tenant_id})
            known = (e164, rows)
            for row in rows:
                if row[5]:  # empty in rows cached before migration 0004
                    caller = PhoneNumber(call_input.caller_number, e164, row[5], None, False)
                    break
        call = prepare_call(call_input, rules=rules, now=self._clock(), caller=caller)
        matches, truncated = self._match(cursor, rules, call, known)
        if any(m.candidate.integration_id not in rules.integrations for m in matches):
            matches = [m for m in matches if m.candidate.integration_id in rules.integrations]  # created meanwhile
        outcome = matches[0].kind.value if matches else "none"
        return LookupResult(rules.slug, build_result(rules, call, matches, truncated=truncated), outcome)

    def _match(
        self, cursor: Any, rules: TenantRules, call: Call, known: tuple[str, list[tuple[Any, ...]]] | None
    ) -> tuple[list[Match], bool]:
        """Exact matches, else a partial one; ``known`` is the exact rows already read for an E.164, if any."""
        caller = call.caller
        if caller.e164 is None:
            return [], False  # internal numbers are never matched
        if known is not None and known[0] == caller.e164:
            rows = known[1]
        else:
            rows = self._statements.exact.rows(cursor, {"e164": caller.e164, "tenant_id": rules.tenant_id})
        if len(rows) == 1:  # the usual hit: what the lines below give for it, without sorting one candidate
            return [Match(as_candidates(rows)[0], MatchKind.EXACT)], False
        if rows:
            rank = rules.rank
            exact = _unique(sorted(as_candidates(rows), key=lambda c: (rank.get(c.integration_id, -1), c.record_pk)))
            truncated = len(exact) > MAX_MATCHES or len(rows) >= EXACT_ROW_LIMIT
            return [Match(c, MatchKind.EXACT) for c in exact[:MAX_MATCHES]], truncated
        prefix = partial_prefix(caller, digits=rules.min_digits)
        if prefix is None:
            return [], False
        params = {"low": prefix, "high": prefix + ":", "tenant_id": rules.tenant_id}  # ":" sorts after "9"
        candidates = as_candidates(self._statements.partial.rows(cursor, params))
        enabled = [rule.id for rule in rules.integrations.values() if rule.enabled]
        chosen = choose_partial(caller, candidates, enabled=enabled)
        return ([Match(chosen, MatchKind.PARTIAL)] if chosen else []), False

    # last_used_at

    def _touch_later(self, token_id: int | None, used: Any) -> None:
        """Record that the token was used, at most once a minute, without making the lookup wait."""
        if token_id is None or self._closed:
            return
        moment = time.monotonic()
        if moment - self._touched.get(token_id, -1e9) < TOKEN_TOUCH_INTERVAL.total_seconds():
            return  # this process saw (and recorded) it within the minute
        now = self._clock()
        last = utc_column(used)
        with self._lock:
            self._touched[token_id] = moment
        if last is not None and now - last < TOKEN_TOUCH_INTERVAL:
            return  # another node recorded it
        try:
            self._writer.submit(self._touch, token_id, now)
        except RuntimeError:
            return  # shutting down

    def _touch(self, token_id: int, now: datetime) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(TOUCH, {"token_id": token_id, "now": now, "cutoff": now - TOKEN_TOUCH_INTERVAL})
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not record a token's last use: %s", type(exc).__name__)


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail in driver-specific ways; it is gone either way
        log.debug("closing a lookup connection failed", exc_info=True)


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per record (a record with the number twice, e.g. as phone and mobile, matches once)."""
    seen: set[int] = set()
    unique = []
    for candidate in candidates:
        if candidate.record_pk not in seen:
            seen.add(candidate.record_pk)
            unique.append(candidate)
    return unique
