"""Step 4: the scripts offered with this CRM's matches: the pre-configured screen pop, and any others."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from core.models import ScriptWhen
from core.services.scripts import ScriptDraft
from tui.screens.script_editor import ScriptEditor
from tui.views import ScriptContext
from tui.widgets.scripts import WHEN_WORDS
from tui.wizard_state import WizardScript, WizardState


def draft_prompt(draft: ScriptDraft) -> Text:
    """Name, when, template."""
    text = Text.assemble((draft.name, "bold"), (f"  {WHEN_WORDS[ScriptWhen(draft.when)]}", "dim"))
    if draft.auto_open:
        text.append(" · opens automatically", style="dim")
    text.append(f"\n{draft.url_template}", style="italic")
    return text


class DraftList(OptionList):
    """The wizard's scripts; ``n`` adds, Enter edits, ``x`` removes."""

    BINDINGS = [Binding("n", "add", "New script"), Binding("x", "remove", "Remove script")]

    def action_add(self) -> None:
        """Add a script."""
        self._step().edit(None)

    def action_remove(self) -> None:
        """Remove the highlighted script."""
        if self.highlighted is not None:
            self._step().remove_script(self.highlighted)

    def _on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._step().edit(event.option_index)

    def _step(self) -> ScriptsStep:
        node = self.parent
        while not isinstance(node, ScriptsStep):
            assert node is not None
            node = node.parent
        return node


class ScriptsStep(Vertical):
    """The list of scripts and how to change it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: WizardState | None = None

    def compose(self) -> ComposeResult:
        """Explanation and list."""
        yield Static("", id="scripts-intro", markup=False)
        scripts = DraftList(id="wizard-scripts")
        scripts.border_title = "Scripts (n new · Enter edit · x remove)"
        yield scripts

    def build(self, state: WizardState) -> None:
        """Show the state's scripts."""
        self.state = state
        assert state.preset is not None
        intro = (
            f"{state.preset.name} has no API: its script passes the call to {state.preset.name}, which shows the "
            "caller itself. Add others if you like."
            if state.script_only
            else "Links offered with each caller found in this CRM. The screen pop is pre-configured."
        )
        self.query_one("#scripts-intro", Static).update(intro)
        self.refresh_list()

    def refresh_list(self, highlight: int | None = None) -> None:
        """Show the drafts."""
        assert self.state is not None
        scripts = self.query_one("#wizard-scripts", DraftList)
        scripts.clear_options()
        if not self.state.scripts:
            scripts.add_option(Option(Text("No scripts: press n to add one.", style="dim italic"), disabled=True))
            return
        scripts.add_options(Option(draft_prompt(script.draft)) for script in self.state.scripts)
        scripts.highlighted = min(highlight or 0, len(self.state.scripts) - 1)

    def context(self) -> ScriptContext:
        """What the editor may use: the preset's fields and the sample record from the connection test."""
        assert self.state is not None and self.state.preset is not None
        return ScriptContext(
            integration_id=self.state.editing,
            scope=self.state.name or self.state.preset.name,
            fields=tuple(self.state.preset.fields),
            sample_record=self.state.sample,
            saved=False,
        )

    def edit(self, index: int | None) -> None:
        """Open the script editor on a draft (``None``: a new one)."""
        assert self.state is not None
        scripts = self.state.scripts
        current = scripts[index] if index is not None and index < len(scripts) else None

        def done(result: ScriptDraft | None) -> None:
            if result is None:
                return
            if current is None:
                scripts.append(WizardScript(result))
                self.refresh_list(len(scripts) - 1)
            else:
                current.draft = result
                self.refresh_list(index)

        self.app.push_screen(ScriptEditor(self.context(), current.draft if current else None), done)

    def remove_script(self, index: int) -> None:
        """Drop a script from the list (nothing is deleted before Save, so there is nothing to confirm)."""
        assert self.state is not None
        if index < len(self.state.scripts):
            script = self.state.scripts.pop(index)
            if script.script_id is not None:
                self.state.removed.append(script)
            self.refresh_list(index)
