"""Connect a preset as the wizard does (check, test, store, first sync) and ask the cache who is calling.

Used by the CardDAV, CSV and generic REST tests to go past ``fetch()``: through ``connect_integration``, the real
sync into a cache generation on SQLite or PostgreSQL, and the lookup the HTTP shim answers with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from core.lookup import Lookups
from core.matching import CallInput
from core.models import SyncOutcome
from core.numbers import national_form
from core.runtime import Runtime
from core.services.audit import OPERATOR
from core.services.setup import Connected, connect_integration
from tests.factories import make_tenant
from tests.presets.messy_numbers import COUNTRY, Person


async def connect(
    runtime: Runtime, preset: str, values: Mapping[str, str], *, slug: str | None = None
) -> tuple[str, Connected]:
    """A new German tenant with ``preset`` connected and synced once; returns the tenant's slug and the result."""
    with Session(runtime.engine) as session:
        slug = make_tenant(session, slug, country=COUNTRY, timezone="Europe/Berlin").slug
        session.commit()
    connected = await connect_integration(
        runtime=runtime, actor=OPERATOR, tenant_slug=slug, preset_key=preset, values=values, node="test-node"
    )
    assert connected.run is not None and connected.run.outcome is SyncOutcome.SUCCESS, connected.run
    return slug, connected


def who_calls(runtime: Runtime, slug: str, number: str, lookups: Lookups | None = None) -> list[dict[str, Any]]:
    """The matches the lookup answers for a caller with ``number``."""
    own = lookups or Lookups(runtime.engine)
    try:
        return list(own.by_tenant(slug, CallInput(caller_number=number)).body["matches"])
    finally:
        if lookups is None:
            own.close()


def check_callers(runtime: Runtime, slug: str, expected: Mapping[str, Person], kinds: tuple[str, ...]) -> int:
    """Every number of every person, dialled the way the phone system sends it (national), finds that person's
    record and nobody else's; returns how many numbers were checked."""
    lookups = Lookups(runtime.engine)
    checked = 0
    try:
        for record_id, person in expected.items():
            for e164 in sorted(person.numbers(kinds)):
                matches = who_calls(runtime, slug, national_form(e164, country=COUNTRY), lookups)
                assert [m["record_id"] for m in matches] == [record_id], f"{e164} of {person.name}: {matches}"
                checked += 1
        assert who_calls(runtime, slug, "030 99999999", lookups) == []
    finally:
        lookups.close()
    return checked
