"""The SSH service for ``switchboard serve``: listens, signs admins in, and runs one app process per session.

``create_service(runtime, options)`` is the entry point ``switchboard serve`` finds in the
``switchboard.services`` group. ``start`` returns once the server listens (and the fork server has imported the
app); ``stop`` tells every session the server is shutting down, ends and reaps every child, and leaves no task,
thread or process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncssh
from sqlmodel import Session

from core.db import session_scope
from core.runtime import Runtime
from core.services import signins
from sshd.children import ChildError, ChildPool, ExecSpawner, ForkServerSpawner, Spawner
from sshd.config import SshConfig
from sshd.hostkey import fingerprint, load_or_create_host_key
from sshd.limits import AddressThrottle, SessionLimits
from sshd.server import Gatekeeper
from sshd.session import AdminSession

log = logging.getLogger(__name__)

T = TypeVar("T")

SHUTDOWN_MESSAGE = "The server is shutting down; please sign in again in a minute."
_THROTTLE_AUDIT_INTERVAL = 60.0  # at most one "throttled" audit event per address per minute


class SshService:
    """The SSH server as a ``switchboard serve`` service (``name``, ``start``, ``stop``, ``describe``)."""

    name = "ssh"

    def __init__(self, runtime: Runtime, config: SshConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.port = config.port
        self.host_key_fingerprint = ""
        self.closing = False
        self.throttle = AddressThrottle(
            failure_limit=config.address_failure_limit,
            failure_window=config.address_failure_window,
            connect_burst=config.address_connect_burst,
            connect_rate=config.address_connect_rate,
            max_pending_per_address=config.max_pending_per_address,
            max_pending=config.max_pending,
        )
        self.limits = SessionLimits(max_total=config.max_sessions, max_per_user=config.max_sessions_per_user)
        self.pool = ChildPool(ExecSpawner(config.child), size=config.pool_size, kill_grace=config.kill_grace)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connections: dict[Gatekeeper, asyncssh.SSHServerConnection] = {}
        self._sessions: set[AdminSession] = set()
        self._sessions_done = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._throttle_noted: dict[str, float] = {}

    # --- the service protocol -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load (or make) the host key, start the child pool and listen."""
        if self.runtime.settings.log_level != "DEBUG":  # asyncssh narrates every packet exchange at INFO
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
        key = load_or_create_host_key(self.config.key_path(self.runtime.settings))
        self.host_key_fingerprint = fingerprint(key)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sshd-db")
        self.pool = ChildPool(
            await self._spawner(),
            size=self.config.pool_size,
            kill_grace=self.config.kill_grace,
            refill_delay=self.config.refill_delay,
        )
        await self.pool.start()
        try:
            self._acceptor = await asyncssh.create_server(
                lambda: Gatekeeper(self),
                self.config.host,
                self.config.port,
                server_host_keys=[key],
                server_version="switchboard",
                encoding="utf-8",
                errors="replace",
                line_editor=False,
                allow_pty=True,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_scp=False,
                sftp_factory=None,
                host_based_auth=False,
                gss_host=None,
                rdns_lookup=False,
                login_timeout=self.config.login_timeout,
                keepalive_interval=self.config.keepalive_interval,
                keepalive_count_max=self.config.keepalive_count_max,
                reuse_address=True,
            )
        except BaseException:
            await self.pool.stop()
            self._shutdown_executor()
            raise
        self.port = self._acceptor.get_port()
        log.info("SSH server listening on %s:%s", self.config.host, self.port)

    async def _spawner(self) -> Spawner:
        """The fork server, or fresh interpreters when it cannot start (or is configured off)."""
        if self.config.spawner == "fork":
            spawner = ForkServerSpawner(self.config.child)
            try:
                await spawner.start()
                return spawner
            except (ChildError, OSError, TimeoutError) as exc:
                log.warning("SSH sessions will start a fresh interpreter each (slower): %s", exc)
        return ExecSpawner(self.config.child)

    async def stop(self) -> None:
        """Stop listening, tell every session, end every child and connection, then release everything."""
        self.closing = True
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for session in list(self._sessions):
            session.end(SHUTDOWN_MESSAGE)
        if self._sessions:
            try:  # each session ends its app within the grace period; this bound is only a safety net
                await asyncio.wait_for(self._sessions_done.wait(), self.config.kill_grace + 15.0)
            except TimeoutError:
                log.error("%d SSH session(s) did not end in time; closing their connections", len(self._sessions))
        for gate in list(self._connections):
            gate.close(SHUTDOWN_MESSAGE)
        for conn in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5.0)
        await self.pool.stop()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._drain_executor()
        log.info("SSH server stopped")

    def describe(self) -> list[str]:
        """What the operator needs: the address, the host key's fingerprint and the command to connect."""
        return [
            f"ssh: listening on {self.config.host}:{self.port}, host key {self.host_key_fingerprint}",
            f"ssh: connect with: ssh -p {self.port} USERNAME@{self.connect_host}",
        ]

    @property
    def connect_host(self) -> str:
        """The host name admins should connect to."""
        if self.config.host in {"", "0.0.0.0", "::"}:  # noqa: S104 (we compare, we do not bind)
            return socket.gethostname()
        return self.config.host

    # --- bookkeeping for connections and sessions ---------------------------------------------------------

    def connection_opened(self, gate: Gatekeeper, conn: asyncssh.SSHServerConnection) -> None:
        """A connection was admitted."""
        self._connections[gate] = conn
        if self.closing:
            asyncio.get_running_loop().call_soon(gate.close, SHUTDOWN_MESSAGE)

    def connection_closed(self, gate: Gatekeeper) -> None:
        """A connection went away."""
        self._connections.pop(gate, None)

    def session_opened(self, session: AdminSession) -> None:
        """A session channel started."""
        self._sessions.add(session)
        self._sessions_done.clear()

    def session_closed(self, session: AdminSession) -> None:
        """A session channel ended."""
        self._sessions.discard(session)
        if not self._sessions:
            self._sessions_done.set()

    @property
    def connections(self) -> list[asyncssh.SSHServerConnection]:
        """The connections open now (signed in or not)."""
        return list(self._connections.values())

    @property
    def sessions(self) -> list[AdminSession]:
        """The sessions running now."""
        return list(self._sessions)

    # --- database and audit -------------------------------------------------------------------------------

    async def call_db(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a transaction on a worker thread (the loop never waits on the database or argon2)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_transaction, work)

    def _in_transaction(self, work: Callable[[Session], T]) -> T:
        with session_scope(self.runtime.engine) as session:
            return work(session)

    def background_db(self, work: Callable[[Session], object]) -> None:
        """Run ``work`` in a transaction without waiting for it; failures are logged."""
        self._in_background(self.call_db(work))

    def audit(self, action: str, *, address: str, username: str = "", details: dict[str, Any] | None = None) -> None:
        """Record an access event in the audit log, in the background."""
        if action == signins.CONNECT and not self.config.audit_connections:
            return
        self.background_db(
            lambda s: signins.record_access(
                session=s, action=action, address=address, username=username, details=details
            )
        )

    def note_throttled(self, address: str, reason: str) -> None:
        """Audit that an address is being refused, at most once a minute per address."""
        now = time.monotonic()
        if now - self._throttle_noted.get(address, -_THROTTLE_AUDIT_INTERVAL) < _THROTTLE_AUDIT_INTERVAL:
            return
        if len(self._throttle_noted) > 4096:
            self._throttle_noted.clear()
        self._throttle_noted[address] = now
        self.audit(signins.THROTTLED, address=address, details={"reason": reason})

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except Exception:
            log.exception("SSH server: background database work failed")

    async def _drain_executor(self) -> None:
        """Shut the worker threads down without blocking the loop (a helper thread waits for them)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def wait() -> None:
            executor.shutdown(wait=True, cancel_futures=True)
            loop.call_soon_threadsafe(finished)

        waiter = threading.Thread(target=wait, name="sshd-executor-shutdown")
        waiter.start()
        await done
        waiter.join()

    def _shutdown_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def create_service(runtime: Runtime, options: Any) -> SshService:
    """The SSH service for ``switchboard serve`` (entry point ``switchboard.services: ssh``)."""
    return SshService(runtime, SshConfig.from_options(runtime.settings, options))
