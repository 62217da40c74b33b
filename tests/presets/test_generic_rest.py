"""The generic REST preset: the admin's description of a JSON API, against an emulated API in six paging styles."""

from __future__ import annotations

import importlib.resources
from typing import Any

import pytest

from core.connector import build_connector
from core.errors import ConnectorError, InvalidInput
from core.presets import Preset, parse_preset
from core.runtime import Runtime
from presets.generic_rest import sample_record
from tests.crm.generic_rest import SECRET, GenericRestApi
from tests.crm.server import serve
from tests.presets.end_to_end import check_callers, connect, who_calls
from tests.presets.messy_numbers import Person, catalogue, check_lookups, fetch_all, make_people

KINDS = ("work", "mobile", "home", "other", "fax")
BASE = {
    "records_endpoint": "/contacts?status=active",
    "name_fields": "first_name, last_name",
    "phone_fields": "phone, mobile, phones[].number",
    "company_field": "company.name",
    "email_field": "emails.0.address",
    "popup_url": "https://crm.example.com/contacts/{id}",
    "page_size": "50",
}
STYLES: dict[str, tuple[str, dict[str, str]]] = {
    "offset": ("bearer", {"records_path": "data", "size_param": "limit"}),
    "cursor": ("api_key_header", {"records_path": "results", "next_path": "paging.next_cursor"}),
    "link_header": ("api_key_query", {"size_param": "per_page", "api_key_name": "api_key"}),
    "page": ("basic", {"records_path": "data", "size_param": "per_page", "more_path": "has_more"}),
    "next_link": ("none", {"records_path": "value", "next_path": "links.next"}),
    "none": ("bearer", {"size_param": ""}),
}


def generic_preset() -> Preset:
    """The shipped preset file, parsed on its own (other presets may be half-written right now)."""
    text = importlib.resources.files("presets").joinpath("generic-rest.toml").read_text(encoding="utf-8")
    return parse_preset(text, source="presets/generic-rest.toml", package="presets")


def record(person: Person) -> dict[str, Any]:
    """An in-house API's contact: nested company, a list of e-mails, two phone fields and a list of phones."""
    listed = [{"type": p.kind, "number": p.raw} for p in person.phones if p.kind in ("home", "other", "fax")]
    return {
        "id": 5000 + person.index, "first_name": person.first, "last_name": person.last,
        "company": {"id": 7, "name": person.company}, "emails": [{"address": person.email, "primary": True}],
        "phone": person.phone("work"), "mobile": person.phone("mobile"), "phones": listed,
        "updated_at": "2024-05-14T09:30:00Z",
    }  # fmt: skip


def settings(url: str, style: str, auth: str, extra: dict[str, str], **more: str) -> dict[str, str]:
    values = {**BASE, "api_base_url": f"{url}/api/v1", "pagination": style, "auth_type": auth, **extra, **more}
    if auth == "basic":
        values |= {"username": "api-user", "password": SECRET}
    elif auth != "none":
        values["token"] = SECRET
    return values


@pytest.mark.parametrize("style", list(STYLES))
async def test_generic_rest_fetches_messy_numbers_in_every_paging_style(style: str) -> None:
    auth, extra = STYLES[style]
    people = make_people(140, seed=31 + len(style))
    api = GenericRestApi([record(p) for p in people], style=style, auth=auth)
    with serve(api.app) as url:
        records, progress = await fetch_all(build_connector(generic_preset(), settings(url, style, auth, extra)))

    found = catalogue(records)
    assert check_lookups(found, {f"records:{5000 + p.index}": p for p in people}, KINDS) > 230
    first = found.records[f"records:{5000 + people[0].index}"]
    assert first.fields == {
        "DisplayName": people[0].name,
        "Identifier": str(5000 + people[0].index),
        "PopUpUri": f"https://crm.example.com/contacts/{5000 + people[0].index}",
        "company": people[0].company,
        "email": people[0].email,
    }
    assert {label for r in records for label, _ in r.phones} <= {"Phone", "Mobile", "Phones"}
    pages = 1 if style == "none" else 3  # 140 records, 50 a page: the last one short
    assert len(api.requests) == pages and progress[-1].pages == pages
    assert api.requests[0].query.get("status") == "active"  # the fixed parameter of the records path
    assert all(api.authorized(r) for r in api.requests)


