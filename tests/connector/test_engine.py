"""build_connector itself: the declarative engine, code-module presets and script-only presets."""

from __future__ import annotations

import pytest

from core.connector import ApiConnector, Connector, build_connector, get_preset
from core.errors import InvalidInput, PresetError
from core.presets import load_presets_from
from tests.connector.conftest import FakeSleep, connect, fetch_all
from tests.crm import CloseCrm, serve


async def test_the_engine_implements_the_connector_interface() -> None:
    connector = build_connector(get_preset("hubspot"), {"access_token": "t", "portal_id": "1"})
    assert isinstance(connector, ApiConnector) and isinstance(connector, Connector)
    assert connector.http.base_url == "https://api.hubapi.com"
    await connector.aclose()


def test_settings_are_checked_again() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_connector(get_preset("pipedrive"), {"api_token": "abc"})
    assert caught.value.field == "company_domain"


def test_a_script_only_preset_has_nothing_to_fetch() -> None:
    with pytest.raises(PresetError, match="Web search has no API to fetch from"):
        build_connector(get_preset("web-search"), {})


async def test_a_code_module_supplies_the_connector(sleep: FakeSleep) -> None:
    preset = load_presets_from("tests.connector.sample_presets")["custom"]
    contacts = [{"id": f"cont_{i}", "name": f"Zoë {i}", "phones": [{"phone": "+31 20 555 0100", "type": "office"}]}
                for i in range(3)]  # fmt: skip
    crm = CloseCrm(contacts)
    with serve(crm.app) as url:
        connector = connect(preset, {"api_base_url": url}, sleep)
        assert type(connector).__name__ == "ShoutingConnector" and isinstance(connector, Connector)
        result = await connector.test_connection()
        records = await fetch_all(connector)
    assert [r.fields["DisplayName"] for r in records] == ["ZOË 0", "ZOË 1", "ZOË 2"]
    assert records[0].phones == [("office", "+31 20 555 0100")]
    assert result.sample is not None and result.sample.fields["DisplayName"] == "ZOË 0"
