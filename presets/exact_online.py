"""Exact Online: when no division is set, use the one the signed-in user works in.

Every Exact Online URL holds a division (an administration). Admins rarely know its number, so the setting may be
left empty: before the first listing the connector asks ``GET /api/v1/current/Me`` for ``CurrentDivision`` — the
administration the user who signed in last opened — and uses it for the requests and the screen-pop links.
Everything else is the declarative preset (``exact-online.toml``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from core.connector import ApiConnector, ConnectionTest, Connector, ConnectorContext, FetchedRecord, PageProgress
from core.connector.paths import resolve, to_text
from core.errors import ConnectorError

WHAT = "the division of the signed-in Exact Online user"


def create_connector(context: ConnectorContext) -> Connector:
    """The declarative connector, with the division found when the setting is empty."""
    return ExactOnlineConnector(context.preset, context.settings, context.http, page_size=context.page_size)


class ExactOnlineConnector(ApiConnector):
    """``ApiConnector`` that settles the division before anything else is requested."""

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncGenerator[list[FetchedRecord], None]:
        """Every page of accounts and contacts of the division."""
        await self.resolve_division()
        async for batch in super().fetch(progress=progress):
            yield batch

    async def test_connection(self) -> ConnectionTest:
        """The first page of accounts of the division."""
        await self.resolve_division()
        return await super().test_connection()

    async def resolve_division(self) -> str:
        """The division setting, or ``CurrentDivision`` of the signed-in user (remembered for this connector)."""
        if self.settings.get("division"):
            return self.settings["division"]
        params = {"$select": "CurrentDivision"}
        response = await self.http.request("GET", "/api/v1/current/Me", params=params, what=WHAT)
        division = _current_division(_json(response.json))
        if not division.isdigit():
            raise ConnectorError(
                "Exact Online did not say which division the signed-in user works in: enter the division (the "
                "number after _Division_= in an Exact Online address) in the integration's settings"
            )
        self.settings["division"] = division
        return division


def _json(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ValueError:
        return None


def _current_division(body: Any) -> str:
    """``CurrentDivision`` from ``{"d": {"results": [{...}]}}`` (or ``{"d": {...}}``)."""
    found = resolve(body, "d.results.0.CurrentDivision")
    if found is None:
        found = resolve(body, "d.CurrentDivision")
    return to_text(found)
