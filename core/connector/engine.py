"""The declarative connector: a preset plus settings become paged requests and ``FetchedRecord`` lists."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from core.connector.auth import build_auth
from core.connector.base import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    Clock,
    ConnectionTest,
    Connector,
    FetchedRecord,
    PageProgress,
    RetryPolicy,
    Sleep,
    Timeouts,
    TokenCallback,
)
from core.connector.http import CrmHttp, CrmResponse, Redactor
from core.connector.mapping import RecordMapper
from core.connector.pagination import PageRequest, PageResult, make_pager
from core.connector.paths import resolve, to_int
from core.errors import ConnectorError, PresetError
from core.presets import ObjectType, Preset, load_preset_module, render_settings_template, validate_settings

log = logging.getLogger("core.connector")

TEST_PAGE_SIZE = 10


@dataclass(frozen=True, slots=True)
class Page:
    """One page of raw records with the response it came in."""

    number: int
    records: list[Any]
    body: Any
    response: CrmResponse


class ApiConnector:
    """Fetches every object type of a preset, page by page, through one ``CrmHttp`` client."""

    def __init__(
        self, preset: Preset, settings: Mapping[str, str], http: CrmHttp, *, page_size: int | None = None
    ) -> None:
        self.preset = preset
        self.settings = dict(settings)
        self.http = http
        self._page_size = page_size

    async def __aenter__(self) -> ApiConnector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        """Yield the records of each page, every object type in turn; a record seen before is left out."""
        seen: set[str] = set()
        for obj in self.preset.objects:
            mapper = self.mapper(obj)
            records = skipped = 0
            async with contextlib.aclosing(self.pages(obj)) as pages:
                async for page in pages:
                    batch: list[FetchedRecord] = []
                    for raw in page.records:
                        record = mapper.map(raw)
                        if record is None:
                            skipped += 1
                        elif record.record_id not in seen:
                            seen.add(record.record_id)
                            batch.append(record)
                    records += len(batch)
                    if progress is not None:
                        progress(PageProgress(obj.type, page.number, records))
                    if batch:
                        yield batch
            if skipped:
                log.warning("%s: skipped %d %s without an id", self.preset.name, skipped, obj.type)

    async def test_connection(self) -> ConnectionTest:
        """Fetch one small first page of the first object type: the total (if reported) and a sample."""
        obj = self.preset.objects[0]
        mapper = self.mapper(obj)
        async with contextlib.aclosing(self.pages(obj, size=TEST_PAGE_SIZE)) as pages:
            async for page in pages:
                sample = next((r for r in map(mapper.map, page.records) if r is not None), None)
                return ConnectionTest(self._total(obj, page), sample, self.preset.object_types)
        return ConnectionTest(None, None, self.preset.object_types)  # unreachable: a pager sends one request

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    def mapper(self, obj: ObjectType) -> RecordMapper:
        """The record mapper of one object type."""
        return RecordMapper(self.preset, obj, self.settings)

    async def pages(self, obj: ObjectType, *, size: int | None = None) -> AsyncGenerator[Page, None]:
        """The raw pages of one object type, until its pagination style says the list has ended."""
        paging = obj.pagination
        pager = make_pager(
            paging, self._base_request(obj), size=size or self._page_size, crm=self.preset.name, object_type=obj.type
        )
        request: PageRequest | None = pager.first()
        number = fetched = 0
        while request is not None:
            number += 1
            if number > paging.max_pages:
                raise ConnectorError(
                    f"{self.preset.name} was still sending {obj.type} after {paging.max_pages:,} pages: stopped "
                    f"(raise pagination.max_pages in the preset if the list really is that long)"
                )
            what = f"page {number} of {obj.type}"
            response = await self.http.request(
                obj.method, request.target, what=what, params=request.params, json=request.body,
                headers=request.headers,
            )  # fmt: skip
            body = self._decode(response, what)
            records = self._records(obj, body, what)
            fetched += len(records)
            yield Page(number, records, body, response)
            result = PageResult(body, response.headers, response.url, len(records), fetched)
            request = pager.next(request, result)

    def _base_request(self, obj: ObjectType) -> PageRequest:
        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return render_settings_template(value, self.settings)
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        body = {k: fill(v) for k, v in obj.body.items()} if obj.body is not None else None
        return PageRequest(fill(obj.path), fill(obj.params), body, fill(obj.headers))

    def _decode(self, response: CrmResponse, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            looks_like_html = response.content.lstrip()[:1] == b"<"
            hint = " (it looks like a web page: check the API address setting)" if looks_like_html else ""
            raise ConnectorError(
                f"{self.preset.name} returned data that is not valid JSON on {what}{hint}",
                status=response.status,
                retryable=True,
            ) from None

    def _records(self, obj: ObjectType, body: Any, what: str) -> list[Any]:
        found = resolve(body, obj.records) if obj.records else body
        if found is None:
            return []
        if not isinstance(found, list):
            where = f"'{obj.records}'" if obj.records else "the top level"
            raise ConnectorError(
                f"{self.preset.name} returned an unexpected answer on {what}: no list of records at {where}"
            )
        return found

    def _total(self, obj: ObjectType, page: Page) -> int | None:
        paging = obj.pagination
        if paging.total_path:
            return to_int(resolve(page.body, paging.total_path))
        if paging.total_header:
            return to_int(page.response.headers.get(paging.total_header))
        return None


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What a preset's code module gets: its preset, the checked settings, the HTTP client and the engine.

    The module's ``create_connector(context)`` returns a ``Connector``; it may wrap ``context.api`` (the
    declarative engine over the same client) or talk to ``context.http`` directly. ``page_size`` is what the
    caller asked for (``None``: the module's own default); ``tenant`` is the slug of the tenant it serves
    (``None`` when an operator tool calls it outside any tenant).
    """

    preset: Preset
    settings: dict[str, str]
    http: CrmHttp
    api: ApiConnector
    page_size: int | None = None
    tenant: str | None = None


