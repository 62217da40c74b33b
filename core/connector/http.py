"""The HTTP client every connector uses: timeouts, retries with backoff, rate limits, errors in admin terms.

Nothing here logs or reports a secret: every message goes through the connector's ``Redactor``, URLs are
shown without their query string, and httpx's own request log line loses its query string too.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import certifi
import httpx

from core import __version__
from core.connector.base import DEFAULT_RETRY, DEFAULT_TIMEOUTS, Clock, RetryPolicy, Sleep, Timeouts
from core.errors import ConnectorError
from core.presets.settings import not_ascii_message

log = logging.getLogger("core.connector")

RETRY_STATUSES = frozenset({500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_RESET_HEADERS = ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-minutely-reset")


class Redactor:
    """Replaces every known secret (and its URL-encoded form) with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *values: str | None) -> None:
        """Remember secrets; values shorter than 4 characters are ignored (they would mangle messages)."""
        for value in values:
            if value and len(value) >= 4:
                self._secrets.update({value, quote(value, safe=""), quote(value)})

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True, slots=True)
class CrmResponse:
    """A fully read response."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: str

    def json(self) -> Any:
        """The decoded body; ``None`` for an empty body (204 No Content); ``ValueError`` if it is not JSON."""
        if not self.content.strip():
            return None
        return json.loads(self.content)


class RequestAuth(Protocol):
    """How requests are authenticated; OAuth variants fetch and renew tokens through the client."""

    credential: str
    hint: str

    @property
    def can_refresh(self) -> bool:
        """Whether a 401 is worth one retry with renewed credentials."""
        ...

    @property
    def base_url(self) -> str | None:
        """An API address learnt from the token response (Salesforce ``instance_url``), if any."""
        ...

    async def credentials(self, http: CrmHttp) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and query parameters to add to a request."""
        ...

    async def refresh(self, http: CrmHttp) -> None:
        """Renew the credentials after a 401."""
        ...


class StaticAuth:
    """Fixed headers and query parameters, computed once from the settings."""

    can_refresh = False
    base_url: str | None = None

    def __init__(self, headers: Mapping[str, str], params: Mapping[str, str], *, credential: str, hint: str) -> None:
        self._headers = dict(headers)
        self._params = dict(params)
        self.credential = credential
        self.hint = hint

    async def credentials(self, http: CrmHttp) -> tuple[dict[str, str], dict[str, str]]:
        """The same headers and parameters for every request."""
        return dict(self._headers), dict(self._params)

    async def refresh(self, http: CrmHttp) -> None:
        """Static credentials cannot be renewed."""


