"""A fixed, realistic organisation for snapshots and screenshots: same ids, same times, same numbers every time.

Acme B.V. (NL) with admin Alice de Vries and three integrations: HubSpot (enabled, six nightly syncs, 248
numbers cached), Insightly (its last sync failed) and Web search (script-only); a script for every call.
Times are fixed around :data:`NOW`; :func:`frozen_clock` freezes the clock core's sync status reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session
from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from core.db import session_scope
from core.models import CachedNumber, CachedRecord, Integration, SyncOutcome, SyncRun
from core.runtime import Runtime
from core.services import integrations, scripts, users
from core.services.audit import OPERATOR
from core.services.scripts import ScriptDraft
from core.services.users import Identity
from tests import factories

NOW = datetime(2024, 5, 14, 7, 30, tzinfo=UTC)
"""09:30 in Amsterdam on a Tuesday."""

FIRST_NAMES = ("Anna", "Bram", "Chantal", "Daan", "Eva", "Femke", "Gijs", "Hanna", "Ivo", "Julia", "Koen", "Lotte")
LAST_NAMES = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Bos", "Vos")
COMPANIES = ("Visser BV", "Bakker Logistiek", "Smit & Zn", "Meijer ICT", "De Boer Bouw", "Mulder Advies")
HISTORY = (231, 236, 240, 239, 244, 248)
"""Numbers found by HubSpot's nightly syncs, oldest first; the last is what is cached."""


@contextmanager
def frozen_clock() -> Iterator[None]:
    """Core's sync status reads the time to tell the next sync: make it :data:`NOW`."""
    import core.services.sync as sync_service

    original = sync_service.utcnow
    sync_service.utcnow = lambda: NOW
    try:
        yield
    finally:
        sync_service.utcnow = original


def clock() -> datetime:
    """The app's clock in snapshots."""
    return NOW


def _contacts(count: int) -> list[tuple[dict[str, str], str]]:
    """``count`` Dutch contacts (fields, E.164), always the same."""
    people = []
    for index in range(count):
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
        fields = {
            "DisplayName": f"{first} {last}",
            "Identifier": str(1001 + index),
            "PopUpUri": f"https://app.hubspot.com/contacts/1234567/record/0-1/{1001 + index}",
            "company": COMPANIES[index % len(COMPANIES)],
            "email": f"{first.lower()}@example.nl",
        }
        people.append((fields, f"+3120{5550000 + index:07d}"))
    return people


def _cache(session: Session, integration: Integration, generation: int, count: int) -> None:
    records = []
    for index, (fields, _) in enumerate(_contacts(count)):
        records.append(
            CachedRecord(
                integration_id=integration.id or 0,
                generation=generation,
                record_id=f"contacts:{1001 + index}",
                fields=fields,
            )
        )
    session.add_all(records)
    session.flush()
    numbers = [
        CachedNumber(
            integration_id=integration.id or 0,
            generation=generation,
            record_pk=record.id or 0,
            e164=e164,
            suffix=e164[::-1],
            raw=e164,
            label="Phone",
        )
        for record, (_, e164) in zip(records, _contacts(count), strict=True)
    ]
    session.add_all(numbers)
    integration.active_generation = generation
    session.add(integration)


def _runs(session: Session, integration: Integration, tenant_id: int) -> None:
    """Six nightly runs at 02:30 local time, the newest last night."""
    for back, numbers in zip(range(len(HISTORY), 0, -1), HISTORY, strict=True):
        started = NOW.replace(hour=0, minute=30) - timedelta(days=back - 1)
        session.add(
            SyncRun(
                tenant_id=tenant_id,
                integration_id=integration.id or 0,
                generation=back,
                trigger="schedule",
                node="sb-1",
                started_at=started,
                finished_at=started + timedelta(seconds=42),
                outcome=SyncOutcome.SUCCESS,
                records=numbers - 12,
                numbers=numbers,
                unparsed=2,
                unparsed_examples=["n/a", "ask reception"],
            )
        )


