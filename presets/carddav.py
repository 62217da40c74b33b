"""CardDAV address books (Nextcloud, iCloud, Fastmail, Radicale, Baïkal, ...) as a switchboard connector.

Discovery follows RFC 6764, 5397 and 6352: the address the admin gives may be one address book, an
address-book home, a principal or just the server (then ``/.well-known/carddav`` is asked). Every address book
found is listed with ``PROPFIND`` (Depth 1) and its cards are fetched with ``addressbook-multiget`` reports in
batches, so memory stays bounded and progress is reported per batch. vCard 2.1, 3.0 and 4.0 are read: folded
lines, quoted-printable values with their ``CHARSET``, ``TEL`` type parameters and Apple ``itemN.X-ABLabel``
labels (through the engine's :func:`~core.connector.vcard_phones`).

Credentials only go to the host the admin typed: a server that points elsewhere (iCloud keeps address books on
``pNN-contacts.icloud.com``) gets an error that tells the admin which address to enter instead.
"""

from __future__ import annotations

import logging
import quopri
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from core.connector import ConnectionTest, ConnectorContext, FetchedRecord, PageProgress, vcard_phones
from core.connector.http import CrmHttp
from core.connector.mapping import split_unquoted
from core.errors import ConnectorError
from core.presets import Preset

log = logging.getLogger("presets.carddav")

OBJECT_TYPE = "contacts"
DEFAULT_BATCH = 100
MAX_BATCH = 500
TEST_BATCH = 10
DAV = "DAV:"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
FIELD_NAMES = ("DisplayName", "Identifier", "PopUpUri", "company", "email", "title", "address_book")

_XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8", "Accept": "application/xml, text/xml"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NOT_HERE = frozenset({400, 403, 404, 405, 501})  # during discovery: "not a CardDAV resource", try elsewhere
_MAX_HOPS = 3
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def _clark(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


RESOURCETYPE = _clark(DAV, "resourcetype")
DISPLAYNAME = _clark(DAV, "displayname")
PRINCIPAL = _clark(DAV, "current-user-principal")
HOME_SET = _clark(CARDDAV, "addressbook-home-set")
ADDRESS_DATA = _clark(CARDDAV, "address-data")
CONTENT_TYPE = _clark(DAV, "getcontenttype")
ETAG = _clark(DAV, "getetag")


# ------------------------------------------------------------------------------------------------ WebDAV XML


@dataclass(frozen=True, slots=True)
class DavResponse:
    """One ``<D:response>`` of a multistatus: its href, its own status (if any) and the properties found (200)."""

    href: str
    status: int | None
    props: dict[str, ET.Element]

    def hrefs(self, prop: str) -> list[str]:
        """The ``<D:href>`` values inside property ``prop`` (a principal, a home set)."""
        element = self.props.get(prop)
        if element is None:
            return []
        return [text.strip() for text in (e.text for e in element.iter(_clark(DAV, "href"))) if text and text.strip()]

    def has_type(self, name: str, namespace: str = DAV) -> bool:
        """Whether ``resourcetype`` lists ``name`` (``collection``, ``addressbook``)."""
        element = self.props.get(RESOURCETYPE)
        return element is not None and element.find(_clark(namespace, name)) is not None

    def text(self, prop: str) -> str:
        """The text of a simple property; ``""`` if absent."""
        element = self.props.get(prop)
        return (element.text or "").strip() if element is not None else ""


def propfind_body(props: Iterable[str]) -> bytes:
    """A ``PROPFIND`` request body asking for ``props`` (Clark names)."""
    inner = "".join(_element(prop) for prop in props)
    return _document(f'<D:propfind xmlns:D="DAV:" xmlns:C="{CARDDAV}"><D:prop>{inner}</D:prop></D:propfind>')


def multiget_body(hrefs: Iterable[str]) -> bytes:
    """An ``addressbook-multiget`` report body for ``hrefs`` (RFC 6352 §8.7)."""
    refs = "".join(f"<D:href>{escape(href)}</D:href>" for href in hrefs)
    return _document(
        f'<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="{CARDDAV}">'
        f"<D:prop><D:getetag/><C:address-data/></D:prop>{refs}</C:addressbook-multiget>"
    )


def _element(clark: str) -> str:
    namespace, _, name = clark[1:].partition("}")
    return f"<{'C' if namespace == CARDDAV else 'D'}:{name}/>"


def _document(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")


def parse_multistatus(content: bytes, *, crm: str, what: str) -> list[DavResponse]:
    """The responses of a ``207 Multi-Status`` body; ``ConnectorError`` if it is not one.

    Documents with a DTD or entity declarations are refused outright (no entity expansion from a server).
    """
    if _DECLARATION.search(content):
        raise ConnectorError(f"{crm} sent XML with a document type declaration on {what}; refused for safety")
    try:
        root = ET.fromstring(content)  # noqa: S314 - declarations refused above; expat limits amplification
    except ET.ParseError as exc:
        raise ConnectorError(f"{crm} sent XML that cannot be read on {what} ({exc})", retryable=True) from None
    if root.tag != _clark(DAV, "multistatus"):
        raise ConnectorError(f"{crm} did not answer {what} with a WebDAV listing: check the address")
    found: list[DavResponse] = []
    for response in root.findall(_clark(DAV, "response")):
        props: dict[str, ET.Element] = {}
        for propstat in response.findall(_clark(DAV, "propstat")):
            if _status(propstat.findtext(_clark(DAV, "status"))) not in (200, None):
                continue
            prop = propstat.find(_clark(DAV, "prop"))
            props.update({child.tag: child for child in (prop if prop is not None else [])})
        href = (response.findtext(_clark(DAV, "href")) or "").strip()
        found.append(DavResponse(href, _status(response.findtext(_clark(DAV, "status"))), props))
    return found


def _status(line: str | None) -> int | None:
    """``HTTP/1.1 404 Not Found`` → 404."""
    parts = (line or "").split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


# ------------------------------------------------------------------------------------------------ vCard


@dataclass(frozen=True, slots=True)
class VCardProperty:
    """One content line: ``group.NAME;PARAM=a,b:value``, the value decoded (quoted-printable) but not unescaped."""

    group: str
    name: str
    params: tuple[tuple[str, str], ...]
    value: str
    head: str

    def param(self, name: str) -> list[str]:
        """Every value of parameter ``name`` (upper case), e.g. ``TYPE`` → ``["WORK", "VOICE"]``."""
        return [value for key, value in self.params if key == name]

    @property
    def text(self) -> str:
        """The value as text: escapes resolved, line breaks as spaces."""
        return " ".join(_unescape(self.value).split())

    @property
    def components(self) -> list[str]:
        """A structured value (``N``, ``ORG``) split at unescaped semicolons, each component unescaped."""
        return [" ".join(_unescape(part).split()) for part in _split_escaped(self.value, ";")]


def parse_vcard(text: str) -> list[VCardProperty]:
    """The properties of the first vCard in ``text`` (2.1, 3.0 or 4.0); ``[]`` if there is none."""
    properties: list[VCardProperty] = []
    inside = False
    for line in _logical_lines(text):
        prop = _property(line)
        if prop is None:
            continue
        if prop.name == "BEGIN" and prop.value.strip().upper() == "VCARD":
            inside = True
        elif prop.name == "END" and prop.value.strip().upper() == "VCARD":
            if inside:
                break
        elif inside:
            properties.append(prop)
    return properties


def _logical_lines(text: str) -> list[str]:
    """Unfold: a line starting with a space or tab continues the previous one (3.0/4.0), and so does the line
    after a quoted-printable value ending in a soft line break ``=`` (2.1)."""
    lines: list[str] = []
    soft_break = False
    for line in re.split(r"\r\n|\r|\n", text):
        if soft_break and lines:
            lines[-1] = lines[-1][:-1] + line.lstrip(" \t")
        elif line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]
        elif line.strip():
            lines.append(line)
        else:
            continue
        soft_break = lines[-1].endswith("=") and _is_quoted_printable(lines[-1])
    return lines


def _is_quoted_printable(line: str) -> bool:
    head, _, _ = _split_line(line)
    return "QUOTED-PRINTABLE" in (head or "").upper()


def _split_line(line: str) -> tuple[str | None, str, str]:
    """The head (``group.NAME;params``) and value, split at the first colon outside double quotes."""
    head, colon, value = line.partition(":")
    if not colon:
        return None, "", ""
    if '"' not in head:  # the common case: no quoted parameter value that could hold a colon
        return head, colon, value
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:index], ":", line[index + 1 :]
    return None, "", ""


