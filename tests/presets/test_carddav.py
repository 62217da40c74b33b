"""The CardDAV preset against a real Radicale server, and its vCard and WebDAV parsing on their own."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.connector import build_connector
from core.errors import ConnectorError
from core.presets import Preset, parse_preset
from core.runtime import Runtime
from presets.carddav import card_record, parse_multistatus, parse_vcard
from tests.crm.carddav_server import import_address_book, make_address_book, put_cards, radicale_server
from tests.crm.server import serve
from tests.presets.end_to_end import check_callers, connect, who_calls
from tests.presets.messy_numbers import GARBAGE, Person, catalogue, check_lookups, fetch_all, make_people

USER, PASSWORD = "anna", "Geheim-Passwort-42"
KINDS = ("work", "mobile", "home", "other", "fax")
V3_TYPES = {"work": "WORK,VOICE", "mobile": "CELL", "home": "HOME", "other": "OTHER", "fax": "FAX,WORK"}
LABELS = {"work": "Work", "mobile": "Mobile", "home": "Home", "other": "Other", "fax": "Fax Work"}


def carddav_preset() -> Preset:
    """The shipped preset file, parsed on its own (other presets may be half-written right now)."""
    text = importlib.resources.files("presets").joinpath("carddav.toml").read_text(encoding="utf-8")
    return parse_preset(text, source="presets/carddav.toml", package="presets")


def fold(line: str) -> str:
    """Fold a content line at 60 characters, as RFC 6350 §3.2 allows (CRLF and one space)."""
    parts = [line[i : i + 60] for i in range(0, len(line), 60)]
    return "\r\n ".join(parts)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")


def tel_lines(person: Person, style: int) -> list[str]:
    """The person's phone fields as TEL lines in one of four real-world styles (several numbers: several lines)."""
    lines: list[str] = []
    for k, phone in enumerate(person.phones):
        for value in (escape(part) for part in phone.raw.split("\n")):
            if style == 0:
                lines.append(f"TEL;TYPE={V3_TYPES[phone.kind]}:{value}")
            elif style == 1:
                lines.append(f'TEL;VALUE=text;TYPE="{V3_TYPES[phone.kind].lower()}":{value}')
            elif style == 2:
                label = {"mobile": "_$!<Mobile>!$_", "work": "_$!<Work>!$_"}.get(phone.kind, phone.kind.title())
                lines += [f"item{k + 1}.TEL;type=pref:{value}", f"item{k + 1}.X-ABLabel:{label}"]
            else:
                bare = ";".join(V3_TYPES[phone.kind].split(","))
                lines.append(f"TEL;{bare}:{value}")
    return lines


def person_card(person: Person) -> str:
    """A vCard for ``person``: 3.0, 4.0 or Apple style, folded, with umlauts and escaped commas."""
    style = person.index % 4
    version = "4.0" if style == 1 else "3.0"
    lines = ["BEGIN:VCARD", f"VERSION:{version}", f"UID:{uid_of(person)}"]
    lines.append(f"FN:{escape(person.name)}" if person.index % 10 != 9 else "FN:")  # some: only a structured N
    lines += [
        f"N:{escape(person.last)};{escape(person.first)};;;",
        f"ORG:{escape(person.company)};Vertrieb\\, Innendienst",
        f"TITLE:{person.title}",
        f"EMAIL;TYPE=INTERNET,WORK:{person.email}",
        f"NOTE:{'Rückruf erwünscht, bitte nicht vor 9 Uhr anrufen. ' * 3}",
        *tel_lines(person, style),
        "END:VCARD",
    ]
    return "\r\n".join(fold(line) for line in lines) + "\r\n"


def company_card(org: Person) -> str:
    """An organisation card (vCard 4.0 ``KIND:org``)."""
    lines = ["BEGIN:VCARD", "VERSION:4.0", "KIND:org", f"UID:org-{org.index}", f"FN:{escape(org.last)}",
             f"ORG:{escape(org.last)}", *tel_lines(org, 1), "END:VCARD"]  # fmt: skip
    return "\r\n".join(lines) + "\r\n"


