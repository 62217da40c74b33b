"""The wizard's state, without a screen: what choosing a preset puts in it."""

from __future__ import annotations

import textwrap

from core.models import ScriptWhen
from core.presets import parse_preset
from tui.wizard_state import WizardState

PRESET = textwrap.dedent("""\
    key = "search-site"
    name = "Search site"
    category = "Other"
    description = "Open a search for the caller's number."
    kind = "script-only"

    [[scripts]]
    name = "Known caller"
    url = "https://search.example.com/?q=#(Caller number)"

    [[scripts]]
    name = "Unknown caller"
    url = "https://search.example.com/new?q=#(Caller number)"
    when = "nomatch"

    [[scripts]]
    name = "Unknown caller, older spelling"
    url = "https://search.example.com/new?q=#(Caller number)"
    when = "no_match"

    [[scripts]]
    name = "Every call"
    url = "https://search.example.com/log?q=#(Caller number)"
    when = "always"
""")


def test_choosing_a_preset_takes_when_its_scripts_are_offered() -> None:
    state = WizardState()
    state.choose(parse_preset(PRESET, source="presets/search-site.toml"))
    chosen = [script.draft.when for script in state.scripts]
    assert chosen == [ScriptWhen.MATCH, ScriptWhen.NOMATCH, ScriptWhen.NOMATCH, ScriptWhen.ALWAYS]
    assert all(isinstance(when, ScriptWhen) for when in chosen)