def _property(line: str) -> VCardProperty | None:
    head, _, value = _split_line(line)
    if head is None:
        return None
    name, *raw_params = split_unquoted(head, ";")
    group, _, name = name.strip().rpartition(".")
    params: list[tuple[str, str]] = []
    for raw in raw_params:
        key, has_value, values = raw.partition("=")
        if not has_value:  # vCard 2.1: TEL;WORK;VOICE:  and  FN;QUOTED-PRINTABLE:
            bare = key.strip().upper()
            is_encoding = bare in ("QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT")
            params.append(("ENCODING" if is_encoding else "TYPE", bare))
            continue
        for item in split_unquoted(values, ","):
            params.append((key.strip().upper(), item.strip().strip('"')))
    prop = VCardProperty(group.lower(), name.upper(), tuple(params), value, head)
    if any(v.upper() == "QUOTED-PRINTABLE" for v in prop.param("ENCODING")):
        charset = (prop.param("CHARSET") or ["utf-8"])[0]
        prop = VCardProperty(prop.group, prop.name, prop.params, _decode_qp(value, charset), head)
    return prop


def _decode_qp(value: str, charset: str) -> str:
    """A quoted-printable value in its declared charset; UTF-8 then Windows-1252 when the declaration lies."""
    raw = quopri.decodestring(value.encode("ascii", errors="replace"))
    for encoding in dict.fromkeys((charset, "utf-8")):
        try:
            return raw.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("cp1252", errors="replace")


def _split_escaped(value: str, separator: str) -> list[str]:
    """Split at ``separator`` unless it is escaped with a backslash (the escapes stay for ``_unescape``)."""
    if "\\" not in value:
        return value.split(separator)
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            current.append(char + next(chars, ""))
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following in ("n", "N") else following)
        else:
            out.append(char)
    return "".join(out)


# ------------------------------------------------------------------------------------------------ mapping


def card_record(text: str, *, href: str, public_url: str, address_book: str = "") -> FetchedRecord | None:
    """One vCard as a switchboard record; ``None`` if ``text`` holds no vCard.

    ``href`` is the card's address on the server; ``PopUpUri`` is that address made absolute against
    ``public_url`` (the address the admin entered). The record id is the card's path, unique on the server.
    """
    props = parse_vcard(text)
    if not props:
        return None
    first: dict[str, VCardProperty] = {}
    for prop in props:
        first.setdefault(prop.name, prop)
    path = unquote(urlsplit(href).path) or href
    uid = first["UID"].text.removeprefix("urn:uuid:") if "UID" in first else ""
    fields = {
        "DisplayName": _display_name(first, props),
        "Identifier": uid or path.rstrip("/").rpartition("/")[2].removesuffix(".vcf"),
        "PopUpUri": _popup(public_url, href),
        "company": ", ".join(part for part in first["ORG"].components if part) if "ORG" in first else "",
        "email": _preferred_email(props),
        "title": first["TITLE"].text if "TITLE" in first else "",
        "address_book": address_book,
    }
    lines = [f"{p.head}:{p.value}" for p in props if p.name in ("TEL", "X-ABLABEL")]
    return FetchedRecord(OBJECT_TYPE, f"{OBJECT_TYPE}:{path}", fields, vcard_phones("\r\n".join(lines)))


def _display_name(first: Mapping[str, VCardProperty], props: list[VCardProperty]) -> str:
    """``FN``; else the structured ``N`` in reading order; else the organisation, e-mail or nickname."""
    if "FN" in first and first["FN"].text:
        return first["FN"].text
    if "N" in first:
        parts = [part.replace(",", " ") for part in first["N"].components]  # "Hans,Peter": two given names
        family, given, additional, prefix, suffix = (parts + [""] * 5)[:5]
        name = " ".join(part for part in (prefix, given, additional, family, suffix) if part)
        if name:
            return name
    for fallback in ("ORG", "NICKNAME"):
        if fallback in first:
            text = ", ".join(part for part in first[fallback].components if part)
            if text:
                return text
    return _preferred_email(props)


def _preferred_email(props: list[VCardProperty]) -> str:
    emails = [p for p in props if p.name == "EMAIL" and p.text]
    preferred = [p for p in emails if "PREF" in (t.upper() for t in p.param("TYPE")) or p.param("PREF")]
    chosen = (preferred or emails)[:1]
    return chosen[0].text if chosen else ""


def _popup(public_url: str, href: str) -> str:
    url = urljoin(public_url.rstrip("/") + "/", href)
    return url if urlsplit(url).scheme in ("http", "https") else ""


SAMPLE_CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:urn:uuid:6f1c2a4e-5b7d-4c1e-9a3b-2d8e0f4c7a91\r\n"
    "FN:Jürgen Müller\r\nN:Müller;Jürgen;;;\r\nORG:Müller & Söhne GmbH;Vertrieb\r\nTITLE:Geschäftsführer\r\n"
    "EMAIL;TYPE=work,pref:juergen@mueller-soehne.example\r\nTEL;TYPE=work,voice:+49 30 1234567\r\n"
    "TEL;TYPE=cell:+49 170 1234567\r\nEND:VCARD\r\n"
)


