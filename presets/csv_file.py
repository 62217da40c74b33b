"""A CSV export (a file on the server or an https address) as a switchboard connector.

The file is read as it is exported from Excel, Google Sheets, Outlook or another CRM: the encoding is found
(a BOM, else strict UTF-8, else Windows-1252, else what ``charset-normalizer`` guesses), and so is the
delimiter (Excel's ``sep=;`` line, else ``csv.Sniffer`` checked against how evenly each candidate splits
the first lines). The first row holds the column names; the columns for the id, name, phones, company
and e-mail are found by their names in English, Dutch, German, French and more, or named in the settings
(by column name or number). Rows are streamed, a page of records at a time.

Files on the server are read only from the tenant's own folder, ``SWITCHBOARD_CSV_DIR/<tenant>`` (a
relative path is taken inside it): a tenant admin must not read the server's files or another tenant's.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import ipaddress
import logging
import os
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit

from charset_normalizer import from_bytes

from core.connector import ConnectionTest, ConnectorContext, FetchedRecord, PageProgress
from core.connector.http import CrmHttp
from core.errors import ConnectorError, InvalidInput
from core.presets import Preset, Template

log = logging.getLogger("presets.csv")

OBJECT_TYPE = "rows"
DEFAULT_PAGE = 1000
TEST_ROWS = 10
CSV_DIR_ENV = "SWITCHBOARD_CSV_DIR"
MAX_FILE_BYTES = 512 * 2**20
SAMPLE_BYTES = 64 * 1024
DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
ENCODINGS = {"utf-8": "utf-8-sig", "windows-1252": "cp1252", "latin-1": "latin-1", "utf-16": "utf-16"}
FIELD_NAMES = ("DisplayName", "Identifier", "PopUpUri", "company", "email")

# Column names, compared without case, accents, spaces and punctuation ("Téléphone" → "telephone").
FULL_NAMES = ("name", "fullname", "displayname", "naam", "volledigenaam", "weergavenaam", "contactnaam",
              "anzeigename", "vollstandigername", "nomcomplet", "nombre completo", "nomecompleto", "contactname",
              "contact", "contactpersoon", "kontakt", "kontaktperson", "ansprechpartner", "nom")  # fmt: skip
FIRST_NAMES = ("firstname", "givenname", "first", "voornaam", "roepnaam", "vorname", "prenom", "nombre", "nome")
MIDDLE_NAMES = ("middlename", "tussenvoegsel", "tussenvoegsels", "voorvoegsel")
LAST_NAMES = ("lastname", "surname", "familyname", "last", "achternaam", "nachname", "familienname", "nomdefamille",
              "apellido", "apellidos", "cognome")  # fmt: skip
WEAK_NAMES = ("klant", "klantnaam", "relatie", "relatienaam", "kunde", "kundenname", "customer", "customername",
              "client", "clientname")  # fmt: skip
COMPANIES = ("company", "companyname", "organization", "organisation", "organizationname", "organisationname",
             "firma", "firmenname", "unternehmen", "bedrijf", "bedrijfsnaam", "organisatie", "societe", "entreprise",
             "raisonsociale", "empresa", "azienda", "account", "accountname")  # fmt: skip
EMAILS = ("email", "emailaddress", "emailadres", "emailadresse", "mail", "mailadres", "courriel", "adresseemail",
          "adressemail", "correo", "correoelectronico", "email1value", "emailaddress1")  # fmt: skip
IDS = ("id", "identifier", "uid", "recordid", "contactid", "customerid", "customernumber", "customerno", "clientid",
       "clientnumber", "accountid", "accountnumber", "klantnummer", "klantnr", "klantid", "relatienummer", "relatienr",
       "debiteurnummer", "debiteurnr", "kundennummer", "kundennr", "kundenid", "debitorennummer", "numeroclient",
       "codeclient", "referenceclient", "externalid", "reference", "referentie", "ref")  # fmt: skip
PHONE_WORDS = ("phone", "telefo", "telepho", "tel", "mobil", "mobiel", "handy", "gsm", "cell", "portable", "fax",
               "natel", "movil", "rufnummer", "cellulare")  # fmt: skip
NOT_PHONE_WORDS = frozenset({"type", "typ", "label", "soort", "art", "kind", "category", "categorie", "etikett"})
NOT_PHONE_ENDINGS = ("type", "typ", "label", "soort", "categorie", "category")  # "Telefoontype", "Phone1Label"


# ------------------------------------------------------------------------------------------------ reading


def detect_encoding(stream: IO[bytes]) -> str:
    """The encoding of a seekable byte stream: BOM, else strict UTF-8, else Windows-1252, else a guess."""
    stream.seek(0)
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        if _decodes(stream, encoding):
            return encoding
    guess = from_bytes(stream.read(SAMPLE_BYTES * 16)).best()
    stream.seek(0)
    return guess.encoding if guess is not None else "latin-1"


def _decodes(stream: IO[bytes], encoding: str) -> bool:
    """Whether the whole stream decodes strictly in ``encoding`` (read in chunks, then rewound)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        while chunk := stream.read(2**20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return True
    except UnicodeDecodeError:
        return False
    finally:
        stream.seek(0)


def detect_delimiter(sample: str) -> str:
    """The delimiter among ``,`` ``;`` tab ``|``: Sniffer's answer if it splits the lines evenly, else the best."""
    candidates = "".join(DELIMITERS.values())
    lines = sample.splitlines()
    text = "\n".join(lines[:-1] if len(lines) > 1 else lines)  # the last line of a sample may be cut off
    scores = {d: _evenness(text, d) for d in candidates}
    try:
        sniffed: str | None = csv.Sniffer().sniff(text, delimiters=candidates).delimiter
    except csv.Error:
        sniffed = None
    best = max(candidates, key=lambda d: scores[d])
    if sniffed in scores and scores[sniffed] >= scores[best] * 0.9 and scores[sniffed] > 0:
        return sniffed
    return best if scores[best] > 0 else ","


def _evenness(text: str, delimiter: str) -> float:
    """How well ``delimiter`` splits the first rows: the share of rows with the usual width, if wider than 1."""
    widths = [len(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(row)][:100]
    if not widths:
        return 0.0
    usual = max(set(widths), key=lambda w: (widths.count(w), w))
    if usual < 2:
        return 0.0
    return widths.count(usual) / len(widths) + usual / 10_000  # ties go to the one that splits more


@dataclass(frozen=True, slots=True)
class Sheet:
    """A decoded CSV stream: its header row and an iterator over the rows after it (with Excel row numbers)."""

    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    encoding: str
    delimiter: str


@contextlib.contextmanager
def open_sheet(stream: IO[bytes], *, encoding: str = "auto", delimiter: str = "auto") -> Iterator[Sheet]:
    """Detect what is not given and read the header; the rows are read lazily while the block runs."""
    chosen = detect_encoding(stream) if encoding == "auto" else ENCODINGS.get(encoding, encoding)
    text = io.TextIOWrapper(stream, encoding=chosen, errors="replace", newline="")
    try:
        sample = text.read(SAMPLE_BYTES)
        text.seek(0)
        first = sample.split("\n", 1)[0].strip().lstrip("\ufeff")
        hint = re.fullmatch(r"sep=(.)", first, re.IGNORECASE)  # Excel's "sep=;" line
        if hint:
            text.readline()
        sep = hint.group(1) if hint else detect_delimiter(sample) if delimiter == "auto" else DELIMITERS[delimiter]
        reader = csv.reader(text, delimiter=sep)
        header = [cell.strip().lstrip("\ufeff") for cell in next(reader, [])]
        yield Sheet(header, _rows(reader), chosen, sep)
    finally:
        text.detach()


def _rows(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Non-empty rows with their row number as a spreadsheet shows it (the header is row 1)."""
    number = 1
    try:
        for row in reader:
            number += 1
            if any(cell.strip() for cell in row):
                yield number, row
    except csv.Error as exc:
        raise ConnectorError(f"Row {number + 1} of the CSV file cannot be read ({exc})") from None


# ------------------------------------------------------------------------------------------------ columns


def column_key(name: str) -> str:
    """A column name reduced for comparison: no accents, case, spaces or punctuation; camelCase split."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    plain = "".join(c for c in unicodedata.normalize("NFKD", spaced) if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain.casefold().replace("ß", "ss")).split())


def _compact(name: str) -> str:
    return column_key(name).replace(" ", "")


def is_phone_column(name: str) -> bool:
    """Whether a column name says it holds phone numbers ("Telefoon", "Handy", "Mobile Phone", "Tel. 2")."""
    words = column_key(name).split()
    if NOT_PHONE_WORDS.intersection(words) or "".join(words).endswith(NOT_PHONE_ENDINGS):
        return False
    return any(word.startswith(PHONE_WORDS) for word in words)


@dataclass(frozen=True, slots=True)
class Columns:
    """Which columns (0-based) hold what; ``phones`` pairs a column with its label (the column's name)."""

    id: int | None
    name: tuple[int, ...]
    phones: tuple[tuple[int, str], ...]
    company: int | None
    email: int | None


def find_columns(header: Sequence[str], settings: Mapping[str, str]) -> Columns:
    """The columns the settings name (by name or number) or, where a setting is empty, found by their names."""
    keys = [_compact(h) for h in header]

    def pick(setting: str, names: Sequence[str]) -> int | None:
        given = settings.get(setting, "").strip()
        return _column(header, keys, given, setting) if given else _first(keys, names)

    phones_given = [p for p in settings.get("phone_columns", "").split(",") if p.strip()]
    if phones_given:
        phones = [_column(header, keys, p.strip(), "phone_columns") for p in phones_given]
    else:
        phones = [i for i, name in enumerate(header) if is_phone_column(name)]
    if not phones:
        raise ConnectorError(
            f"No column of the CSV file looks like a phone number (the columns are: {_listing(header)}): "
            "name them in the phone columns setting",
            field="phone_columns",
        )
    return Columns(
        id=pick("id_column", IDS),
        name=_name_columns(header, keys, settings),
        phones=tuple((i, header[i] or f"Column {i + 1}") for i in dict.fromkeys(phones)),
        company=pick("company_column", COMPANIES),
        email=pick("email_column", EMAILS) if settings.get("email_column") else _email_column(keys),
    )


def _name_columns(header: Sequence[str], keys: list[str], settings: Mapping[str, str]) -> tuple[int, ...]:
    given = [n.strip() for n in settings.get("name_columns", "").split(",") if n.strip()]
    if given:
        return tuple(_column(header, keys, name, "name_columns") for name in given)
    first, last = _first(keys, FIRST_NAMES), _first(keys, LAST_NAMES)
    full = _first(keys, FULL_NAMES)
    if first is not None and last is None and full is not None and keys[full] == "nom":
        last, full = full, None  # French: Prénom + Nom
    if full is not None:
        return (full,)
    if first is not None or last is not None:
        middle = _first(keys, MIDDLE_NAMES)
        return tuple(i for i in (first, middle, last) if i is not None)
    weak = _first(keys, WEAK_NAMES)
    return (weak,) if weak is not None else ()


def _email_column(keys: list[str]) -> int | None:
    found = _first(keys, EMAILS)
    if found is None:
        found = next((i for i, k in enumerate(keys) if k.startswith("email") and "type" not in k), None)
    return found


def _first(keys: list[str], names: Sequence[str]) -> int | None:
    """The first column whose name is one of ``names``, trying the names in their order of preference."""
    for name in names:
        wanted = name.replace(" ", "")
        if wanted in keys:
            return keys.index(wanted)
    return None


def _column(header: Sequence[str], keys: list[str], given: str, setting: str) -> int:
    """A column named in a setting: a name (any case and accents) or a number counted from 1."""
    if given.isdigit() and 1 <= int(given) <= len(header):
        return int(given) - 1
    key = _compact(given)
    if key in keys:
        return keys.index(key)
    raise ConnectorError(
        f"The CSV file has no column called {given!r} (the columns are: {_listing(header)})", field=setting
    )


def _listing(header: Sequence[str]) -> str:
    shown = ", ".join(h or "(empty)" for h in header[:30])
    return shown + (", ..." if len(header) > 30 else "")


# ------------------------------------------------------------------------------------------------ records


class RowMapper:
    """Turns rows into records, given the columns and the screen-pop template."""

    def __init__(self, header: Sequence[str], columns: Columns, popup_url: str) -> None:
        self.header = list(header)
        self.columns = columns
        self.popup = _popup_template(popup_url, header)
        self._keys = {column_key(h): i for i, h in reversed(list(enumerate(header)))}

    def map(self, number: int, row: Sequence[str]) -> FetchedRecord:
        """One row (``number`` is its row in a spreadsheet) as a record."""
        cells = [cell.strip() for cell in row] + [""] * max(0, len(self.header) - len(row))
        columns = self.columns
        given_id = cells[columns.id] if columns.id is not None else ""
        identifier = given_id or str(number)
        company = cells[columns.company] if columns.company is not None else ""
        email = cells[columns.email] if columns.email is not None else ""
        name = " ".join(" ".join(cells[i] for i in columns.name).split())
        fields = {
            "DisplayName": name or company or email,
            "Identifier": identifier,
            "PopUpUri": self._popup(cells, identifier),
            "company": company,
            "email": email,
        }
        phones = [(label, cells[i]) for i, label in columns.phones if cells[i]]
        record_id = f"{OBJECT_TYPE}:id:{given_id}" if given_id else f"{OBJECT_TYPE}:row:{number}"
        return FetchedRecord(OBJECT_TYPE, record_id, fields, phones)

    def _popup(self, cells: list[str], identifier: str) -> str:
        if self.popup is None:
            return ""
        whole = self.popup.literals == ("", "")  # "{CRM link}": a column that holds the whole address
        values: dict[str, str] = {}
        for name in self.popup.names:
            key = column_key(name)
            value = identifier if key == "identifier" and key not in self._keys else cells[self._keys[key]]
            values[name] = value if whole else quote(value, safe="")
        url = self.popup.render_url(values)
        return url if urlsplit(url).scheme in ("http", "https") else ""


def _popup_template(text: str, header: Sequence[str]) -> Template | None:
    if not text.strip():
        return None
    template = parse_popup_url(text)
    known = {column_key(h) for h in header} | {"identifier"}
    for name in template.names:
        if column_key(name) not in known:
            raise ConnectorError(
                f"The screen-pop link uses {{{name}}}, which is not a column of the CSV file (the columns are: "
                f"{_listing(header)}; {{Identifier}} is the id column or row number)",
                field="popup_url",
            )
    return template


def parse_popup_url(text: str) -> Template:
    """The screen-pop link template; ``InvalidInput`` (field ``popup_url``) if it cannot be used."""
    try:
        template = Template.parse(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"Screen-pop link: {exc}.", field="popup_url") from None
    if not text.strip().lower().startswith(("https://", "http://", "{")):
        raise InvalidInput("Screen-pop link: must start with https://", field="popup_url")
    return template


SAMPLE_HEADER = ("Klantnummer", "Voornaam", "Tussenvoegsel", "Achternaam", "Bedrijf", "Telefoon", "Mobiel", "E-mail")
SAMPLE_ROW = ("10023", "Anneke", "van der", "Bühler", "Bakkerij Bühler B.V.", "020-1234567", "06 12345678",
              "anneke@buhler.example")  # fmt: skip


def sample_record(preset: Preset, settings: Mapping[str, str]) -> FetchedRecord:
    """A record as this preset maps it, from a made-up Dutch export with the settings' column choices."""
    columns = find_columns(SAMPLE_HEADER, {k: v for k, v in settings.items() if not k.endswith(("column", "columns"))})
    return RowMapper(SAMPLE_HEADER, columns, settings.get("popup_url", "")).map(2, SAMPLE_ROW)


# ------------------------------------------------------------------------------------------------ source


def is_url(source: str) -> bool:
    """Whether the source is a web address rather than a file."""
    return source.lower().startswith(("http://", "https://"))


def check_url(source: str) -> str:
    """An https address (plain http only for this machine); ``InvalidInput`` otherwise."""
    host = urlsplit(source).hostname or ""
    if not host:
        raise InvalidInput("Source: the web address has no host name.", field="source")
    if source.lower().startswith("http://") and not _is_loopback(host):
        raise InvalidInput(
            "Source: use an https:// address (plain http is allowed only for this machine).", field="source"
        )
    return source


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_file(source: str, *, tenant: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The file a source names, which must lie inside the tenant's own folder, ``SWITCHBOARD_CSV_DIR/<tenant>``
    (symbolic links resolved), so that one tenant's admin can never read another tenant's files.

    Without a tenant (an operator's tool calling the connector directly) the whole folder is allowed.
    """
    folder = environ.get(CSV_DIR_ENV, "").strip()
    if not folder:
        raise ConnectorError(
            f"Reading CSV files on the server is switched off: give an https:// address, or ask the operator to "
            f"set {CSV_DIR_ENV} to the folder the files may be read from",
            field="source",
        )
    root = (Path(folder) / tenant).resolve() if tenant else Path(folder).resolve()
    path = (root / source).resolve()  # an absolute source replaces the root
    if not path.is_relative_to(root):
        raise ConnectorError(
            "The CSV file must lie in your organisation's CSV folder on the server (give just its name)",
            field="source",
        )
    if not path.is_file():
        raise ConnectorError(
            f"There is no CSV file {source!r} in your organisation's CSV folder on the server", field="source"
        )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConnectorError(f"The CSV file is larger than {MAX_FILE_BYTES // 2**20} MB", field="source")
    return path


# ------------------------------------------------------------------------------------------------ connector


class CsvConnector:
    """Reads the source once per fetch and yields a page of records at a time."""

    def __init__(
        self, http: CrmHttp, settings: Mapping[str, str], *, page_size: int = DEFAULT_PAGE, tenant: str | None = None
    ) -> None:
        self.http = http
        self.tenant = tenant
        self.settings = dict(settings)
        self.source = settings["source"].strip()
        self.page_size = max(1, page_size)
        if is_url(self.source):
            check_url(self.source)
        if settings.get("popup_url", "").strip():
            parse_popup_url(settings["popup_url"])

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        """Yield the rows as records, ``page_size`` at a time; a repeated id keeps its first row."""
        with await self._open() as stream, self._sheet(stream) as (sheet, mapper):
            seen: set[str] = set()
            page: list[FetchedRecord] = []
            pages = records = repeated = 0
            for number, row in sheet.rows:
                record = mapper.map(number, row)
                if record.record_id in seen:
                    repeated += 1
                    continue
                seen.add(record.record_id)
                page.append(record)
                if len(page) == self.page_size:
                    pages, records = pages + 1, records + len(page)
                    _report(progress, pages, records)
                    yield page
                    page = []
            if page or not pages:
                _report(progress, pages + 1, records + len(page))
            if page:
                yield page
            if repeated:
                log.warning("CSV: %d rows repeat an id seen in an earlier row; the first row was kept", repeated)

    async def test_connection(self) -> ConnectionTest:
        """Read the file: how many rows it has and the first record."""
        with await self._open() as stream, self._sheet(stream) as (sheet, mapper):
            sample: FetchedRecord | None = None
            count = 0
            for number, row in sheet.rows:
                count += 1
                if sample is None:
                    sample = mapper.map(number, row)
            return ConnectionTest(count, sample, [OBJECT_TYPE])

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def _open(self) -> IO[bytes]:
        if not is_url(self.source):
            return resolve_file(self.source, tenant=self.tenant).open("rb")
        response = await self.http.request(
            "GET", self.source, what="the CSV file", authenticate=False,
            headers={"Accept": "text/csv, text/plain;q=0.9, */*;q=0.5"}, accept=lambda status: status in (404, 410),
        )  # fmt: skip
        if response.status in (404, 410):
            raise ConnectorError(f"There is no file at {self.source} ({response.status})", field="source")
        if "html" in response.headers.get("content-type", "").lower() or response.content.lstrip()[:1] == b"<":
            raise ConnectorError(
                "The address gives a web page, not a CSV file (a sign-in page?): use the link of the CSV export "
                "itself, e.g. Google Sheets' 'Publish to web' link in CSV format",
                field="source",
            )
        return io.BytesIO(response.content)

    @contextlib.contextmanager
    def _sheet(self, stream: IO[bytes]) -> Iterator[tuple[Sheet, RowMapper]]:
        encoding = self.settings.get("encoding") or "auto"
        delimiter = self.settings.get("delimiter") or "auto"
        with open_sheet(stream, encoding=encoding, delimiter=delimiter) as sheet:
            if not any(sheet.header):
                raise ConnectorError("The CSV file is empty: it needs a first row with the column names")
            columns = find_columns(sheet.header, self.settings)
            yield sheet, RowMapper(sheet.header, columns, self.settings.get("popup_url", ""))


def _report(progress: Callable[[PageProgress], None] | None, pages: int, records: int) -> None:
    if progress is not None:
        progress(PageProgress(OBJECT_TYPE, pages, records))


def create_connector(context: ConnectorContext) -> CsvConnector:
    """The connector interface entry point (``module = "presets.csv_file"``)."""
    return CsvConnector(
        context.http, context.settings, page_size=context.page_size or DEFAULT_PAGE, tenant=context.tenant
    )
