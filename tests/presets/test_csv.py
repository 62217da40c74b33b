"""The CSV preset: files and web addresses, both encodings, headers in Dutch, German, French and English."""

from __future__ import annotations

import csv
import importlib.resources
import io
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.connector import build_connector
from core.errors import ConnectorError, InvalidInput
from core.presets import Preset, parse_preset
from core.runtime import Runtime
from presets.csv_file import (
    CSV_DIR_ENV,
    detect_delimiter,
    detect_encoding,
    find_columns,
    is_phone_column,
    open_sheet,
    sample_record,
)
from tests.crm.server import serve
from tests.presets.end_to_end import check_callers, connect, who_calls
from tests.presets.messy_numbers import Person, catalogue, check_lookups, fetch_all, make_people

KINDS = ("work", "mobile", "home", "other", "fax")
DUTCH = ("Klantnummer", "Voornaam", "Achternaam", "Bedrijf", "Telefoon", "Mobiel", "Telefoon privé", "Telefoon overig",
         "Fax", "E-mailadres", "Opmerking")  # fmt: skip
GERMAN = ("Kundennummer", "Vorname", "Nachname", "Firma", "Telefon", "Handy", "Telefon privat", "Telefon (sonstige)",
          "Telefax", "E-Mail")  # fmt: skip


def csv_preset() -> Preset:
    """The shipped preset file, parsed on its own (other presets may be half-written right now)."""
    text = importlib.resources.files("presets").joinpath("csv.toml").read_text(encoding="utf-8")
    return parse_preset(text, source="presets/csv.toml", package="presets")


def row(person: Person, *, note: bool) -> list[str]:
    """A person as a row: the id, names, company, the five phone kinds, e-mail (and a note with ; and ,)."""
    phones = [person.phone(kind) or "" for kind in KINDS]
    cells = [f"K-{10_000 + person.index}", person.first, person.last, person.company, *phones, person.email]
    return [*cells, 'Rückruf; bitte "dringend", vor 9 Uhr'] if note else cells


