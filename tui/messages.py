"""App-wide messages, and the one path every failed worker takes to the admin's eyes.

Workers (``@work(thread=True, exclusive=True, exit_on_error=False, group=...)``) just call the backend and post
their result; when one raises, :class:`ReportsFailures` turns the worker's error into a bubbling
:class:`WorkFailed`. A screen that can put the message next to the field it concerns handles it first and
stops it; everything else reaches ``SwitchboardApp.on_work_failed``, which shows title and message.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.worker import Worker, WorkerState

from core.errors import SwitchboardError


@dataclass
class WorkFailed(Message):
    """A worker failed; ``error`` says why in the admin's terms (or is a bug, shown neutrally)."""

    error: BaseException
    group: str = "default"
    quiet: bool = False
    """Background work (polling) is reported as a notification, not a dialog."""

    @property
    def title(self) -> str:
        """The headline to show."""
        if isinstance(self.error, SwitchboardError):
            return self.error.title
        return "Something went wrong"

    @property
    def text(self) -> str:
        """The explanation to show: the error's own words, or a neutral sentence for an unexpected failure."""
        if isinstance(self.error, SwitchboardError):
            return self.error.message
        kind = type(self.error).__name__
        first = (str(self.error).splitlines() or [""])[0][:200]
        return f"An unexpected error stopped this action ({kind}: {first}). Nothing else was changed; try again."


@dataclass
class ShowIntegration(Message):
    """Open an integration's overview (from the home summary, the palette or the wizard's Finish)."""

    integration_id: int


@dataclass
class ConfigurationChanged(Message):
    """The tenant's configuration changed (here or by another admin): views reload what they show."""


QUIET_GROUPS = frozenset({"poll"})
"""Worker groups whose failures are notifications rather than dialogs."""


class ReportsFailures:
    """Mixin for widgets and screens that start workers: a worker's error becomes a bubbling ``WorkFailed``."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Turn a failed worker into a ``WorkFailed`` message posted from this node."""
        worker = event.worker
        if event.state is WorkerState.ERROR and worker.error is not None:
            message = WorkFailed(worker.error, group=worker.group, quiet=worker.group in QUIET_GROUPS)
            self.post_message(message)  # type: ignore[attr-defined]
