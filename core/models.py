"""The schema: one family of models per entity (``XBase``, the ``X(table=True)`` row, ``XPublic``).

``XPublic`` models are what leaves the process (CLI ``--json``, the TUI, the HTTP shim); secrets never appear
in them. Alembic owns the schema (``core/migrations``); these classes are its ``target_metadata``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and hands them back aware, the same on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _ts(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


# --- tenants -------------------------------------------------------------------------------------------------


class TenantBase(SQLModel):
    slug: str = Field(max_length=40, unique=True, index=True)
    name: str = Field(max_length=200)
    country: str = Field(max_length=2)
    timezone: str = Field(max_length=64, default="UTC")
    partial_match_digits: int = Field(default=8)


class Tenant(TenantBase, table=True):
    """An organisation: every integration, script and user belongs to exactly one."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _ts(default_factory=utcnow)


class TenantPublic(TenantBase):
    id: int
    created_at: datetime


# --- users ---------------------------------------------------------------------------------------------------


class UserBase(SQLModel):
    username: str = Field(max_length=254, unique=True, index=True)
    display_name: str = Field(max_length=200)
    is_admin: bool = False


class User(UserBase, table=True):
    """A person who may sign in; ``username`` is unique across tenants so it alone identifies the tenant."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True, ondelete="CASCADE")
    password_hash: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts(default_factory=utcnow)
    last_login_at: datetime | None = _ts(default=None)


class UserPublic(UserBase):
    id: int
    tenant: str
    has_password: bool
    ssh_keys: list[SshKeyPublic]
    created_at: datetime
    last_login_at: datetime | None


class SshKey(SQLModel, table=True):
    """An OpenSSH public key a user may sign in with, stored canonical with its SHA256 fingerprint."""

    __table_args__ = (sa.UniqueConstraint("user_id", "fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    algorithm: str = Field(max_length=40)
    public_key: str = Field(sa_type=sa.Text)
    fingerprint: str = Field(max_length=80, index=True)
    comment: str = Field(default="", max_length=200)
    created_at: datetime = _ts(default_factory=utcnow)


class SshKeyPublic(SQLModel):
    id: int
    algorithm: str
    fingerprint: str
    comment: str
    created_at: datetime


# --- API tokens ----------------------------------------------------------------------------------------------


class ApiToken(SQLModel, table=True):
    """A tenant's bearer token for the HTTP shim; only its SHA-256 is stored."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = _ts(default_factory=utcnow)
    last_used_at: datetime | None = _ts(default=None)
    revoked_at: datetime | None = _ts(default=None)


class ApiTokenPublic(SQLModel):
    id: int
    tenant: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


# --- integrations and scripts --------------------------------------------------------------------------------


class IntegrationBase(SQLModel):
    preset: str = Field(max_length=60)
    name: str = Field(max_length=200)
    enabled: bool = True
    schedule: str = Field(max_length=120)
    position: int = 0


class Integration(IntegrationBase, table=True):
    """One connected CRM. Secret settings are kept encrypted in ``secrets``; the rest in ``settings``.

    ``sync_guard_percent``: a sync that finds fewer records than this share of the cached ones is held back
    as suspicious and the cache is kept (0 turns the guard off); see ``core.sync``.

    ``oauth_tokens``: the tokens the CRM issued (OAuth sign-in and refreshes), sealed like ``secrets`` but kept
    apart from what the admin typed, so a token refresh and an admin's edit never overwrite each other; see
    ``core.services.oauth``.
    """

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True, ondelete="CASCADE")
    settings: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    secrets: str = Field(default="", sa_type=sa.Text)
    notification: list[dict[str, str]] = Field(default_factory=list, sa_type=sa.JSON)
    active_generation: int | None = None
    sync_guard_percent: int = Field(default=50, sa_column_kwargs={"server_default": "50"})
    oauth_tokens: str = Field(default="", sa_type=sa.Text, sa_column_kwargs={"server_default": ""})
    version: int = 1
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class NotificationField(SQLModel):
    field: str
    label: str


class IntegrationPublic(IntegrationBase):
    id: int
    tenant: str
    settings: dict[str, str]
    notification: list[NotificationField]
    numbers_cached: int
    version: int
    created_at: datetime
    updated_at: datetime


class ScriptWhen(StrEnum):
    """When a script is offered: on a match, when nothing matched, or on every call."""

    MATCH = "match"
    NOMATCH = "nomatch"
    ALWAYS = "always"


class ScriptBase(SQLModel):
    name: str = Field(max_length=200)
    url_template: str = Field(sa_type=sa.Text)
    when: ScriptWhen = Field(default=ScriptWhen.MATCH, sa_type=sa.String(10))
    auto_open: bool = False
    ddi_filter: str | None = Field(default=None, max_length=40)
    position: int = 0