def sample_record(preset: Preset, settings: Mapping[str, str]) -> FetchedRecord:
    """A record as this preset maps it, from a made-up card in the address book the settings name.

    A code module's ``sample_record(preset, settings)`` lets the catalogue check its screen-pop link and fields.
    """
    book = settings["url"].rstrip("/") + "/"
    record = card_record(
        SAMPLE_CARD, href=urljoin(book, "6f1c2a4e.vcf"), public_url=settings["url"], address_book="Contacts"
    )
    assert record is not None
    return record


# ------------------------------------------------------------------------------------------------ connector


@dataclass(frozen=True, slots=True)
class AddressBook:
    """An address book found on the server: its absolute URL (ending in ``/``) and its display name."""

    url: str
    name: str


class CardDavConnector:
    """Fetches every address book the user can see, a batch of cards per page."""

    def __init__(self, http: CrmHttp, settings: Mapping[str, str], *, crm: str, batch: int = DEFAULT_BATCH) -> None:
        self.http = http
        self.crm = crm
        self.start = _collection(settings.get("api_base_url") or settings["url"])
        self.public_url = settings["url"]
        self.batch = max(1, min(batch, MAX_BATCH))
        self._books: list[AddressBook] | None = None

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        """Yield the cards of every address book, ``batch`` cards per page; a card seen before is left out."""
        seen: set[str] = set()
        pages = records = 0
        for book in await self.address_books():
            hrefs = await self.card_hrefs(book)
            for start in range(0, len(hrefs), self.batch):
                pages += 1
                cards = await self.cards(book, hrefs[start : start + self.batch])
                batch = [record for record in cards if record.record_id not in seen]
                seen.update(record.record_id for record in batch)
                records += len(batch)
                if progress is not None:
                    progress(PageProgress(OBJECT_TYPE, pages, records))
                if batch:
                    yield batch

    async def test_connection(self) -> ConnectionTest:
        """Find the address books, count their cards and read a few cards of the first one."""
        books = await self.address_books()
        counts = [await self.card_hrefs(book) for book in books]
        sample = None
        for book, hrefs in zip(books, counts, strict=True):
            cards = await self.cards(book, hrefs[:TEST_BATCH]) if hrefs else []
            if cards:
                sample = cards[0]
                break
        return ConnectionTest(sum(len(h) for h in counts), sample, [OBJECT_TYPE])

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    # -------------------------------------------------------------------------------------- discovery

    async def address_books(self) -> list[AddressBook]:
        """The address books at, or under, the configured address (found once, then remembered)."""
        if self._books is None:
            books = await self._discover(self.start)
            if not books and urlsplit(self.start).path in ("", "/"):
                well_known = await self._well_known()
                if well_known is not None and well_known != self.start:
                    books = await self._discover(well_known)
            if not books:
                raise ConnectorError(
                    f"{self.crm} found no address book at {self.start} for this user: check the address (the "
                    f"address book's own link works best) and that the user has at least one address book",
                    field="url",
                )
            self._books = books
        return self._books

    async def _discover(self, url: str) -> list[AddressBook]:
        here = await self._propfind(url, 0, (RESOURCETYPE, DISPLAYNAME, PRINCIPAL, HOME_SET), optional=True)
        if here is None:
            return []
        url, responses = here
        if not responses:
            return []
        this = responses[0]  # Depth 0: the resource itself
        if this.has_type("addressbook", CARDDAV):
            return [AddressBook(url, this.text(DISPLAYNAME) or _last_segment(url))]
        homes = this.hrefs(HOME_SET)
        principal = [self._absolute(url, h) for h in this.hrefs(PRINCIPAL)]
        if not homes and principal and principal[0] != url:
            found = await self._propfind(principal[0], 0, (HOME_SET,), optional=True)
            homes = found[1][0].hrefs(HOME_SET) if found and found[1] else []
        books: dict[str, AddressBook] = {}
        for home in homes or [url]:
            for book in await self._books_in(self._absolute(url, home)):
                books.setdefault(book.url, book)
        return list(books.values())

    async def _books_in(self, home: str) -> list[AddressBook]:
        """The address books among the members of an address-book home."""
        listing = await self._propfind(home, 1, (RESOURCETYPE, DISPLAYNAME))
        assert listing is not None
        home_url, members = listing
        books = []
        for member in members:
            if member.has_type("addressbook", CARDDAV):
                book_url = _collection(self._absolute(home_url, member.href))
                books.append(AddressBook(book_url, member.text(DISPLAYNAME) or _last_segment(book_url)))
        return books

    async def _well_known(self) -> str | None:
        """Where ``/.well-known/carddav`` points (RFC 6764), if the server has it."""
        found = await self._propfind(urljoin(self.start, "/.well-known/carddav"), 0, (RESOURCETYPE,), optional=True)
        return found[0] if found is not None else None

    async def _propfind(
        self, url: str, depth: int, props: Iterable[str], *, optional: bool = False
    ) -> tuple[str, list[DavResponse]] | None:
        """``PROPFIND`` ``url``, following same-server redirects; ``(final url, responses)``.

        With ``optional``, an answer meaning "nothing CardDAV here" (404, 405, ...) gives ``None``.
        """
        body = propfind_body(props)
        allowed = _REDIRECTS | (_NOT_HERE if optional else frozenset())
        for _hop in range(_MAX_HOPS + 1):
            response = await self.http.request(
                "PROPFIND", url, what=f"the listing of {urlsplit(url).path or '/'}", content=body,
                headers={**_XML_HEADERS, "Depth": str(depth)}, accept=allowed.__contains__,
            )  # fmt: skip
            if response.status in _REDIRECTS:
                url = self._absolute(url, response.headers.get("location", ""))
                continue
            if response.status != 207:
                if optional:
                    return None
                raise ConnectorError(
                    f"{self.crm} answered {urlsplit(url).path} with {response.status} instead of a WebDAV listing: "
                    f"check the address",
                    status=response.status,
                )
            return url, parse_multistatus(response.content, crm=self.crm, what=f"the listing of {urlsplit(url).path}")
        raise ConnectorError(f"{self.crm} redirected more than {_MAX_HOPS} times from {self.start}: check the address")

    def _absolute(self, base: str, href: str) -> str:
        """``href`` made absolute; an address on another server is refused (the credentials stay here)."""
        url = urljoin(base, href)
        if _origin(url) != _origin(self.start):
            raise ConnectorError(
                f"{self.crm} keeps these contacts on another server ({_collection(url)}): to keep the password with "
                f"the server you entered, switchboard does not follow it there; enter that address as the URL instead",
                field="url",
            )
        return url

    # -------------------------------------------------------------------------------------- cards

    async def card_hrefs(self, book: AddressBook) -> list[str]:
        """The hrefs of the cards in ``book`` (``PROPFIND`` Depth 1), in the server's order."""
        listing = await self._propfind(book.url, 1, (RESOURCETYPE, CONTENT_TYPE, ETAG))
        assert listing is not None
        book_path = urlsplit(book.url).path
        hrefs: dict[str, None] = {}
        for member in listing[1]:
            if member.status == 507:  # RFC 6578 §3.6 style truncation: never sync a silently shortened list
                raise ConnectorError(
                    f"{self.crm} listed only part of {book.name} (507, too many entries for one answer)", status=507
                )
            path = urlsplit(self._absolute(book.url, member.href)).path
            if path.rstrip("/") == book_path.rstrip("/") or member.has_type("collection"):
                continue
            kind = member.text(CONTENT_TYPE).lower()
            if not kind or "vcard" in kind or path.lower().endswith(".vcf"):
                hrefs[member.href] = None
        return list(hrefs)

    async def cards(self, book: AddressBook, hrefs: list[str]) -> list[FetchedRecord]:
        """The cards ``hrefs`` of ``book`` as records (one ``addressbook-multiget`` report)."""
        what = f"{len(hrefs)} cards of {book.name}"
        response = await self.http.request(
            "REPORT", book.url, what=what, content=multiget_body(hrefs), headers={**_XML_HEADERS, "Depth": "1"}
        )
        records: list[FetchedRecord] = []
        for item in parse_multistatus(response.content, crm=self.crm, what=what):
            text = item.text(ADDRESS_DATA)
            record = card_record(text, href=item.href, public_url=self.public_url, address_book=book.name)
            if record is None:
                log.info("%s: %s has no readable vCard (status %s); skipped", self.crm, item.href, item.status)
                continue
            records.append(record)
        return records


def _collection(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _last_segment(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]) or url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def create_connector(context: ConnectorContext) -> CardDavConnector:
    """The connector interface entry point (``module = "presets.carddav"``)."""
    return CardDavConnector(
        context.http, context.settings, crm=context.preset.name, batch=context.page_size or DEFAULT_BATCH
    )
