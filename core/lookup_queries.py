"""The lookup's SQL, compiled once per dialect, and what its rows become: configuration and candidates.

:mod:`core.lookup` runs these statements (see its docstring for what each is for); this module only builds
them and turns their rows into :class:`~core.matching.TenantRules` and :class:`~core.matching.Candidate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from core.errors import PhoneNumberError
from core.matching import (
    MAX_MATCHES,
    PARTIAL_CANDIDATE_LIMIT,
    Candidate,
    IntegrationRule,
    ScriptRule,
    TenantRules,
    ddi_key,
)
from core.models import ApiToken, CachedNumber, CachedRecord, Integration, Script, ScriptWhen, Tenant

EXACT_ROW_LIMIT = 4 * MAX_MATCHES
"""Cached numbers read for an exact match at most (a record may hold the number more than once)."""

_token = ApiToken.__table__  # type: ignore[attr-defined]
_tenant = Tenant.__table__  # type: ignore[attr-defined]
_integration = Integration.__table__  # type: ignore[attr-defined]
_script = Script.__table__  # type: ignore[attr-defined]
_record = CachedRecord.__table__  # type: ignore[attr-defined]
_number = CachedNumber.__table__  # type: ignore[attr-defined]


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
            _integration.c.position,
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
    sa.select(*_MATCH_COLUMNS, _number.c.national)  # the index on e164 covers every cachednumber column here
    .select_from(_number.join(_integration, _ACTIVE).join(_record, _record.c.id == _number.c.record_pk))
    .where(
        _number.c.e164 == sa.bindparam("e164"),
        _integration.c.tenant_id == sa.bindparam("tenant_id"),
        _integration.c.enabled == sa.true(),
    )
    .limit(EXACT_ROW_LIMIT)  # no ORDER BY: sorting the few rows in Python is cheaper than SQLite's temp b-tree
)
# "+ 0" keeps the planner off the (integration_id, generation) index, which would read every number of the
# tenant: the suffix range is the selective part (a handful of rows across all tenants).
_PARTIAL_ACTIVE = sa.and_(
    _integration.c.id == _number.c.integration_id + 0, _integration.c.active_generation == _number.c.generation
)
_PARTIAL = (
    sa.select(*_MATCH_COLUMNS)
    .select_from(_number.join(_integration, _PARTIAL_ACTIVE).join(_record, _record.c.id == _number.c.record_pk))
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
TOUCH = (
    sa.update(_token)
    .where(
        _token.c.id == sa.bindparam("token_id"),
        sa.or_(_token.c.last_used_at.is_(None), _token.c.last_used_at < sa.bindparam("cutoff")),
    )
    .values(last_used_at=sa.bindparam("now"))
)


# Reading the cache once (SQLite; see Lookups.warm_up): each statement steps through the next :rows entries
# after :after of one b-tree a lookup reads (the two number indexes, the numbers, the records) and returns the
# key it stops at, or nothing at the end. Stepping over an entry reads its page, which is all that is wanted.
WARM_UP_SQL: tuple[tuple[str, str | int], ...] = (
    (
        "SELECT e164 FROM cachednumber INDEXED BY ix_cachednumber_e164 WHERE e164 > :after"
        " ORDER BY e164 LIMIT 1 OFFSET :rows",
        "",
    ),
    (
        "SELECT suffix FROM cachednumber INDEXED BY ix_cachednumber_suffix WHERE suffix > :after"
        " ORDER BY suffix LIMIT 1 OFFSET :rows",
        "",
    ),
    ("SELECT id FROM cachednumber WHERE id > :after ORDER BY id LIMIT 1 OFFSET :rows", 0),
    ("SELECT id FROM cachedrecord WHERE id > :after ORDER BY id LIMIT 1 OFFSET :rows", 0),
)
WARM_UP_ROWS = 50_000
"""Entries one warm-up step reads (a few milliseconds)."""


def warm_up_step(cursor: Any, *, statement: str, after: Any) -> Any:
    """Step through :data:`WARM_UP_ROWS` entries after ``after``; the key reached, or None at the end."""
    row = cursor.execute(statement, {"after": after, "rows": WARM_UP_ROWS}).fetchone()
    return None if row is None else row[0]


# --- running them -------------------------------------------------------------------------------------------


class Prepared:
    """A Core statement compiled once for a dialect and run straight on a DBAPI cursor.

    The lookup's statements take only strings and integers and need no result processing beyond what
    :func:`json_column` and :func:`utc_column` do, so SQLAlchemy's per-execution work (about as much as SQLite's
    own) is skipped.
    """

    __slots__ = ("defaults", "names", "sql")

    def __init__(self, statement: sa.ClauseElement, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)
        positions = getattr(compiled, "positiontup", None)
        self.names: list[str] | None = list(positions) if positions else None

    def rows(self, cursor: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Execute with ``params`` (missing ones take their compiled defaults, e.g. LIMIT) and fetch all."""
        values = {**self.defaults, **params} if self.defaults else params
        cursor.execute(self.sql, [values[name] for name in self.names] if self.names is not None else values)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


