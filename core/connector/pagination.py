"""Pagination styles: what the next request is, and when the list has ended (each vendor's documented rule).

A pager never asks for more than the preset's ``max_size`` per page, and stops with an error rather than loop
when a server repeats a cursor, link or token.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin

import httpx

from core.connector.paths import is_false, resolve, to_int, to_text
from core.errors import ConnectorError
from core.presets import (
    CursorPaging,
    LinkHeaderPaging,
    NextLinkPaging,
    OffsetPaging,
    PagePaging,
    PageTokenPaging,
    Template,
)

Paging = OffsetPaging | PagePaging | CursorPaging | NextLinkPaging | LinkHeaderPaging | PageTokenPaging


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request of a listing: ``target`` is a path under the API address or an absolute next-page URL."""

    target: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageResult:
    """What a pager needs to know about the page just received."""

    body: Any
    headers: httpx.Headers
    url: str
    count: int  # records on this page
    fetched: int  # records so far, this page included


class Pager:
    """The base of every style: page size, parameters in the query or the body, loop detection."""

    def __init__(self, paging: Paging, base: PageRequest, *, size: int | None, crm: str, object_type: str) -> None:
        self.paging = paging
        self.size = max(paging.min_size, min(size or paging.default_size, paging.max_size))
        self.crm = crm
        self.object_type = object_type
        self._base = base
        self._seen: set[str] = set()

    def first(self) -> PageRequest:
        """The first request."""
        return self._sized(self._base)

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        """The next request, or ``None`` when the list has ended."""
        raise NotImplementedError

    def _sized(self, request: PageRequest) -> PageRequest:
        paging = self.paging
        if paging.size_header:
            value = Template.parse(paging.size_format).render({"size": str(self.size)})
            request = replace(request, headers={**request.headers, paging.size_header: value})
        if paging.size_param:
            request = self._with(request, {paging.size_param: self.size})
        return request

    def _with(self, request: PageRequest, values: dict[str, Any], drop: tuple[str, ...] = ()) -> PageRequest:
        """Set (and drop) paging parameters, in the query or in the JSON body (dotted names nest)."""
        if self.paging.params_in == "query":
            params = {k: v for k, v in request.params.items() if k not in drop}
            return replace(request, params={**params, **values})
        body = copy.deepcopy(request.body) if isinstance(request.body, dict) else {}
        for name in drop:
            body.pop(name, None)
        for name, value in values.items():
            *parents, leaf = name.split(".")
            node = body
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        return replace(request, body=body)

    def _once(self, kind: str, value: str) -> str:
        """Refuse a cursor, link or token seen before: the server would send us round in circles."""
        if value in self._seen:
            raise ConnectorError(
                f"{self.crm} sent the same {kind} twice while listing {self.object_type}: stopped, as the list "
                f"would never end"
            )
        self._seen.add(value)
        return value

    def _flag(self, result: PageResult, path: str | None) -> bool | None:
        """A "more records" flag: ``True``/``False``, or ``None`` where the preset or the page has none."""
        if path is None:
            return None
        value = resolve(result.body, path)
        return None if value is None else not is_false(value)

    def _number(self, result: PageResult, path: str | None) -> int | None:
        return to_int(resolve(result.body, path)) if path else None


class OffsetPager(Pager):
    """``skip``/``top``, ``start``/``limit``, ``_skip``/``_limit``, ``offset``/``max_num``."""

    paging: OffsetPaging
    _offset: int

    def first(self) -> PageRequest:
        self._offset = self.paging.start
        return self._with(self._sized(self._base), {self.paging.offset_param: self._offset})

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        if result.count == 0:
            return None
        more = self._flag(result, self.paging.more_path)
        announced = self._number(result, self.paging.next_offset_path)
        if more is False or (announced is not None and announced < 0):
            return None
        if more is None and announced is None and result.count < self.size:
            return None
        offset = announced if announced is not None else self._offset + result.count
        self._once("offset", str(offset))
        if offset <= self._offset:
            raise ConnectorError(f"{self.crm} sent an offset that goes backwards while listing {self.object_type}")
        self._offset = offset
        return self._with(sent, {self.paging.offset_param: offset})


