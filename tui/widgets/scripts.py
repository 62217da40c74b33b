"""A list of scripts (an integration's, or the ones offered with every call) with add, edit and remove keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from core.models import ScriptWhen
from tui.views import ScriptRow

WHEN_WORDS = {ScriptWhen.MATCH: "on a match", ScriptWhen.NOMATCH: "when nobody is found", ScriptWhen.ALWAYS: "always"}


def script_prompt(row: ScriptRow) -> Text:
    """Name, when it is offered and its template, on two lines."""
    script = row.script
    text = Text.assemble((script.name, "bold"), (f"  {WHEN_WORDS[ScriptWhen(script.when)]}", "dim"))
    if script.auto_open:
        text.append(" · opens automatically", style="dim")
    if script.ddi_filter:
        text.append(f" · DDI {script.ddi_filter}", style="dim")
    text.append(f"\n{script.url_template}", style="italic")
    return text


class ScriptList(OptionList):
    """Scripts of one scope; Enter edits, ``n`` adds, ``x`` removes."""

    BINDINGS = [
        Binding("n", "add", "New script"),
        Binding("x", "remove", "Remove script"),
    ]

    @dataclass
    class AddRequested(Message):
        """Add a script to this scope (``integration_id`` None: every call)."""

        integration_id: int | None

    @dataclass
    class EditRequested(Message):
        """Edit this script."""

        script_id: int

    @dataclass
    class RemoveRequested(Message):
        """Remove this script (after asking)."""

        script_id: int
        name: str

    def __init__(self, *, integration_id: int | None = None, id: str | None = None) -> None:
        super().__init__(id=id, classes="script-list")
        self.integration_id = integration_id
        self.rows: list[ScriptRow] = []

    def show(self, rows: Sequence[ScriptRow], *, integration_id: int | None) -> None:
        """Replace the list."""
        self.integration_id = integration_id
        self.rows = list(rows)
        highlighted = self.highlighted
        self.clear_options()
        if not rows:
            self.add_option(Option(Text("No scripts yet: press n to add one.", style="dim italic"), disabled=True))
            return
        self.add_options(Option(script_prompt(row), id=f"script-{row.script.id}") for row in rows)
        self.highlighted = min(highlighted or 0, len(rows) - 1)

    def _current(self) -> ScriptRow | None:
        if self.highlighted is None or not self.rows or self.highlighted >= len(self.rows):
            return None
        return self.rows[self.highlighted]

    def action_add(self) -> None:
        """Ask for a new script in this scope."""
        self.post_message(self.AddRequested(self.integration_id))

    def action_remove(self) -> None:
        """Ask to remove the highlighted script."""
        row = self._current()
        if row is not None:
            self.post_message(self.RemoveRequested(row.script.id, row.script.name))

    def _on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        row = self._current()
        if row is not None:
            self.post_message(self.EditRequested(row.script.id))