def build(runtime: Runtime) -> Identity:
    """Create the organisation; returns the admin's identity."""
    with session_scope(runtime.engine) as session:
        tenant = factories.make_tenant(session, "acme", name="Acme B.V.")
        admin = factories.make_user(session, tenant, "alice@acme.example", password=None)
        admin.display_name = "Alice de Vries"
        session.add(admin)
        hubspot = factories.make_integration(
            session,
            tenant,
            runtime.box,
            preset="hubspot",
            name="HubSpot",
            settings={"portal_id": "1234567", "api_base_url": "https://api.hubapi.com"},
            secrets={"access_token": "pat-na1-5f0c2a9e-7d41-4b8e-9c3a-2e6f8d1b7f3a"},
            notification=[
                {"field": "DisplayName", "label": "Name"},
                {"field": "company", "label": "Company"},
                {"field": "email", "label": "E-mail"},
            ],
        )
        hubspot.schedule = "30 2 * * *"
        insightly = factories.make_integration(
            session,
            tenant,
            runtime.box,
            preset="insightly",
            name="Insightly",
            settings={"pod": "na1", "api_base_url": "https://api.na1.insightly.com/v3.1"},
            secrets={"api_key": "0b6e1c2d-3f4a-4b5c-8d9e-0f1a2b3c4d5e"},
        )
        insightly.schedule = "45 3 * * *"
        web = integrations.create_integration(
            session=session, actor=OPERATOR, tenant=tenant, box=runtime.box, preset="web-search", name="Web search",
            settings={}, schedule="0 4 * * *",
        )  # fmt: skip
        session.flush()
        _cache(session, hubspot, len(HISTORY), HISTORY[-1])
        _runs(session, hubspot, tenant.id or 0)
        session.add(
            SyncRun(
                tenant_id=tenant.id or 0,
                integration_id=insightly.id or 0,
                generation=None,
                node="sb-1",
                started_at=NOW.replace(hour=1, minute=45),
                finished_at=NOW.replace(hour=1, minute=45, second=3),
                outcome=SyncOutcome.FAILED,
                error="Insightly refused the API key (401): check the key in Insightly under User Settings.",
            )
        )
        for draft in (
            ScriptDraft(name="Open in HubSpot", url_template="$(PopUpUri)", auto_open=True, integration_id=hubspot.id),
            ScriptDraft(
                name="Mail a callback request",
                url_template="mailto:?subject=Callback%20request&body=Please%20call%20$(DisplayName)%20"
                "on%20#(Caller number)",
                integration_id=hubspot.id,
            ),
            ScriptDraft(
                name="Search the web",
                url_template="https://www.google.com/search?q=#(Caller number)",
                when="always",
                integration_id=web.id,
            ),
            ScriptDraft(name="New contact in HubSpot", url_template="https://app.hubspot.com/contacts/1234567/",
                        when="nomatch"),
        ):  # fmt: skip
            scripts.create_script(session=session, actor=OPERATOR, tenant=tenant, draft=draft)
        admin_id = admin.id or 0
    with session_scope(runtime.engine) as session:
        return users.identity_for(session=session, user_id=admin_id)


async def settle(pilot: Pilot[Any]) -> None:
    """Let every worker finish and every message land (handlers may start more workers)."""
    app = pilot.app
    for _ in range(50):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in app.workers):
            return


async def show_home(pilot: Pilot[Any]) -> None:
    """The home screen, loaded."""
    await settle(pilot)


async def show_wizard(pilot: Pilot[Any]) -> None:
    """The wizard's first step: every preset by category."""
    await settle(pilot)
    await pilot.press("a")
    await settle(pilot)


async def show_overview(pilot: Pilot[Any]) -> None:
    """HubSpot's overview."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


async def show_script_editor(pilot: Pilot[Any]) -> None:
    """The script editor on HubSpot's callback mail, with its preview from a cached record."""
    await show_overview(pilot)
    scripts_list = pilot.app.screen.query_one("#overview-scripts", OptionList)
    scripts_list.focus()
    scripts_list.highlighted = 1
    await pilot.press("enter")
    await settle(pilot)
    await pilot.pause(0.3)  # the preview of a saved integration's script comes from core after a pause
    await settle(pilot)
    pilot.app.screen.query_one("#name", Input).focus()
    await settle(pilot)


async def steady(pilot: Pilot[Any]) -> None:
    """Stop text cursors blinking, so that a picture never catches one half-way."""
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]
    await pilot.pause()


def _steady(scenario: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await scenario(pilot)
        await steady(pilot)

    return run


SCENARIOS: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "home": _steady(show_home),
    "wizard": _steady(show_wizard),
    "overview": _steady(show_overview),
    "script-editor": _steady(show_script_editor),
}
"""The screens shown in the README and pinned by the snapshot tests."""

SIZES: tuple[tuple[int, int], ...] = ((80, 24), (120, 40))
