"""Every pagination style fetches all records and stops at its documented end, within the page-size limit."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import ConnectorError
from tests.connector.conftest import FakeSleep, api_preset, connect, fetch_all
from tests.crm import (
    CapsuleCrm,
    CloseCrm,
    CopperCrm,
    DataverseCrm,
    EmulatedCrm,
    FreshsalesCrm,
    SalesforceCrm,
    ZohoCrm,
    serve,
)

DATAVERSE = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/api/data/v9.2/contacts"
params = { "$select" = "fullname,telephone1,mobilephone" }
records = "value"
id = "contactid"
phones = [
    { source = "field", path = "telephone1", label = "Business" },
    { source = "field", path = "mobilephone", label = "Mobile" },
]
[objects.fields]
DisplayName = "{fullname}"
[objects.pagination]
style = "next_link"
next_path = "@odata.nextLink"
size_header = "Prefer"
size_format = "odata.maxpagesize={size}"
default_size = 40
max_size = 5000
"""


def people(count: int, key: str = "id") -> list[dict[str, object]]:
    return [{key: f"{i:05d}", "name": f"Émile Zola {i}", "phone": f"+33 1 {i:08d}"} for i in range(count)]


async def test_next_link_odata(sleep: FakeSleep) -> None:
    records = [
        {"contactid": f"guid-{i}", "fullname": f"Yvonne McKay {i}", "telephone1": "+44 20 1"} for i in range(100)
    ]
    crm = DataverseCrm(records)
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(DATAVERSE), {"api_base_url": url}, sleep))
    assert [r.record_id for r in fetched] == [f"contacts:guid-{i}" for i in range(100)]
    assert crm.page_sizes == [40, 40, 40]
    assert all(r.headers["prefer"] == "odata.maxpagesize=40" for r in crm.requests)
    assert crm.requests[0].query == {"$select": "fullname,telephone1,mobilephone"}
    assert crm.requests[1].query == {"$skiptoken": "40"}  # the next link is followed as given


SALESFORCE = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/services/data/v60.0/query"
params = { q = "SELECT Id, Name, Phone FROM Contact" }
records = "records"
id = "Id"
phones = [{ source = "field", path = "Phone", label = "Phone" }]
[objects.fields]
DisplayName = "{Name}"
PopUpUri = "{settings.api_base_url}/lightning/r/Contact/{Id}/view"
[objects.pagination]
style = "next_link"
next_path = "nextRecordsUrl"
done_path = "done"
size_header = "Sforce-Query-Options"
size_format = "batchSize={size}"
default_size = 200
min_size = 200
max_size = 2000
total_path = "totalSize"
"""


async def test_next_link_relative_with_done_flag(sleep: FakeSleep) -> None:
    crm = SalesforceCrm([{"Id": f"003{i:012d}", "Name": f"Renée {i}", "Phone": "(555) 010"} for i in range(450)])
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(SALESFORCE), {"api_base_url": url}, sleep))
        result_connector = connect(api_preset(SALESFORCE), {"api_base_url": url}, sleep)
        result = await result_connector.test_connection()
        await result_connector.aclose()
    assert len(fetched) == 450
    assert fetched[0].fields["PopUpUri"].endswith("/lightning/r/Contact/003000000000000/view")
    assert [r.path for r in crm.requests[:3]] == [
        "/services/data/v60.0/query",
        "/services/data/v60.0/query/01gD0000002HU6KIAW-200x200",
        "/services/data/v60.0/query/01gD0000002HU6KIAW-400x200",
    ]
    assert crm.page_sizes[0] == 200
    assert result.count == 450  # totalSize
    assert crm.page_sizes[-1] == 200  # the connection test asks for a small page, but not below the minimum


CAPSULE = """
[[objects]]
type = "parties"
label = "Parties"
path = "/api/v2/parties"
records = "parties"
phones = [{ source = "array", path = "phoneNumbers[].number", label_key = "type", label = "Phone" }]
[objects.fields]
DisplayName = "{firstName} {lastName} {name}"
[objects.pagination]
style = "link_header"
size_param = "perPage"
default_size = 100
max_size = 100
"""


async def test_link_header(sleep: FakeSleep) -> None:
    parties = [{"id": i, "type": "person", "firstName": "Søren", "lastName": f"Kierkegaard {i}",
                "phoneNumbers": [{"id": 1, "type": None, "number": "773-338-7786"}]} for i in range(230)]  # fmt: skip
    crm = CapsuleCrm(parties)
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(CAPSULE), {"api_base_url": url}, sleep, page_size=500))
    assert len(fetched) == 230
    assert crm.page_sizes == [100, 100, 100]
    assert [r.query.get("page") for r in crm.requests] == [None, "2", "3"]
    assert fetched[0].fields["DisplayName"] == "Søren Kierkegaard 0"
    assert fetched[0].phones == [("Phone", "773-338-7786")]


ZOHO = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/crm/v8/Contacts"
params = { fields = "Full_Name,Phone,Mobile,Account_Name" }
records = "data"
phones = [
    { source = "field", path = "Phone", label = "Phone" },
    { source = "field", path = "Mobile", label = "Mobile" },
]
[objects.fields]
DisplayName = "{Full_Name}"
company = "{Account_Name.name}"
[objects.pagination]
style = "page_token"
page_param = "page"
size_param = "per_page"
more_path = "info.more_records"
token_param = "page_token"
token_path = "info.next_page_token"
token_after = 2000
default_size = 200
max_size = 200
"""


