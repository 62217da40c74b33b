"""The wizard ("Add New Integration", and Edit): five steps with a ribbon, Back and Next keep what was typed.

1. Choose preset, 2. CRM configuration, 3. Call notification, 4. Scripts, 5. Review. Script-only presets
skip 2 and 3 and say so; editing starts at 2. Nothing is written before Finish (or Save): Cancel leaves
nothing behind. The screen is dismissed with the integration's id, or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Static

from core.errors import SwitchboardError
from core.presets import Preset
from tui.messages import ReportsFailures, WorkFailed
from tui.screens.dialogs import ConfirmDialog
from tui.screens.wizard.config_step import ConfigStep
from tui.screens.wizard.notification_step import NotificationStep
from tui.screens.wizard.preset_step import PresetStep
from tui.screens.wizard.review_step import ReviewSection, ReviewStep
from tui.screens.wizard.ribbon import Ribbon
from tui.screens.wizard.scripts_step import ScriptsStep
from tui.widgets.fields import FormField
from tui.wizard_state import WizardState

if TYPE_CHECKING:
    from tui.app import SwitchboardApp

__all__ = ["WizardScreen", "WizardState"]


class WizardScreen(ReportsFailures, Screen[int | None]):
    """The wizard; its result is the saved integration's id (``None`` when cancelled)."""

    CSS_PATH = "wizard.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+b", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
    ]

    @dataclass
    class Saved(Message):
        """Core saved the integration."""

        integration_id: int

    def __init__(self, presets: dict[str, Preset], state: WizardState | None = None) -> None:
        super().__init__()
        self.presets = presets
        self.state = state or WizardState()
        self.step = self.state.steps()[0]
        self.reached = {self.step}
        self._built_for: str | None = None

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Ribbon, the steps, the buttons."""
        editing = self.state.editing is not None
        yield Static(f"Edit {self.state.name}" if editing else "Add New Integration", id="wizard-title")
        yield Ribbon(id="ribbon")
        with ContentSwitcher(initial=self.step, id="steps"):
            yield PresetStep(self.presets, id="preset")
            yield ConfigStep(id="config")
            yield NotificationStep(id="notification")
            yield ScriptsStep(id="scripts")
            yield ReviewStep(id="review")
        with Horizontal(id="wizard-buttons"):
            yield Static("", id="wizard-hint", markup=False)
            yield Button("Cancel", id="cancel", compact=True)
            yield Button("< Back", id="back", compact=True)
            yield Button("Next >", id="next", variant="primary", compact=True)
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        """Open the first step."""
        await self.enter(self.step)

    # --- moving between steps --------------------------------------------------------------------------------

    async def enter(self, step: str) -> None:
        """Show ``step``, built from the state."""
        self.step = step
        self.reached.add(step)
        state = self.state
        if step == "config" and self._built_for != (state.preset.key if state.preset else None):
            await self.query_one(ConfigStep).build(state)
            self._built_for = state.preset.key if state.preset else None
        elif step == "notification":
            self.query_one(NotificationStep).build(state)
        elif step == "scripts":
            self.query_one(ScriptsStep).build(state)
        elif step == "review":
            self.query_one(ReviewStep).build(state)
        elif step == "preset" and state.preset is not None:
            self.query_one(PresetStep).select(state.preset.key)
        self.query_one(ContentSwitcher).current = step
        self.query_one(Ribbon).show(state, step)
        self._update_buttons()
        self._focus_step(step)

    def _focus_step(self, step: str) -> None:
        targets = {
            "preset": "#preset-search",
            "config": "#config Input, #config Select",
            "notification": "#notification-fields",
            "scripts": "#wizard-scripts",
            "review": "#next",
        }
        found = self.query(targets[step])
        if found:
            found.first().focus()

    def _update_buttons(self) -> None:
        steps = self.state.steps()
        last = self.step == steps[-1]
        self.query_one("#back", Button).disabled = self.step == steps[0]
        label = ("Save" if self.state.editing is not None else "Finish") if last else "Next >"
        self.query_one("#next", Button).label = label
        hint = ""
        if self.state.script_only and self.step in ("scripts", "review"):
            hint = f"{self.state.preset.name if self.state.preset else ''} has no API: steps 2 and 3 are skipped."
        self.query_one("#wizard-hint", Static).update(hint)

    def _leave(self, forward: bool) -> bool:
        """Keep what the current step holds; going forward, only if it is complete."""
        if self.step == "config":
            config = self.query_one(ConfigStep)
            self.state.settings = config.values()
            if forward and not config.check():
                return False
        if self.step == "review":
            self.state.name = self.query_one(ReviewStep).integration_name
        return not (forward and self.step == "preset" and self.state.preset is None)

    async def go(self, step: str) -> None:
        """Go to ``step`` if allowed: any step reached before, or the next one once this one is complete."""
        steps = self.state.steps()
        if step not in steps or step == self.step:
            return
        forward = steps.index(step) > steps.index(self.step)
        if forward and step not in self.reached and steps.index(step) != steps.index(self.step) + 1:
            return
        if self._leave(forward):
            await self.enter(step)

    @on(Button.Pressed, "#next")
    async def action_next(self) -> None:
        """Next step, or Finish/Save on the last."""
        steps = self.state.steps()
        if self.step == "preset":
            self.query_one(PresetStep).choose_highlighted()
        elif self.step == steps[-1]:
            self.finish()
        else:
            await self.go(steps[steps.index(self.step) + 1])

    @on(Button.Pressed, "#back")
    async def action_back(self) -> None:
        """Previous step (what was typed stays)."""
        steps = self.state.steps()
        if self.step != steps[0]:
            await self.go(steps[steps.index(self.step) - 1])

    async def on_ribbon_step_chosen(self, message: Ribbon.StepChosen) -> None:
        """A step in the ribbon was clicked."""
        await self.go(message.step)

    async def on_review_section_change_requested(self, message: ReviewSection.ChangeRequested) -> None:
        """Change, from the review."""
        self.state.name = self.query_one(ReviewStep).integration_name
        await self.enter(message.step)

    async def on_preset_step_chosen(self, message: PresetStep.Chosen) -> None:
        """A preset was chosen: start from its defaults (unless it is the one chosen already), then go on."""
        if self.state.preset is None or self.state.preset.key != message.preset.key:
            self.state.choose(message.preset)
            self.reached = {"preset"}
            self.query_one("#integration-name").value = ""  # type: ignore[attr-defined]
        self._update_buttons()
        await self.go(self.state.steps()[1])

    def on_config_step_tested(self, message: ConfigStep.Tested) -> None:
        """Keep the sample record: the notification preview and the script editor use it."""
        self.state.test = message.test

    # --- finishing -------------------------------------------------------------------------------------------

    def finish(self) -> None:
        """Check the name, then let core save everything in one go."""
        self._leave(forward=True)
        if not self.state.name:
            self.query_one("#field-name", FormField).show_error("Give the integration a name, e.g. HubSpot.")
            return
        self.query_one("#next", Button).disabled = True
        self.save()

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-save")
    def save(self) -> None:
        """Create (or update) the integration with its scripts."""
        app = self.switchboard
        integration_id = app.backend.save_wizard(app.require_identity(), self.state)
        self.post_message(self.Saved(integration_id))

    def on_wizard_screen_saved(self, message: Saved) -> None:
        """Done: hand the id back (the main screen opens the overview and starts the first sync)."""
        self.dismiss(message.integration_id)

    async def on_work_failed(self, message: WorkFailed) -> None:
        """An error about one field goes to that field, on its step; anything else to the app's dialog."""
        self.query_one("#next", Button).disabled = False
        error = message.error
        if message.group != "wizard-save" or not isinstance(error, SwitchboardError) or not error.field:
            return
        if error.field == "name":
            message.stop()
            self.query_one("#field-name", FormField).show_error(error.message)
        elif self.state.preset and any(s.name == error.field for s in self.state.preset.settings):
            message.stop()
            await self.enter("config")
            self.query_one(ConfigStep).show_field_error(error)

    # --- leaving ---------------------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        """Leave without saving anything (after asking, if anything was chosen)."""
        if self.state.preset is None or (self.state.editing is not None and self.step == self.state.steps()[0]):
            self.dismiss(None)
            return
        dialog = ConfirmDialog("Leave the wizard?", "Nothing you chose here is saved.", confirm="Leave", danger=True)

        def leave(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(None)

        self.app.push_screen(dialog, leave)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()
