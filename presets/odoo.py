"""Odoo: ``res.partner`` over JSON-RPC (``/jsonrpc``, Odoo 8 to 21) or the JSON-2 API (``/json/2``, Odoo 19+).

The records, fields and phone sources are declared in ``odoo.toml`` (each object type's ``body.domain`` picks
contacts or companies); this module does what the declarative engine cannot:

- JSON-RPC signs in with ``common.authenticate(db, login, key)`` for the user id, then calls
  ``object.execute_kw``; its errors arrive with HTTP 200 inside the body and are turned into errors here (a
  silent empty list would wipe the cache). JSON-2 sends the key as a bearer token and the database in
  ``X-Odoo-Database``.
- Only fields the database has are requested (``fields_get`` first): ``mobile`` left ``res.partner`` in
  Odoo 19, and asking for a missing field fails the whole call.
- Pages are ``search_read`` calls ordered by id, each continuing after the last id seen, so records created or
  deleted during a sync cannot shift a page.
- Odoo answers ``false`` for any empty field (a phone, an e-mail, a many2one); it is read as empty, never as
  the text "false". A partner without a name (a company's invoice or delivery address) is shown by its
  ``display_name``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from core.connector import ApiConnector, ConnectionTest, Connector, ConnectorContext, FetchedRecord, PageProgress
from core.connector.http import CrmHttp, CrmResponse
from core.errors import ConnectorError
from core.presets import ObjectType, Template

TEST_PAGE_SIZE = 10
ACCESS_DENIED = ("odoo.exceptions.AccessDenied", "werkzeug.exceptions.Unauthorized")
NO_RIGHTS = ("odoo.exceptions.AccessError",)


def create_connector(context: ConnectorContext) -> Connector:
    """The Odoo connector for the chosen protocol."""
    rpc: OdooRpc = JsonTwo(context) if context.settings.get("protocol") == "json-2" else JsonRpc(context)
    return OdooConnector(context.api, rpc, page_size=getattr(context.api, "_page_size", None))


class OdooRpc(Protocol):
    """Calls an ORM method of a model and returns its result."""

    async def call(self, model: str, method: str, params: Mapping[str, Any], *, what: str) -> Any:
        """``model.method(**params)``; ``ConnectorError`` with Odoo's reason on failure."""
        ...


