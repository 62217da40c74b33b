"""Activity: the audit log of the tenant's configuration changes, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from tui.formatting import local_time
from tui.messages import ReportsFailures
from tui.views import Activity

if TYPE_CHECKING:
    from tui.app import SwitchboardApp

ACTIONS: dict[str, str] = {
    "integration.create": "added integration",
    "integration.update": "changed integration",
    "integration.enable": "enabled integration",
    "integration.disable": "disabled integration",
    "integration.delete": "deleted integration",
    "script.create": "added script",
    "script.update": "changed script",
    "script.delete": "deleted script",
    "user.create": "added user",
    "user.set_password": "set password of",
    "user.add_key": "added SSH key for",
    "user.remove_key": "removed SSH key of",
    "token.create": "created API token",
    "token.revoke": "revoked API token",
    "tenant.create": "created organisation",
}


def describe_action(action: str) -> str:
    """An audit action in words (the code itself when it is new to this app)."""
    return ACTIONS.get(action, action.replace(".", " ").replace("_", " "))


def describe_target(target: str) -> str:
    """``12:HubSpot`` → ``HubSpot``: targets carry an id for the log, the name for people."""
    head, _, tail = target.partition(":")
    return tail if head.isdigit() and tail else target


def describe_details(details: dict[str, Any]) -> str:
    """The details in one line (never secrets: core keeps them out of the log)."""
    parts = []
    for key, value in details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


class ActivityPane(ReportsFailures, Vertical):
    """A table of who changed what, when."""

    @dataclass
    class Loaded(Message):
        """The events arrived."""

        activity: Activity

    def compose(self) -> ComposeResult:
        """A heading and the table."""
        yield Static("Activity: configuration changes in your organisation, newest first", id="activity-title")
        table: DataTable[str] = DataTable(id="activity-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("When", "Who", "What", "Details")
        yield table

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    @work(thread=True, exclusive=True, exit_on_error=False, group="activity")
    def load(self) -> None:
        """Read the audit log from core."""
        app = self.switchboard
        self.post_message(self.Loaded(app.backend.activity(app.require_identity())))

    def on_activity_pane_loaded(self, message: Loaded) -> None:
        """Fill the table."""
        table = self.query_one(DataTable)
        table.clear()
        timezone = message.activity.timezone
        for event in message.activity.events:
            what = f"{describe_action(event.action)} {describe_target(event.target)}".strip()
            table.add_row(
                local_time(event.at, timezone),
                event.actor,
                what,
                describe_details(event.details),
                key=str(event.id),
            )
