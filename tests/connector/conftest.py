"""Fixtures for the connector tests: a sleep that only records, fast timeouts, test presets."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from core.connector import Connector, FetchedRecord, RetryPolicy, Timeouts, build_connector
from core.presets import Preset, parse_preset

FAST = Timeouts(connect=2.0, read=0.5)


class FakeSleep:
    """Stands in for ``asyncio.sleep``: remembers the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    """A sleep function that does not wait."""
    return FakeSleep()


def preset_from(text: str, *, source: str = "presets/test.toml") -> Preset:
    """A preset parsed from TOML text (dedented)."""
    return parse_preset(textwrap.dedent(text), source=source)


def api_preset(objects: str, *, auth: str = 'type = "none"', settings: str = "", top: str = "") -> Preset:
    """A small API preset with an ``api_base_url`` setting, the given auth table and object tables."""
    return preset_from(
        f"""
key = "test"
name = "TestCRM"
category = "CRM"
description = "A CRM for tests"
{top}
[[settings]]
name = "api_base_url"
label = "API address"
kind = "url"
required = true
{textwrap.dedent(settings)}
[auth]
{textwrap.dedent(auth)}

[fields]
email = "E-mail"
company = "Company"

{textwrap.dedent(objects)}
"""
    )


def connect(preset: Preset, settings: Mapping[str, str], sleep: FakeSleep, **kwargs: Any) -> Connector:
    """``build_connector`` with fast timeouts, a quick retry policy and the fake sleep."""
    kwargs.setdefault("timeouts", FAST)
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8, max_total=60))
    return build_connector(preset, settings, sleep=sleep, **kwargs)


async def fetch_all(connector: Connector) -> list[FetchedRecord]:
    """Every record the connector fetches (and closes it)."""
    records: list[FetchedRecord] = []
    try:
        async for page in connector.fetch():
            records.extend(page)
    finally:
        await connector.aclose()
    return records