class OdooConnector:
    """Fetches each declared object type of ``res.partner`` by id ranges through an :class:`OdooRpc`."""

    def __init__(self, api: ApiConnector, rpc: OdooRpc, *, page_size: int | None = None) -> None:
        self.api = api
        self.rpc = rpc
        self.preset = api.preset
        self._page_size = page_size
        self._known: dict[str, set[str]] = {}

    async def fetch(
        self, *, progress: Callable[[PageProgress], None] | None = None
    ) -> AsyncIterator[list[FetchedRecord]]:
        """Every record of every object type, one list per page."""
        for obj in self.preset.objects:
            count = 0
            async for number, batch in self._pages(obj, self.size(obj)):
                count += len(batch)
                if progress is not None:
                    progress(PageProgress(obj.type, number, count))
                if batch:
                    yield batch

    async def test_connection(self) -> ConnectionTest:
        """The number of contacts and a few of them."""
        obj = self.preset.objects[0]
        total = await self.rpc.call(str(obj.path), "search_count", {"domain": _domain(obj)}, what="counting contacts")
        sample = None
        async for _number, batch in self._pages(obj, TEST_PAGE_SIZE, limit_pages=1):
            sample = batch[0] if batch else None
        count = total if isinstance(total, int) and not isinstance(total, bool) else None
        return ConnectionTest(count, sample, self.preset.object_types)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.api.aclose()

    def size(self, obj: ObjectType) -> int:
        """The page size: the one asked for, within the preset's limits."""
        paging = obj.pagination
        return max(paging.min_size, min(self._page_size or paging.default_size, paging.max_size))

    async def fields(self, model: str) -> set[str]:
        """The fields ``model`` has in this database (asked once)."""
        if model not in self._known:
            answer = await self.rpc.call(model, "fields_get", {"attributes": ["type"]}, what=f"the fields of {model}")
            if not isinstance(answer, dict) or "id" not in answer:
                raise ConnectorError(f"Odoo sent an unexpected list of the fields of {model}")
            self._known[model] = set(answer)
        return self._known[model]

    async def _pages(
        self, obj: ObjectType, size: int, *, limit_pages: int | None = None
    ) -> AsyncIterator[tuple[int, list[FetchedRecord]]]:
        model = str(obj.path)
        available = await self.fields(model)
        wanted = sorted(name for name in {*requested_fields(obj), "display_name"} if name in available)
        mapper = self.api.mapper(obj)
        last_id = 0
        for number in itertools.count(1):
            if number > obj.pagination.max_pages or (limit_pages is not None and number > limit_pages):
                return
            params = {"domain": [*_domain(obj), ["id", ">", last_id]], "fields": wanted, "limit": size,
                      "order": "id asc"}  # fmt: skip
            rows = await self.rpc.call(model, "search_read", params, what=f"page {number} of {obj.type}")
            if not isinstance(rows, list):
                raise ConnectorError(f"Odoo sent an unexpected answer on page {number} of {obj.type}")
            records = [r for r in (mapper.map(_prepared(row)) for row in rows) if r is not None]
            yield number, records
            ids = [row["id"] for row in rows if isinstance(row, dict) and isinstance(row.get("id"), int)]
            if len(rows) < size or not ids:
                return
            if max(ids) <= last_id:
                raise ConnectorError(f"Odoo sent {obj.type} out of order (ids do not grow); stopped to avoid a loop")
            last_id = max(ids)


def requested_fields(obj: ObjectType) -> set[str]:
    """The ``res.partner`` fields an object type's templates and phone sources read (and ``id``)."""
    names = {"id"}
    for text in obj.fields.values():
        names.update(n for n in Template.parse(text).names if not n.startswith("settings."))
    names.update(source.path for source in obj.phones)
    return {name.split(".")[0].split("[")[0] for name in names}


def _prepared(row: Any) -> Any:
    """A row ready for mapping: ``false`` (Odoo's empty value of any type) as null, and a name for every partner.

    Invoice and delivery addresses of a company may have no name of their own; their ``display_name``
    ("Acme, Invoice Address") names them then.
    """
    if not isinstance(row, dict):
        return row
    prepared = {key: None if value is False else value for key, value in row.items()}
    if not str(prepared.get("name") or "").strip():
        prepared["name"] = prepared.get("display_name")
    return prepared


def _domain(obj: ObjectType) -> list[Any]:
    body = obj.body or {}
    domain = body.get("domain", [])
    return list(domain) if isinstance(domain, list) else []


# ---------------------------------------------------------------------------------------------- transports


