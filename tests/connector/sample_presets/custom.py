"""The code module of ``custom.toml``: implements the connector interface by wrapping the engine."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

from core.connector import ConnectionTest, ConnectorContext, FetchedRecord, PageProgress


class ShoutingConnector:
    """The declarative engine's records, with display names in capitals."""

    def __init__(self, context: ConnectorContext) -> None:
        self.api = context.api

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        async for page in self.api.fetch(progress=progress):
            yield [self._shout(record) for record in page]

    async def test_connection(self) -> ConnectionTest:
        result = await self.api.test_connection()
        return dataclasses.replace(result, sample=self._shout(result.sample) if result.sample else None)

    async def aclose(self) -> None:
        await self.api.aclose()

    @staticmethod
    def _shout(record: FetchedRecord) -> FetchedRecord:
        return dataclasses.replace(
            record, fields={**record.fields, "DisplayName": record.fields["DisplayName"].upper()}
        )


def create_connector(context: ConnectorContext) -> ShoutingConnector:
    """The hook the preset loader looks for."""
    return ShoutingConnector(context)