class CrmHttp:
    """An ``httpx.AsyncClient`` that retries, waits out rate limits and reports failures in admin terms.

    ``settings`` (name → label and value) lets a header httpx cannot send be traced back to the setting behind it.
    ``tls_context`` verifies the CRM's certificate; every client without a CA bundle shares one.
    """

    def __init__(
        self,
        *,
        crm: str,
        base_url: str,
        auth: RequestAuth,
        redactor: Redactor,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        ca_bundle: str | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        settings: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.crm = crm
        self.auth = auth
        self.redact = redactor
        self.clock = clock
        self._base_url = base_url.rstrip("/")
        self._timeouts = timeouts
        self._retry = retry
        self._sleep = sleep
        self._settings = dict(settings or {})
        self._check_headers(headers or {})
        self.tls_context = _tls_context(ca_bundle)
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=self.tls_context,
            timeout=httpx.Timeout(connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=None),
            follow_redirects=False,
            headers={"User-Agent": f"switchboard/{__version__}", "Accept": "application/json", **(headers or {})},
        )

    @property
    def base_url(self) -> str:
        """The API address requests are relative to."""
        return (self.auth.base_url or self._base_url).rstrip("/")

    def url_for(self, target: str) -> str:
        """``target`` as an absolute URL: paths are appended to the base URL, absolute URLs kept."""
        if target.startswith(("http://", "https://")):
            return target
        return f"{self.base_url}/{target.lstrip('/')}"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        target: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
        accept: Callable[[int], bool] | None = None,
    ) -> CrmResponse:
        """Send one request with retries; return the response or raise ``ConnectorError``.

        ``what`` names the request in messages ("page 3 of contacts"); ``content`` is a raw body (WebDAV XML)
        sent instead of ``json``/``data``. Statuses below 300, and those ``accept`` allows, are returned; 429 and
        5xx are retried; a 401 renews OAuth credentials once.
        """
        attempt, waited, renewed = 0, 0.0, False
        while True:
            attempt += 1
            auth_headers, auth_params = await self.auth.credentials(self) if authenticate else ({}, {})
            url = self.url_for(target)
            if authenticate:
                self._check_origin(url)
            sent_headers = {**(headers or {}), **auth_headers}
            self._check_headers(sent_headers)
            try:
                response = await self._send(
                    method, url, what, params={**(params or {}), **auth_params}, json=json, data=data, content=content,
                    headers=sent_headers,
                )  # fmt: skip
            except _Transient as exc:
                failure, delay = exc.failure, self._backoff(attempt)
            else:
                status = response.status
                if status == 401 and authenticate and self.auth.can_refresh and not renewed:
                    renewed = True
                    await self.auth.refresh(self)
                    continue
                if status == 429 or status in RETRY_STATUSES:
                    hinted = _rate_limit_delay(response, self.clock()) if status in (429, 503) else None
                    delay = self._backoff(attempt) if hinted is None else hinted
                    failure = self._status_failure(response, what)
                elif status >= 300 and not (accept is not None and accept(status)):
                    raise self._status_error(response, what, renewed)
                else:
                    return response
            final = self._final(failure, attempt, waited, delay)
            if final is not None:
                raise final
            log.info("%s: retrying %s in %.1f s (attempt %d)", self.crm, what, delay, attempt + 1)
            await self._sleep(delay)
            waited += delay

    # ------------------------------------------------------------------------------------------ internals

    async def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, Any],
        json: Any,
        data: Mapping[str, str] | None,
        content: bytes | None,
        headers: dict[str, str],
    ) -> CrmResponse:
        # merge, not replace: httpx drops a URL's own query (a next-page link's) when params= is given
        target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        request = self._client.build_request(method, target, json=json, data=data, content=content, headers=headers)
        started = time.monotonic()
        try:
            response = await self._client.send(request, stream=True)
            try:
                body = await self._read(response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc, url, what)
            if failure.retryable:
                raise _Transient(failure) from None
            raise failure from None
        log.debug(
            "%s %s -> %d in %d ms", method, _safe_url(url), response.status_code, (time.monotonic() - started) * 1000
        )
        return CrmResponse(response.status_code, response.headers, body, str(response.url))

    async def _read(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ConnectorError(
                    f"{self.crm} sent a response larger than {MAX_RESPONSE_BYTES // 2**20} MB: use a smaller page size"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_origin(self, url: str) -> None:
        """Credentials only ever go to the CRM's own address, never to a host a response names."""
        if _origin(url) != _origin(self.base_url):
            raise ConnectorError(
                f"{self.crm} pointed to another server ({urlsplit(url).hostname}); stopped to keep the credentials safe"
            )

    def _check_headers(self, headers: Mapping[str, str]) -> None:
        """Header values travel as ASCII: name the setting (or else the header) holding another character."""
        for header, value in headers.items():
            if value.isascii():
                continue
            for name, (label, text) in self._settings.items():
                if not text.isascii() and text in value:
                    raise ConnectorError(not_ascii_message(label, self.crm), field=name)
            raise ConnectorError(
                f"The {header} header for {self.crm} would hold a character that cannot be sent (not ASCII): "
                "check the integration's settings for accented letters, typographic quotes or special spaces"
            )

    def _backoff(self, attempt: int) -> float:
        exponential = self._retry.base_delay * 2.0 ** (attempt - 1)
        return min(self._retry.max_delay, exponential) * random.uniform(0.5, 1.0)

    def _final(self, failure: ConnectorError, attempt: int, waited: float, delay: float) -> ConnectorError | None:
        """The error to raise now, or ``None`` to sleep ``delay`` and try again."""
        over_time = waited + delay > self._retry.max_total
        if attempt < self._retry.max_attempts and not over_time:
            return None
        if failure.status == 429:
            if over_time and waited == 0:
                message = (
                    f"{self.crm} rate limit: asked to wait {_duration(delay)}, longer than the "
                    f"{_duration(self._retry.max_total)} allowed for retries; the next sync will try again"
                )
            else:
                message = f"{self.crm} rate limit: gave up after {_duration(waited)} of retries ({attempt} attempts)"
            return ConnectorError(self.redact(message), status=429, retryable=True)
        if attempt > 1:
            failure.message = f"{failure.message}; gave up after {attempt} attempts"
        return failure

    def _status_failure(self, response: CrmResponse, what: str) -> ConnectorError:
        """The error for a 429 or 5xx, raised if the retries run out."""
        if response.status == 429:
            return ConnectorError(f"{self.crm} rate limit", status=429, retryable=True)
        detail = _vendor_message(response, self.redact)
        message = f"{self.crm} had a server error ({response.status}) on {what}" + (f": {detail}" if detail else "")
        return ConnectorError(message, status=response.status, retryable=True)

    def _status_error(self, response: CrmResponse, what: str, renewed: bool) -> ConnectorError:
        status, crm, cred = response.status, self.crm, self.auth.credential
        detail = _vendor_message(response, self.redact)
        if status == 401:
            again = " even after renewing it" if renewed else ""
            message = f"{crm} refused the {cred}{again} (401): {self.auth.hint or f'check the {cred}'}"
        elif status == 403:
            message = f"{crm} refused access to {what} (403): the {cred} lacks a permission"
            message += f" ({detail})" if detail else ""
        elif status == 404:
            message = f"{crm} has nothing at {urlsplit(response.url).path} (404): check the API address setting"
        elif 300 <= status < 400:
            target = _safe_url(response.headers.get("location", "")) or "another address"
            message = f"{crm} answered with a redirect ({status}) to {target}: check the API address setting"
        else:
            message = f"{crm} rejected the request for {what} ({status})" + (f": {detail}" if detail else "")
        return ConnectorError(self.redact(message), status=status, retryable=False)

    def _transport_failure(self, exc: httpx.HTTPError, url: str, what: str) -> ConnectorError:
        """A network-level failure in admin terms; ``retryable`` unless retrying cannot help."""
        host = urlsplit(url).hostname or url
        crm = self.crm
        if _is_certificate_error(exc):
            message = (
                f"{crm} at {host}: the TLS certificate could not be verified; for a self-hosted CRM, add its CA bundle"
            )
            return ConnectorError(self.redact(message), retryable=False)
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return ConnectorError(f"The API address for {crm} is not valid ({_safe_url(url)})", retryable=False)
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            message = f"Could not connect to {crm} at {host} within {_secs(self._timeouts.connect)} s (timeout)"
        elif isinstance(exc, httpx.TimeoutException):
            message = f"{crm} did not answer within {_secs(self._timeouts.read)} s (timeout)"
        elif isinstance(exc, httpx.ConnectError):
            message = f"Could not connect to {crm} at {host} ({_reason(exc)})"
        else:
            message = f"The connection to {crm} at {host} broke off ({_reason(exc)})"
        return ConnectorError(self.redact(f"{message} on {what}"), retryable=True)


class _Transient(Exception):
    """A failure worth retrying; carries the message to show if the retries run out."""

    def __init__(self, failure: ConnectorError) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verification always on; a CA bundle is added to the usual trust store, never replaces it."""
    if ca_bundle is None:
        return _default_tls_context()
    context = ssl.create_default_context(cafile=certifi.where())
    try:
        context.load_verify_locations(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorError(f"The CA bundle {ca_bundle} cannot be used ({exc.__class__.__name__})") from None
    return context


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    """httpx's own verifying context, built once per process (loading the trust store takes tens of ms)."""
    return httpx.create_ssl_context()


def _rate_limit_delay(response: CrmResponse, now: float) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or HTTP date), reset headers or HubSpot's interval.

    A reset header counts only if its window has no calls left (or does not say): Exact Online sends a daily and
    a minutely window: a spent minute waits for the minute, a spent day (checked first) for the day. ``None``
    (nothing to go by): back off briefly.
    """
    headers = response.headers
    retry_after = headers.get("retry-after", "").strip()
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    for name in _RESET_HEADERS:
        remaining = headers.get(name.replace("reset", "remaining"), "").strip()
        if remaining.isdigit() and int(remaining) > 0:
            continue
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if value > 1e12:  # epoch milliseconds (Exact Online)
            return max(0.0, value / 1000 - now)
        if value > 1e9:  # epoch seconds (Capsule)
            return max(0.0, value - now)
        return max(0.0, value)  # seconds left in the window (Pipedrive)
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
    if interval.isdigit():
        return int(interval) / 1000
    return None


def _vendor_message(response: CrmResponse, redact: Callable[[str], str]) -> str:
    """The CRM's own explanation from an error body, shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, list) and body:
        body = body[0]
    found: Any = None
    if isinstance(body, dict):
        for key in ("message", "Message", "error_description", "error", "detail", "title", "errorMessage"):
            found = body.get(key)
            if isinstance(found, dict):
                found = found.get("message") or found.get("value")
            if isinstance(found, dict):
                found = found.get("value")
            if isinstance(found, str) and found.strip():
                break
    if not isinstance(found, str):
        return ""
    text = " ".join(redact(found).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _safe_url(url: str) -> str:
    """The URL without query string or fragment (which may hold an API key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" if parts.scheme else parts.path


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text[:120] if text else exc.__class__.__name__


def _secs(seconds: float) -> str:
    return f"{seconds:g}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        value = round(seconds)
        return f"{value} second{'s' if value != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600, 1):g} hours"


class _HttpxQueryFilter(logging.Filter):
    """httpx logs every request URL at INFO; drop the query string, where an API key may travel."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_safe_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_HttpxQueryFilter())
