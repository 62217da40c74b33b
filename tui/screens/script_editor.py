"""The script editor: name, URL template, placeholder picker, live preview, when, auto-open, DDI filter.

Used for "Add New Script" (a script for every call), for a saved integration's scripts and in the wizard's
step 4. It checks the template as the admin types (the same check core runs when saving, with the position
of every problem) and shows the link a sample call would get. It returns a ``ScriptDraft`` only after core
has accepted it (or, in the wizard, after the same checks), so whoever opened it can save it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Footer, Input, RadioButton, RadioSet, Select, Static, TextArea

from core.errors import SwitchboardError, TemplateError, TemplateProblem
from core.models import ScriptWhen
from core.services.scripts import ScriptDraft
from core.templates import CALL_PROPERTIES, find_problems, render, sample_call
from tui.messages import ReportsFailures, WorkFailed
from tui.views import SAMPLE_RECORD, ScriptContext
from tui.widgets.fields import FormField

if TYPE_CHECKING:
    from tui.app import SwitchboardApp

WHEN_CHOICES: tuple[tuple[ScriptWhen, str], ...] = (
    (ScriptWhen.MATCH, "when the caller is found"),
    (ScriptWhen.NOMATCH, "when nobody is found"),
    (ScriptWhen.ALWAYS, "on every call"),
)

FIELD_NAMES = {"name": "name", "url_template": "template", "ddi_filter": "ddi", "when": "when"}
"""core's field names → the editor's field ids."""


def location_of(text: str, position: int) -> tuple[int, int]:
    """A character index as the text area's (row, column)."""
    before = text[: max(0, min(position, len(text)))]
    return before.count("\n"), len(before) - (before.rfind("\n") + 1)


def problems_text(problems: list[TemplateProblem]) -> str:
    """Every problem, one per line (each message names its position)."""
    return "\n".join(problem.message for problem in problems)


class TemplateArea(TextArea):
    """A text area for one URL: Enter does not add a line, pasted line breaks are dropped."""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.screen.focus_next()
            return
        await super()._on_key(event)

    async def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        if not self.read_only:
            clean = event.text.replace("\r", "").replace("\n", "")
            result = self.replace(clean, *self.selection)
            self.move_cursor(result.end_location)


