"""The wizard's top ribbon: every step by number, where you are, what is done, what does not apply."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click, Resize
from textual.message import Message
from textual.widgets import Static

from tui.wizard_state import SHORT_TITLES, STEPS, WizardState

FULL_WIDTH = sum(len(title) + 2 for _, title in STEPS) + 3 * (len(STEPS) - 1) + 2
"""Columns the ribbon needs for the full titles."""


class RibbonStep(Static):
    """One step's label; clicking a step already reached goes back to it."""

    def __init__(self, key: str, number: int, title: str) -> None:
        super().__init__(f"{number} {title}", id=f"ribbon-{key}", classes="ribbon-step", markup=False)
        self.key = key
        self.number = number
        self.title = title

    def shorten(self, short: bool) -> None:
        """Use the short title (on a narrow terminal) or the full one."""
        self.update(f"{self.number} {SHORT_TITLES[self.key] if short else self.title}")

    def on_click(self, event: Click) -> None:
        """Ask the wizard to go to this step (it decides whether that is allowed)."""
        event.stop()
        self.post_message(Ribbon.StepChosen(self.key))


class Ribbon(Horizontal):
    """Shows the steps in a row, marked current, done, ahead or skipped."""

    @dataclass
    class StepChosen(Message):
        """A step was clicked."""

        step: str

    def compose(self) -> ComposeResult:
        """One label per step, with separators."""
        for number, (key, title) in enumerate(STEPS, start=1):
            if number > 1:
                yield Static(" > ", classes="ribbon-separator")
            yield RibbonStep(key, number, title)

    def on_resize(self, event: Resize) -> None:
        """Full titles when they fit, short ones when they do not."""
        short = event.size.width < FULL_WIDTH
        for step in self.query(RibbonStep):
            step.shorten(short)

    def show(self, state: WizardState, current: str) -> None:
        """Mark each step."""
        order = [key for key, _ in STEPS]
        for key in order:
            step = self.query_one(f"#ribbon-{key}", RibbonStep)
            step.set_class(key == current, "-current")
            step.set_class(state.skipped(key), "-skipped")
            step.set_class(order.index(key) < order.index(current) and not state.skipped(key), "-done")
