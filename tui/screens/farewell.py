"""The end of the road for someone who may not administer: why, in plain words, and nothing else reachable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.events import Key
from textual.screen import Screen
from textual.widgets import Static


class FarewellScreen(Screen[None]):
    """Shows a message (e.g. ``NOT_ADMIN_MESSAGE``) and ends the app on any key or after ``timeout`` seconds."""

    CSS_PATH = "farewell.tcss"

    def __init__(self, title: str, message: str, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.title_text = title
        self.message_text = message
        self.timeout = timeout

    def compose(self) -> ComposeResult:
        """The message in a box, and how to leave."""
        with Center(), Vertical(id="farewell-box") as box:
            box.border_title = self.title_text
            yield Static(self.message_text, id="farewell-message", markup=False)
            yield Static("Press any key to leave.", id="farewell-hint")

    def on_mount(self) -> None:
        """Leave by itself after a while, so an unattended session does not linger."""
        self.set_timer(self.timeout, self.leave)

    def on_key(self, event: Key) -> None:
        """Any key leaves."""
        event.stop()
        self.leave()

    def on_click(self) -> None:
        """So does a click."""
        self.leave()

    def leave(self) -> None:
        """End the app normally."""
        self.app.exit(0)
