"""Step 3: which CRM fields the call notification shows, in which order, under which labels; live preview."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from core.presets import Preset
from tui.wizard_state import NotificationLine, WizardState


def preview_table(lines: list[NotificationLine], sample: dict[str, str] | None) -> Table | Text:
    """The notification as the phone would show it for the sample record."""
    if not lines:
        return Text("Nothing ticked: the notification shows no CRM fields.", style="dim")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for line in lines:
        value = (sample or {}).get(line.field)
        table.add_row(line.label, value if value else Text(f"$({line.field})", style="dim"))
    return table


class LineList(OptionList):
    """The chosen lines in order; Ctrl+Up and Ctrl+Down move the highlighted one."""

    BINDINGS = [
        Binding("ctrl+up", "move(-1)", "Move up"),
        Binding("ctrl+down", "move(1)", "Move down"),
    ]

    def action_move(self, offset: int) -> None:
        """Move the highlighted line."""
        step = self.parent
        while step is not None and not isinstance(step, NotificationStep):
            step = step.parent
        if step is not None and self.highlighted is not None:
            step.move(self.highlighted, offset)


class NotificationStep(Vertical):
    """Tick fields on the left; order and label them on the right; see the result below."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.preset: Preset | None = None
        self.state: WizardState | None = None

    def compose(self) -> ComposeResult:
        """The two lists, the label editor and the preview."""
        yield Static("Tick the CRM fields the call notification shows. Their usual choice is ticked already.",
                     id="notification-intro")  # fmt: skip
        with Horizontal(id="notification-lists"):
            fields: SelectionList[str] = SelectionList(id="notification-fields")
            fields.border_title = "Fields"
            yield fields
            with Vertical(id="notification-order"):
                lines = LineList(id="notification-lines")
                lines.border_title = "Order (Ctrl+↑/↓) and labels"
                yield lines
                yield Label("Label of the highlighted line")
                yield Input(id="notification-label", compact=True)
        preview = Static("", id="notification-preview")
        preview.border_title = "Preview with the sample record"
        yield preview

    def build(self, state: WizardState) -> None:
        """Fill the lists from the state."""
        assert state.preset is not None
        self.preset = state.preset
        self.state = state
        chosen = {line.field for line in state.notification}
        fields = self.query_one("#notification-fields", SelectionList)
        fields.clear_options()
        fields.add_options((f"{label}  $({name})", name, name in chosen) for name, label in state.preset.fields.items())
        self.refresh_lines()

    def refresh_lines(self, highlight: int | None = None) -> None:
        """Show the lines and the preview."""
        assert self.state is not None
        lines = self.query_one("#notification-lines", LineList)
        current = lines.highlighted if highlight is None else highlight
        lines.clear_options()
        lines.add_options(
            Option(f"{i}. {line.label}  ← $({line.field})") for i, line in enumerate(self.state.notification, 1)
        )
        if self.state.notification:
            lines.highlighted = min(current or 0, len(self.state.notification) - 1)
        self.query_one("#notification-preview", Static).update(
            preview_table(self.state.notification, self.state.sample)
        )

    @on(SelectionList.SelectedChanged, "#notification-fields")
    def _ticked(self, event: SelectionList.SelectedChanged[str]) -> None:
        """A newly ticked field goes to the end of the lines; an unticked one leaves them."""
        assert self.state is not None and self.preset is not None
        ticked = list(event.selection_list.selected)
        kept = [line for line in self.state.notification if line.field in ticked]
        known = {line.field for line in kept}
        added = [NotificationLine(name, self.preset.fields.get(name, name)) for name in ticked if name not in known]
        if len(kept) != len(self.state.notification) or added:
            self.state.notification = kept + added
            self.refresh_lines()

    @on(OptionList.OptionHighlighted, "#notification-lines")
    def _line_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        assert self.state is not None
        label = self.query_one("#notification-label", Input)
        with label.prevent(Input.Changed):
            label.value = self.state.notification[event.option_index].label

    @on(Input.Changed, "#notification-label")
    def _label_changed(self, event: Input.Changed) -> None:
        assert self.state is not None
        index = self.query_one("#notification-lines", LineList).highlighted
        if index is not None and index < len(self.state.notification):
            self.state.notification[index].label = event.value.strip() or self.state.notification[index].field
            self.refresh_lines(index)

    def move(self, index: int, offset: int) -> None:
        """Move line ``index`` by ``offset`` places."""
        assert self.state is not None
        lines = self.state.notification
        target = max(0, min(len(lines) - 1, index + offset))
        if target != index:
            lines.insert(target, lines.pop(index))
            self.refresh_lines(target)
