"""The SSH server's settings: where it listens, its limits and how it starts the per-session TUI child.

``switchboard serve`` sets the address, the idle timeout and the session caps (``ServeOptions``). Two more
knobs come from the environment: ``SWITCHBOARD_SSH_POOL_SIZE`` (children kept started, default 2; 0 starts
each on demand) and ``SWITCHBOARD_SSH_SPAWNER`` (``fork``, the default: children forked from a helper that
imported the app once; ``exec``: a fresh interpreter per child).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigurationError
from core.settings import Settings

HOST_KEY_NAME = "ssh_host_ed25519_key"

# The placeholder in ChildCommand.args that becomes the number of the descriptor the identity arrives on.
IDENTITY_FD = "{identity_fd}"


@dataclass(frozen=True)
class ChildCommand:
    """What each session's child runs: ``entry(args)``, where ``entry`` is ``"module:function"``.

    With the exec spawner this is ``python -c "from module import function; function()" *args``; with the fork
    server it is the same call in a process forked from a helper that has imported ``preload`` (and ``module``)
    once. Either way stdin, stdout and stderr are the slave side of the session's PTY, and the read end of the
    identity pipe is the descriptor named where ``{identity_fd}`` appears in ``args``.
    """

    entry: str = "core.cli:main"
    args: tuple[str, ...] = ("tui", "--identity-fd", IDENTITY_FD)
    env: tuple[tuple[str, str], ...] = ()
    preload: tuple[str, ...] = ()

    def argv(self, identity_fd: int) -> list[str]:
        """The arguments with the identity descriptor filled in."""
        return [a.replace(IDENTITY_FD, str(identity_fd)) for a in self.args]

    def exec_argv(self, identity_fd: int) -> list[str]:
        """A command line that runs ``entry`` in a fresh interpreter."""
        module, _, function = self.entry.partition(":")
        code = f"import sys; from {module} import {function}; {function}(sys.argv[1:])"
        return [sys.executable, "-c", code, *self.argv(identity_fd)]


def tui_command(settings: Settings, *, public_url: str | None = None) -> ChildCommand:
    """The real child: ``switchboard --data-dir DIR tui --identity-fd N``, on the same database as the server.

    The database URL and the secret key go through the environment (never the command line, where any local
    user could read them in the process list). ``public_url`` is where browsers reach this server's HTTP shim,
    for the wizard's OAuth sign-ins (see :meth:`SshConfig.from_options`).
    """
    env: list[tuple[str, str]] = [("SWITCHBOARD_LOG_LEVEL", settings.log_level)]
    if public_url:
        env.append(("SWITCHBOARD_PUBLIC_URL", public_url))
    if settings.database_url:
        env.append(("SWITCHBOARD_DATABASE_URL", settings.database_url))
    if settings.secret_key:
        env.append(("SWITCHBOARD_SECRET_KEY", settings.secret_key))
    return ChildCommand(
        entry="core.cli:main",
        args=("--data-dir", str(settings.data_dir), "tui", "--identity-fd", IDENTITY_FD),
        env=tuple(env),
        # alembic too: each child checks the schema on start, and what the helper imported stays shared memory.
        preload=(
            "tui.cli",
            "tui.app",
            "textual.app",
            "alembic.command",
            "alembic.config",
            "alembic.script",
            # what every session imports on its first frame anyway: loaded once, its memory shared
            "textual.drivers.linux_driver",
            "textual._xterm_parser",
            "rich._emoji_codes",
            "sqlite3",
            "tzdata",
        ),
    )


@dataclass(frozen=True)
class SshConfig:
    """Every knob of the SSH server; ``from_options`` fills it from ``switchboard serve``'s options."""

    host: str = "127.0.0.1"
    port: int = 2222
    host_key_path: Path | None = None  # default: <data dir>/ssh_host_ed25519_key
    # sessions
    idle_timeout: float = 1800.0  # seconds without input from the admin
    max_sessions: int = 100
    max_sessions_per_user: int = 10
    # connections
    login_timeout: float = 60.0
    keepalive_interval: float = 30.0
    keepalive_count_max: int = 3
    # sign-in limits
    failure_delay: float = 1.0  # seconds after each failed password
    max_auth_failures: int = 6  # per connection, then it is closed
    address_failure_limit: int = 10  # failed sign-ins per address within the window, then it is blocked
    address_failure_window: float = 300.0
    address_connect_burst: int = 40  # new connections per address: a burst, then a steady rate
    address_connect_rate: float = 2.0  # per second
    max_pending_per_address: int = 32  # connections not signed in yet, per address
    max_pending: int = 256  # and in total
    # children
    child: ChildCommand = field(default_factory=ChildCommand)
    spawner: Literal["fork", "exec"] = "fork"
    pool_size: int = 2
    refill_delay: float = 1.0  # seconds after handing out a pooled child before starting its replacement
    kill_grace: float = 3.0  # seconds between SIGTERM and SIGKILL
    audit_connections: bool = True

    def key_path(self, settings: Settings) -> Path:
        """Where the host key lives."""
        return self.host_key_path or settings.data_dir / HOST_KEY_NAME

    @classmethod
    def from_options(cls, settings: Settings, options: Any, environ: Mapping[str, str] = os.environ) -> SshConfig:
        """The configuration for ``switchboard serve``: its ``ServeOptions``, the environment's knobs, the real TUI.

        Without a configured public URL, the sessions' OAuth sign-ins are sent back to the port this server's
        shim really listens on (``--http-port``), not to the default one.
        """
        public_url = settings.public_url
        if public_url is None and getattr(options, "http", False):
            public_url = settings.public_base_url(http_port=int(options.http_port))
        return cls(
            pool_size=_pool_size(environ.get("SWITCHBOARD_SSH_POOL_SIZE", "2")),
            spawner=_spawner(environ.get("SWITCHBOARD_SSH_SPAWNER", "fork")),
            host=str(getattr(options, "ssh_host", cls.host)),
            port=int(getattr(options, "ssh_port", cls.port)),
            idle_timeout=float(getattr(options, "ssh_idle_timeout", cls.idle_timeout)),
            max_sessions=int(getattr(options, "ssh_max_sessions", cls.max_sessions)),
            max_sessions_per_user=int(getattr(options, "ssh_max_sessions_per_user", cls.max_sessions_per_user)),
            child=tui_command(settings, public_url=public_url),
        )


def _pool_size(value: str) -> int:
    if not value.strip().isdigit() or not 0 <= int(value) <= 64:
        raise ConfigurationError(
            f"{value!r} is not a pool size: use a whole number from 0 to 64 (children kept started for new sessions)",
            field="ssh_pool_size",
        )
    return int(value)


def _spawner(value: str) -> Literal["fork", "exec"]:
    choice = value.strip().lower()
    if choice == "fork":
        return "fork"
    if choice == "exec":
        return "exec"
    raise ConfigurationError(
        f"{value!r} is not a way to start sessions: use fork (fast, the default) or exec (a fresh interpreter each)",
        field="ssh_spawner",
    )
