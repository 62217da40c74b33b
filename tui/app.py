"""The app and its one factory, used by ``switchboard tui``, by the SSH server's children and by the tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual.app import App
from textual.binding import Binding

from core.errors import SwitchboardError
from core.models import utcnow
from core.runtime import Runtime
from core.services.users import NOT_ADMIN_MESSAGE, Identity
from tui.backend import Backend
from tui.commands import SwitchboardCommands
from tui.messages import WorkFailed
from tui.screens.dialogs import ConfirmDialog, ErrorDialog
from tui.screens.farewell import FarewellScreen
from tui.screens.main import MainScreen
from tui.screens.sign_in import SignInScreen


class SwitchboardApp(App[int]):
    """The admin app: sign-in (when nobody is signed in yet), then the main screen, for admins only."""

    CSS_PATH = "app.tcss"
    TITLE = "switchboard"
    COMMANDS = App.COMMANDS | {SwitchboardCommands}
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(
        self,
        *,
        runtime: Runtime,
        identity: Identity | None = None,
        farewell: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        poll_interval: float = 3.0,
        farewell_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.backend = Backend(runtime, clock=clock)
        self.identity = identity
        self.farewell = farewell
        self.clock = clock
        self.poll_interval = poll_interval
        self.farewell_timeout = farewell_timeout

    def require_identity(self) -> Identity:
        """The signed-in admin (screens behind the sign-in can rely on there being one)."""
        if self.identity is None:
            raise SwitchboardError("nobody is signed in", title="Not signed in")
        return self.identity

    def on_mount(self) -> None:
        """Start where the session starts: a farewell, the sign-in, or straight in."""
        if self.farewell is not None:
            self.push_screen(FarewellScreen("Cannot continue", self.farewell, timeout=self.farewell_timeout))
        elif self.identity is None:
            self.push_screen(SignInScreen())
        else:
            self.enter(self.identity)

    def enter(self, identity: Identity) -> None:
        """Go on as ``identity``: the main screen for an admin, the neutral explanation for anyone else."""
        self.identity = identity
        if identity.is_admin:
            screen: MainScreen | FarewellScreen = MainScreen()
        else:
            screen = FarewellScreen("Administrative privilege needed", NOT_ADMIN_MESSAGE, timeout=self.farewell_timeout)
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    async def action_quit(self) -> None:
        """Quit; while a sync runs here, ask first (the sync stops, the previous cache stays)."""
        from tui.screens.overview import OverviewPane

        panes = [pane for screen in self.screen_stack for pane in screen.query(OverviewPane)]
        syncing = [pane for pane in panes if pane.syncing is not None]
        if not syncing:
            self.exit(0)
            return
        dialog = ConfirmDialog(
            "Quit while syncing?",
            "A sync is running in this session. Quitting stops it; the cache keeps its previous numbers and the "
            "next scheduled sync runs as usual.",
            confirm="Quit anyway",
            danger=True,
        )
        self.push_screen(dialog, lambda leave: self.exit(0) if leave else None)

    def on_work_failed(self, message: WorkFailed) -> None:
        """The one place failures reach the admin: a dialog with title and message (a notification if quiet)."""
        if not isinstance(message.error, SwitchboardError):
            self.log.error("worker failed", group=message.group, error=repr(message.error))
        if message.quiet:
            self.notify(message.text, title=message.title, severity="error", timeout=8)
        else:
            self.push_screen(ErrorDialog(message.title, message.text))


def make_app(
    *,
    runtime: Runtime,
    identity: Identity | None = None,
    farewell: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    poll_interval: float = 3.0,
    farewell_timeout: float = 10.0,
) -> SwitchboardApp:
    """Build the app.

    Without ``identity`` it starts at the sign-in; with one it opens the home screen directly (an admin) or
    the explanation why not (anyone else). ``farewell`` shows only that message (e.g. the account is gone).
    ``clock`` and ``poll_interval`` exist for tests and screenshots.
    """
    return SwitchboardApp(
        runtime=runtime,
        identity=identity,
        farewell=farewell,
        clock=clock,
        poll_interval=poll_interval,
        farewell_timeout=farewell_timeout,
    )