def write_csv(header: tuple[str, ...], rows: list[list[str]], *, delimiter: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def cp1252_people(people: list[Person]) -> list[Person]:
    """The people whose names and companies Windows-1252 can hold (it has no ł, ř, ě)."""

    def fits(person: Person) -> bool:
        try:
            "".join(row(person, note=False)).encode("cp1252")
        except UnicodeEncodeError:
            return False
        return True

    return [p for p in people if fits(p)]


@pytest.fixture
def csv_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the operator allows CSV files to be read from."""
    folder = tmp_path / "csv"
    folder.mkdir()
    monkeypatch.setenv(CSV_DIR_ENV, str(folder))
    return folder


async def test_csv_file_in_utf8_with_bom_dutch_columns_and_semicolons(csv_dir: Path) -> None:
    people = make_people(250, seed=21)
    text = write_csv(DUTCH, [row(p, note=True) for p in people], delimiter=";")
    (csv_dir / "klanten.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    values = {"source": "klanten.csv", "popup_url": "https://crm.example.com/klanten/{Klantnummer}?tab=bellen"}

    records, progress = await fetch_all(build_connector(csv_preset(), values, page_size=40))

    found = catalogue(records)
    expected = {f"rows:id:K-{10_000 + p.index}": p for p in people}
    assert check_lookups(found, expected, KINDS) > 450
    assert [p.pages for p in progress] == list(range(1, 8)) and progress[-1].records == 250
    jorg = found.records["rows:id:K-10000"]
    assert jorg.fields == {
        "DisplayName": "Jörg Müller",
        "Identifier": "K-10000",
        "PopUpUri": "https://crm.example.com/klanten/K-10000?tab=bellen",
        "company": "Bäckerei Groß GmbH",
        "email": "jörg.0@example.de",
    }
    assert [label for label, _ in jorg.phones] == ["Telefoon", "Mobiel", "Telefoon overig"]
    lukasz = found.records["rows:id:K-10003"]
    assert (lukasz.fields["DisplayName"], lukasz.fields["company"]) == ("Łukasz Øster", "Société Générale")


async def test_csv_connected_synced_and_callers_recognised(runtime: Runtime, csv_dir: Path) -> None:
    people = make_people(120, seed=24)
    (csv_dir / "acme").mkdir()
    (csv_dir / "acme" / "klanten.csv").write_text(write_csv(DUTCH, [row(p, note=True) for p in people], delimiter=";"))
    values = {"source": "klanten.csv", "popup_url": "https://crm.example.com/klanten/{Klantnummer}"}

    slug, connected = await connect(runtime, "csv", values, slug="acme")

    assert connected.run is not None and connected.run.records == 120
    assert connected.test is not None and connected.test.count == 120
    assert check_callers(runtime, slug, {f"rows:id:K-{10_000 + p.index}": p for p in people}, KINDS) > 200
    jorg = who_calls(runtime, slug, min(people[0].numbers(["work"])))[0]  # dialled in E.164 this time
    assert jorg["fields"]["DisplayName"] == "Jörg Müller"
    assert jorg["notification"][0]["value"] == "Jörg Müller"
    assert [s["url"] for s in jorg["scripts"]] == ["https://crm.example.com/klanten/K-10000"]


@pytest.mark.parametrize("source", ["klanten.csv", "../other/klanten.csv"])
async def test_a_tenant_reads_only_its_own_csv_folder(runtime: Runtime, csv_dir: Path, source: str) -> None:
    (csv_dir / "other").mkdir()
    (csv_dir / "other" / "klanten.csv").write_text("Naam;Telefoon\r\nGeheim;030 1234567\r\n", encoding="utf-8")
    (csv_dir / "acme").mkdir()
    with pytest.raises(ConnectorError) as caught:
        await connect(runtime, "csv", {"source": source}, slug="acme")
    assert caught.value.field == "source" and "your organisation's CSV folder" in caught.value.message
    assert "Geheim" not in caught.value.message and str(csv_dir) not in caught.value.message


async def test_csv_from_a_web_address_in_windows_1252_with_german_columns() -> None:
    people = cp1252_people(make_people(300, seed=22))
    body = write_csv(GERMAN, [row(p, note=False) for p in people], delimiter=",").encode("cp1252")
    asked: list[str] = []

    async def export(request: Request) -> Response:
        asked.append(request.headers.get("accept", ""))
        return Response(body, media_type="text/csv")  # no charset: as many servers send it

    with serve(Starlette(routes=[Route("/export/kunden.csv", export)])) as url:
        connector = build_connector(csv_preset(), {"source": f"{url}/export/kunden.csv"}, page_size=100)
        records, _ = await fetch_all(connector)

    assert len(people) > 150
    found = catalogue(records)
    assert check_lookups(found, {f"rows:id:K-{10_000 + p.index}": p for p in people}, KINDS) > 300
    first = found.records[f"rows:id:K-{10_000 + people[0].index}"]
    assert first.fields["DisplayName"] == people[0].name and "ü" in first.fields["DisplayName"]
    assert first.fields["company"] == "Bäckerei Groß GmbH" and first.fields["PopUpUri"] == ""
    labels = {label for r in records for label, _ in r.phones}
    assert labels == {"Telefon", "Handy", "Telefon privat", "Telefon (sonstige)", "Telefax"}
    assert asked[0].startswith("text/csv")


async def test_csv_without_an_id_column_numbers_the_rows_and_keeps_the_first_of_a_repeated_id(csv_dir: Path) -> None:
    text = "Name\tPhone\tMobile Phone\tCompany\r\nAnna Öberg\t030 1234567\t\tSüd AG\r\n\r\nBo Ek\t\t0151 2345678\t\r\n"
    (csv_dir / "plain.tsv").write_text(text, encoding="utf-8")
    records, _ = await fetch_all(build_connector(csv_preset(), {"source": str(csv_dir / "plain.tsv")}))
    assert [(r.record_id, r.fields["Identifier"], r.fields["DisplayName"]) for r in records] == [
        ("rows:row:2", "2", "Anna Öberg"),
        ("rows:row:4", "4", "Bo Ek"),  # row 3 is empty
    ]
    assert records[1].phones == [("Mobile Phone", "0151 2345678")]

    twice = "Id,Naam,Telefoon\r\n7,Eerste,030 1111111\r\n7,Tweede,030 2222222\r\n8,Derde,030 3333333\r\n"
    (csv_dir / "twice.csv").write_text(twice, encoding="utf-8")
    records, _ = await fetch_all(build_connector(csv_preset(), {"source": "twice.csv"}))
    assert [r.fields["DisplayName"] for r in records] == ["Eerste", "Derde"]


async def test_csv_columns_named_in_the_settings_by_name_or_number(csv_dir: Path) -> None:
    text = "sep=|\r\nnr|wie|tel 1|tel 2|firma\r\n1|Jürgen|+49 30 1234567|+49 151 2345678|Groß KG\r\n"
    (csv_dir / "odd.csv").write_text(text, encoding="cp1252")
    values = {"source": "odd.csv", "id_column": "1", "name_columns": "WIE", "phone_columns": "6, tel 1",
              "encoding": "windows-1252"}  # fmt: skip
    with pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(csv_preset(), values))
    assert caught.value.field == "phone_columns"  # there are five columns
    assert (
        caught.value.message == "The CSV file has no column called '6' (the columns are: nr, wie, tel 1, tel 2, firma)"
    )

    values |= {"phone_columns": "4, tel 1", "popup_url": "https://crm.example.com/{firma}/{Identifier}"}
    records, _ = await fetch_all(build_connector(csv_preset(), values))
    assert records[0].fields["DisplayName"] == "Jürgen" and records[0].fields["Identifier"] == "1"
    assert records[0].fields["PopUpUri"] == "https://crm.example.com/Gro%C3%9F%20KG/1"
    assert records[0].phones == [("tel 2", "+49 151 2345678"), ("tel 1", "+49 30 1234567")]

    with pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(csv_preset(), {**values, "popup_url": "https://crm.example.com/{Klant}"}))
    assert caught.value.field == "popup_url" and "{Klant}" in caught.value.message


async def test_csv_connection_test_counts_rows_and_shows_the_first(csv_dir: Path) -> None:
    text = write_csv(DUTCH, [row(p, note=True) for p in make_people(30, seed=23)], delimiter=";")
    (csv_dir / "k.csv").write_text(text, encoding="utf-8")
    connector = build_connector(csv_preset(), {"source": "k.csv"})
    try:
        result = await connector.test_connection()
    finally:
        await connector.aclose()
    assert result.count == 30 and result.object_types == ["rows"]
    assert result.sample is not None and result.sample.fields["DisplayName"] == "Jörg Müller"


@pytest.mark.parametrize("source", ["../secret.csv", "/etc/passwd", "sub/../../secret.csv"])
async def test_csv_files_outside_the_allowed_folder_are_refused(csv_dir: Path, source: str) -> None:
    (csv_dir.parent / "secret.csv").write_text("Name,Phone\r\nGeheim,030 1234567\r\n", encoding="utf-8")
    with pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(csv_preset(), {"source": source}))
    assert caught.value.field == "source" and "must lie in" in caught.value.message


async def test_csv_files_are_refused_when_the_operator_allowed_no_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CSV_DIR_ENV, raising=False)
    with pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(csv_preset(), {"source": "/etc/passwd"}))
    assert caught.value.field == "source" and CSV_DIR_ENV in caught.value.message
    with pytest.raises(InvalidInput) as refused:
        build_connector(csv_preset(), {"source": "http://intranet.example.com/export.csv"})
    assert refused.value.field == "source"


async def test_a_web_page_instead_of_a_csv_file_is_explained() -> None:
    async def sign_in(request: Request) -> Response:
        return Response("<!doctype html><title>Anmelden</title>", media_type="text/html")

    with serve(Starlette(routes=[Route("/export", sign_in)])) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(csv_preset(), {"source": f"{url}/export"}))
    assert caught.value.field == "source" and "web page, not a CSV file" in caught.value.message


async def test_a_missing_web_file_names_the_setting() -> None:
    with serve(Starlette(routes=[])) as url, pytest.raises(ConnectorError) as caught:
        await fetch_all(build_connector(csv_preset(), {"source": f"{url}/gone.csv"}))
    assert caught.value.field == "source" and "(404)" in caught.value.message


# ------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ('Name,Phone\r\n"Müller, Jörg",030 123\r\n"Groß, Anna",040 456\r\n', ","),
        ("Naam;Telefoon\r\nMüller, Jörg;030 123\r\nGroß, Anna;040 456\r\n", ";"),
        ("Name\tTelefon\tFirma\r\nA, B\t030 1\tX; Y\r\nC\t040 2\tZ\r\n", "\t"),
        ("id|name|phone\n1|Ann, Lee|030 1\n2|Bo; Ek|030 2\n", "|"),
        ("Name\r\nonly one column\r\n", ","),
    ],
)
def test_the_delimiter_is_found(text: str, delimiter: str) -> None:
    assert detect_delimiter(text) == delimiter


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Naam;Telefoon\r\nJörg;030\r\n".encode(), "utf-8"),
        (b"\xef\xbb\xbfNaam;Telefoon\r\n", "utf-8-sig"),
        ("Naam;Telefoon\r\nJörg Groß;030\r\n".encode("cp1252"), "cp1252"),
        ("Name\tPhone\r\nZoë\t030\r\n".encode("utf-16"), "utf-16"),
    ],
)
def test_the_encoding_is_found(data: bytes, encoding: str) -> None:
    assert detect_encoding(io.BytesIO(data)) == encoding


def test_a_utf16_excel_export_reads_with_umlauts() -> None:
    data = "Name\tTelefon\r\nZoë Groß\t030 1234567\r\n".encode("utf-16")
    with open_sheet(io.BytesIO(data)) as sheet:
        assert (sheet.header, list(sheet.rows)) == (["Name", "Telefon"], [(2, ["Zoë Groß", "030 1234567"])])


@pytest.mark.parametrize(
    "name",
    ["Telefoon", "Mobiel", "Telefon", "Handy", "Téléphone", "Phone", "Mobile", "MobilePhone", "Business Phone",
     "Tel.", "Tel 2", "Telefonnummer", "Mobiltelefon", "GSM", "Fax", "Phone 1 - Value", "Téléphone portable"],
)  # fmt: skip
def test_phone_columns_are_recognised_in_several_languages(name: str) -> None:
    assert is_phone_column(name)


@pytest.mark.parametrize("name", ["Phone 1 - Type", "Name", "E-Mail", "Hotel", "Titel", "Telefoontype", "Notes"])
def test_other_columns_are_not_taken_for_phones(name: str) -> None:
    assert not is_phone_column(name)


def test_names_companies_and_ids_are_found_by_their_headers() -> None:
    french = find_columns(["Numéro client", "Prénom", "Nom", "Société", "Téléphone", "Courriel"], {})
    assert (french.id, french.name, french.company, french.email) == (0, (1, 2), 3, 5)
    dutch = find_columns(["Relatienummer", "Voornaam", "Tussenvoegsel", "Achternaam", "Bedrijfsnaam", "Mobiel"], {})
    assert (dutch.id, dutch.name, dutch.company, dutch.phones) == (0, (1, 2, 3), 4, ((5, "Mobiel"),))
    google = find_columns(["Name", "Given Name", "E-mail 1 - Type", "E-mail 1 - Value", "Phone 1 - Type",
                           "Phone 1 - Value", "Organization 1 - Name"], {})  # fmt: skip
    assert (google.name, google.email, google.phones, google.id) == ((0,), 3, ((5, "Phone 1 - Value"),), None)
    with pytest.raises(ConnectorError) as caught:
        find_columns(["Naam", "Adres"], {})
    assert caught.value.field == "phone_columns"


def test_the_sample_record_uses_the_screen_pop_template() -> None:
    values = {"source": "x.csv", "popup_url": "https://crm.example.com/klanten/{Identifier}"}
    record = sample_record(csv_preset(), values)
    assert record.fields["PopUpUri"] == "https://crm.example.com/klanten/10023"
    assert record.fields["DisplayName"] == "Anneke van der Bühler"
    assert record.phones == [("Telefoon", "020-1234567"), ("Mobiel", "06 12345678")]
