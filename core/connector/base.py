"""The connector interface: what a sync gets from a CRM, and the knobs of the HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

TokenCallback = Callable[[dict[str, str]], None]
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class FetchedRecord:
    """One CRM record, flattened for the cache.

    ``record_id`` is unique within the integration (``"contacts:123"``); ``fields`` holds ``DisplayName``,
    ``Identifier``, ``PopUpUri`` and the preset's own fields as strings (missing → ``""``); ``phones`` holds
    ``(label, raw number text)`` pairs as found in the CRM, normalised later.
    """

    object_type: str
    record_id: str
    fields: dict[str, str]
    phones: list[tuple[str, str]]


@dataclass(slots=True)
class PageProgress:
    """Reported after every page: how far the fetch of one object type has come."""

    object_type: str
    pages: int
    records: int


@dataclass(slots=True)
class ConnectionTest:
    """The answer to "does it work?": the first page of the first object type."""

    count: int | None
    sample: FetchedRecord | None
    object_types: list[str] = field(default_factory=list)


@runtime_checkable
class Connector(Protocol):
    """What a sync needs from a CRM; presets with a code module implement it themselves."""

    def fetch(self, *, progress: Callable[[PageProgress], None] | None = None) -> AsyncIterator[list[FetchedRecord]]:
        """Yield one list of records per page, for every object type in turn."""
        ...

    async def test_connection(self) -> ConnectionTest:
        """Fetch the first page of the first object type only."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts per request, exponential backoff with jitter, and a cap on total waiting."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_total: float = 300.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for a connection and for each read."""

    connect: float = 10.0
    read: float = 30.0


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUTS = Timeouts()
