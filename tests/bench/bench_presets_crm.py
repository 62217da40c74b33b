"""Benchmark of seven CRM presets' fetch side: records per second through each vendor's emulated API.

For Zendesk Sell, Copper, Close, Odoo, SuperOffice, SugarCRM and Capsule, 10,000 records (people with two to
four phone fields, names with umlauts) are served by the preset's emulator on 127.0.0.1 and fetched through
the preset at its default page size (the vendor's maximum, or the preset's safe choice), with the code module
where the preset has one (Close adds its leads' names, Odoo asks ``fields_get`` and pages by id, Sugar signs
in). Figures: records per second, HTTP requests made, and records per request. Loopback has no network
latency, so the requests column is what a real sync pays in round trips; the emulator runs in the same
process (sharing its GIL), so records per second is a lower bound for the client side. Phone numbers are not
normalised here (that is the sync's cost).

Run: ``make bench`` or ``python -m tests.bench presets_crm``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.connector import Connector, build_connector, get_preset
from tests.crm.base import EmulatedCrm
from tests.crm.capsule import CapsuleEmulator
from tests.crm.close import CloseEmulator
from tests.crm.copper import CopperEmulator
from tests.crm.odoo import OdooEmulator
from tests.crm.server import serve
from tests.crm.sugarcrm import SugarEmulator
from tests.crm.superoffice import SuperOfficeEmulator
from tests.crm.zendesk_sell import ZendeskSellEmulator
from tests.presets import (
    test_capsule,
    test_close,
    test_copper,
    test_odoo,
    test_sugarcrm,
    test_superoffice,
    test_zendesk_sell,
)
from tests.presets.messy_numbers import make_people

RECORDS = 10_000


@dataclass
class Case:
    """One preset: its emulator and settings for a server URL."""

    key: str
    crm: EmulatedCrm
    settings: Callable[[str], dict[str, str]]
    tokens: dict[str, str] | None = None


def _cases() -> list[Case]:
    people = make_people(RECORDS, seed=5)
    companies = make_people(100, seed=6, companies=True)
    close_leads = [test_close.lead_record(c) for c in companies]
    superoffice = SuperOfficeEmulator(
        tenant=test_superoffice.TENANT, client_id=test_superoffice.CLIENT_ID,
        client_secret=test_superoffice.CLIENT_SECRET,
        persons=[{**test_superoffice.person_row(p), "retired": False} for p in people],
    )  # fmt: skip
    return [
        Case("zendesk-sell", ZendeskSellEmulator(token=test_zendesk_sell.TOKEN,
             contacts=[test_zendesk_sell.person_contact(p) for p in people]), test_zendesk_sell.settings),
        Case("copper", CopperEmulator(api_key=test_copper.API_KEY, email=test_copper.EMAIL,
             people=[test_copper.person_record(p) for p in people]), test_copper.settings),
        Case("close", CloseEmulator(api_key=test_close.API_KEY, leads=close_leads,
             contacts=[test_close.contact_record(p, close_leads[p.index % 100]) for p in people]),
             test_close.settings),
        Case("odoo", OdooEmulator(login=test_odoo.LOGIN, api_key=test_odoo.API_KEY, databases=(test_odoo.DB,),
             partners=[{**test_odoo.contact_partner(p, companies), "active": True} for p in people]),
             test_odoo.settings),
        Case("superoffice", superoffice, test_superoffice.settings,
             tokens={"refresh_token": superoffice.issue_refresh_token()}),
        Case("sugarcrm", SugarEmulator(username=test_sugarcrm.USER, password=test_sugarcrm.PASSWORD,
             records={"Contacts": [test_sugarcrm.contact_row(p) for p in people]}), test_sugarcrm.settings),
        Case("capsule", CapsuleEmulator(token=test_capsule.TOKEN,
             parties=[test_capsule.person_party(p) for p in people]), test_capsule.settings),
    ]  # fmt: skip


async def _drain(connector: Connector) -> int:
    count = 0
    try:
        async for page in connector.fetch():
            count += len(page)
    finally:
        await connector.aclose()
    return count


def measure(case: Any) -> tuple[str, int, float, int]:
    """Fetch everything through one case's preset: (key, records, seconds, requests)."""
    with serve(case.crm.app) as url:
        kwargs: dict[str, Any] = {"tokens": case.tokens} if case.tokens else {}
        connector = build_connector(get_preset(case.key), case.settings(url), **kwargs)
        started = time.perf_counter()
        count = asyncio.run(_drain(connector))
        seconds = time.perf_counter() - started
    return case.key, count, seconds, len(case.crm.requests)


def report(cases: list[Any]) -> None:
    """Measure each case (anything with ``key``, ``crm``, ``settings`` and ``tokens``) and print the table."""
    rows = [measure(case) for case in cases]
    print(f"{'preset':<14}{'records':>9}{'records/s':>12}{'requests':>10}{'per request':>13}")
    for key, count, seconds, requests in rows:
        print(f"{key:<14}{count:>9,}{count / seconds:>12,.0f}{requests:>10,}{count / max(requests, 1):>13,.0f}")


def main() -> None:
    """Fetch 10,000 records through each preset and print the table."""
    report(_cases())


if __name__ == "__main__":
    main()
