"""Benchmark of the non-CRM-API presets' sync side: how fast records come out of a CSV file, vCards and a JSON API.

Figures: CSV rows per second read from a file (encoding and delimiter detected, columns found, every row mapped)
and the peak Python memory while reading (rows are streamed: it grows only with the set of ids seen, which
repeated rows are checked against, about 60 bytes a row); vCards mapped
per second (parsing, name, company, e-mail, TEL labels); records per second from the generic REST preset over
HTTP on 127.0.0.1 (offset paging, 500 a page). Phone numbers are not normalised here: that is the sync's cost.

Run: ``make bench`` or ``python -m tests.bench.bench_presets``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path

from core.connector import Connector, build_connector
from core.presets import get_preset
from presets.carddav import card_record
from presets.csv_file import CSV_DIR_ENV
from tests.crm.generic_rest import GenericRestApi
from tests.crm.server import serve

CSV_ROWS = 100_000
CARDS = 20_000
API_RECORDS = 20_000
HEADER = ("Klantnummer", "Voornaam", "Achternaam", "Bedrijf", "Telefoon", "Mobiel", "E-mailadres", "Opmerking")


def _csv_bytes(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    for i in range(rows):
        writer.writerow([f"K-{i}", "Jörg", f"Müller {i}", "Bäckerei Groß GmbH", f"030 {20_000_000 + i}",
                         f"+49 151 {30_000_000 + i}", f"j{i}@example.de", "Rückruf; bitte vor 9 Uhr"])  # fmt: skip
    return out.getvalue().encode("cp1252")


def _card(i: int) -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{i}\r\nFN:Zoë Brückner {i}\r\nN:Brückner;Zoë;;;\r\n"
        f"ORG:Müller & Söhne KG;Vertrieb\r\nEMAIL;TYPE=work:z{i}@example.de\r\nTEL;TYPE=work,voice:030 {i:08d}\r\n"
        f"TEL;TYPE=cell:+49 151 {i:08d}\r\nitem1.TEL:0171 {i:07d}\r\nitem1.X-ABLabel:_$!<Mobile>!$_\r\n"
        f"NOTE:{'Lange Notiz, die gefaltet wird. ' * 4}\r\nEND:VCARD\r\n"
    )


async def _drain(connector: Connector) -> int:
    count = 0
    try:
        async for page in connector.fetch():
            count += len(page)
    finally:
        await connector.aclose()
    return count


def _timed(make: Callable[[], Coroutine[None, None, int]]) -> tuple[int, float]:
    started = time.perf_counter()
    count = asyncio.run(make())
    return count, time.perf_counter() - started


def bench_csv(folder: Path) -> list[tuple[str, str]]:
    """Read a 100,000-row Windows-1252 export twice: once timed, once with memory tracing."""
    (folder / "export.csv").write_bytes(_csv_bytes(CSV_ROWS))
    os.environ[CSV_DIR_ENV] = str(folder)
    preset = get_preset("csv")
    count, seconds = _timed(lambda: _drain(build_connector(preset, {"source": "export.csv"})))
    tracemalloc.start()
    asyncio.run(_drain(build_connector(preset, {"source": "export.csv"})))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size_mb = (folder / "export.csv").stat().st_size / 2**20
    return [
        (f"CSV file ({count:,} rows, {size_mb:.1f} MB, cp1252, ;)", f"{count / seconds:,.0f} rows/s"),
        ("CSV peak Python memory while reading", f"{peak / 2**20:.1f} MB"),
    ]


def bench_vcards() -> list[tuple[str, str]]:
    """Map 20,000 vCards as the CardDAV preset does after a multiget."""
    cards = [_card(i) for i in range(CARDS)]
    started = time.perf_counter()
    for i, text in enumerate(cards):
        card_record(text, href=f"/dav/anna/contacts/card-{i}.vcf", public_url="https://dav.example.com")
    seconds = time.perf_counter() - started
    return [(f"vCards mapped ({CARDS:,})", f"{CARDS / seconds:,.0f} cards/s")]


def bench_generic_rest() -> list[tuple[str, str]]:
    """Fetch 20,000 records from the emulated JSON API, 500 a page."""
    records = [
        {"id": i, "first_name": "Zoë", "last_name": f"Brückner {i}", "company": {"name": "Groß KG"},
         "phone": f"030 {i:08d}", "phones": [{"number": f"+49 151 {i:08d}"}]}
        for i in range(API_RECORDS)
    ]  # fmt: skip
    api = GenericRestApi(records, style="offset", auth="none", max_size=500)
    with serve(api.app) as url:
        values = {"api_base_url": f"{url}/api/v1", "records_endpoint": "/contacts", "records_path": "data",
                  "name_fields": "first_name, last_name", "phone_fields": "phone, phones[].number",
                  "company_field": "company.name", "pagination": "offset", "page_size": "500"}  # fmt: skip
        count, seconds = _timed(lambda: _drain(build_connector(get_preset("generic-rest"), values)))
    return [(f"generic REST over HTTP ({count:,} records, 500/page)", f"{count / seconds:,.0f} records/s")]


def main() -> None:
    """Run the three measurements and print the table."""
    with tempfile.TemporaryDirectory(prefix="sb-bench-presets-") as tmp:
        rows = [*bench_csv(Path(tmp)), *bench_vcards(), *bench_generic_rest()]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  figure")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
