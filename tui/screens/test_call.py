"""Test call: type a caller's number (and the DDI it came in on) and see what the phone would show.

The answer is the HTTP shim's own, computed by the same core lookup: the notification of every matching
record, the script links, and the JSON the phone system would receive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Collapsible, Input, Static

from core.errors import SwitchboardError
from tui.messages import ReportsFailures, WorkFailed
from tui.widgets.fields import FormField

if TYPE_CHECKING:
    from tui.app import SwitchboardApp

FIELDS = {"caller_number": "field-caller", "ddi_number": "field-ddi-number"}


def scripts_table(scripts: list[dict[str, Any]]) -> Table:
    """Script links: name, URL, whether the phone opens it by itself."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for script in scripts:
        name = script["name"] + (" (opens automatically)" if script.get("auto_open") else "")
        table.add_row(name, Text(script["url"], style="underline"))
    return table


def match_block(match: dict[str, Any]) -> Group:
    """One matching record: where from, how it matched, its notification and its links."""
    integration = match["integration"]
    head = Text.assemble(
        ("✓ ", "green"),
        (integration["name"], "bold"),
        f"  record {match['record_id']}",
        (f"  ({match['match']} match)", "yellow" if match["match"] == "partial" else "dim"),
    )
    lines = Table.grid(padding=(0, 2))
    lines.add_column(style="bold", no_wrap=True)
    lines.add_column(overflow="fold")
    for line in match["notification"]:
        lines.add_row(line["label"], line["value"] or Text("(empty)", style="dim"))
    parts: list[Any] = [head, lines]
    if match["scripts"]:
        parts.append(scripts_table(match["scripts"]))
    return Group(*parts, Text(""))


def result_renderable(body: dict[str, Any]) -> Group:
    """The whole answer: the number as understood, every match, the other links."""
    number = body["number"]
    understood = number["e164"] or f"internal number {number['national']}"
    parts: list[Any] = [
        Text.assemble(("Caller ", "dim"), number["input"], ("  →  ", "dim"), (understood, "bold"), "\n")
    ]
    if body["matches"]:
        parts += [match_block(match) for match in body["matches"]]
        if body.get("truncated"):
            parts.append(Text("More records share this number; only the first ones are shown.", style="yellow"))
    elif number["internal"]:
        parts.append(Text("An internal number is never matched against CRM numbers.\n", style="dim"))
    else:
        parts.append(Text("Nobody matched this number: the phone shows no CRM record.\n", style="dim"))
    if body["scripts"]:
        parts += [Text("Other links offered with this call", style="bold"), scripts_table(body["scripts"])]
    return Group(*parts)


class TestCallPane(ReportsFailures, Vertical):
    """The form and the answer."""

    @dataclass
    class Answered(Message):
        """The lookup's answer arrived."""

        body: dict[str, Any]

    def compose(self) -> ComposeResult:
        """Two fields and a button in a row, then the answer."""
        yield Static("Test call: what would the phone show for this caller?", id="test-call-title")
        with Horizontal(id="test-call-form"):
            yield FormField("Caller number", Input(placeholder="e.g. 020 1234567", id="caller"), id="field-caller")
            yield FormField(
                "DDI (optional)", Input(placeholder="number dialled", id="ddi-number"), id="field-ddi-number"
            )
            yield Button("Look up", variant="primary", id="look-up")
        with VerticalScroll(id="test-call-body"):
            yield Static("", id="test-call-result")
            with Collapsible(title="JSON as the HTTP shim returns it", id="test-call-json", collapsed=True):
                yield Static("", id="test-call-json-text", markup=False)

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        """Nothing to show yet."""
        self.query_one("#test-call-json").display = False

    @on(Input.Submitted)
    @on(Button.Pressed, "#look-up")
    def look_up(self) -> None:
        """Check the caller number is there, then ask core."""
        caller = self.query_one("#caller", Input).value.strip()
        for field in self.query(FormField):
            field.show_error(None)
        if not caller:
            self.query_one("#field-caller", FormField).show_error("Type the number of the caller.")
            self.query_one("#caller", Input).focus()
            return
        self.run_lookup(caller, self.query_one("#ddi-number", Input).value.strip())

    @work(thread=True, exclusive=True, exit_on_error=False, group="test-call")
    def run_lookup(self, caller: str, ddi: str) -> None:
        """The same lookup the HTTP shim runs."""
        app = self.switchboard
        self.post_message(self.Answered(app.backend.test_call(app.require_identity(), caller, ddi or None)))

    def on_test_call_pane_answered(self, message: Answered) -> None:
        """Show the answer and its JSON."""
        self.query_one("#test-call-result", Static).update(result_renderable(message.body))
        self.query_one("#test-call-json-text", Static).update(json.dumps(message.body, indent=2, ensure_ascii=False))
        self.query_one("#test-call-json").display = True

    def on_work_failed(self, message: WorkFailed) -> None:
        """A number that is not a number: said under its field."""
        error = message.error
        if isinstance(error, SwitchboardError) and error.field in FIELDS:
            message.stop()
            self.query_one(f"#{FIELDS[error.field]}", FormField).show_error(error.message)