def file_name(person: Person) -> str:
    """File names with umlauts and spaces, percent-encoded in the server's hrefs."""
    return f"{person.index:03d} {person.last.split()[0].lower()}.vcf"


BOOKS = {"kunden": "Kunden", "interessenten": "Interessenten", "partner": "Partner", "archiv": "Archiv"}


def book_of(person: Person) -> str:
    """People live in four address books of 75."""
    return list(BOOKS)[person.index // 75]


def uid_of(person: Person) -> str:
    return f"urn:uuid:0000{person.index:04d}-c0de-4a11-b0b0-feedfacecafe"


def record_id(person: Person) -> str:
    """Cards PUT one by one have our file names; imported ones are stored by Radicale as ``<UID>.vcf``."""
    book = book_of(person)
    return f"contacts:/anna/{book}/{file_name(person) if book == 'kunden' else uid_of(person) + '.vcf'}"


@dataclass
class Radicale:
    """The running server and what was uploaded to it."""

    url: str
    people: list[Person]
    companies: list[Person]


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """Radicale with five address books for anna (300 people, 40 companies) and one for bob.

    "kunden" is made as a CardDAV client does it (MKCOL, then a PUT per card, with our own file names); the
    others are imported in one request each, which is much faster.
    """
    people = make_people(300, seed=11)
    companies = make_people(40, seed=12, companies=True)
    root: Path = tmp_path_factory.mktemp("radicale")
    with radicale_server(root, users={USER: PASSWORD, "bob": "bobs-password"}) as url:
        kunden = make_address_book(url, USER, PASSWORD, "kunden", name="Kunden")
        put_cards(kunden, USER, PASSWORD, [(file_name(p), person_card(p)) for p in people if book_of(p) == "kunden"])
        for book, name in list(BOOKS.items())[1:]:
            cards = [person_card(p) for p in people if book_of(p) == book]
            import_address_book(url, USER, PASSWORD, book, name=name, cards=cards)
        companies_cards = [company_card(o) for o in companies]
        import_address_book(url, USER, PASSWORD, "lieferanten", name="Lieferanten & Händler", cards=companies_cards)
        bobs = make_address_book(url, "bob", "bobs-password", "privat", name="Privat")
        put_cards(bobs, "bob", "bobs-password", [("bob.vcf", person_card(make_people(1, seed=99)[0]))])
        yield Radicale(url, people, companies)


def settings(url: str, password: str = PASSWORD) -> dict[str, str]:
    return {"url": url, "username": USER, "password": password}


async def test_carddav_reads_every_address_book_of_the_user_from_the_server_address(radicale: Radicale) -> None:
    connector = build_connector(carddav_preset(), settings(radicale.url + "/"), page_size=40)
    records, progress = await fetch_all(connector)

    expected = {record_id(p): p for p in radicale.people}
    expected |= {f"contacts:/anna/lieferanten/org-{o.index}.vcf": o for o in radicale.companies}
    assert len(records) == 340  # bob's address book is not among them
    found = catalogue(records)
    assert check_lookups(found, expected, KINDS) > 600
    # four books of 75 cards in batches of 40 (2 pages each), then 40 in one
    assert [p.pages for p in progress] == list(range(1, 10)) and progress[-1].records == 340

    jorg = found.records["contacts:/anna/kunden/000 müller.vcf"]
    assert jorg.fields == {
        "DisplayName": "Jörg Müller",
        "Identifier": "00000000-c0de-4a11-b0b0-feedfacecafe",
        "PopUpUri": f"{radicale.url}/anna/kunden/000%20m%C3%BCller.vcf",
        "company": "Bäckerei Groß GmbH, Vertrieb, Innendienst",
        "email": "jörg.0@example.de",
        "title": "Geschäftsführerin",
        "address_book": "Kunden",
    }
    assert [label for label, _ in jorg.phones] == ["Work", "Mobile", "Other"]
    apple = found.records["contacts:/anna/kunden/002 lefèvre.vcf"]  # style 2: Apple item labels
    assert [label for label, _ in apple.phones][:1] == ["Work"]
    no_fn = found.records["contacts:/anna/kunden/009 åberg.vcf"]  # an empty FN: the name comes from N
    assert no_fn.fields["DisplayName"] == "Chloé Åberg"
    org = found.records["contacts:/anna/lieferanten/org-1.vcf"]
    assert (org.fields["DisplayName"], org.fields["address_book"]) == ("Crème & Brûlée SARL 1", "Lieferanten & Händler")
    assert {raw for r in records for label, raw in r.phones if label == "Other"} <= set(GARBAGE)


async def test_carddav_connected_synced_and_callers_recognised(radicale: Radicale, runtime: Runtime) -> None:
    slug, connected = await connect(runtime, "carddav", settings(f"{radicale.url}/anna/kunden/"))

    kunden = {record_id(p): p for p in radicale.people if book_of(p) == "kunden"}
    assert connected.run is not None and connected.run.records == len(kunden) == 75
    assert check_callers(runtime, slug, kunden, KINDS) > 120
    jorg = who_calls(runtime, slug, "+49 151 21100000")[0]
    assert jorg["fields"]["DisplayName"] == "Jörg Müller" and jorg["fields"]["company"].startswith("Bäckerei Groß")
    assert [n["value"] for n in jorg["notification"]] == ["Jörg Müller", jorg["fields"]["company"], "jörg.0@example.de"]
    assert [s["url"] for s in jorg["scripts"]] == [f"{radicale.url}/anna/kunden/000%20m%C3%BCller.vcf"]


async def test_carddav_reads_only_the_address_book_whose_link_was_given(radicale: Radicale) -> None:
    connector = build_connector(carddav_preset(), settings(f"{radicale.url}/anna/lieferanten/"), page_size=15)
    records, progress = await fetch_all(connector)
    assert sorted(r.record_id for r in records) == sorted(
        f"contacts:/anna/lieferanten/org-{o.index}.vcf" for o in radicale.companies
    )
    assert len(progress) == 3


async def test_carddav_connection_test_counts_the_cards_and_shows_one(radicale: Radicale) -> None:
    connector = build_connector(carddav_preset(), settings(radicale.url))
    try:
        result = await connector.test_connection()
    finally:
        await connector.aclose()
    assert result.count == 340 and result.object_types == ["contacts"]
    assert result.sample is not None
    assert result.sample.fields["address_book"] in [*BOOKS.values(), "Lieferanten & Händler"]


async def test_carddav_wrong_password_is_reported_without_the_password(radicale: Radicale) -> None:
    connector = build_connector(carddav_preset(), settings(radicale.url, password="not-the-password-7"))
    with pytest.raises(ConnectorError) as caught:
        await fetch_all(connector)
    assert caught.value.status == 401
    message = str(caught.value)
    assert message.startswith("CardDAV address book refused the user name and password (401)")
    assert "app password" in message and "not-the-password-7" not in message


async def test_carddav_user_without_address_books_gets_told_what_to_check(tmp_path: Path) -> None:
    with radicale_server(tmp_path, users={"carla": "carlas-password"}) as url:
        connector = build_connector(carddav_preset(), {"url": url, "username": "carla", "password": "carlas-password"})
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert caught.value.field == "url"
    assert "found no address book" in caught.value.message


async def test_carddav_does_not_follow_a_server_that_points_to_another_host() -> None:
    """iCloud-style: the principal's home set lives on another host; the password must not go there."""
    requests: list[str] = []

    async def dav(request: Request) -> Response:
        requests.append(f"{request.method} {request.url.path}")
        body = (
            '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav">'
            "<d:response><d:href>/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype>"
            "<c:addressbook-home-set><d:href>https://p42-contacts.example.com:443/1234/carddavhome/</d:href>"
            "</c:addressbook-home-set></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
            "</d:multistatus>"
        )
        return Response(body, status_code=207, media_type="application/xml")

    app = Starlette(routes=[Route("/{path:path}", dav, methods=["PROPFIND"])])
    with serve(app) as url:
        connector = build_connector(carddav_preset(), settings(url))
        with pytest.raises(ConnectorError) as caught:
            await fetch_all(connector)
    assert "https://p42-contacts.example.com:443/1234/carddavhome/" in caught.value.message
    assert "enter that address" in caught.value.message
    assert requests == ["PROPFIND /"]


async def test_carddav_refuses_a_listing_the_server_cut_short() -> None:
    """A server that lists only part of a big address book (507) must fail the sync, not shrink the cache."""
    book = (
        "<d:response><d:href>/book/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/><c:addressbook/>"
        "</d:resourcetype><d:displayname>Groß</d:displayname></d:prop><d:status>HTTP/1.1 200 OK</d:status>"
        "</d:propstat></d:response>"
    )
    cut = "<d:response><d:href>/book/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>"

    async def dav(request: Request) -> Response:
        members = book if request.headers.get("depth") == "0" else book + cut
        body = f'<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav">{members}</d:multistatus>'
        return Response(body, status_code=207, media_type="application/xml")

    app = Starlette(routes=[Route("/{path:path}", dav, methods=["PROPFIND"])])
    with serve(app) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(carddav_preset(), settings(f"{url}/book/")))
    assert caught.value.status == 507 and "only part of Groß" in caught.value.message