async def test_generic_rest_connected_synced_and_callers_recognised(runtime: Runtime) -> None:
    people = make_people(150, seed=42)
    api = GenericRestApi([record(p) for p in people], style="cursor", auth="bearer")
    with serve(api.app) as url:
        extra = {"records_path": "results", "next_path": "paging.next_cursor"}
        slug, connected = await connect(runtime, "generic-rest", settings(url, "cursor", "bearer", extra))

    assert connected.run is not None and connected.run.records == 150
    assert check_callers(runtime, slug, {f"records:{5000 + p.index}": p for p in people}, KINDS) > 230
    first = who_calls(runtime, slug, min(people[0].numbers(["work"])))[0]
    assert first["fields"]["DisplayName"] == people[0].name == "Jörg Müller"
    assert [s["url"] for s in first["scripts"]] == ["https://crm.example.com/contacts/5000"]


async def test_generic_rest_wrong_token_is_reported_without_the_token() -> None:
    api = GenericRestApi([record(p) for p in make_people(3, seed=40)], style="offset", auth="api_key_query")
    values = settings("", "offset", "api_key_query", {"records_path": "data", "api_key_name": "api_key"})
    with serve(api.app) as url:
        values |= {"api_base_url": f"{url}/api/v1", "token": "gr-wrong-key-0000"}
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(build_connector(generic_preset(), values))
    assert caught.value.status == 401
    assert str(caught.value) == (
        "Any JSON API (generic REST) refused the API token or key (401): check the credentials in the "
        "Authentication settings"
    )


async def test_generic_rest_passes_on_the_apis_own_error_message() -> None:
    api = GenericRestApi([record(p) for p in make_people(3, seed=41)], style="offset", auth="none", max_size=20)
    with serve(api.app) as url:
        values = settings(url, "offset", "none", {"records_path": "data"})
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(build_connector(generic_preset(), values))
    assert caught.value.status == 400 and caught.value.message.endswith("(400): limit must be 1-20")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pagination": "cursor", "next_path": ""}, "next_path"),
        ({"phone_fields": "contacts[].phones[].number"}, "phone_fields"),
        ({"phone_fields": " , "}, "phone_fields"),
        ({"name_fields": "{first_name}"}, "name_fields"),
        ({"auth_type": "bearer", "token": ""}, "token"),
        ({"auth_type": "basic", "username": ""}, "username"),
        ({"popup_url": "https://crm.example.com/{id"}, "popup_url"),
    ],
)
def test_generic_rest_settings_that_cannot_work_name_their_field(change: dict[str, str], field: str) -> None:
    values = settings("http://127.0.0.1:9", "none", "none", {}) | change
    with pytest.raises(InvalidInput) as caught:
        build_connector(generic_preset(), values)
    assert caught.value.field == field


def test_generic_rest_sample_record_fills_every_configured_path() -> None:
    values = {**BASE, "api_base_url": "https://crm.example.com/api", "id_field": "attributes.uid",
              "popup_url": "{links.web}"}  # fmt: skip
    record = sample_record(generic_preset(), values)
    assert record.fields["DisplayName"] == "Zoë Brückner"
    assert record.fields["Identifier"] == "4711"
    assert record.fields["company"] == "Brückner & Söhne KG"
    assert record.phones == [("Phone", "+49 30 1234560"), ("Mobile", "+49 30 1234561"), ("Phones", "+49 30 1234562")]
    assert record.fields["PopUpUri"] == "https://crm.example.com/records/4711"
