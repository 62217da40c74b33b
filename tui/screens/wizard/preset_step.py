"""Step 1: choose the CRM from every preset, grouped by category, filtered as you type."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from core.presets import Preset


def matches(preset: Preset, query: str) -> bool:
    """Whether every word typed appears in the preset's name, keywords, category or description."""
    haystack = " ".join((preset.name, preset.key, preset.category, preset.description, *preset.keywords)).casefold()
    return all(word in haystack for word in query.casefold().split())


def grouped(presets: Iterable[Preset]) -> list[tuple[str, list[Preset]]]:
    """Presets by category (categories and names in alphabetical order, "Other" last)."""
    groups: dict[str, list[Preset]] = {}
    for preset in presets:
        groups.setdefault(preset.category, []).append(preset)
    order = sorted(groups, key=lambda name: (name == "Other", name.casefold()))
    return [(name, sorted(groups[name], key=lambda p: p.name.casefold())) for name in order]


class PresetStep(Vertical):
    """A search box over a grouped list; Enter (or a click) chooses."""

    BINDINGS = [Binding("down", "to_list", "List", show=False)]

    @dataclass
    class Chosen(Message):
        """A preset was chosen."""

        preset: Preset

    def __init__(self, presets: dict[str, Preset], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.presets = presets

    def compose(self) -> ComposeResult:
        """Search box, list, description of the highlighted preset."""
        yield Input(placeholder="Search by name or keyword, e.g. hubspot, address book…", id="preset-search")
        yield OptionList(id="preset-list")
        yield Static("", id="preset-description", markup=False)

    def on_mount(self) -> None:
        """Show every preset."""
        self.refill("")

    def refill(self, query: str) -> None:
        """List the presets that match ``query``, under their category headings."""
        options = self.query_one("#preset-list", OptionList)
        options.clear_options()
        found = [p for p in self.presets.values() if matches(p, query)]
        if not found:
            options.add_option(Option(Text(f"No preset matches {query!r}.", style="italic"), disabled=True))
            self.query_one("#preset-description", Static).update("")
            return
        for category, presets in grouped(found):
            options.add_option(Option(Text(category, style="bold underline"), disabled=True))
            for preset in presets:
                label = Text(f"  {preset.name}")
                if preset.is_script_only:
                    label.append("  (script only)", style="dim")
                options.add_option(Option(label, id=preset.key))
        options.highlighted = 1

    @on(Input.Changed, "#preset-search")
    def _search(self, event: Input.Changed) -> None:
        self.refill(event.value)

    @on(Input.Submitted, "#preset-search")
    def choose_highlighted(self) -> None:
        """Choose the highlighted preset (Enter in the search box, or Next)."""
        options = self.query_one("#preset-list", OptionList)
        if options.highlighted is not None:
            option = options.get_option_at_index(options.highlighted)
            if option.id is not None:
                self.post_message(self.Chosen(self.presets[option.id]))

    def action_to_list(self) -> None:
        """From the search box, down into the list."""
        self.query_one("#preset-list", OptionList).focus()

    @on(OptionList.OptionHighlighted, "#preset-list")
    def _describe(self, event: OptionList.OptionHighlighted) -> None:
        preset = self.presets.get(event.option_id or "")
        if preset is not None:
            kind = "No API: scripts only, steps 2 and 3 are skipped." if preset.is_script_only else ""
            self.query_one("#preset-description", Static).update(f"{preset.name}: {preset.description} {kind}".strip())

    @on(OptionList.OptionSelected, "#preset-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        preset = self.presets.get(event.option_id or "")
        if preset is not None:
            self.post_message(self.Chosen(preset))

    def select(self, key: str) -> None:
        """Highlight ``key`` (coming back to this step)."""
        options = self.query_one("#preset-list", OptionList)
        for index in range(options.option_count):
            if options.get_option_at_index(index).id == key:
                options.highlighted = index
                return
