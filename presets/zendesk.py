"""Zendesk Support: every phone number of a user, the user's organization, and an organization's phone field.

- A user's ``phone`` holds only the primary number; all of them are ``phone_number`` identities. The users are
  listed with ``include=identities,organizations`` (sideloading), so each page also carries the identities and the
  organizations of its users; each user gets ``switchboard_numbers`` (the identities not already in ``phone``) and
  ``switchboard_organization`` (the organization's name).
- Organizations have no standard phone field; many accounts add one as a custom organization field. The setting
  ``organization_phone_field`` names its key (default ``phone``); its value becomes ``switchboard_phone``.

Everything else is the declarative preset (``zendesk.toml``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator

from core.connector import ApiConnector, Connector, ConnectorContext
from core.connector.engine import Page
from core.connector.paths import to_text
from core.presets import ObjectType

NUMBERS = "switchboard_numbers"
ORGANIZATION = "switchboard_organization"
PHONE = "switchboard_phone"


def create_connector(context: ConnectorContext) -> Connector:
    """The declarative connector, with sideloaded identities and organizations merged into the users."""
    return ZendeskConnector(context.preset, context.settings, context.http, page_size=context.page_size)


class ZendeskConnector(ApiConnector):
    """``ApiConnector`` whose pages are completed from what Zendesk sideloads with them."""

    async def pages(self, obj: ObjectType, *, size: int | None = None) -> AsyncGenerator[Page, None]:
        """The pages of one object type, each record completed before it is mapped."""
        async for page in super().pages(obj, size=size):
            if obj.type == "users":
                _merge_sideloads(page)
            elif obj.type == "organizations":
                key = self.settings.get("organization_phone_field") or "phone"
                for record in page.records:
                    if isinstance(record, dict):
                        fields = record.get("organization_fields")
                        record[PHONE] = to_text(fields.get(key)) if isinstance(fields, dict) else ""
            yield page


def _merge_sideloads(page: Page) -> None:
    body = page.body if isinstance(page.body, dict) else {}
    names = {
        str(org.get("id")): to_text(org.get("name")) for org in body.get("organizations") or [] if isinstance(org, dict)
    }
    numbers: dict[str, list[str]] = defaultdict(list)
    for identity in body.get("identities") or []:
        if isinstance(identity, dict) and identity.get("type") == "phone_number":
            value = to_text(identity.get("value"))
            if value:
                numbers[str(identity.get("user_id"))].append(value)
    for user in page.records:
        if not isinstance(user, dict):
            continue
        primary = to_text(user.get("phone"))
        user[NUMBERS] = [{"value": v} for v in dict.fromkeys(numbers.get(str(user.get("id")), [])) if v != primary]
        user[ORGANIZATION] = names.get(str(user.get("organization_id")), "")