class PagePager(Pager):
    """Page numbers: ends on a false "more" flag, the last of ``total_pages``, ``total`` records or a short page."""

    paging: PagePaging
    _page: int

    def first(self) -> PageRequest:
        self._page = self.paging.first_page
        return self._with(self._sized(self._base), {self.paging.page_param: self._page})

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        if result.count == 0:
            return None
        more = self._flag(result, self.paging.more_path)
        total_pages = self._number(result, self.paging.total_pages_path)
        total = self._number(result, self.paging.total_path)
        if more is not None:
            done = not more
        elif total_pages is not None:
            done = self._page - self.paging.first_page + 1 >= total_pages
        elif total is not None:
            done = result.fetched >= total
        else:
            done = result.count < self.size
        if done:
            return None
        self._page += 1
        return self._with(sent, {self.paging.page_param: self._page})


class CursorPager(Pager):
    """A cursor from the body, sent back as a parameter; ends when the cursor is absent or empty."""

    paging: CursorPaging

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        if self._flag(result, self.paging.more_path) is False:
            return None
        cursor = to_text(resolve(result.body, self.paging.cursor_path))
        if not cursor:
            return None
        return self._with(sent, {self.paging.cursor_param: self._once("cursor", cursor)})


class NextLinkPager(Pager):
    """The next URL from the body (absolute or relative to the response); ends when absent or ``done``."""

    paging: NextLinkPaging

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        if self.paging.done_path and resolve(result.body, self.paging.done_path) in (True, "true"):
            return None
        link = to_text(resolve(result.body, self.paging.next_path))
        if not link:
            return None
        target = self._once("next-page link", urljoin(result.url, link))
        return PageRequest(target, {}, sent.body, sent.headers)


class LinkHeaderPager(Pager):
    """RFC 8288 ``Link: <url>; rel="next"``; ends when no next link is sent."""

    paging: LinkHeaderPaging

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        link = next_link(result.headers)
        if link is None:
            return None
        target = self._once("next-page link", urljoin(result.url, link))
        return PageRequest(target, {}, sent.body, sent.headers)


class PageTokenPager(Pager):
    """Zoho: page numbers while they reach, then the ``next_page_token`` of the previous page."""

    paging: PageTokenPaging
    _page: int
    _by_token: bool

    def first(self) -> PageRequest:
        self._page, self._by_token = 1, False
        return self._with(self._sized(self._base), {self.paging.page_param: 1})

    def next(self, sent: PageRequest, result: PageResult) -> PageRequest | None:
        paging = self.paging
        if not self._flag(result, paging.more_path) or result.count == 0:
            return None
        self._page += 1
        if self._page * self.size <= paging.token_after and not self._by_token:
            return self._with(sent, {paging.page_param: self._page})
        self._by_token = True
        token = to_text(resolve(result.body, paging.token_path))
        if not token:
            raise ConnectorError(
                f"{self.crm} has more than {paging.token_after:,} {self.object_type} but sent no page token to continue"
            )
        return self._with(sent, {paging.token_param: self._once("page token", token)}, drop=(paging.page_param,))


_PAGERS: dict[str, type[Pager]] = {
    "offset": OffsetPager,
    "page": PagePager,
    "cursor": CursorPager,
    "next_link": NextLinkPager,
    "link_header": LinkHeaderPager,
    "page_token": PageTokenPager,
}


def make_pager(paging: Paging, base: PageRequest, *, size: int | None, crm: str, object_type: str) -> Pager:
    """The pager for a preset's ``pagination.style``."""
    return _PAGERS[paging.style](paging, base, size=size, crm=crm, object_type=object_type)


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")


def next_link(headers: httpx.Headers) -> str | None:
    """The ``rel="next"`` target of the ``Link`` headers, if any."""
    for header in headers.get_list("link"):
        for match in _LINK.finditer(header):
            for param in match.group(2).split(";"):
                name, _, value = param.strip().partition("=")
                if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                    return match.group(1).strip()
    return None