@dataclass(frozen=True, slots=True)
class Statements:
    state_by_token: Prepared
    state_by_slug: Prepared
    exact: Prepared
    partial: Prepared
    integrations: Prepared
    scripts: Prepared

    @classmethod
    def for_dialect(cls, dialect: sa.Dialect) -> Statements:
        return cls(
            *(
                Prepared(statement, dialect)
                for statement in (_STATE_BY_TOKEN, _STATE_BY_SLUG, _EXACT, _PARTIAL, _INTEGRATIONS, _SCRIPTS)
            )
        )


def json_column(value: Any) -> Any:
    """A JSON column's value: SQLite hands back text, psycopg already-parsed data."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)  # a record's fields are read on every match: 5x faster than json.loads
        except orjson.JSONDecodeError:
            return None
    return value


def utc_column(value: Any) -> datetime | None:
    """A UTC timestamp column's value as an aware datetime (SQLite: text; PostgreSQL: naive datetime)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if isinstance(moment, datetime) else None


# state rows: tenant id, slug, country, timezone, partial digits, scripts, scripts changed, integration id,
# integration version, enabled, position[, token id, token last used]
_SLUG, _COUNTRY, _ZONE, _DIGITS, _INTEGRATION = 1, 2, 3, 4, 7


def fingerprint(rows: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """What, when it changes, means the tenant's lookup configuration must be read again."""
    integrations = tuple((row[7], row[8], bool(row[9]), row[10]) for row in rows if row[_INTEGRATION] is not None)
    return (*rows[0][1:7], integrations)


# --- turning rows into configuration ------------------------------------------------------------------------


def _script_rule(row: tuple[Any, ...], country: str) -> ScriptRule:
    script_id, _, name, template, when_text, auto_open, ddi_filter = row
    key = None
    if ddi_filter:
        try:
            key = ddi_key(ddi_filter, country=country)
        except PhoneNumberError:
            key = "!" + ddi_filter  # saved before a country change: matches no call, never every call
    try:
        when = ScriptWhen(when_text)
    except ValueError:
        when = ScriptWhen.MATCH
    return ScriptRule(script_id, name, template, when, bool(auto_open), key)


def _notification_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in json_column(value) or ():
        if isinstance(item, dict) and item.get("field"):
            pairs.append((str(item["field"]), str(item.get("label") or item["field"])))
    return tuple(pairs)


def load_rules(cursor: Any, statements: Statements, state: Sequence[tuple[Any, ...]]) -> TenantRules:
    """Read a tenant's integrations and scripts into :class:`TenantRules` (when its fingerprint changed)."""
    first = state[0]
    params = {"tenant_id": first[0]}
    by_integration: dict[int | None, list[ScriptRule]] = {}
    for row in statements.scripts.rows(cursor, params):
        by_integration.setdefault(row[1], []).append(_script_rule(row, first[_COUNTRY]))
    integrations = {
        integration_id: IntegrationRule(
            id=integration_id,
            name=name,
            preset=preset,
            enabled=bool(enabled),
            notification=_notification_pairs(notification),
            scripts=tuple(by_integration.get(integration_id, ())),
        )
        for integration_id, name, preset, enabled, notification in statements.integrations.rows(cursor, params)
    }
    return TenantRules(
        tenant_id=first[0],
        slug=first[_SLUG],
        country=first[_COUNTRY],
        timezone=first[_ZONE],
        partial_digits=first[_DIGITS],
        integrations=integrations,
        scripts=tuple(by_integration.get(None, ())),
        fingerprint=fingerprint(state),
    )


def as_candidates(rows: Sequence[tuple[Any, ...]]) -> list[Candidate]:
    candidates = []
    for integration_id, record_pk, record_id, fields, e164, *_ in rows:
        values = json_column(fields)
        candidates.append(
            Candidate(integration_id, record_pk, record_id, values if isinstance(values, dict) else {}, e164)
        )
    return candidates