async def test_page_token_takes_over_after_2000_records(sleep: FakeSleep) -> None:
    contacts = [{"id": str(2931549000000136011 + i), "Full_Name": f"Pat Boyle {i}", "Phone": "+1 555 0100",
                 "Account_Name": {"name": "Zylker", "id": "1"}} for i in range(2450)]  # fmt: skip
    crm = ZohoCrm(contacts)
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(ZOHO), {"api_base_url": url}, sleep))
    assert len(fetched) == 2450
    assert fetched[0].fields["company"] == "Zylker"
    pages = [r.query.get("page") for r in crm.requests]
    assert pages == [str(n) for n in range(1, 11)] + [None, None, None]
    assert [("page_token" in r.query) for r in crm.requests] == [False] * 10 + [True] * 3
    assert set(crm.page_sizes) == {200}


async def test_page_token_empty_module_answers_204(sleep: FakeSleep) -> None:
    crm = ZohoCrm([])
    with serve(crm.app) as url:
        connector = connect(api_preset(ZOHO), {"api_base_url": url}, sleep)
        assert await fetch_all(connector) == []
    assert len(crm.requests) == 1


FRESHSALES = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/crm/sales/api/contacts/view/7"
records = "contacts"
phones = [
    { source = "field", path = "work_number", label = "Work" },
    { source = "field", path = "mobile_number", label = "Mobile" },
]
[objects.fields]
DisplayName = "{display_name}"
[objects.pagination]
style = "page"
page_param = "page"
size_param = "per_page"
total_pages_path = "meta.total_pages"
total_path = "meta.total"
default_size = 25
max_size = 100
"""


async def test_page_numbers_until_total_pages(sleep: FakeSleep) -> None:
    contacts = [{"id": i, "display_name": f"Jane Doe {i}", "work_number": "+1 555 0100"} for i in range(75)]
    crm = FreshsalesCrm(contacts)  # 75 records, 25 per page: exactly 3 pages, no empty 4th request
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(FRESHSALES), {"api_base_url": url}, sleep))
        connector = connect(api_preset(FRESHSALES), {"api_base_url": url}, sleep)
        result = await connector.test_connection()
        await connector.aclose()
    assert len(fetched) == 75
    assert [r.query["page"] for r in crm.requests[:3]] == ["1", "2", "3"]
    assert len(crm.requests) == 4  # three for the fetch, one for the connection test
    assert result.count == 75
    assert result.sample is not None and result.sample.fields["DisplayName"] == "Jane Doe 0"


COPPER = """
[[objects]]
type = "people"
label = "People"
method = "POST"
path = "/developer_api/v1/people/search"
body = { sort_by = "name", sort_direction = "asc" }
phones = [
    { source = "array", path = "phone_numbers[].number", label_key = "category", labels = { work = "Work" } },
]
[objects.fields]
DisplayName = "{name}"
company = "{company_name}"
[objects.pagination]
style = "page"
params_in = "body"
page_param = "page_number"
size_param = "page_size"
total_header = "X-PW-TOTAL"
default_size = 200
max_size = 200
"""


async def test_page_numbers_in_a_post_body_until_a_short_page(sleep: FakeSleep) -> None:
    people_ = [{"id": i, "name": f"Jane Doe {i}", "company_name": "Acme",
                "phone_numbers": [{"number": "+1 415-555-0100", "category": "work"}]} for i in range(401)]  # fmt: skip
    crm = CopperCrm(people_)
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(COPPER), {"api_base_url": url}, sleep))
        connector = connect(api_preset(COPPER), {"api_base_url": url}, sleep)
        result = await connector.test_connection()
        await connector.aclose()
    assert len(fetched) == 401
    assert [r.json() for r in crm.requests[:3]] == [
        {"sort_by": "name", "sort_direction": "asc", "page_size": 200, "page_number": n} for n in (1, 2, 3)
    ]
    assert fetched[0].phones == [("Work", "+1 415-555-0100")]
    assert result.count == 401  # from the X-PW-TOTAL header


CLOSE = """
[[objects]]
type = "contacts"
label = "Contacts"
path = "/api/v1/contact/"
records = "data"
phones = [{ source = "array", path = "phones[].phone", label_key = "type" }]
[objects.fields]
DisplayName = "{name}"
[objects.pagination]
style = "offset"
offset_param = "_skip"
size_param = "_limit"
more_path = "has_more"
default_size = 100
max_size = 100
"""


async def test_offset_with_a_more_flag_stops_without_an_extra_request(sleep: FakeSleep) -> None:
    contacts = [{"id": f"cont_{i}", "name": f"John Smith {i}", "phones": [{"phone": "+18004445555", "type": "office"}]}
                for i in range(200)]  # fmt: skip
    crm = CloseCrm(contacts)
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep))
    assert len(fetched) == 200
    assert [r.query["_skip"] for r in crm.requests] == ["0", "100"]
    assert fetched[0].phones == [("office", "+18004445555")]


async def test_duplicates_across_pages_are_dropped(sleep: FakeSleep) -> None:
    contacts = [{"id": f"cont_{i}", "name": f"N{i}"} for i in range(100)]
    contacts.insert(100, dict(contacts[99]))  # a record that slid onto the next page
    crm = CloseCrm(contacts)
    with serve(crm.app) as url:
        fetched = await fetch_all(connect(api_preset(CLOSE), {"api_base_url": url}, sleep))
    assert [r.record_id for r in fetched] == [f"contacts:cont_{i}" for i in range(100)]


# ------------------------------------------------------------------------------ servers that never end


class LoopingCrm(EmulatedCrm):
    """A broken server: always the same page, with the same cursor and a next link back to itself."""

    def routes(self) -> list[Route]:
        return [Route("/items", self.items)]

    async def items(self, request: Request) -> Response:
        await self.record(request)
        body = {"items": [{"id": len(self.requests)}], "next": "same", "more": True,
                "link": f"{request.base_url}items?page=again"}  # fmt: skip
        return JSONResponse(body)


def looping_preset(pagination: str) -> str:
    return f"""
