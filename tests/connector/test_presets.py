"""Preset files: the shipped ones load, schema errors name the file and the key, settings are checked."""

from __future__ import annotations

import re

import pytest

from core.errors import InvalidInput, NotFound, PresetError
from core.presets import (
    PAGINATION_STYLES,
    check_header_values,
    get_preset,
    header_settings,
    load_presets,
    load_presets_from,
    parse_preset,
    validate_settings,
)
from tests.connector.conftest import api_preset, preset_from

CURSOR_OBJECT = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/contacts"
records = "results"

[objects.fields]
DisplayName = "{name}"

[objects.pagination]
style = "cursor"
cursor_param = "after"
cursor_path = "next"
size_param = "limit"
default_size = 50
max_size = 100
"""


# ------------------------------------------------------------------------------------------- shipped files


def test_every_shipped_preset_loads() -> None:
    presets = load_presets()
    assert {"hubspot", "insightly", "pipedrive", "web-search"} <= set(presets)
    for key, preset in presets.items():
        assert preset.key == key
        assert preset.source == f"presets/{key}.toml"
        assert preset.name and preset.description and preset.category
        if not preset.is_script_only:
            assert (preset.objects or preset.module) and preset.default_scripts
            assert list(preset.fields)[:3] == ["DisplayName", "Identifier", "PopUpUri"]


@pytest.mark.parametrize(
    ("key", "names", "base_default"),
    [
        ("hubspot", ["access_token", "portal_id", "api_base_url"], "https://api.hubapi.com"),
        ("pipedrive", ["api_token", "company_domain", "api_base_url"], "https://{company_domain}.pipedrive.com"),
        ("insightly", ["api_key", "pod", "api_base_url"], "https://api.{pod}.insightly.com/v3.1"),
    ],
)
def test_vendor_presets_declare_exactly_their_settings(key: str, names: list[str], base_default: str) -> None:
    preset = get_preset(key)
    assert [s.name for s in preset.settings] == names
    assert preset.setting("api_base_url").default == base_default
    assert preset.secret_settings == {names[0]}
    assert all(s.help for s in preset.settings)


def test_screen_pop_script_is_preconfigured() -> None:
    for key in ("hubspot", "insightly", "pipedrive"):
        pop = get_preset(key).default_scripts[0]
        assert (pop.url, pop.when, pop.auto_open) == ("$(PopUpUri)", "match", True)
        assert get_preset(key).default_notification[0].field == "DisplayName"


def test_script_only_preset_has_no_api() -> None:
    preset = get_preset("web-search")
    assert preset.is_script_only
    assert preset.settings == () and preset.objects == () and preset.fields == {}
    assert "#(Caller number)" in preset.default_scripts[0].url


def test_unknown_preset_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        get_preset("nocrm")
    assert "nocrm" in caught.value.message


def test_presets_are_loaded_once() -> None:
    assert load_presets() is load_presets()


# ------------------------------------------------------------------------------------------- schema errors


def _error(text: str) -> str:
    with pytest.raises(PresetError) as caught:
        preset_from(text)
    return caught.value.message


def test_bad_pagination_style_names_file_key_and_choices() -> None:
    message = _error_in_objects(CURSOR_OBJECT.replace('style = "cursor"', 'style = "scroll"'))
    assert message == ("presets/test.toml: objects[0].pagination.style: must be one of " + ", ".join(PAGINATION_STYLES))


def test_missing_key_inside_a_union_member_is_named_without_the_tag() -> None:
    message = _error_in_objects(CURSOR_OBJECT.replace('cursor_path = "next"\n', ""))
    assert message == "presets/test.toml: objects[0].pagination.cursor_path: is required"


def test_misspelt_key_is_refused() -> None:
    message = _error_in_objects(CURSOR_OBJECT.replace('records = "results"', 'recrods = "results"'))
    assert message == "presets/test.toml: objects[0].recrods: unknown key (check the spelling)"


def test_bad_value_type_names_the_key() -> None:
    message = _error_in_objects(CURSOR_OBJECT.replace("max_size = 100", "max_size = 0"))
    assert message.startswith("presets/test.toml: objects[0].pagination.max_size: ")
    assert "greater than 0" in message


def test_unknown_auth_type() -> None:
    with pytest.raises(PresetError) as caught:
        api_preset(CURSOR_OBJECT, auth='type = "magic"')
    assert caught.value.message.startswith("presets/test.toml: auth.type: must be one of none, api_key, basic")


def test_bad_kind_lists_the_allowed_values() -> None:
    with pytest.raises(PresetError) as caught:
        api_preset(CURSOR_OBJECT, top='kind = "ftp"')
    assert caught.value.message == "presets/test.toml: kind: must be one of api, script-only"


def test_template_naming_an_undeclared_setting() -> None:
    bad = CURSOR_OBJECT.replace(
        'DisplayName = "{name}"', 'DisplayName = "{name}"\nPopUpUri = "https://x/{settings.tenant}/{id}"'
    )
    assert _error_in_objects(bad) == (
        "presets/test.toml: objects[0].fields.PopUpUri: {settings.tenant} is not a declared setting"
    )


def test_unbalanced_template_brace() -> None:
    bad = CURSOR_OBJECT.replace('DisplayName = "{name}"', 'DisplayName = "{name"')
    assert "objects[0].fields.DisplayName: unbalanced '{'" in _error_in_objects(bad)


def test_default_may_only_use_earlier_settings() -> None:
    settings = """
        [[settings]]
        name = "site"
        label = "Site"
        default = "{region}.example.com"

        [[settings]]
        name = "region"
        label = "Region"
    """
    with pytest.raises(PresetError) as caught:
        api_preset(CURSOR_OBJECT, settings=settings)
    assert caught.value.message == (
        "presets/test.toml: settings[1].default: {region} is not a setting declared before this one"
    )


def test_page_size_default_above_max() -> None:
    message = _error_in_objects(CURSOR_OBJECT.replace("default_size = 50", "default_size = 500"))
    assert message == "presets/test.toml: objects[0].pagination.default_size: must lie between min_size and max_size"


def test_field_outside_the_catalogue() -> None:
    bad = CURSOR_OBJECT.replace('DisplayName = "{name}"', 'DisplayName = "{name}"\nphone_type = "{x}"')
    assert "objects[0].fields.phone_type: not a standard field" in _error_in_objects(bad)


def test_notification_field_must_exist() -> None:
    objects = CURSOR_OBJECT + '\n[[notification]]\nfield = "Salary"\nlabel = "Salary"\n'
    message = _error_in_objects(objects)
    assert message.startswith("presets/test.toml: notification[0].field: unknown field 'Salary'")


def test_api_preset_needs_api_base_url() -> None:
    text = """
        key = "x"
        name = "X"
        category = "CRM"
        description = "x"
        [[objects]]
        type = "contacts"
        label = "Contacts"
        path = "/c"
        [objects.fields]
        DisplayName = "{name}"
        [objects.pagination]
        style = "link_header"
        size_param = "per_page"
        default_size = 10
        max_size = 10
    """
    assert "settings: an API preset needs an 'api_base_url' setting" in _error(text)


def test_invalid_toml_names_the_file() -> None:
    message = _error('key = "x"\nname = \n')
    assert message.startswith("presets/test.toml: not valid TOML:")


def test_module_must_live_beside_the_preset() -> None:
    with pytest.raises(PresetError) as caught:
        api_preset(CURSOR_OBJECT, top='module = "os.path"')
    assert (
        caught.value.message
        == "presets/test.toml: module: must name a module beside the preset file, like 'presets.name'"
    )


def test_key_must_match_the_file_name(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "otherpresets"  # type: ignore[operator]
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "alpha.toml").write_text(
        'key = "beta"\nname = "B"\ncategory = "Other"\ndescription = "b"\nkind = "script-only"\n'
        '[[scripts]]\nname = "s"\nurl = "https://example.com/?q=#(Caller number)"\nwhen = "always"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PresetError) as caught:
        load_presets_from("otherpresets")
    assert caught.value.message == "otherpresets/alpha.toml: key: must match the file name ('alpha')"


def _error_in_objects(objects: str) -> str:
    with pytest.raises(PresetError) as caught:
        api_preset(objects)
    return caught.value.message


# ----------------------------------------------------------------------------------------- code modules


def test_preset_module_is_loaded_by_the_name_in_its_file() -> None:
    presets = load_presets_from("tests.connector.sample_presets")
    assert presets["custom"].module == "tests.connector.sample_presets.custom"
    assert presets["custom"].source == "tests/connector/sample_presets/custom.toml"


def test_preset_module_without_create_connector_is_refused() -> None:
    with pytest.raises(PresetError) as caught:
        parse_preset(
            'key = "x"\nname = "X"\ncategory = "CRM"\ndescription = "x"\nmodule = "tests.connector.conftest"\n'
            '[[settings]]\nname = "api_base_url"\nlabel = "API"\nkind = "url"\n',
            source="tests/connector/x.toml",
            package="tests.connector",
        )
    assert caught.value.message == (
        "tests/connector/x.toml: module: the module has no create_connector(context) function"
    )


# ---------------------------------------------------------------------------------------------- settings


def test_settings_get_templated_defaults() -> None:
    values = validate_settings(get_preset("insightly"), {"api_key": "k-1", "pod": "eu1"})
    assert values == {"api_key": "k-1", "pod": "eu1", "api_base_url": "https://api.eu1.insightly.com/v3.1"}
    values = validate_settings(get_preset("pipedrive"), {"api_token": "abc", "company_domain": "acme"})
    assert values["api_base_url"] == "https://acme.pipedrive.com"


def test_explicit_base_url_wins_and_loses_its_trailing_slash() -> None:
    values = validate_settings(
        get_preset("hubspot"), {"access_token": "t", "portal_id": "1", "api_base_url": "https://proxy.example.com/hs/"}
    )
    assert values["api_base_url"] == "https://proxy.example.com/hs"


def test_required_setting_names_the_field_and_where_to_find_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_settings(get_preset("hubspot"), {"portal_id": "123"})
    assert caught.value.field == "access_token"
    assert "Access token: required" in caught.value.message
    assert "Private apps" in caught.value.message


def test_pattern_failure_uses_the_admin_hint() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_settings(get_preset("insightly"), {"api_key": "k", "pod": "https://api.na1.insightly.com"})
    assert caught.value.field == "pod"
    assert "e.g. na1" in caught.value.message


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_settings(get_preset("hubspot"), {"access_token": "t", "portal_id": "1", "hapikey": "old"})
    assert caught.value.field == "hapikey"
    assert "HubSpot has no setting called 'hapikey'" in caught.value.message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://api.example.com", "must be a web address"),
        ("http://api.example.com", "must use https://"),
        ("https://api.example.com/v1?key=1", "must not contain"),
        ("api.example.com", "must be a web address"),
    ],
)
def test_url_settings_are_checked(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_settings(get_preset("hubspot"), {"access_token": "t", "portal_id": "1", "api_base_url": url})
    assert caught.value.field == "api_base_url"
    assert problem in caught.value.message


def test_plain_http_is_allowed_for_this_machine_only() -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:80"):
        values = validate_settings(get_preset("hubspot"), {"access_token": "t", "portal_id": "1", "api_base_url": url})
        assert values["api_base_url"] == url


def test_choice_and_number_settings() -> None:
    settings = """
        [[settings]]
        name = "region"
        label = "Region"
        kind = "choice"
        choices = ["eu", "us"]
        default = "eu"

        [[settings]]
        name = "batch"
        label = "Batch size"
        kind = "number"
        minimum = 1
        maximum = 500
    """
    preset = api_preset(CURSOR_OBJECT, settings=settings)
    base = {"api_base_url": "https://crm.example.com"}
    assert validate_settings(preset, base) == {**base, "region": "eu", "batch": ""}
    with pytest.raises(InvalidInput, match=re.escape("must be one of eu, us")):
        validate_settings(preset, {**base, "region": "mars"})
    with pytest.raises(InvalidInput, match="must be a number"):
        validate_settings(preset, {**base, "batch": "many"})
    with pytest.raises(InvalidInput, match="at most 500"):
        validate_settings(preset, {**base, "batch": "501"})


def test_values_are_trimmed() -> None:
    values = validate_settings(get_preset("hubspot"), {"access_token": " pat-1 \n", "portal_id": " 42 "})
    assert (values["access_token"], values["portal_id"]) == ("pat-1", "42")


# ------------------------------------------------------------------------------------------- header values


def test_header_settings_are_those_the_auth_and_preset_headers_use() -> None:
    assert header_settings(get_preset("hubspot")) == {"access_token"}  # Authorization: Bearer {access_token}
    assert header_settings(get_preset("insightly")) == set()  # Basic: base64 carries any character
    custom = api_preset(
        CURSOR_OBJECT,
        settings='[[settings]]\nname = "key"\nlabel = "API key"\nkind = "secret"\n'
        '[[settings]]\nname = "agent"\nlabel = "Agent"\n[[settings]]\nname = "note"\nlabel = "Note"\n',
        auth='type = "api_key"\nin = "header"\nname = "X-Key"\nvalue = "{key}"',
        top='headers = { "X-Agent" = "agent {agent}" }',
    )
    assert header_settings(custom) == {"key", "agent"}


def test_a_header_value_that_is_not_ascii_is_refused_naming_its_setting() -> None:
    preset = get_preset("hubspot")
    with pytest.raises(InvalidInput) as caught:
        check_header_values(preset, {"access_token": "pat-na1-\u201cabc\u201d", "portal_id": "1"})
    assert caught.value.field == "access_token"
    assert caught.value.message.startswith("Access token: holds a character that cannot be sent to HubSpot")
    assert "abc" not in caught.value.message  # the secret is not repeated
    check_header_values(preset, {"access_token": "pat-na1-abc", "portal_id": "1"})
    check_header_values(get_preset("insightly"), {"api_key": "clé", "pod": "na1"})  # Basic: sent base64-encoded
