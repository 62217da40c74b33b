"""Close: contacts with the name and status of their lead, and Close's page-depth limit in plain words.

The listing is declarative (``close.toml``). What the file cannot say:

- In Close a lead is the company; it holds no phone numbers itself, its contacts do. A caller is a contact,
  so contacts are the records, each with its lead's ``display_name`` and ``status_label``, read first from
  ``/lead/`` with a trimmed ``_fields``. A contact without a name is shown under its lead's name (it is then
  typically the company's switchboard number).
- Close refuses a ``_skip`` beyond a per-resource maximum with a 400; that ends the sync with a message saying
  so (the last good cache stays), never with a silently short list.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from core.connector import ApiConnector, ConnectionTest, Connector, ConnectorContext, FetchedRecord, PageProgress
from core.errors import ConnectorError
from core.presets import ObjectType

CONTACTS, LEADS = "contacts", "leads"
_MAX_SKIP = re.compile(r"maximum skip.*?max_skip\s*=\s*(\d+)", re.IGNORECASE | re.DOTALL)

Lead = Mapping[str, Any]


def create_connector(context: ConnectorContext) -> Connector:
    """Contacts enriched with their leads, over the declarative engine."""
    return CloseConnector(context.api)


class CloseConnector:
    """Reads the leads' names, then yields the contacts page by page with their lead added."""

    def __init__(self, api: ApiConnector) -> None:
        self.api = api
        objects = {obj.type: obj for obj in api.preset.objects}
        self.contacts: ObjectType = objects[CONTACTS]
        self.leads: ObjectType = objects[LEADS]

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        """Every contact, one list per page, each with ``lead.display_name`` and ``lead.status_label``."""
        leads = await self.read_leads(progress)
        mapper = self.api.mapper(self.contacts)
        seen: set[str] = set()
        count = 0
        try:
            async with contextlib.aclosing(self.api.pages(self.contacts)) as pages:
                async for page in pages:
                    batch = []
                    for raw in page.records:
                        record = mapper.map(with_lead(raw, leads))
                        if record is not None and record.record_id not in seen:
                            seen.add(record.record_id)
                            batch.append(record)
                    count += len(batch)
                    if progress is not None:
                        progress(PageProgress(CONTACTS, page.number, count))
                    if batch:
                        yield batch
        except ConnectorError as exc:
            raise _too_deep(exc, CONTACTS) or exc from None

    async def read_leads(self, progress: Callable[[PageProgress], None] | None = None) -> dict[str, Lead]:
        """Every lead's name and status by lead id (a few fields per lead, so memory stays small)."""
        leads: dict[str, Lead] = {}
        try:
            async with contextlib.aclosing(self.api.pages(self.leads)) as pages:
                async for page in pages:
                    for raw in page.records:
                        if isinstance(raw, dict) and raw.get("id"):
                            leads[str(raw["id"])] = {
                                "display_name": raw.get("display_name") or raw.get("name") or "",
                                "status_label": raw.get("status_label") or "",
                            }
                    if progress is not None:
                        progress(PageProgress(LEADS, page.number, len(leads)))
        except ConnectorError as exc:
            raise _too_deep(exc, LEADS) or exc from None
        return leads

    async def test_connection(self) -> ConnectionTest:
        """One small page of contacts (without their leads' names)."""
        return await self.api.test_connection()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.api.aclose()


def with_lead(raw: Any, leads: Mapping[str, Lead]) -> Any:
    """The raw contact with its lead under ``lead``; a nameless contact takes its lead's name."""
    if not isinstance(raw, dict):
        return raw
    lead = leads.get(str(raw.get("lead_id") or ""), {})
    contact = {**raw, "lead": dict(lead)}
    if not str(contact.get("name") or "").strip():
        contact["name"] = lead.get("display_name", "")
    return contact


def _too_deep(exc: ConnectorError, what: str) -> ConnectorError | None:
    """Close's "maximum skip" refusal, explained; ``None`` for any other error."""
    match = _MAX_SKIP.search(exc.message)
    if exc.status != 400 or match is None:
        return None
    limit = int(match.group(1))
    return ConnectorError(
        f"Close lets an API key page through at most {limit:,} {what}, and this account has more: the sync "
        f"stopped there and the numbers cached before stay in use (very large Close accounts are not supported "
        f"yet)",
        status=400,
    )