[[objects]]
type = "items"
label = "Items"
path = "/items"
records = "items"
[objects.fields]
DisplayName = "{{id}}"
[objects.pagination]
{pagination}
default_size = 1
max_size = 1
"""


@pytest.mark.parametrize(
    ("pagination", "problem"),
    [
        ('style = "cursor"\ncursor_param = "c"\ncursor_path = "next"\nsize_param = "n"', "same cursor twice"),
        ('style = "next_link"\nnext_path = "link"', "same next-page link twice"),
        ('style = "offset"\noffset_param = "o"\nsize_param = "n"\nmax_pages = 5', "after 5 pages"),
    ],
)
async def test_a_server_that_never_ends_is_stopped(sleep: FakeSleep, pagination: str, problem: str) -> None:
    crm = LoopingCrm()
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(connect(api_preset(looping_preset(pagination)), {"api_base_url": url}, sleep))
    assert problem in caught.value.message
    assert caught.value.message.startswith("TestCRM ")
    assert len(crm.requests) <= 5


async def test_next_link_to_another_host_is_not_followed(sleep: FakeSleep) -> None:
    class Redirecting(LoopingCrm):
        async def items(self, request: Request) -> Response:
            await self.record(request)
            return JSONResponse({"items": [{"id": 1}], "link": "https://evil.example.net/steal"})

    crm = Redirecting()
    with serve(crm.app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(
            connect(api_preset(looping_preset('style = "next_link"\nnext_path = "link"')), {"api_base_url": url}, sleep)
        )
    assert caught.value.message == (
        "TestCRM pointed to another server (evil.example.net); stopped to keep the credentials safe"
    )
