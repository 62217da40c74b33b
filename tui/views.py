"""What the backend hands the screens: plain, frozen data, never a session or a model row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.models import AuditEventPublic, IntegrationPublic, ScriptPublic, SyncRunPublic
from core.services import sync as syncing
from core.services.users import Identity


class Status(StrEnum):
    """What the sidebar's mark says about an integration."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    SYNCING = "syncing"
    FAILED = "failed"


STATUS_MARKS: dict[Status, str] = {
    Status.ENABLED: "●",
    Status.DISABLED: "○",
    Status.SYNCING: "↻",
    Status.FAILED: "✗",
}
"""One character per status; the words go next to it wherever there is room."""


@dataclass(frozen=True, slots=True)
class IntegrationRow:
    """An integration as the sidebar and the home summary list it."""

    id: int
    name: str
    preset: str
    status: Status
    numbers_cached: int
    last_error: str | None = None
    script_only: bool = False


@dataclass(frozen=True, slots=True)
class HomeSummary:
    """The home screen: who is signed in, for which organisation, and how its integrations are doing."""

    identity: Identity
    timezone: str
    integrations: list[IntegrationRow]
    scripts: list[ScriptRow] = field(default_factory=list)

    @property
    def numbers_cached(self) -> int:
        """Cached numbers over every integration."""
        return sum(row.numbers_cached for row in self.integrations)

    @property
    def failing(self) -> list[IntegrationRow]:
        """Integrations whose last sync failed."""
        return [row for row in self.integrations if row.status is Status.FAILED]


@dataclass(frozen=True, slots=True)
class SettingRow:
    """One setting as the overview shows it: secrets masked."""

    name: str
    label: str
    value: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class ScriptRow:
    """A saved script, with the moment it last changed (to refuse saving over someone else's newer edit)."""

    script: ScriptPublic
    updated_at: datetime


SAMPLE_RECORD = {"DisplayName": "Jansen BV", "Identifier": "4711", "PopUpUri": "https://crm.example.com/"}
"""The record a preview fills in when there is no real one (the sample core's own preview uses)."""


@dataclass(frozen=True, slots=True)
class ScriptContext:
    """Where a script goes, as the script editor needs it.

    ``fields`` are the record fields the template may use (standard ones first). ``sample_record`` is the
    record the preview fills in; ``None`` for a saved integration, whose preview core renders with a record
    from its cache. ``saved`` is False in the wizard, where the integration does not exist yet.
    """

    integration_id: int | None
    scope: str
    fields: tuple[str, ...]
    sample_record: dict[str, str] | None = None
    saved: bool = True


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the integration overview shows (never a secret in full)."""

    integration: IntegrationPublic
    timezone: str
    preset_name: str
    status: Status
    settings: list[SettingRow] = field(default_factory=list)
    scripts: list[ScriptRow] = field(default_factory=list)
    sync: syncing.SyncState | None = None
    """None for a script-only preset: nothing to sync."""
    history: list[SyncRunPublic] = field(default_factory=list)
    """The newest runs, newest first."""


@dataclass(frozen=True, slots=True)
class Activity:
    """The audit log, with the tenant's time zone to show it in."""

    events: list[AuditEventPublic]
    timezone: str
