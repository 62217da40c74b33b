"""The whole preset catalogue: every preset file keeps the contract that lets an admin be done in a few clicks.

The files are discovered, not listed, so a preset added tomorrow is checked too. For each one:

- it loads and validates on its own, and its key is its file name;
- every setting says where to find its value, and credentials are secret;
- its default scripts use only the call properties and fields the preset provides;
- an API preset has default notification fields and a screen-pop script, every object type carries phone
  numbers, and for a made-up record under example settings ``PopUpUri`` is an https link;
- a script-only preset asks for nothing and its scripts need no CRM data;

and the catalogue as a whole loads, and ``switchboard presets list`` (``--json`` too) shows every preset.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, find
from hypothesis import settings as hypothesis_settings
from hypothesis.strategies import from_regex

from core.connector import FetchedRecord
from core.connector.mapping import RecordMapper
from core.presets import Preset, Setting, Template, load_preset_module, load_presets, parse_preset, validate_settings
from core.templates import find_problems, placeholders_used, render, sample_call

PRESET_DIR = importlib.resources.files("presets")
PRESET_FILES = sorted(e.name for e in PRESET_DIR.iterdir() if e.name.endswith(".toml") and e.is_file())
SECRET_NAME = re.compile(r"(password|secret|api_key|token)$")
FIND_SETTINGS = hypothesis_settings(
    database=None, derandomize=True, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
)
SAMPLE_VALUES = ("acme", "12345", "eu", "com", "https://crm.example.com", "acme.example.com", "v60.0",
                 "6f1c2a4e-5b7d-4c1e-9a3b-2d8e0f4c7a91", "sample-value-1234")  # fmt: skip


def _kind(file_name: str) -> str:
    """The ``kind`` a file declares, read without validating (a broken file still gets its load test)."""
    try:
        return str(tomllib.loads(PRESET_DIR.joinpath(file_name).read_text(encoding="utf-8")).get("kind", "api"))
    except tomllib.TOMLDecodeError:
        return "api"


API_FILES = [name for name in PRESET_FILES if _kind(name) != "script-only"]
SCRIPT_ONLY_FILES = [name for name in PRESET_FILES if _kind(name) == "script-only"]


def load(file_name: str) -> Preset:
    """One preset file, parsed and validated on its own."""
    text = PRESET_DIR.joinpath(file_name).read_text(encoding="utf-8")
    return parse_preset(text, source=f"presets/{file_name}", package="presets")


def test_the_catalogue_has_api_and_script_only_presets() -> None:
    assert {"carddav.toml", "csv.toml", "generic-rest.toml"} <= set(API_FILES)
    assert {"web-search.toml", "google-contacts.toml"} <= set(SCRIPT_ONLY_FILES)


@pytest.mark.parametrize("file_name", PRESET_FILES)
def test_preset_file_loads_and_validates(file_name: str) -> None:
    preset = load(file_name)
    assert preset.key == file_name.removesuffix(".toml")
    assert preset.name.strip() and preset.description.strip() and preset.category.strip()
    assert preset.keywords, "keywords help the admin find the preset in the wizard's search"


@pytest.mark.parametrize("file_name", PRESET_FILES)
def test_settings_say_where_to_find_them_and_credentials_are_secret(file_name: str) -> None:
    for setting in load(file_name).settings:
        assert setting.label.strip(), f"{setting.name} has no label"
        assert len(setting.help.strip()) >= 15, f"{setting.name}: say where the admin finds the value"
        if SECRET_NAME.search(setting.name):
            assert setting.secret, f"{setting.name} looks like a credential but is not kind = 'secret'"


@pytest.mark.parametrize("file_name", PRESET_FILES)
def test_default_scripts_use_only_placeholders_the_preset_provides(file_name: str) -> None:
    preset = load(file_name)
    assert preset.default_scripts, "every preset offers at least one script"
    for script in preset.default_scripts:
        problems = find_problems(script.url, record_fields=preset.fields)
        assert not problems, f"{script.name}: {[p.message for p in problems]}"


@pytest.mark.parametrize("file_name", API_FILES)
def test_api_preset_has_notification_fields_and_a_screen_pop(file_name: str) -> None:
    preset = load(file_name)
    assert preset.default_notification, "preconfigure the fields shown when a call comes in"
    assert preset.default_notification[0].field == "DisplayName"
    pops = [s for s in preset.default_scripts if any(p.name == "PopUpUri" for p in placeholders_used(s.url))]
    assert pops and pops[0].when == "match", "a default screen-pop script opens $(PopUpUri) on a match"
    if preset.module is None:  # a code module may read an object type for lookups only (Close's leads)
        assert all(obj.phones for obj in preset.objects), "every object type fetched must carry phone numbers"


@pytest.mark.parametrize("file_name", API_FILES)
def test_popup_uri_is_an_https_link_for_a_sample_record(file_name: str) -> None:
    preset = load(file_name)
    settings = validate_settings(preset, sample_settings(preset))
    for record in sample_records(preset, settings):
        assert set(record.fields) == set(preset.fields), f"{record.object_type}: fields differ from the preset's"
        link = record.fields["PopUpUri"]
        parts = urlsplit(link)
        assert parts.scheme == "https" and parts.hostname, f"{record.object_type}: PopUpUri {link!r} is no https link"
        assert "{" not in link and "}" not in link
        assert record.fields["DisplayName"], f"{record.object_type}: a sample record has no name"
        rendered = [render(s.url, call=sample_call(), record=record.fields) for s in preset.default_scripts]
        assert all(url and url.startswith(("https://", "mailto:", "tel:")) for url in rendered), rendered


@pytest.mark.parametrize("file_name", SCRIPT_ONLY_FILES)
def test_script_only_preset_asks_for_nothing_and_needs_no_crm_data(file_name: str) -> None:
    preset = load(file_name)
    assert not preset.settings and not preset.objects and preset.fields == {}
    for script in preset.default_scripts:
        assert all(p.kind == "call" for p in placeholders_used(script.url)), f"{script.name} uses CRM fields"
        url = render(script.url, call=sample_call())
        assert url is not None and url.startswith("https://"), script.url


def test_the_loader_finds_every_preset_file() -> None:
    load_presets.cache_clear()
    keys = set(load_presets())
    files = {e.name.removesuffix(".toml") for e in PRESET_DIR.iterdir() if e.name.endswith(".toml") and e.is_file()}
    assert keys == files


def test_switchboard_presets_list_shows_every_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    keys = {name.removesuffix(".toml") for name in PRESET_FILES}
    base = ["--data-dir", str(tmp_path), "--database-url", f"sqlite:///{tmp_path / 'sb.db'}"]

    assert _run(main, [*base, "presets", "list"]) == 0
    text = capsys.readouterr().out
    assert all(key in text for key in keys), sorted(key for key in keys if key not in text)

    assert _run(main, [*base, "presets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert _keys_in(listed) >= keys


# ------------------------------------------------------------------------------------------- samples


def sample_settings(preset: Preset) -> dict[str, str]:
    """Example values for every setting: the default, else the placeholder, else a value its pattern accepts
    (a common one, or the simplest string the pattern matches)."""
    return {s.name: value for s in preset.settings if (value := sample_value(s))}


def sample_value(setting: Setting) -> str:
    """An example value for one setting ("" lets the default apply)."""
    if setting.kind == "choice":
        return setting.default or setting.choices[0]
    if setting.default is not None:
        return ""
    by_kind = {"url": "https://crm.example.com", "secret": "sample-secret-7f3a9c1e", "number": "10"}
    options = [setting.placeholder, by_kind.get(setting.kind, ""), *SAMPLE_VALUES]
    for option in (o for o in options if o):
        if setting.pattern is None or re.fullmatch(setting.pattern, option):
            return option
    assert setting.pattern is not None
    return str(find(from_regex(setting.pattern, fullmatch=True), lambda _: True, settings=FIND_SETTINGS))


def sample_records(preset: Preset, settings: dict[str, str]) -> list[FetchedRecord]:
    """A made-up record per object type, mapped as a sync would; code modules make their own."""
    module = load_preset_module(preset) if preset.module else None
    if module is not None and hasattr(module, "sample_record"):
        return [module.sample_record(preset, settings)]
    assert preset.objects, "a code module without object types must offer sample_record(preset, settings)"
    records = []
    for obj in preset.objects:
        raw: dict[str, Any] = {}
        for name, text in obj.fields.items():
            template = Template.parse(text)
            whole = template.literals == ("", "")
            for path in template.names:
                if not path.startswith("settings."):
                    url_value = name == "PopUpUri" and whole
                    _put(raw, path, "https://crm.example.com/record/12345" if url_value else _sample_text(name))
        for phone in obj.phones:
            if phone.source == "array":
                head, _, key = phone.path.partition("[].")
                _put(raw, head, [_nested(key, "+49 30 1234567")])
            elif phone.source == "vcard":
                _put(raw, phone.path, "BEGIN:VCARD\r\nVERSION:3.0\r\nTEL;TYPE=WORK:+49 30 1234567\r\nEND:VCARD\r\n")
            else:
                _put(raw, phone.path, "+49 30 1234567")
        _put(raw, obj.id, "12345")
        record = RecordMapper(preset, obj, settings).map(raw)
        assert record is not None, f"{obj.type}: the sample record has no id at {obj.id!r}"
        assert len(record.phones) >= len(obj.phones), f"{obj.type}: a declared phone path finds no number"
        records.append(record)
    return records


def _sample_text(field: str) -> str:
    return "Zoë Brückner" if field == "DisplayName" else "12345"


def _nested(path: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, path, value)
    return out


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path (numeric segments index lists), keeping what is already there."""
    node: Any = data
    segments = path.split(".")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        following = segments[i + 1] if not last else ""
        fresh: Any = [] if following.isdigit() else {}
        if isinstance(node, list):
            index = int(segment)
            node.extend(None for _ in range(index + 1 - len(node)))
            if last:
                node[index] = node[index] if node[index] is not None else value
                return
            if not isinstance(node[index], dict | list):
                node[index] = fresh
            node = node[index]
        elif last:
            node.setdefault(segment, value)
        else:
            if not isinstance(node.get(segment), dict | list):
                node[segment] = fresh
            node = node[segment]


def _run(main: Any, argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _keys_in(data: Any) -> set[str]:
    """Every value under a ``key`` name anywhere in a JSON document."""
    if isinstance(data, dict):
        found = {str(data["key"])} if isinstance(data.get("key"), str) else set()
        return found.union(*(_keys_in(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(_keys_in(v) for v in data))
    return set()
