"""Benchmark of the other seven CRM presets' fetch side: records per second through each vendor's emulated API.

The companion of ``bench_presets_crm`` for Salesforce, Zoho CRM, Dynamics 365, Freshsales, Teamleader Focus,
Exact Online and Zendesk Support: 10,000 people (two to four phone fields, names with umlauts) are served by the
preset's emulator on 127.0.0.1 and fetched through the preset at its default page size (the vendor's maximum),
with the preset's code module where it has one and its real authentication (the OAuth presets fetch or refresh
their token first). Figures: records per second, HTTP requests made (token requests included) and records per
request. Loopback has no network latency, so the requests column is what a real sync pays in round trips; the
emulator shares the process (and its GIL), so records per second is a lower bound for the client side. Phone
numbers are not normalised here (that is the sync's cost).

The emulators are served by ``tests.crm.server.serve``, which sets ``TCP_NODELAY``.

Run: ``make bench`` or ``python -m tests.bench presets_crm2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.bench.bench_presets_crm import report
from tests.crm.base import EmulatedCrm
from tests.crm.dynamics365 import DynamicsEmulator
from tests.crm.exact_online import ExactOnlineEmulator
from tests.crm.freshsales import FreshsalesEmulator
from tests.crm.salesforce import SalesforceEmulator
from tests.crm.teamleader import TeamleaderEmulator
from tests.crm.zendesk import ZendeskEmulator
from tests.crm.zoho import ZohoEmulator
from tests.presets import (
    test_dynamics365,
    test_exact_online,
    test_freshsales,
    test_salesforce,
    test_teamleader,
    test_zendesk,
    test_zoho,
)
from tests.presets.messy_numbers import make_people

RECORDS = 10_000


@dataclass
class Case:
    """One preset: its emulator, its settings for a server URL, and tokens of an earlier sign-in."""

    key: str
    crm: EmulatedCrm
    settings: Callable[[str], dict[str, str]]
    tokens: dict[str, str] = field(default_factory=dict)


def _cases() -> list[Case]:
    people = make_people(RECORDS, seed=5)
    teamleader = TeamleaderEmulator(client_id=test_teamleader.CLIENT_ID, client_secret=test_teamleader.SECRET,
                                    contacts=[test_teamleader.contact(p) for p in people])  # fmt: skip
    teamleader.refresh_tokens.add("def50200bench-refresh")
    exact = ExactOnlineEmulator(client_id=test_exact_online.CLIENT_ID, client_secret=test_exact_online.SECRET,
                                division=test_exact_online.DIVISION)  # fmt: skip
    exact.entities["Contacts"] = [
        {
            "ID": f"5e7b1c2d-0000-4000-8000-{i:012d}",
            **test_exact_online.contact(
                p, {"ID": "cffa85f6-0000-0000-0000-000000000001", "Name": p.company, "Code": "1000"}
            ),
        }
        for i, p in enumerate(people)
    ]
    exact.refresh_tokens.add("stampNL001.bench-refresh")
    zendesk = ZendeskEmulator(email=test_zendesk.EMAIL, api_token=test_zendesk.TOKEN,
                              users=[test_zendesk.user(p, 57_542_000) for p in people])  # fmt: skip
    return [
        Case("salesforce", SalesforceEmulator(client_id=test_salesforce.KEY, client_secret=test_salesforce.SECRET,
             contacts=[test_salesforce.contact(p) for p in people]),
             lambda url: {"instance_url": url, "client_id": test_salesforce.KEY,
                          "client_secret": test_salesforce.SECRET}),
        Case("zoho", ZohoEmulator(client_id=test_zoho.CLIENT_ID, client_secret=test_zoho.SECRET,
             refresh_token=test_zoho.REFRESH, contacts=[test_zoho.contact(p) for p in people]), test_zoho.settings),
        Case("dynamics365", DynamicsEmulator(tenant=test_dynamics365.TENANT, client_id=test_dynamics365.CLIENT_ID,
             client_secret=test_dynamics365.SECRET, contacts=[test_dynamics365.contact(p) for p in people]),
             test_dynamics365.settings),
        Case("freshsales", FreshsalesEmulator(api_key=test_freshsales.API_KEY,
             contacts=[test_freshsales.contact(p, 17_000_000_000) for p in people]), test_freshsales.settings),
        Case("teamleader", teamleader, test_teamleader.settings, {"refresh_token": "def50200bench-refresh"}),
        Case("exact-online", exact,
             lambda url: test_exact_online.settings(url, division=str(test_exact_online.DIVISION)),
             {"refresh_token": "stampNL001.bench-refresh"}),
        Case("zendesk", zendesk, test_zendesk.settings),
    ]  # fmt: skip


def main() -> None:
    """Fetch 10,000 records through each preset and print the table."""
    report(_cases())


if __name__ == "__main__":
    main()
