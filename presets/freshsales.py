"""Freshsales: find the "All Contacts" / "All Accounts" views, and give each contact its account's name.

Freshsales lists records only through saved views whose ids differ from one account to the next. Unless the
admin named a view in the settings, the first page of each object type is preceded by one request for the list
of views, and the one called "All Contacts" (or "All Accounts") is used. Contacts carry only the id of their
account (``sales_account_id``); accounts are fetched first, so each contact gets the account's name as
``switchboard_account_name``. Everything else is the declarative preset (``freshsales.toml``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from core.connector import ApiConnector, Connector, ConnectorContext
from core.connector.engine import Page
from core.errors import ConnectorError
from core.presets import ObjectType

# object type -> (setting holding the view id, path listing the views, the view wanted, what the admin calls it)
VIEWS = {
    "contacts": ("contacts_view_id", "/api/contacts/filters", "all contacts", "Contacts view ID"),
    "accounts": ("accounts_view_id", "/api/sales_accounts/filters", "all accounts", "Accounts view ID"),
}
ACCOUNT_NAME = "switchboard_account_name"


def create_connector(context: ConnectorContext) -> Connector:
    """The declarative connector with view lookup and account names."""
    return FreshsalesConnector(context.preset, context.settings, context.http, page_size=context.page_size)


class FreshsalesConnector(ApiConnector):
    """``ApiConnector`` whose pages first resolve the view and then carry account names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account_names: dict[str, str] = {}

    async def pages(self, obj: ObjectType, *, size: int | None = None) -> AsyncGenerator[Page, None]:
        """The pages of one object type from its view; account names remembered, contacts given theirs."""
        await self._resolve_view(obj.type)
        async for page in super().pages(obj, size=size):
            for record in page.records:
                if not isinstance(record, dict):
                    continue
                if obj.type == "accounts" and record.get("id") is not None:
                    self.account_names[str(record["id"])] = str(record.get("name") or "")
                elif obj.type == "contacts" and record.get("sales_account_id") is not None:
                    record[ACCOUNT_NAME] = self.account_names.get(str(record["sales_account_id"]), "")
            yield page

    async def _resolve_view(self, object_type: str) -> None:
        setting, path, wanted, label = VIEWS[object_type]
        if self.settings.get(setting):
            return
        what = f"the list of {object_type} views"
        response = await self.http.request("GET", path, what=what)
        try:
            body = response.json()
        except ValueError:
            body = None
        views = body.get("filters") if isinstance(body, dict) else None
        if not isinstance(views, list):
            raise ConnectorError(f"Freshsales returned an unexpected answer for {what}: no list of views")
        for view in views:
            if isinstance(view, dict) and str(view.get("name", "")).strip().lower() == wanted:
                self.settings[setting] = str(view.get("id", ""))
                return
        names = ", ".join(str(v.get("name")) for v in views if isinstance(v, dict)) or "none"
        raise ConnectorError(
            f"Freshsales has no '{wanted.title()}' view (views: {names}): open the view to sync in Freshsales and "
            f"enter the number at the end of its address as {label} in the integration's settings"
        )
