"""Run an ASGI app under uvicorn in a background thread, on 127.0.0.1 and a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp


class _QuickServer(uvicorn.Server):
    """uvicorn's server, noticing ``should_exit`` within 5 ms instead of 100 ms (tests start many)."""

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the Date/Server headers once
        while not self.should_exit:
            await asyncio.sleep(0.005)


@contextlib.contextmanager
def serve(app: ASGIApp, *, certfile: Path | None = None, keyfile: Path | None = None) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:<port>``, or https with TLS).

    The socket is bound before the server starts (port 0, the kernel picks), so the URL is right at once.
    Only the loopback interface is used; nothing is reachable from outside this machine.
    """
    # IPPROTO_TCP explicitly: only then does asyncio set TCP_NODELAY on accepted connections; without it a
    # response written in two segments waits ~40 ms for the client's delayed ACK on every request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    server = _QuickServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"crm-emulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the emulated CRM server did not start")
        time.sleep(0.005)
    scheme = "https" if certfile else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
