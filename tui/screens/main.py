"""The main screen: the sidebar on the left, the chosen view (home, overview, activity, test call) on the right.

It also watches for other admins' changes: every few seconds a worker reads the tenant's change marker (the
newest audit event) and, when it moved, the sidebar and the visible view reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header

from core.errors import NotFound, StaleUpdate
from core.presets import Preset
from core.services.scripts import ScriptDraft
from tui.messages import ConfigurationChanged, ReportsFailures, ShowIntegration, WorkFailed
from tui.screens.activity import ActivityPane
from tui.screens.dialogs import ConfirmDialog
from tui.screens.home import HomePane
from tui.screens.overview import OverviewPane
from tui.screens.script_editor import ScriptEditor
from tui.screens.test_call import TestCallPane
from tui.screens.wizard import WizardScreen
from tui.views import IntegrationRow, ScriptContext, ScriptRow, Status
from tui.widgets.scripts import ScriptList
from tui.widgets.sidebar import ActionsPane, IntegrationsPane, PlacesPane, Sidebar
from tui.wizard_state import WizardState

if TYPE_CHECKING:
    from tui.app import SwitchboardApp

VIEWS = ("home", "overview", "activity")


class MainScreen(ReportsFailures, Screen[None]):
    """Sidebar and views; the key bindings in the footer follow the view."""

    CSS_PATH = ["main.tcss", "home.tcss", "overview.tcss", "activity.tcss", "test_call.tcss"]
    BINDINGS = [
        Binding("a", "add_integration", "Add integration"),
        Binding("s", "add_script", "Add script"),
        # the same keys, unlisted while an overview's own keys need the footer's room
        Binding("a", "add_integration(True)", show=False),
        Binding("s", "add_script(True)", show=False),
        Binding("y", "sync_now", "Sync now"),
        Binding("e", "edit", "Edit"),
        Binding("d", "disable", "Disable"),
        Binding("d", "enable", "Enable"),
        Binding("delete", "delete", "Delete"),
        Binding("h", "show_view('home')", "Home", show=False),
        Binding("escape", "show_view('home')", "Home", show=False),
        Binding("l", "show_view('activity')", "Activity", show=False),
        Binding("t", "show_view('test-call')", "Test call", show=False),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", show=False),
        Binding("f5", "reload", "Reload", show=False),
    ]

    @dataclass
    class Polled(Message):
        """The tenant's change marker, as just read."""

        marker: int

    @dataclass
    class RowsLoaded(Message):
        """The sidebar's integrations arrived."""

        rows: list[IntegrationRow]

    def __init__(self) -> None:
        super().__init__()
        self.marker: int | None = None
        self.rows: list[IntegrationRow] = []
        self.poll_failing = False

    def compose(self) -> ComposeResult:
        """Header, sidebar and views, footer."""
        yield Header()
        with Horizontal(id="main"):
            yield Sidebar(id="sidebar")
            with ContentSwitcher(initial="home", id="views"):
                yield HomePane(id="home")
                yield OverviewPane(id="overview")
                yield ActivityPane(id="activity")
                yield TestCallPane(id="test-call")
        yield Footer(compact=True)

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    @property
    def view(self) -> str:
        """The view on show."""
        return self.query_one(ContentSwitcher).current or "home"

    @property
    def overview(self) -> OverviewPane:
        """The overview pane."""
        return self.query_one(OverviewPane)

    def on_mount(self) -> None:
        """Load everything, then watch for other admins' changes."""
        identity = self.switchboard.require_identity()
        self.title = "switchboard"
        self.sub_title = f"{identity.display_name} · {identity.tenant_name}"
        self.reload()
        self.query_one("#integration-list").focus()
        self.set_interval(self.switchboard.poll_interval, self.poll)

    # --- loading ---------------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Reload the sidebar and the view on show."""
        self.load_rows()
        view = self.view
        if view == "home":
            self.query_one(HomePane).load()
        elif view == "overview":
            self.overview.load()
        elif view == "activity":
            self.query_one(ActivityPane).load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="rows")
    def load_rows(self) -> None:
        """Read the sidebar's integrations."""
        app = self.switchboard
        self.post_message(self.RowsLoaded(app.backend.integration_rows(app.require_identity())))

    def on_main_screen_rows_loaded(self, message: RowsLoaded) -> None:
        """Show the integrations in the sidebar."""
        self.rows = message.rows
        self.query_one(IntegrationsPane).show(message.rows, current=self.overview.integration_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll")
    def poll(self) -> None:
        """Read the change marker (one indexed query)."""
        app = self.switchboard
        self.post_message(self.Polled(app.backend.change_marker(app.require_identity())))

    def on_main_screen_polled(self, message: Polled) -> None:
        """Reload when anything changed since the last look."""
        if self.poll_failing:
            self.poll_failing = False
            self.notify("The database answers again.", title="Back")
        first = self.marker is None
        changed = message.marker != self.marker
        self.marker = message.marker
        if changed and not first:
            self.reload()

    def on_configuration_changed(self, message: ConfigurationChanged) -> None:
        """Something was changed from this session: reload at once."""
        message.stop()
        self.reload()

    def on_work_failed(self, message: WorkFailed) -> None:
        """A newer version elsewhere: reload so the admin sees it; a vanished integration: go home."""
        if message.group == "poll":
            if self.poll_failing:
                message.stop()  # said once already; the next success says it is back
            self.poll_failing = True
        elif isinstance(message.error, StaleUpdate):
            self.reload()
        elif isinstance(message.error, NotFound) and message.group == "overview":
            message.stop()
            self.notify("That integration was deleted by someone else.", title="Gone", severity="warning")
            self.show_view("home")
            self.load_rows()

    # --- navigation ------------------------------------------------------------------------------------------

    def show_view(self, view: str) -> None:
        """Switch the right-hand side to ``view`` and load it."""
        self.query_one(ContentSwitcher).current = view
        self.query_one(PlacesPane).mark(view)
        if view == "home":
            self.query_one(HomePane).load()
        elif view == "activity":
            self.query_one(ActivityPane).load()
        elif view == "test-call":
            self.query_one("#caller").focus()
        self.refresh_bindings()

    def action_show_view(self, view: str) -> None:
        """Key binding: go to a view."""
        self.show_view(view)

    def show_integration(self, integration_id: int) -> None:
        """Open an integration's overview."""
        self.query_one(ContentSwitcher).current = "overview"
        self.query_one(PlacesPane).mark("overview")
        self.overview.show_integration(integration_id)
        self.query_one(IntegrationsPane).show(self.rows, current=integration_id)
        self.refresh_bindings()

    def on_show_integration(self, message: ShowIntegration) -> None:
        """Someone asked for an overview (home, palette, wizard)."""
        message.stop()
        self.show_integration(message.integration_id)

    def on_integrations_pane_selected(self, message: IntegrationsPane.Selected) -> None:
        """An integration was chosen in the sidebar."""
        self.show_integration(message.integration_id)

    def on_places_pane_chosen(self, message: PlacesPane.Chosen) -> None:
        """A place was chosen in the sidebar."""
        self.show_view(message.place)

    def on_actions_pane_chosen(self, message: ActionsPane.Chosen) -> None:
        """An add action was chosen in the sidebar."""
        if message.action == "add-integration":
            self.action_add_integration()
        elif message.action == "add-script":
            self.action_add_script()

    def on_overview_pane_deleted(self, message: OverviewPane.Deleted) -> None:
        """The overview's integration was deleted from here: say so and go home."""
        self.notify(f"{message.name} was deleted with its settings and cached data.", title="Deleted")
        self.overview.integration_id = None
        self.show_view("home")
        self.load_rows()

    def action_toggle_sidebar(self) -> None:
        """Hide or show the sidebar (more room on a small terminal)."""
        sidebar = self.query_one(Sidebar)
        sidebar.display = not sidebar.display

    def action_reload(self) -> None:
        """Read everything again."""
        self.reload()

    # --- actions ---------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Overview actions only while an overview is on show; Disable or Enable, whichever applies."""
        if action in ("add_integration", "add_script"):
            return bool(parameters) == (self.view == "overview")
        if action in ("sync_now", "edit", "delete", "disable", "enable"):
            overview = self.overview.overview
            if self.view != "overview" or overview is None:
                return False
            if action == "disable":
                return overview.status is not Status.DISABLED
            if action == "enable":
                return overview.status is Status.DISABLED
        return True

    def action_add_integration(self, _unlisted: bool = False) -> None:
        """Open the wizard."""
        self.open_wizard(None)

    # --- the wizard ------------------------------------------------------------------------------------------

    @dataclass
    class WizardReady(Message):
        """The presets (and, when editing, the integration's state) arrived."""

        presets: dict[str, Preset]
        state: WizardState | None

    @work(thread=True, exclusive=True, exit_on_error=False, group="open-wizard")
    def open_wizard(self, integration_id: int | None) -> None:
        """Read the presets (and the integration to edit), then open the wizard."""
        app = self.switchboard
        presets = app.backend.presets()
        state = None if integration_id is None else app.backend.wizard_for_edit(app.require_identity(), integration_id)
        self.post_message(self.WizardReady(presets, state))

    def on_main_screen_wizard_ready(self, message: WizardReady) -> None:
        """Open the wizard; afterwards show what it saved."""
        editing = message.state is not None

        def done(integration_id: int | None) -> None:
            if integration_id is None:
                return
            self.notify("Saved." if editing else "The integration was added.", title="Integration")
            self.show_integration(integration_id)
            self.load_rows()
            if not editing:
                self.overview.start_sync(first=True)

        self.app.push_screen(WizardScreen(message.presets, message.state), done)

    def action_add_script(self, _unlisted: bool = False) -> None:
        """Open the script editor: for the integration on show, else for every call (the admin may change it)."""
        integration_id = self.overview.integration_id if self.view == "overview" else None
        self.open_script_editor(integration_id, choose_scope=True)

    # --- scripts -------------------------------------------------------------------------------------------

    @dataclass
    class EditorReady(Message):
        """What the script editor needs arrived."""

        context: ScriptContext
        row: ScriptRow | None
        choose_scope: bool

    @dataclass
    class ScriptSaved(Message):
        """A script was saved or removed; ``what`` says so in words."""

        what: str

    @work(thread=True, exclusive=True, exit_on_error=False, group="script-editor")
    def open_script_editor(
        self, integration_id: int | None, script_id: int | None = None, *, choose_scope: bool = False
    ) -> None:
        """Read the script (when editing) and its scope's fields, then open the editor."""
        app = self.switchboard
        identity = app.require_identity()
        row = app.backend.script(identity, script_id) if script_id is not None else None
        scope = row.script.integration_id if row is not None else integration_id
        context = app.backend.script_context(identity, scope)
        self.post_message(self.EditorReady(context, row, choose_scope))

    def on_main_screen_editor_ready(self, message: EditorReady) -> None:
        """Open the editor; save what it returns."""
        row = message.row
        draft = None
        if row is not None:
            script = row.script
            draft = ScriptDraft(
                name=script.name,
                url_template=script.url_template,
                when=script.when,
                auto_open=script.auto_open,
                ddi_filter=script.ddi_filter,
                integration_id=script.integration_id,
            )
        scopes = [("Every call", None), *((r.name, r.id) for r in self.rows)] if message.choose_scope else None
        editor = ScriptEditor(message.context, draft, scopes=scopes)

        def saved(result: ScriptDraft | None) -> None:
            if result is not None:
                self.save_script(result, row.script.id if row else None, row.updated_at if row else None)

        self.app.push_screen(editor, saved)

    @work(thread=True, exclusive=True, exit_on_error=False, group="save-script")
    def save_script(self, draft: ScriptDraft, script_id: int | None, loaded: datetime | None) -> None:
        """Save a new or changed script (a change refused if someone else saved it meanwhile)."""
        app = self.switchboard
        identity = app.require_identity()
        if script_id is None or loaded is None:
            name = app.backend.create_script(identity, draft)
            self.post_message(self.ScriptSaved(f"The script {name!r} was added."))
        else:
            name = app.backend.update_script(identity, script_id, draft, loaded=loaded)
            self.post_message(self.ScriptSaved(f"The script {name!r} was saved."))

    def on_script_list_add_requested(self, message: ScriptList.AddRequested) -> None:
        """Add a script to the list's scope."""
        self.open_script_editor(message.integration_id)

    def on_script_list_edit_requested(self, message: ScriptList.EditRequested) -> None:
        """Edit a script."""
        self.open_script_editor(None, message.script_id)

    def on_script_list_remove_requested(self, message: ScriptList.RemoveRequested) -> None:
        """Remove a script, after asking."""
        dialog = ConfirmDialog(
            f"Remove {message.name}?",
            f"The script {message.name!r} will no longer be offered with calls. This cannot be undone.",
            confirm="Remove",
            danger=True,
        )

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.remove_script(message.script_id)

        self.app.push_screen(dialog, confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="save-script")
    def remove_script(self, script_id: int) -> None:
        """Remove a script for good."""
        app = self.switchboard
        name = app.backend.delete_script(app.require_identity(), script_id)
        self.post_message(self.ScriptSaved(f"The script {name!r} was removed."))

    def on_main_screen_script_saved(self, message: ScriptSaved) -> None:
        """Say so, and show the lists as they are now."""
        self.notify(message.what, title="Scripts")
        self.reload()

    def action_sync_now(self) -> None:
        """Sync the integration on show now."""
        self.notify("Sync now is not available yet.", severity="warning")

    def action_edit(self) -> None:
        """Edit the integration on show (the wizard's steps 2-4, filled in)."""
        if self.overview.integration_id is not None:
            self.open_wizard(self.overview.integration_id)

    def action_disable(self) -> None:
        """Disable the integration on show."""
        self.overview.toggle_enabled()

    def action_enable(self) -> None:
        """Enable the integration on show."""
        self.overview.toggle_enabled()

    def action_delete(self) -> None:
        """Delete the integration on show (after confirmation)."""
        self.overview.delete()