def build_connector(
    preset: Preset,
    settings: Mapping[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_tokens: TokenCallback | None = None,
    tokens: Mapping[str, str] | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy = DEFAULT_RETRY,
    ca_bundle: str | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.time,
    page_size: int | None = None,
    tenant: str | None = None,
) -> Connector:
    """A connector for ``preset`` with the admin's ``settings`` (checked again here).

    ``tokens`` are OAuth tokens stored from an earlier ``on_tokens`` call or ``exchange_code``; ``sleep`` and
    ``clock`` are injectable for tests; ``page_size`` is clamped to the vendor's maximum;
    ``tenant`` (the tenant's slug) lets a code module keep each tenant's local files apart.
    """
    if preset.is_script_only:
        raise PresetError(f"{preset.name} has no API to fetch from (it is a script-only preset)")
    values = validate_settings(preset, settings)
    redactor = Redactor()
    redactor.add(*(values[name] for name in preset.secret_settings))
    auth = build_auth(preset, values, redactor=redactor, tokens=tokens, on_tokens=on_tokens, clock=clock)
    http = CrmHttp(
        crm=preset.name, base_url=values.get("api_base_url", ""), auth=auth, redactor=redactor,
        headers={name: render_settings_template(v, values) for name, v in preset.headers.items()},
        transport=transport, timeouts=timeouts, retry=retry, ca_bundle=ca_bundle, sleep=sleep, clock=clock,
        settings={s.name: (s.label, values[s.name]) for s in preset.settings},
    )  # fmt: skip
    api = ApiConnector(preset, values, http, page_size=page_size)
    if preset.module is None:
        return api
    context = ConnectorContext(preset, values, http, api, page_size, tenant)
    connector: Connector = load_preset_module(preset).create_connector(context)
    return connector
