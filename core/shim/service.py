"""The HTTP shim as a ``switchboard serve`` service: uvicorn on the serve loop's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from core.errors import ConfigurationError
from core.runtime import Runtime
from core.serve import ServeOptions
from core.shim.app import create_app

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0
"""Seconds open requests get to finish when the service stops."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the serve loop owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a busy port is a clear error and not uvicorn's ``sys.exit``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigurationError(f"cannot listen on {host!r}: {exc}", field="http_host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --http-port", field="http_port"
        ) from None
    sock.setblocking(False)
    return sock


class HttpService:
    """Serves the lookup shim on ``options.http_host``/``http_port`` (127.0.0.1:8080 by default)."""

    name = "http"

    def __init__(self, runtime: Runtime, options: ServeOptions) -> None:
        self._runtime = runtime
        self._host = options.http_host
        self._port = options.http_port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._app: FastAPI | None = None

    @property
    def port(self) -> int:
        """The port listened on (the real one when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL of the shim."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Listen, and return once uvicorn accepts connections."""
        sock = _listen(self._host, self._port)
        self._port = sock.getsockname()[1]
        app = create_app(self._runtime)
        self._app = app
        await app.state.shim.warm_up()  # connections wait in the listen queue meanwhile
        config = uvicorn.Config(
            app,
            loop="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
            ws="none",
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http-shim")
        while not self._server.started:
            if self._task.done():
                app.state.shim.close()
                self._task.result()  # raises what stopped it
                raise ConfigurationError("the HTTP shim stopped while starting; see the log", field="http_port")
            await asyncio.sleep(0.005)
        log.info("lookup shim listening on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, let open requests finish, then release threads and connections."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            if self._app is not None:
                self._app.state.shim.close()
            self._server = self._task = self._app = None

    def describe(self) -> list[str]:
        """Where the shim listens and how to try it."""
        return [
            f"HTTP lookup shim: {self.url} (API docs: {self.url}/docs)",
            f"  try: curl -H 'Authorization: Bearer <token>' '{self.url}/v1/lookup?number=%2B31201234567'",
            "  (`switchboard token create --tenant SLUG` makes a token)",
        ]
