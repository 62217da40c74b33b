"""Answering "who is calling?" from the cache: the queries, the in-memory configuration, the result.

One :class:`Lookups` object serves a process (the HTTP shim and ``switchboard lookup`` share it). The hot path
costs two or three indexed queries on a connection kept per thread, with no ORM objects:

1. *state*: the token (or tenant slug) joined with its tenant and the tenant's integrations (id, version,
   enabled), plus the number and newest change time of the tenant's scripts. This authenticates the caller
   and gives the configuration's fingerprint; the configuration itself (names, notification fields, parsed
   scripts) is cached in memory and reloaded only when the fingerprint changes, so a change saved on any node
   is seen by the next lookup on every node.
2. *exact*: the caller's E.164 in the active cache generation of the tenant's enabled integrations. The
   generation is joined in the same statement, so a sync's new generation is used as soon as it commits.
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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import NotFound, PhoneNumberError, SwitchboardError
from core.matching import (
    MAX_MATCHES,
    PARTIAL_CANDIDATE_LIMIT,
    Call,
    CallInput,
    Candidate,
    IntegrationRule,
    Match,
    MatchKind,
    ScriptRule,
    TenantRules,
    build_result,
    choose_partial,
    ddi_key,
    partial_prefix,
    prepare_call,
)
from core.models import ApiToken, CachedNumber, CachedRecord, Integration, Script, ScriptWhen, Tenant, utcnow
from core.security import token_digest

log = logging.getLogger(__name__)

AnyRow: TypeAlias = sa.Row[*tuple[Any, ...]]

TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
"""A token's ``last_used_at`` is updated at most this often."""

_token = ApiToken.__table__  # type: ignore[attr-defined]
_tenant = Tenant.__table__  # type: ignore[attr-defined]
_integration = Integration.__table__  # type: ignore[attr-defined]
_script = Script.__table__  # type: ignore[attr-defined]
_record = CachedRecord.__table__  # type: ignore[attr-defined]
_number = CachedNumber.__table__  # type: ignore[attr-defined]


class LookupUnavailable(SwitchboardError):
    """The database did not answer; the lookup can be retried."""

    title = "Lookup unavailable"
    http_status = 503


@dataclass(frozen=True, slots=True)
class LookupResult:
    """A lookup's answer (``body``, JSON-ready) and what metrics need to know about it."""

    tenant_slug: str
    body: dict[str, Any]
    outcome: str  # "exact", "partial" or "none"


# --- queries (built once; SQLAlchemy caches their compiled form) -------------------------------------------


