"""A scripted in-memory connector for sync and scheduler tests, and a node process that runs the scheduler.

``python -m tests.core.sync_fakes DATABASE_URL NODE TTL`` runs a :class:`~core.scheduler.SchedulerService`
whose connectors are :class:`FakeConnector` objects (records derived from the integration's id), until
SIGTERM; the test drives two of these against one database.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from core.connector.base import ConnectionTest, Connector, FetchedRecord, PageProgress
from core.errors import ConnectorError


def person(index: int, *phones: tuple[str, str], object_type: str = "contacts") -> FetchedRecord:
    """A record ``contacts:<index>`` with the given (label, raw) phone fields."""
    fields = {
        "DisplayName": f"Person {index}",
        "Identifier": str(index),
        "PopUpUri": f"https://crm.example.com/{index}",
    }
    return FetchedRecord(object_type, f"{object_type}:{index}", fields, list(phones))


def people(start: int, count: int, *, base: int = 2_000_000) -> list[FetchedRecord]:
    """``count`` records, each with a unique Amsterdam landline and mobile number."""
    return [
        person(i, ("Phone", f"020 {base + i:07d}"), ("Mobile", f"06 {10_000_000 + base + i:08d}"))
        for i in range(start, start + count)
    ]


def pages_of(records: Sequence[FetchedRecord], size: int) -> list[list[FetchedRecord]]:
    """``records`` cut into pages of ``size``."""
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


class FakeConnector:
    """Yields the given pages; can fail before page ``fail_at`` (1-based) or wait on ``gate`` there."""

    def __init__(
        self,
        pages: Sequence[Sequence[FetchedRecord]],
        *,
        fail_at: int | None = None,
        error: BaseException | None = None,
        gate: asyncio.Event | None = None,
        delay: float = 0.0,
    ) -> None:
        self.pages = [list(p) for p in pages]
        self.fail_at = fail_at
        self.error = error or ConnectorError("the CRM answered with an error (500) for page 3 of contacts")
        self.gate = gate
        self.delay = delay
        self.closed = False
        self.served = 0

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        """Yield the pages in turn, reporting progress as the real connector does."""
        records = 0
        for number, page in enumerate(self.pages, start=1):
            if number == self.fail_at:
                if self.gate is not None:
                    await self.gate.wait()
                else:
                    raise self.error
            if self.delay:
                await asyncio.sleep(self.delay)
            records += len(page)
            self.served = number
            if progress is not None:
                progress(PageProgress(page[0].object_type if page else "contacts", number, records))
            yield page

    async def test_connection(self) -> ConnectionTest:
        """The first page's size and its first record."""
        first = self.pages[0] if self.pages else []
        return ConnectionTest(len(first), first[0] if first else None, ["contacts"])

    async def aclose(self) -> None:
        """Remember being closed."""
        self.closed = True


def node_connector(integration_id: int, *, hang: set[int] | None = None) -> Connector:
    """The connector a test node uses: 250 records over 5 pages, numbers unique per integration."""
    base = 1_000_000 + integration_id * 1_000
    gate = asyncio.Event() if hang and integration_id in hang else None
    return FakeConnector(pages_of(people(0, 250, base=base), 50), fail_at=3 if gate else None, gate=gate, delay=0.02)


def _main(argv: list[str]) -> None:
    """Run a scheduler node until SIGTERM (see the module docstring); a file ``<url>.hang`` lists ids to stall."""
    from cryptography.fernet import Fernet

    from core.db import make_engine
    from core.runtime import Runtime
    from core.scheduler import SchedulerService
    from core.security import SecretBox
    from core.serve import ServeOptions
    from core.settings import Settings

    url, node, ttl = argv[1], argv[2], float(argv[3])
    hang = {int(x) for x in argv[4].split(",") if x} if len(argv) > 4 else set()
    engine = make_engine(url)
    runtime = Runtime(Settings(database_url=url, data_dir=Path(".")), engine, SecretBox(Fernet.generate_key()))

    async def run() -> None:
        service = SchedulerService(
            runtime,
            ServeOptions(node=node),
            poll_interval=0.2,
            lease_ttl=ttl,
            connector_factory=lambda _runtime, iid: node_connector(iid, hang=hang),
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await service.start()
        print("ready", flush=True)
        await stop.wait()
        await service.stop()

    asyncio.run(run())
    engine.dispose()


if __name__ == "__main__":
    _main(sys.argv)