class Script(ScriptBase, table=True):
    """A URL template offered with a call; tenant-wide when ``integration_id`` is empty."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True, ondelete="CASCADE")
    integration_id: int | None = Field(default=None, foreign_key="integration.id", index=True, ondelete="CASCADE")
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class ScriptPublic(ScriptBase):
    id: int
    integration_id: int | None


# --- cache ---------------------------------------------------------------------------------------------------


class CachedRecord(SQLModel, table=True):
    """A CRM record as of one sync generation: its id and the display fields scripts and notifications use."""

    __table_args__ = (sa.Index("ix_cachedrecord_gen", "integration_id", "generation", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integration.id", ondelete="CASCADE")
    generation: int
    record_id: str = Field(max_length=200)
    fields: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)


class CachedNumber(SQLModel, table=True):
    """One phone number of a cached record, as E.164 plus the raw text; ``suffix`` is the digits reversed.

    ``national`` is the number as dialled in the tenant's country (:func:`core.numbers.national_form`), worked
    out at sync time so that a lookup that matches exactly need not parse the caller's number; empty in rows
    cached before it existed (the lookup then parses). The exact-match index covers every column that lookup
    reads, so a match costs no read of the table itself.
    """

    __table_args__ = (
        sa.Index("ix_cachednumber_e164", "e164", "integration_id", "generation", "record_pk", "national"),
        sa.Index("ix_cachednumber_suffix", "suffix", "integration_id", "generation"),
        sa.Index("ix_cachednumber_gen", "integration_id", "generation"),
        sa.Index("ix_cachednumber_record", "record_pk"),  # ON DELETE CASCADE from cachedrecord needs it
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integration.id", ondelete="CASCADE")
    generation: int
    record_pk: int = Field(foreign_key="cachedrecord.id", ondelete="CASCADE")
    e164: str = Field(max_length=20)
    suffix: str = Field(max_length=20)
    raw: str = Field(max_length=200)
    label: str = Field(default="", max_length=60)
    national: str = Field(default="", max_length=30, sa_column_kwargs={"server_default": ""})


# --- sync runs, leases, audit --------------------------------------------------------------------------------


class SyncOutcome(StrEnum):
    """How a sync run ended."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SUSPICIOUS = "suspicious"


class SyncRun(SQLModel, table=True):
    """One sync of one integration: when, how it ended, what it counted."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True, ondelete="CASCADE")
    integration_id: int = Field(foreign_key="integration.id", index=True, ondelete="CASCADE")
    generation: int | None = None
    trigger: str = Field(default="schedule", max_length=20)
    node: str = Field(default="", max_length=120)
    started_at: datetime = _ts(default_factory=utcnow)
    finished_at: datetime | None = _ts(default=None)
    outcome: SyncOutcome = Field(default=SyncOutcome.RUNNING, sa_type=sa.String(12))
    records: int = 0
    numbers: int = 0
    unparsed: int = 0
    unparsed_examples: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    shared_numbers: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text)


class SyncRunPublic(SQLModel):
    id: int
    integration_id: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    outcome: SyncOutcome
    records: int
    numbers: int
    unparsed: int
    unparsed_examples: list[str]
    shared_numbers: int
    error: str | None


class SyncLease(SQLModel, table=True):
    """Who is syncing an integration right now; taken and renewed atomically, lost when it expires."""

    integration_id: int = Field(foreign_key="integration.id", primary_key=True, ondelete="CASCADE")
    owner: str = Field(max_length=120)
    expires_at: datetime = _ts()
    next_run_at: datetime | None = _ts(default=None)


class AuditEvent(SQLModel, table=True):
    """A configuration change: who did what to which thing, in which tenant. Never holds secrets."""

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int | None = Field(default=None, foreign_key="tenant.id", index=True, ondelete="CASCADE")
    at: datetime = _ts(default_factory=utcnow, index=True)
    actor: str = Field(max_length=254)
    action: str = Field(max_length=60)
    target: str = Field(default="", max_length=200)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class AuditEventPublic(SQLModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


# --- OAuth sign-ins ------------------------------------------------------------------------------------------


class OAuthStatus(StrEnum):
    """Where an OAuth sign-in stands; ``EXCHANGING`` and ``EXPIRED`` are never shown as such (see the service)."""

    PENDING = "pending"
    EXCHANGING = "exchanging"
    COMPLETED = "completed"
    FAILED = "failed"
    USED = "used"
    EXPIRED = "expired"


class OAuthAuthorization(SQLModel, table=True):
    """An OAuth sign-in the wizard started: single use, short-lived, found by a digest of its ``state``.

    Secret settings, the PKCE verifier and the tokens the CRM returns are sealed with the server's key; the
    tokens stay here only until the wizard stores them in the new integration (``take_tokens``).
    """

    id: int | None = Field(default=None, primary_key=True)
    state_digest: str = Field(max_length=64, unique=True, index=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True, ondelete="CASCADE")
    actor: str = Field(max_length=254)
    preset: str = Field(max_length=60)
    settings: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    secrets: str = Field(default="", sa_type=sa.Text)
    code_verifier: str = Field(default="", sa_type=sa.Text)
    redirect_uri: str = Field(sa_type=sa.Text)
    status: OAuthStatus = Field(default=OAuthStatus.PENDING, sa_type=sa.String(12))
    error: str | None = Field(default=None, sa_type=sa.Text)
    tokens: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts(index=True)
    completed_at: datetime | None = _ts(default=None)


UserPublic.model_rebuild()