# ------------------------------------------------------------------------------------------- parsing


def test_vcard_21_quoted_printable_in_its_charset_and_soft_line_breaks() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\n"
        "N;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:M=FCller;J=FCrgen\r\n"
        "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen M=C3=BCller vom Gro=C3=9F=\r\n"
        "handel\r\n"
        "ORG;QUOTED-PRINTABLE;CHARSET=UTF-8:B=C3=A4ckerei\r\n"
        "TEL;WORK;VOICE:030 1234567\r\nTEL;CELL:0170 1234567\r\nEND:VCARD\r\n"
    )
    record = card_record(card, href="/book/1.vcf", public_url="https://dav.example.com/book")
    assert record is not None
    assert record.fields["DisplayName"] == "Jürgen Müller vom Großhandel"
    assert record.fields["company"] == "Bäckerei"
    assert record.fields["Identifier"] == "1"  # no UID: the file name
    assert record.fields["PopUpUri"] == "https://dav.example.com/book/1.vcf"
    assert record.phones == [("Work", "030 1234567"), ("Mobile", "0170 1234567")]
    n = next(p for p in parse_vcard(card) if p.name == "N")
    assert n.components == ["Müller", "Jürgen"]


def test_vcard_40_folded_lines_tel_uris_and_a_lying_charset() -> None:
    card = (
        "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:abc\nFN:Zoë\n  Øster\nORG:Crème\\, Brûlée;Export\n"
        'TEL;VALUE=uri;PREF=1;TYPE="voice,home":tel:+1-555-555-5555\nEMAIL:a@example.com\nEMAIL;PREF=1:b@example.com\n'
        "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Gr=FC=DFe\nEND:VCARD\n"
    )
    record = card_record(card, href="https://dav.example.com/b/abc.vcf", public_url="https://dav.example.com/b")
    assert record is not None
    assert record.fields["DisplayName"] == "Zoë Øster"
    assert record.fields["company"] == "Crème, Brûlée, Export"
    assert record.fields["email"] == "b@example.com"
    assert record.fields["Identifier"] == "abc"
    assert record.phones == [("Home", "+1-555-555-5555")]
    note = next(p for p in parse_vcard(card) if p.name == "NOTE")
    assert note.text == "Grüße"  # declared UTF-8 but written in Latin-1


def test_no_vcard_no_record() -> None:
    assert card_record("<html>not a card</html>", href="/x.vcf", public_url="https://dav.example.com") is None


def test_multistatus_with_a_doctype_is_refused() -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><d:multistatus xmlns:d="DAV:"/>'
    with pytest.raises(ConnectorError, match="document type declaration"):
        parse_multistatus(evil, crm="CardDAV", what="the listing of /")
    with pytest.raises(ConnectorError, match="did not answer"):
        parse_multistatus(b"<html/>", crm="CardDAV", what="the listing of /")