class JsonRpc:
    """The legacy ``/jsonrpc`` endpoint: ``common.authenticate`` once, then ``object.execute_kw``."""

    def __init__(self, context: ConnectorContext) -> None:
        self.http: CrmHttp = context.http
        settings = context.settings
        self.database = settings["database"]
        self.login = settings["username"]
        self.key = settings["api_key"]
        self.uid: int | None = None
        self._ids = itertools.count(1)

    async def call(self, model: str, method: str, params: Mapping[str, Any], *, what: str) -> Any:
        """``execute_kw(db, uid, key, model, method, [], params)``."""
        uid = await self.sign_in()
        args = [self.database, uid, self.key, model, method, [], dict(params)]
        return await self._call("object", "execute_kw", args, what=what)

    async def sign_in(self) -> int:
        """The user id for the login and API key (asked once)."""
        if self.uid is None:
            answer = await self._call(
                "common", "authenticate", [self.database, self.login, self.key, {}], what="the sign-in"
            )
            if not isinstance(answer, int) or isinstance(answer, bool) or answer <= 0:
                raise ConnectorError(
                    "Odoo refused the user and API key (the sign-in failed): check the user's login, the API key "
                    "(My Preferences → Account Security) and that it has not expired",
                    status=401,
                )
            self.uid = answer
        return self.uid

    async def _call(self, service: str, method: str, args: list[Any], *, what: str) -> Any:
        body = {"jsonrpc": "2.0", "method": "call", "params": {"service": service, "method": method, "args": args},
                "id": next(self._ids)}  # fmt: skip
        response = await self.http.request("POST", "jsonrpc", what=what, json=body)
        answer = _json(response, what)
        if not isinstance(answer, dict):
            raise ConnectorError(f"Odoo sent an answer that is not JSON-RPC on {what}", status=response.status)
        error = answer.get("error")
        if isinstance(error, dict):
            found = error.get("data")
            data: dict[str, Any] = found if isinstance(found, dict) else {}
            raise self._error(str(data.get("name") or ""), str(data.get("message") or error.get("message") or ""), what)
        if "result" not in answer:
            raise ConnectorError(f"Odoo sent an answer without a result on {what}", status=response.status)
        return answer["result"]

    def _error(self, name: str, message: str, what: str) -> ConnectorError:
        return _odoo_error(self.http, name, message, what, database=self.database)


class JsonTwo:
    """The ``/json/2/<model>/<method>`` API of Odoo 19+: bearer API key, ``X-Odoo-Database``, HTTP errors."""

    def __init__(self, context: ConnectorContext) -> None:
        self.http: CrmHttp = context.http
        self.database = context.settings["database"]
        self.headers = {"Authorization": f"bearer {context.settings['api_key']}", "X-Odoo-Database": self.database}

    async def call(self, model: str, method: str, params: Mapping[str, Any], *, what: str) -> Any:
        """POST the named parameters; Odoo's 4xx answers become messages that say what to check."""
        response = await self.http.request(
            "POST", f"json/2/{model}/{method}", what=what, json=dict(params), headers=self.headers,
            accept=lambda status: 400 <= status < 500,
        )  # fmt: skip
        if response.status == 404:
            raise ConnectorError(
                "Odoo has no JSON-2 API at this address (404): it needs Odoo 19 or later; choose json-rpc for older "
                "versions, or check the Odoo address",
                status=404,
            )
        answer = _json(response, what)
        if response.status >= 400:
            body = answer if isinstance(answer, dict) else {}
            name, message = str(body.get("name") or ""), str(body.get("message") or "")
            if response.status == 401 and not name:
                name = "werkzeug.exceptions.Unauthorized"
            raise _odoo_error(self.http, name, message or str(response.status), what, database=self.database,
                              status=response.status)  # fmt: skip
        return answer


def _json(response: CrmResponse, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        hint = " (it looks like a web page: check the Odoo address)" if response.content.lstrip()[:1] == b"<" else ""
        raise ConnectorError(f"Odoo returned data that is not JSON on {what}{hint}", status=response.status) from None


def _odoo_error(
    http: CrmHttp, name: str, message: str, what: str, *, database: str, status: int | None = None
) -> ConnectorError:
    """Odoo's exception (``odoo.exceptions.AccessDenied``, ...) in an admin's terms, without secrets."""
    said = " ".join(message.split())[:200]
    short = name.rpartition(".")[2] or "error"
    if name in ACCESS_DENIED:
        text = (
            f"Odoo refused the user and API key ({said or short}): check the user's login, the API key (My "
            f"Preferences → Account Security) and that it has not expired"
        )
        code = status or 401
    elif name in NO_RIGHTS:
        text = f"Odoo refused access to {what} ({said or short}): the user may not read contacts"
        code = status or 403
    elif "database" in said.lower() or ("KeyError" in name and database in said):
        text = f"Odoo does not know the database {database!r} ({said or short}): check the database name"
        code = status or 400
    else:
        text = f"Odoo failed on {what} ({short}: {said})" if said else f"Odoo failed on {what} ({short})"
        code = status or 500
    return ConnectorError(http.redact(text), status=code)
