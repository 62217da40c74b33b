"""The Odoo preset (``presets/odoo.py``) against an emulated Odoo 17 and 19, over JSON-RPC and JSON-2."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from core.connector import build_connector, get_preset
from core.errors import ConnectorError
from core.runtime import Runtime
from tests.crm.odoo import OdooEmulator
from tests.crm.server import serve
from tests.presets.messy_numbers import (
    NoSleep,
    Person,
    catalogue,
    check_lookups,
    fetch_all,
    make_people,
    sync_and_look_up,
)

LOGIN, API_KEY, DB = "jörg@bäckerei-groß.example", "6578616d706c65206a736f6e20617069206b6579", "baeckerei"


def company_partner(org: Person) -> dict[str, Any]:
    """A company partner."""
    phone = ", ".join(raw for raw in (org.phone("work"), org.phone("other")) if raw)
    return {"id": 1_000 + org.index, "name": org.last, "display_name": org.last, "is_company": True,
            "parent_id": False, "commercial_company_name": org.last, "phone": phone, "mobile": False,
            "email": org.email, "function": False, "ref": f"K-{org.index:04d}", "user_id": [2, "Mitchell Admin"],
            "active": True}  # fmt: skip


def contact_partner(person: Person, companies: list[Person]) -> dict[str, Any]:
    """A person partner; most belong to a company, every 13th is archived."""
    company = companies[person.index % len(companies)] if person.index % 5 else None
    phone = ", ".join(raw for raw in (person.phone("work"), person.phone("other")) if raw)
    return {
        "id": 5_000 + person.index, "name": person.name, "is_company": False,
        "display_name": f"{company.last}, {person.name}" if company else person.name,
        "parent_id": [1_000 + company.index, company.last] if company else False,
        "commercial_company_name": company.last if company else False, "phone": phone or False,
        "mobile": person.phone("mobile") or False, "email": person.email, "function": person.title,
        "ref": False, "user_id": False if person.index % 2 else [6, "Åsa Lindqvist"],
        "active": person.index % 13 != 7,
    }  # fmt: skip


def odoo(version: int, people: int = 0, companies: int = 1, **kwargs: Any) -> tuple[OdooEmulator, dict[str, Person]]:
    orgs = make_people(companies, seed=6, companies=True)
    persons = make_people(people, seed=5)
    partners = [company_partner(o) for o in orgs] + [contact_partner(p, orgs) for p in persons]
    crm = OdooEmulator(login=LOGIN, api_key=API_KEY, databases=(DB, "other"), version=version, partners=partners,
                       **kwargs)  # fmt: skip
    expected = {f"contacts:{5_000 + p.index}": p for p in persons if p.index % 13 != 7} | {
        f"companies:{1_000 + o.index}": o for o in orgs
    }
    return crm, expected


def settings(url: str, protocol: str = "json-rpc", **changes: str) -> dict[str, str]:
    return {"url": "https://baeckerei.odoo.com", "database": DB, "username": LOGIN, "api_key": API_KEY,
            "protocol": protocol, "api_base_url": url, **changes}  # fmt: skip


@pytest.mark.parametrize(("version", "protocol"), [(17, "json-rpc"), (19, "json-rpc"), (19, "json-2")])
async def test_odoo_syncs_contacts_and_companies(version: int, protocol: str) -> None:
    crm, expected = odoo(version, people=300, companies=45)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("odoo"), settings(url, protocol), sleep=NoSleep(), page_size=64)
        records, progress = await fetch_all(connector)

    mobile = ("mobile",) if version < 19 else ()  # Odoo 19 has no mobile field any more
    found = catalogue(records)
    assert len(records) == len(expected)
    assert check_lookups(found, expected, ("work", "other", *mobile)) > (550 if mobile else 350)
    zoe = found.records["contacts:5001"]
    assert (zoe.fields["DisplayName"], zoe.fields["company"]) == ("Zoë Groß", "Crème & Brûlée SARL 1")
    assert zoe.fields["PopUpUri"] == "https://baeckerei.odoo.com/web#id=5001&model=res.partner&view_type=form"
    assert (zoe.fields["owner"], zoe.fields["job_title"], zoe.fields["reference"]) == ("", "Geschäftsführerin", "")
    assert found.records["contacts:5000"].fields["owner"] == "Åsa Lindqvist"
    assert found.records["contacts:5000"].fields["company"] == ""  # a person without a company
    company = found.records["companies:1002"]
    assert (company.fields["DisplayName"], company.fields["reference"]) == ("Ödeshög AB 2", "K-0002")
    # fields_get first, then search_read by id ranges: 255 active persons at 64 a page
    orm = [method for proto, method in crm.calls if method not in ("authenticate", "version")]
    assert orm[0] == "fields_get" and set(orm[1:]) == {"search_read"}
    assert {proto for proto, _ in crm.calls} == {protocol}
    assert [p.pages for p in progress if p.object_type == "contacts"] == [1, 2, 3, 4, 5]
    reads = [_params(r) for r in crm.requests if _params(r).get("fields")]
    assert ("mobile" in reads[0]["fields"]) is (version < 19)
    active = [5_000 + i for i in range(300) if i % 13 != 7]  # each page continues after the last id seen
    assert [r["domain"][-1] for r in reads[:3]] == [["id", ">", 0], ["id", ">", active[63]], ["id", ">", active[127]]]
    assert all(r["order"] == "id asc" and r["limit"] == 64 for r in reads)


def _params(request: Any) -> dict[str, Any]:
    body = request.json()
    if request.path == "/jsonrpc":
        args = body["params"]["args"]
        return args[6] if len(args) > 6 and isinstance(args[6], dict) else {}
    return body if isinstance(body, dict) else {}


async def test_odoo_json_rpc_signs_in_once_and_sends_the_key_only_in_the_body() -> None:
    crm, _ = odoo(17, people=10)
    with serve(crm.app) as url:
        await fetch_all(build_connector(get_preset("odoo"), settings(url)))
    assert [method for _, method in crm.calls].count("authenticate") == 1
    assert all("authorization" not in r.headers for r in crm.requests)
    sign_in = crm.requests[0].json()["params"]
    assert (sign_in["service"], sign_in["method"], sign_in["args"][:2]) == ("common", "authenticate", [DB, LOGIN])


async def test_odoo_json2_sends_the_key_as_bearer_and_the_database() -> None:
    crm, _ = odoo(19, people=10)
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("odoo"), settings(url, "json-2")))
    assert len(records) == 10
    assert {(r.headers["authorization"], r.headers["x-odoo-database"]) for r in crm.requests} == {
        (f"bearer {API_KEY}", DB)
    }
    assert crm.requests[0].path == "/json/2/res.partner/fields_get"


@pytest.mark.parametrize("protocol", ["json-rpc", "json-2"])
async def test_odoo_wrong_key_says_what_to_check(protocol: str) -> None:
    crm, _ = odoo(19, people=2)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("odoo"), settings(url, protocol, api_key="0123456789abcdef")))
    message = str(caught.value)
    assert message.startswith("Odoo refused the user and API key")
    assert "Account Security" in message and "0123456789abcdef" not in message
    assert caught.value.status == 401


async def test_odoo_unknown_database_is_named() -> None:
    crm, _ = odoo(17, people=2)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("odoo"), settings(url, database="backerei")))
    assert str(caught.value).startswith("Odoo does not know the database 'backerei'")


async def test_odoo_errors_inside_a_json_rpc_answer_stop_the_sync() -> None:
    crm, _ = odoo(17, people=20, access_error_on="search_read")
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("odoo"), settings(url)))
    assert "the user may not read contacts" in str(caught.value)
    assert caught.value.status == 403


async def test_odoo_json2_on_an_older_odoo_suggests_json_rpc() -> None:
    crm, _ = odoo(17, people=2)
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(get_preset("odoo"), settings(url, "json-2")))
    assert "needs Odoo 19 or later; choose json-rpc" in str(caught.value)


async def test_odoo_connection_test_counts_the_contacts() -> None:
    crm, expected = odoo(17, people=40)
    with serve(crm.app) as url:
        connector = build_connector(get_preset("odoo"), settings(url))
        result = await connector.test_connection()
        await connector.aclose()
    assert result.count == len([k for k in expected if k.startswith("contacts:")])
    assert result.sample is not None and result.sample.fields["DisplayName"] == "Jörg Müller"
    assert result.object_types == ["contacts", "companies"]


async def test_odoo_end_to_end_sync_and_lookup(runtime: Runtime, session: Session) -> None:
    crm, expected = odoo(17, people=60, companies=8)
    with serve(crm.app) as url:
        synced = await sync_and_look_up(runtime, session, preset="odoo", values=settings(url), expected=expected,
                                        kinds=("work", "other", "mobile"))  # fmt: skip
    zoe = synced.answers["contacts:5001"]
    assert zoe["notification"][:2] == [{"label": "Name", "value": "Zoë Groß"},
                                       {"label": "Company", "value": "Crème & Brûlée SARL 1"}]  # fmt: skip
    assert zoe["scripts"][0]["url"] == "https://baeckerei.odoo.com/web#id=5001&model=res.partner&view_type=form"


async def test_odoo_names_an_address_without_a_name_by_its_display_name() -> None:
    crm, _ = odoo(17, companies=1)
    crm.partners.append({"id": 7_001, "name": False, "display_name": "Bäckerei Groß GmbH 0, Rechnungsadresse",
                         "is_company": False, "parent_id": [1_000, "Bäckerei Groß GmbH 0"], "phone": "089 1234567",
                         "mobile": False, "email": False, "function": False, "ref": False, "user_id": False,
                         "active": True})  # fmt: skip
    with serve(crm.app) as url:
        records, _ = await fetch_all(build_connector(get_preset("odoo"), settings(url)))
    address = next(r for r in records if r.record_id == "contacts:7001")
    assert address.fields["DisplayName"] == "Bäckerei Groß GmbH 0, Rechnungsadresse"
    assert (address.fields["company"], address.fields["email"]) == ("Bäckerei Groß GmbH 0", "")
    assert address.phones == [("Phone", "089 1234567")]
