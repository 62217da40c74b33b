"""A default script's ``when`` in a preset file: ``match | nomatch | always``, as the API spells it.

``nomatch`` is the one spelling a preset author reads (in the schema and in its error messages); the older
``no_match`` is still read, as ``nomatch``, so a preset written with it keeps working.
"""

from __future__ import annotations

import importlib.resources
import textwrap
import tomllib
from typing import get_args

import pytest

from core.errors import PresetError
from core.models import ScriptWhen
from core.presets import ScriptDefault, parse_preset

PRESET_DIR = importlib.resources.files("presets")
PRESET_FILES = sorted(e.name for e in PRESET_DIR.iterdir() if e.name.endswith(".toml") and e.is_file())


def script_only_preset(when: str) -> str:
    """A script-only preset file whose one script is offered ``when``."""
    return textwrap.dedent(f"""\
        key = "search-site"
        name = "Search site"
        category = "Other"
        description = "Open a search for the caller's number."
        kind = "script-only"

        [[scripts]]
        name = "Search for the caller"
        url = "https://search.example.com/?q=#(Caller number)"
        when = "{when}"
    """)


def test_the_schema_offers_exactly_the_api_choices() -> None:
    assert set(get_args(ScriptDefault.model_fields["when"].annotation)) == {w.value for w in ScriptWhen}


@pytest.mark.parametrize(
    ("written", "read"),
    [("match", "match"), ("nomatch", "nomatch"), ("no_match", "nomatch"), ("always", "always")],
)
def test_when_is_read_in_its_one_spelling(written: str, read: str) -> None:
    preset = parse_preset(script_only_preset(written), source="presets/search-site.toml")
    assert preset.default_scripts[0].when == read


def test_an_unknown_when_is_refused_naming_the_choices() -> None:
    with pytest.raises(PresetError) as refused:
        parse_preset(script_only_preset("sometimes"), source="presets/search-site.toml")
    assert refused.value.message.endswith("scripts[0].when: must be one of match, nomatch, always")


@pytest.mark.parametrize("file_name", PRESET_FILES)
def test_shipped_presets_spell_when_as_the_api_does(file_name: str) -> None:
    data = tomllib.loads(PRESET_DIR.joinpath(file_name).read_text(encoding="utf-8"))
    assert {script.get("when", "match") for script in data.get("scripts", [])} <= {w.value for w in ScriptWhen}
