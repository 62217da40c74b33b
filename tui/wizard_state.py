"""What the wizard has collected so far, kept across Back and Next and thrown away on Cancel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.connector import ConnectionTest
from core.models import ScriptWhen
from core.presets import Preset
from core.services.scripts import ScriptDraft

STEPS: tuple[tuple[str, str], ...] = (
    ("preset", "Choose preset"),
    ("config", "CRM configuration"),
    ("notification", "Call notification"),
    ("scripts", "Scripts"),
    ("review", "Review"),
)
"""The steps in order: key and the title the ribbon shows."""

SHORT_TITLES: dict[str, str] = {
    "preset": "Preset",
    "config": "Configuration",
    "notification": "Notification",
    "scripts": "Scripts",
    "review": "Review",
}
"""The ribbon's titles on a narrow terminal."""

SKIPPED_FOR_SCRIPT_ONLY = frozenset({"config", "notification"})


@dataclass
class NotificationLine:
    """One line of the call notification: the CRM field, the label shown, and whether it is shown."""

    field: str
    label: str


@dataclass
class WizardScript:
    """A script in the wizard: a new draft, or (when editing) a saved script and when it last changed."""

    draft: ScriptDraft
    script_id: int | None = None
    updated_at: datetime | None = None


@dataclass
class WizardState:
    """Everything chosen so far; nothing is written until Finish (or, when editing, Save)."""

    preset: Preset | None = None
    settings: dict[str, str] = field(default_factory=dict)
    test: ConnectionTest | None = None
    notification: list[NotificationLine] = field(default_factory=list)
    scripts: list[WizardScript] = field(default_factory=list)
    removed: list[WizardScript] = field(default_factory=list)
    """Saved scripts removed while editing (deleted on Save)."""
    name: str = ""
    oauth_state: str | None = None
    editing: int | None = None
    """The integration being edited (steps 2-4 only), or None for a new one."""
    version: int | None = None
    """The integration's version when the edit began: saving over a newer one is refused."""
    kept_secrets: frozenset[str] = frozenset()
    """Secret settings already stored: left empty, they keep their value."""

    @property
    def script_only(self) -> bool:
        """A preset without an API: no configuration, no notification."""
        return self.preset is not None and self.preset.is_script_only

    def skipped(self, step: str) -> bool:
        """Whether this step does not apply (a script-only preset; step 1 while editing)."""
        if step == "preset":
            return self.editing is not None
        return self.script_only and step in SKIPPED_FOR_SCRIPT_ONLY

    def steps(self) -> list[str]:
        """The keys of the steps that apply, in order."""
        return [key for key, _ in STEPS if not self.skipped(key)]

    @property
    def sample(self) -> dict[str, str] | None:
        """The sample record from the last successful connection test."""
        return dict(self.test.sample.fields) if self.test is not None and self.test.sample is not None else None

    def choose(self, preset: Preset) -> None:
        """Start over with another preset: its defaults for the notification and the scripts."""
        self.preset = preset
        self.settings = {}
        self.test = None
        self.oauth_state = None
        self.name = preset.name
        labels = preset.fields
        self.notification = [
            NotificationLine(item.field, item.label or labels.get(item.field, item.field))
            for item in preset.default_notification
        ]
        self.scripts = [
            WizardScript(ScriptDraft(name=s.name, url_template=s.url, when=ScriptWhen(s.when), auto_open=s.auto_open))
            for s in preset.default_scripts
        ]