class ScriptEditor(ReportsFailures, ModalScreen[ScriptDraft | None]):
    """Edit one script; dismissed with the checked draft, or ``None`` on Cancel (nothing is kept)."""

    @dataclass
    class Checked(Message):
        """Core accepted the draft."""

        draft: ScriptDraft

    @dataclass
    class PreviewReady(Message):
        """Core rendered the preview of ``template`` (``url`` None: the link would be refused)."""

        template: str
        url: str | None

    CSS_PATH = "script_editor.tcss"
    AUTO_FOCUS = "#name"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+t", "focus_picker", "Insert field"),
    ]

    @dataclass
    class ContextLoaded(Message):
        """The fields of the newly chosen scope arrived."""

        context: ScriptContext

    def __init__(
        self,
        context: ScriptContext,
        draft: ScriptDraft | None = None,
        *,
        title: str | None = None,
        scopes: list[tuple[str, int | None]] | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.scopes = scopes
        self.initial = draft
        self.heading = title or ("Edit script" if draft else "Add script")
        self._preview_timer: Timer | None = None

    # --- layout ----------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The form in a scrolling box, the buttons at the bottom."""
        draft = self.initial
        with Vertical(id="editor-box") as box:
            box.border_title = f"{self.heading} · for {self.context.scope}"
            with VerticalScroll(id="editor-body"):
                if self.scopes is not None:
                    yield FormField("For", self._scope_select(), id="field-scope")
                yield FormField(
                    "Name",
                    Input(draft.name if draft else "", placeholder="e.g. Open in CRM", id="name", compact=True),
                    id="field-name",
                )
                yield FormField(
                    "Link (URL template)",
                    TemplateArea(
                        draft.url_template if draft else "",
                        id="template",
                        soft_wrap=True,
                        show_line_numbers=False,
                        compact=True,
                    ),
                    help="#(…) is a call property, $(…) a field of the caller's CRM record.",
                    id="field-template",
                )
                yield Select(
                    self._picker_options(),
                    prompt="Insert a call property or CRM field… (Ctrl+T)",
                    id="picker",
                    compact=True,
                )
                preview = Static("", id="preview", markup=False)
                preview.border_title = "Preview with a sample call"
                yield preview
                yield FormField("Offer it", self._when_set(draft), id="field-when")
                with Horizontal(id="editor-options"):
                    yield Checkbox(
                        "Open automatically", draft.auto_open if draft else False, id="auto-open", compact=True
                    )
                    yield FormField(
                        "Only for calls on DDI (optional)",
                        Input(
                            (draft.ddi_filter or "") if draft else "",
                            placeholder="e.g. 020 7654321",
                            id="ddi",
                            compact=True,
                        ),
                        id="field-ddi",
                    )
            with Horizontal(id="editor-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Save", variant="primary", id="save", compact=True)
        yield Footer()

    def _scope_select(self) -> Select[str]:
        options = [(label, "all" if key is None else str(key)) for label, key in self.scopes or []]
        current = "all" if self.context.integration_id is None else str(self.context.integration_id)
        return Select(options, value=current, allow_blank=False, id="scope", compact=True)

    @on(Select.Changed, "#scope")
    def _scope_changed(self, event: Select.Changed) -> None:
        """Another scope: load the fields its scripts may use."""
        wanted = None if event.value == "all" else int(str(event.value))
        if wanted != self.context.integration_id:
            self.load_context(wanted)

    @work(thread=True, exclusive=True, exit_on_error=False, group="script-context")
    def load_context(self, integration_id: int | None) -> None:
        """Ask core which fields a script in this scope may use."""
        app = self.switchboard
        self.post_message(self.ContextLoaded(app.backend.script_context(app.require_identity(), integration_id)))

    def on_script_editor_context_loaded(self, message: ContextLoaded) -> None:
        """Use the new scope: its fields in the picker, the check and the preview."""
        self.context = message.context
        self.query_one("#editor-box").border_title = f"{self.heading} · for {self.context.scope}"
        self.query_one("#picker", Select).set_options(self._picker_options())
        self.refresh_preview()

    def _picker_options(self) -> list[tuple[str, str]]:
        calls = [(f"Call: #({name})", f"#({name})") for name in CALL_PROPERTIES]
        fields = [(f"Field: $({name})", f"$({name})") for name in self.context.fields]
        return calls + fields

    def _when_set(self, draft: ScriptDraft | None) -> RadioSet:
        chosen = ScriptWhen(draft.when) if draft else ScriptWhen.MATCH
        buttons = [RadioButton(label, value=when == chosen, id=f"when-{when.value}") for when, label in WHEN_CHOICES]
        return RadioSet(*buttons, id="when", compact=True)

    def on_mount(self) -> None:
        """Show the preview of what is there already."""
        self.refresh_preview()

    @property
    def switchboard(self) -> SwitchboardApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    # --- reading the form ------------------------------------------------------------------------------------

    @property
    def template(self) -> str:
        """The URL template as typed."""
        return self.query_one("#template", TextArea).text

    def draft(self) -> ScriptDraft:
        """The form's current values as a draft."""
        pressed = self.query_one("#when", RadioSet).pressed_button
        when = ScriptWhen((pressed.id or "when-match").removeprefix("when-")) if pressed else ScriptWhen.MATCH
        return ScriptDraft(
            name=self.query_one("#name", Input).value.strip(),
            url_template=self.template.strip(),
            when=when,
            auto_open=self.query_one("#auto-open", Checkbox).value,
            ddi_filter=self.query_one("#ddi", Input).value.strip() or None,
            integration_id=self.context.integration_id,
        )

    def field(self, name: str) -> FormField:
        """The form field called ``name`` (core's field names are understood too)."""
        return self.query_one(f"#field-{FIELD_NAMES.get(name, name)}", FormField)

    # --- live check and preview -----------------------------------------------------------------------------

    @on(TextArea.Changed, "#template")
    def _template_changed(self) -> None:
        self.refresh_preview()

    def refresh_preview(self) -> None:
        """Check the template now; render the preview here, or ask core (after a pause in typing)."""
        template = self.template.strip()
        problems = find_problems(template, record_fields=self.context.fields) if template else []
        self.field("template").show_error(problems_text(problems) or None)
        preview = self.query_one("#preview", Static)
        if not template:
            preview.update(Text("Type a link above to see what a call would open.", style="dim"))
        elif problems:
            preview.update(Text("No preview until the problems above are fixed.", style="dim"))
        elif self.context.sample_record is not None or not self.context.saved:
            record = self.context.sample_record or SAMPLE_RECORD
            self.show_preview(render(template, call=sample_call(), record=record))
        else:
            if self._preview_timer is not None:
                self._preview_timer.stop()
            self._preview_timer = self.set_timer(0.25, self._ask_core_for_preview)

    def _ask_core_for_preview(self) -> None:
        # only the template matters for the preview: the other fields are checked when saving
        draft = self.draft()
        self.preview_from_core(
            ScriptDraft(name="preview", url_template=draft.url_template, integration_id=draft.integration_id)
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="preview")
    def preview_from_core(self, draft: ScriptDraft) -> None:
        """Core's rendering, with a record from the integration's cache."""
        app = self.switchboard
        url = app.backend.preview_script(app.require_identity(), draft)
        self.post_message(self.PreviewReady(draft.url_template, url))

    def on_script_editor_preview_ready(self, message: PreviewReady) -> None:
        """Show core's rendering, unless the template changed meanwhile."""
        if message.template == self.template.strip():
            self.show_preview(message.url)

    def show_preview(self, url: str | None) -> None:
        """Show the link, or why there is none."""
        preview = self.query_one("#preview", Static)
        if url is None:
            preview.update(Text("This link would be refused with the sample values (unsafe or empty).", style="red"))
        else:
            preview.update(url)

    @on(Select.Changed, "#picker")
    def _insert(self, event: Select.Changed) -> None:
        """Insert the chosen placeholder where the cursor is, and go back to typing."""
        if isinstance(event.value, str):
            area = self.query_one("#template", TextArea)
            area.insert(event.value)
            event.select.clear()
            area.focus()

    def action_focus_picker(self) -> None:
        """Jump to the placeholder picker."""
        self.query_one("#picker", Select).focus()

    # --- saving ----------------------------------------------------------------------------------------------

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def action_save(self) -> None:
        """Check the whole draft (in core) and return it, or show each problem at its field."""
        draft = self.draft()
        if not draft.name:
            self.field("name").show_error("Give the script a name, e.g. Open in CRM.")
            self.query_one("#name", Input).focus()
            return
        self.field("name").show_error(None)
        self.query_one("#save", Button).disabled = True
        self.check(draft)

    @work(thread=True, exclusive=True, exit_on_error=False, group="check-script")
    def check(self, draft: ScriptDraft) -> None:
        """Ask core whether this draft would be saved."""
        app = self.switchboard
        app.backend.check_script(app.require_identity(), draft, self.context)
        self.post_message(self.Checked(draft))

    def on_script_editor_checked(self, message: Checked) -> None:
        """Hand the accepted draft to whoever opened the editor."""
        self.dismiss(message.draft)

    def on_work_failed(self, message: WorkFailed) -> None:
        """Put core's answer next to the field it is about; move the cursor to a template problem."""
        error = message.error
        if message.group == "preview":
            message.stop()
            self.query_one("#preview", Static).update(Text(f"No preview: {message.text}", style="dim"))
            return
        self.query_one("#save", Button).disabled = False
        if not isinstance(error, SwitchboardError) or error.field is None:
            return
        if error.field not in FIELD_NAMES:
            return
        message.stop()
        field = self.field(error.field)
        if isinstance(error, TemplateError):
            field.show_error(problems_text(error.problems) or error.message)
            self._point_at(error.position)
        else:
            field.show_error(error.message[:1].upper() + error.message[1:])
            field.control.focus()

    def _point_at(self, position: int | None) -> None:
        area = self.query_one("#template", TextArea)
        area.focus()
        if position is not None:
            area.move_cursor(location_of(area.text, position))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Leave without keeping anything."""
        self.dismiss(None)
