"""Small modal dialogs with typed results: an error to acknowledge, a question to confirm."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class ErrorDialog(ModalScreen[None]):
    """Says what went wrong, in the admin's terms, until they acknowledge it."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape,enter", "dismiss_dialog", "Close")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__(classes="dialog error")
        self.title_text = title
        self.message_text = message

    def compose(self) -> ComposeResult:
        """A titled box with the message and one button."""
        with Vertical(classes="dialog-box") as box:
            box.border_title = self.title_text
            yield Static(self.message_text, classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
        yield Footer()

    @on(Button.Pressed, "#ok")
    def action_dismiss_dialog(self) -> None:
        """Close the dialog."""
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Asks a yes/no question; ``True`` only when the admin confirms explicitly."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, message: str, *, confirm: str, danger: bool = False) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.message_text = message
        self.confirm_label = confirm
        self.danger = danger

    def compose(self) -> ComposeResult:
        """The question, then Cancel (focused, the safe default) and the confirming button."""
        with Vertical(classes="dialog-box") as box:
            box.border_title = self.title_text
            yield Static(self.message_text, classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, variant="error" if self.danger else "primary", id="confirm")
        yield Footer()

    def on_mount(self) -> None:
        """Start on Cancel so that a stray Enter never confirms."""
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def confirm(self) -> None:
        """The admin confirmed."""
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """The admin changed their mind."""
        self.dismiss(False)