def _state_query(source: sa.FromClause, where: sa.ColumnElement[bool], *extra: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """The tenant, its integrations' versions and its scripts' change marks: one row per integration."""
    scripts = sa.select(sa.func.count()).where(_script.c.tenant_id == _tenant.c.id).scalar_subquery()
    changed = sa.select(sa.func.max(_script.c.updated_at)).where(_script.c.tenant_id == _tenant.c.id)
    return (
        sa.select(
            _tenant.c.id,
            _tenant.c.slug,
            _tenant.c.country,
            _tenant.c.timezone,
            _tenant.c.partial_match_digits,
            scripts.label("scripts"),
            changed.scalar_subquery().label("scripts_changed"),
            _integration.c.id.label("integration_id"),
            _integration.c.version,
            _integration.c.enabled,
            *extra,
        )
        .select_from(source.outerjoin(_integration, _integration.c.tenant_id == _tenant.c.id))
        .where(where)
    )


_STATE_BY_TOKEN = _state_query(
    _token.join(_tenant, _tenant.c.id == _token.c.tenant_id),
    sa.and_(_token.c.token_hash == sa.bindparam("digest"), _token.c.revoked_at.is_(None)),
    _token.c.id.label("token_id"),
    _token.c.last_used_at.label("token_used"),
)
_STATE_BY_SLUG = _state_query(_tenant, _tenant.c.slug == sa.bindparam("slug"))

_MATCH_COLUMNS = (_number.c.integration_id, _record.c.id, _record.c.record_id, _record.c.fields, _number.c.e164)
_ACTIVE = sa.and_(
    _integration.c.id == _number.c.integration_id, _integration.c.active_generation == _number.c.generation
)
_EXACT = (
    sa.select(*_MATCH_COLUMNS)
    .select_from(_number.join(_integration, _ACTIVE).join(_record, _record.c.id == _number.c.record_pk))
    .where(
        _number.c.e164 == sa.bindparam("e164"),
        _integration.c.tenant_id == sa.bindparam("tenant_id"),
        _integration.c.enabled == sa.true(),
    )
    .order_by(_integration.c.position, _integration.c.id, _record.c.id)
    .limit(MAX_MATCHES + 1)
)
_PARTIAL = (
    sa.select(*_MATCH_COLUMNS)
    .select_from(_number.join(_integration, _ACTIVE).join(_record, _record.c.id == _number.c.record_pk))
    .where(
        _number.c.suffix >= sa.bindparam("low"),
        _number.c.suffix < sa.bindparam("high"),
        _integration.c.tenant_id == sa.bindparam("tenant_id"),
    )
    .limit(PARTIAL_CANDIDATE_LIMIT)
)
_INTEGRATIONS = (
    sa.select(
        _integration.c.id,
        _integration.c.name,
        _integration.c.preset,
        _integration.c.enabled,
        _integration.c.notification,
    )
    .where(_integration.c.tenant_id == sa.bindparam("tenant_id"))
    .order_by(_integration.c.position, _integration.c.id)
)
_SCRIPTS = (
    sa.select(
        _script.c.id,
        _script.c.integration_id,
        _script.c.name,
        _script.c.url_template,
        _script.c.when,
        _script.c.auto_open,
        _script.c.ddi_filter,
    )
    .where(_script.c.tenant_id == sa.bindparam("tenant_id"))
    .order_by(_script.c.position, _script.c.id)
)
_TOUCH = (
    sa.update(_token)
    .where(
        _token.c.id == sa.bindparam("token_id"),
        sa.or_(_token.c.last_used_at.is_(None), _token.c.last_used_at < sa.bindparam("cutoff")),
    )
    .values(last_used_at=sa.bindparam("now"))
)


# --- turning rows into configuration ------------------------------------------------------------------------


def _fingerprint(rows: Sequence[AnyRow]) -> tuple[Any, ...]:
    first = rows[0]
    integrations = tuple((r.integration_id, r.version, bool(r.enabled)) for r in rows if r.integration_id)
    return (
        first.country,
        first.timezone,
        first.partial_match_digits,
        first.scripts,
        first.scripts_changed,
        integrations,
    )


def _script_rule(row: AnyRow, country: str) -> ScriptRule:
    key = None
    if row.ddi_filter:
        try:
            key = ddi_key(row.ddi_filter, country=country)
        except PhoneNumberError:
            key = "!" + row.ddi_filter  # saved before a country change: matches no call, never every call
    try:
        when = ScriptWhen(row.when)
    except ValueError:
        when = ScriptWhen.MATCH
    return ScriptRule(row.id, row.name, row.url_template, when, bool(row.auto_open), key)


def _notification_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in value or ():
        if isinstance(item, dict) and item.get("field"):
            pairs.append((str(item["field"]), str(item.get("label") or item["field"])))
    return tuple(pairs)


def load_rules(connection: Connection, state: Sequence[AnyRow]) -> TenantRules:
    """Read a tenant's integrations and scripts into :class:`TenantRules` (when its fingerprint changed)."""
    first = state[0]
    params = {"tenant_id": first.id}
    scripts = connection.execute(_SCRIPTS, params).all()
    by_integration: dict[int | None, list[ScriptRule]] = {}
    for row in scripts:
        by_integration.setdefault(row.integration_id, []).append(_script_rule(row, first.country))
    integrations = {
        row.id: IntegrationRule(
            id=row.id,
            name=row.name,
            preset=row.preset,
            enabled=bool(row.enabled),
            notification=_notification_pairs(row.notification),
            scripts=tuple(by_integration.get(row.id, ())),
        )
        for row in connection.execute(_INTEGRATIONS, params)
    }
    return TenantRules(
        tenant_id=first.id,
        slug=first.slug,
        country=first.country,
        timezone=first.timezone,
        partial_digits=first.partial_match_digits,
        integrations=integrations,
        scripts=tuple(by_integration.get(None, ())),
        fingerprint=_fingerprint(state),
    )


def _candidates(rows: Sequence[AnyRow]) -> list[Candidate]:
    return [
        Candidate(
            row.integration_id, row.id, row.record_id, row.fields if isinstance(row.fields, dict) else {}, row.e164
        )
        for row in rows
    ]


# --- the service --------------------------------------------------------------------------------------------


class _PerThread(threading.local):
    connection: Connection | None = None


class Lookups:
    """Answers lookups for any tenant of one database; thread-safe, one connection per calling thread."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        self._local = _PerThread()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._rules: dict[int, TenantRules] = {}
        self._touched: dict[int, float] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-touch")
        self._closed = False

    # connections

    def _connect(self) -> Connection:
        connection = self._local.connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        connection, self._local.connection = self._local.connection, None
        if connection is not None:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            try:
                connection.close()
            except sa.exc.SQLAlchemyError:
                log.debug("closing a broken lookup connection failed", exc_info=True)

    @contextmanager
    def _database(self) -> Iterator[Connection]:
        """A connection; a database failure drops it (the next call reconnects) and becomes LookupUnavailable."""
        try:
            yield self._connect()
        except sa.exc.DBAPIError as exc:
            self._drop_connection()
            log.warning("lookup database error: %s", type(exc.orig).__name__)
            raise LookupUnavailable("the cache database did not answer; try again in a moment") from None

    def close(self) -> None:
        """Close every connection this object opened and stop the background writer."""
        self._closed = True
        self._writer.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.close()
            except sa.exc.SQLAlchemyError:
                log.debug("closing a lookup connection failed", exc_info=True)

    # configuration

    def _rules_for(self, connection: Connection, state: Sequence[AnyRow]) -> TenantRules:
        tenant_id = state[0].id
        rules = self._rules.get(tenant_id)
        if rules is None or rules.fingerprint != _fingerprint(state):
            rules = load_rules(connection, state)
            self._rules[tenant_id] = rules
        return rules

    # lookups

    def by_token(self, token: str, call: CallInput) -> LookupResult | None:
        """Look a call up for the tenant owning ``token``; None for a missing, unknown or revoked token."""
        if not token or len(token) > 200:
            return None
        digest = token_digest(token)
        with self._database() as connection:
            state = connection.execute(_STATE_BY_TOKEN, {"digest": digest}).all()
            if not state:
                return None
            rules = self._rules_for(connection, state)
            self._touch_later(state[0].token_id, state[0].token_used)
            return self._lookup(connection, rules, call)

    def by_tenant(self, slug: str, call: CallInput) -> LookupResult:
        """Look a call up for the tenant ``slug`` (the operator's ``switchboard lookup``)."""
        with self._database() as connection:
            state = connection.execute(_STATE_BY_SLUG, {"slug": (slug or "").strip().lower()}).all()
            if not state:
                raise NotFound(f"there is no tenant {slug!r}; `switchboard tenant list` shows them", field="tenant")
            return self._lookup(connection, self._rules_for(connection, state), call)

    def _lookup(self, connection: Connection, rules: TenantRules, call_input: CallInput) -> LookupResult:
        call = prepare_call(call_input, rules=rules, now=self._clock())
        matches, truncated = self._match(connection, rules, call)
        if any(m.candidate.integration_id not in rules.integrations for m in matches):
            matches = [m for m in matches if m.candidate.integration_id in rules.integrations]  # created meanwhile
        outcome = matches[0].kind.value if matches else "none"
        return LookupResult(rules.slug, build_result(rules, call, matches, truncated=truncated), outcome)

    def _match(self, connection: Connection, rules: TenantRules, call: Call) -> tuple[list[Match], bool]:
        caller = call.caller
        if caller.e164 is None:
            return [], False  # internal numbers are never matched
        params = {"e164": caller.e164, "tenant_id": rules.tenant_id}
        rows = connection.execute(_EXACT, params).all()
        if rows:
            exact = _unique(_candidates(rows))
            return [Match(c, MatchKind.EXACT) for c in exact[:MAX_MATCHES]], len(exact) > MAX_MATCHES
        prefix = partial_prefix(caller, digits=rules.min_digits)
        if prefix is None:
            return [], False
        params = {"low": prefix, "high": prefix + ":", "tenant_id": rules.tenant_id}  # ":" sorts after "9"
        candidates = _candidates(connection.execute(_PARTIAL, params).all())
        enabled = [rule.id for rule in rules.integrations.values() if rule.enabled]
        chosen = choose_partial(caller, candidates, enabled=enabled)
        return ([Match(chosen, MatchKind.PARTIAL)] if chosen else []), False

    # last_used_at

    def _touch_later(self, token_id: int | None, used: datetime | None) -> None:
        """Record that the token was used, at most once a minute, without making the lookup wait."""
        if token_id is None or self._closed:
            return
        now = self._clock()
        if used is not None and now - used < TOKEN_TOUCH_INTERVAL:
            return
        moment = time.monotonic()
        with self._lock:
            if moment - self._touched.get(token_id, -1e9) < TOKEN_TOUCH_INTERVAL.total_seconds():
                return
            self._touched[token_id] = moment
        try:
            self._writer.submit(self._touch, token_id, now)
        except RuntimeError:
            return  # shutting down

    def _touch(self, token_id: int, now: datetime) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(_TOUCH, {"token_id": token_id, "now": now, "cutoff": now - TOKEN_TOUCH_INTERVAL})
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not record a token's last use: %s", type(exc).__name__)


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per record (a record with the number twice, e.g. as phone and mobile, matches once)."""
    seen: set[int] = set()
    unique = []
    for candidate in candidates:
        if candidate.record_pk not in seen:
            seen.add(candidate.record_pk)
            unique.append(candidate)
    return unique
