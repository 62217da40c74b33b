"""``GET /oauth/callback``: where a CRM sends the admin's browser back after an OAuth sign-in.

The CRM adds ``code`` and ``state`` (or ``error`` and ``error_description`` when the admin declined);
:func:`core.services.oauth.complete_authorization` checks the state and trades the code for tokens. The answer is
a small HTML page in the admin's words: 200 when connected, 400 for anything wrong with the answer (unknown,
expired or reused state, a refusal), 503 if the database did not answer. The page, the headers and the log never
contain the code, the state or a token; the page is neither cached nor framed, and sends no referrer.

The route runs on the shim's event loop, which also answers every lookup, so all its database work happens in
worker threads: :func:`~core.services.oauth.complete_authorization` hands each of its steps to one, and the route
closes its session in one too.
"""

from __future__ import annotations

import asyncio
import html
import logging

import httpx
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from core.errors import ConnectorError, SwitchboardError
from core.runtime import Runtime
from core.services.oauth import CALLBACK_PATH, complete_authorization

log = logging.getLogger(__name__)

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d1d1f}"
    "h1{font-size:1.35rem}.ok{color:#1a7f37}.bad{color:#b42318}"
)


def create_oauth_router(runtime: Runtime, *, transport: httpx.AsyncBaseTransport | None = None) -> APIRouter:
    """The callback route over ``runtime``'s database and key (``transport`` replaces the network in tests)."""
    router = APIRouter()

    @router.get(CALLBACK_PATH, include_in_schema=False, response_class=HTMLResponse)
    async def oauth_callback(request: Request) -> HTMLResponse:
        """Finish an OAuth sign-in the wizard started, and tell the admin how it went."""
        query = request.query_params
        try:
            session = Session(runtime.engine, expire_on_commit=False)
            try:
                done = await complete_authorization(
                    session=session, box=runtime.box, state=query.get("state") or "", code=query.get("code"),
                    error=query.get("error"), error_description=query.get("error_description"), transport=transport,
                )  # fmt: skip
            finally:  # a refusal leaves a transaction open: closing rolls it back, a round trip on PostgreSQL
                await asyncio.to_thread(session.close)
        except SwitchboardError as exc:
            return _failure(exc)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("OAuth callback: the database did not answer (%s)", type(exc).__name__)
            return page(
                "Switchboard could not finish the sign-in",
                ["Its database did not answer. Wait a minute, then go back to the wizard and choose Connect again."],
                status=503,
            )
        return page(
            f"Switchboard is connected to {done.crm}",
            [f"Switchboard is connected to {done.crm}. You can close this tab and go back to the wizard."],
            ok=True,
        )

    return router


def _failure(exc: SwitchboardError) -> HTMLResponse:
    refused = isinstance(exc, ConnectorError)
    title = "Switchboard is not connected" if refused else "This sign-in answer cannot be used"
    return page(title, [exc.message], status=400)


def page(title: str, paragraphs: list[str], *, ok: bool = False, status: int = 200) -> HTMLResponse:
    """A small, self-contained HTML page (every text escaped) with headers that keep it private."""
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs)
    mark = "ok" if ok else "bad"
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(title)} · switchboard</title><style>{_STYLE}</style></head>"
        f'<body><h1 class="{mark}">{html.escape(title)}</h1>{body}</body></html>\n'
    )
    return HTMLResponse(text, status_code=status, headers=_HEADERS)
