"""A form field: its label, help text, input and, right under it, the error that belongs to it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Static


class FormField(Vertical):
    """Wraps one input (or text area) with a label above and an error label below.

    With validators on an ``Input``, the error appears as the admin leaves the field (``blur``) or presses
    Enter, and disappears as soon as the value is fixed. ``show_error`` puts any other message there, for
    example the one core returned for this field.
    """

    def __init__(self, label: str, control: Widget, *, help: str = "", id: str | None = None) -> None:
        super().__init__(id=id, classes="form-field")
        self.label = label
        self.control = control
        self.help = help

    def compose(self) -> ComposeResult:
        """Label, help, control, error."""
        yield Label(self.label, classes="field-label")
        if self.help:
            yield Static(self.help, classes="field-help", markup=False)
        yield self.control
        yield Static("", classes="field-error", markup=False)

    @property
    def error(self) -> str:
        """The error shown under the field ('' when there is none)."""
        return str(self.query_one(".field-error", Static).content)

    def show_error(self, message: str | None) -> None:
        """Show ``message`` under the field, or clear it with ``None``."""
        self.query_one(".field-error", Static).update(message or "")
        self.set_class(bool(message), "-invalid")

    def check(self) -> bool:
        """Validate the input now (before saving); show and return whether it passed."""
        if not isinstance(self.control, Input):
            return not self.error
        result = self.control.validate(self.control.value)
        problems = result.failure_descriptions if result is not None else []
        self.show_error(problems[0] if problems else None)
        return not problems

    def on_input_blurred(self, event: Input.Blurred) -> None:
        """Leaving the field: say what is wrong with it, if anything."""
        if event.input is self.control and event.validation_result is not None:
            problems = event.validation_result.failure_descriptions
            self.show_error(problems[0] if problems else None)

    def on_input_changed(self, event: Input.Changed) -> None:
        """While an error shows, clear it as soon as the value is right."""
        if event.input is self.control and self.has_class("-invalid"):
            self.check()
