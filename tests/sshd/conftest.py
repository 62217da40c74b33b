"""The SSH server under test: a real server on 127.0.0.1 port 0 with a generated host key, real asyncssh clients.

``ssh_server`` starts the service with the stand-in child (``standin_child.py``, which follows the TUI's
protocol and echoes what it gets); ``tui_server`` with the real ``switchboard tui --identity-fd`` child.
Users come from ``tests.factories`` through the use-case functions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlmodel import Session

from core.runtime import Runtime
from sshd.config import ChildCommand, SshConfig, tui_command
from sshd.service import SshService
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
GUARD = 60.0  # seconds: only so that a broken server cannot hang the suite
ANSI = re.compile(r"\x1b\[[0-9;?<=>$ ]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


def standin_command(runtime: Runtime) -> ChildCommand:
    """The stand-in child on the test database."""
    settings = runtime.settings
    return ChildCommand(
        entry="tests.sshd.standin_child:main",
        args=("--identity-fd", "{identity_fd}"),
        env=(
            ("SWITCHBOARD_DATABASE_URL", settings.effective_database_url),
            ("SWITCHBOARD_DATA_DIR", str(settings.data_dir)),
            ("PYTHONPATH", str(ROOT)),
        ),
        preload=("core.runtime", "core.services.users", "core.settings", "sqlmodel"),
    )


def server_config(runtime: Runtime, **changes: Any) -> SshConfig:
    """A configuration for tests: port 0, short delays, the stand-in child."""
    config = SshConfig(
        host="127.0.0.1",
        port=0,
        host_key_path=runtime.settings.data_dir / "test_host_key",
        failure_delay=0.05,
        kill_grace=2.0,
        refill_delay=0.0,
        keepalive_interval=0,
        child=standin_command(runtime),
    )
    return dataclasses.replace(config, **changes)


@dataclass
class Site:
    """The test tenant and its people."""

    admin: str
    member: str  # not an admin
    key: asyncssh.SSHKey  # the admin's key
    admin_id: int


@pytest.fixture
def site(runtime: Runtime) -> Site:
    """A tenant 'Acme B.V.' with an admin (password and key) and a user without the privilege."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    with Session(runtime.engine, expire_on_commit=False) as session:
        tenant = factories.make_tenant(session, "acme", name="Acme B.V.")
        admin = factories.make_user(session, tenant, "alice@acme.example", ssh_keys=[key.export_public_key().decode()])
        factories.make_user(session, tenant, "bob@acme.example", admin=False)
        session.commit()
        return Site("alice@acme.example", "bob@acme.example", key, admin.id or 0)


ServerFactory = Callable[..., Any]


@pytest.fixture
async def start_server(runtime: Runtime) -> AsyncIterator[ServerFactory]:
    """Start a server with ``server_config(runtime, **changes)``; every one started is stopped afterwards."""
    started: list[SshService] = []

    async def start(**changes: Any) -> SshService:
        service = SshService(runtime, server_config(runtime, **changes))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
async def ssh_server(start_server: ServerFactory) -> SshService:
    """A server with the stand-in child and the default limits."""
    service: SshService = await start_server()
    return service


@pytest.fixture
async def tui_server(start_server: ServerFactory, runtime: Runtime) -> SshService:
    """A server whose sessions run the real ``switchboard tui --identity-fd`` child."""
    service: SshService = await start_server(child=tui_command(runtime.settings))
    return service


async def connect(service: SshService, username: str, **options: Any) -> asyncssh.SSHClientConnection:
    """A client connection (no agent, no known-hosts check; password or ``client_keys`` as given)."""
    options.setdefault("client_keys", None)
    options.setdefault("agent_path", None)
    return await asyncssh.connect(
        "127.0.0.1", service.port, username=username, known_hosts=None, config=None, **options
    )


class Terminal:
    """A session with a PTY, read as text with escape sequences removed."""

    def __init__(self, process: asyncssh.SSHClientProcess[Any]) -> None:
        self.process = process
        self.raw = ""

    @property
    def text(self) -> str:
        """Everything received so far, without escape sequences."""
        return ANSI.sub("", self.raw)

    async def read_until(self, *needles: str, timeout: float = GUARD) -> str:
        """Read until every needle has appeared (or fail showing what did)."""

        async def read() -> None:
            while not all(needle in self.text for needle in needles):
                chunk = await self.process.stdout.read(65536)
                if not chunk:
                    raise AssertionError(f"the session ended before {needles!r}; it showed {self.text[-1500:]!r}")
                self.raw += chunk if isinstance(chunk, str) else chunk.decode("utf-8", "replace")

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"never saw {needles!r}; the screen showed {self.text[-1500:]!r}") from None
        return self.text

    async def read_until_raw(self, needle: str, timeout: float = GUARD) -> None:
        """Read until ``needle`` appears in the output as sent (escape sequences included)."""

        async def read() -> None:
            while needle not in self.raw:
                chunk = await self.process.stdout.read(65536)
                if not chunk:
                    raise AssertionError(f"the session ended before {needle!r}")
                self.raw += chunk if isinstance(chunk, str) else chunk.decode("utf-8", "replace")

        await asyncio.wait_for(read(), timeout)

    async def read_to_end(self, timeout: float = GUARD) -> str:
        """Read until the server closes the session."""

        async def read() -> None:
            while chunk := await self.process.stdout.read(65536):
                self.raw += chunk if isinstance(chunk, str) else chunk.decode("utf-8", "replace")

        await asyncio.wait_for(read(), timeout)
        await asyncio.wait_for(self.process.wait_closed(), timeout)
        return self.text

    def send(self, data: str | bytes) -> None:
        """Type ``data``."""
        self.process.stdin.write(data)


async def open_terminal(
    conn: asyncssh.SSHClientConnection,
    *,
    term: str = "xterm-256color",
    size: tuple[int, int] = (100, 30),
    **options: Any,
) -> Terminal:
    """Open a session with a PTY of ``size`` (columns, rows), as ``ssh`` does for an interactive login."""
    process = await conn.create_process(term_type=term, term_size=size, **options)
    return Terminal(process)
