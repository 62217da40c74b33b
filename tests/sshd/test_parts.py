"""The SSH server's parts on their own: limits (with a fake clock), the host key, display hints, the child command."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import Settings
from sshd.config import IDENTITY_FD, ChildCommand, SshConfig, tui_command
from sshd.hostkey import fingerprint, load_or_create_host_key
from sshd.limits import AddressThrottle, SessionLimits
from sshd.service import SshService, create_service
from sshd.session import display_hints


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, **changes: float) -> AddressThrottle:
    options = {
        "failure_limit": 3,
        "failure_window": 60.0,
        "connect_burst": 5,
        "connect_rate": 1.0,
        "max_pending_per_address": 4,
        "max_pending": 10,
        **changes,
    }
    return AddressThrottle(clock=clock, **options)  # type: ignore[arg-type]


def test_failures_block_an_address_for_the_window_only() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    assert not throttle.failed("10.0.0.1")
    assert not throttle.failed("10.0.0.1")
    assert throttle.failed("10.0.0.1")  # the third failure within the minute blocks
    assert throttle.admit("10.0.0.1") == "too many failed sign-ins from your address; try again in 1 minute(s)"
    assert throttle.admit("10.0.0.2") is None  # other addresses are not affected
    clock.now += 60.0
    assert throttle.blocked_for("10.0.0.1") == 0
    assert throttle.admit("10.0.0.1") is None


def test_connections_per_address_have_a_burst_then_a_rate() -> None:
    clock = Clock()
    throttle = _throttle(clock, max_pending_per_address=100, max_pending=100)
    assert [throttle.admit("10.0.0.1") for _ in range(5)] == [None] * 5
    assert throttle.admit("10.0.0.1") == "too many connections from your address; wait a moment and try again"
    clock.now += 1.0  # one more token per second
    assert throttle.admit("10.0.0.1") is None
    assert throttle.admit("10.0.0.1") is not None


def test_connections_waiting_to_sign_in_are_capped_per_address_and_in_total() -> None:
    clock = Clock()
    throttle = _throttle(clock, connect_burst=100, max_pending=6)
    assert [throttle.admit("10.0.0.1") for _ in range(4)] == [None] * 4
    assert throttle.admit("10.0.0.1") == "too many connections are waiting to sign in; try again in a minute"
    throttle.release("10.0.0.1")  # one signed in (or left)
    assert throttle.admit("10.0.0.1") is None
    assert throttle.admit("10.0.0.2") is None
    assert throttle.admit("10.0.0.3") is None
    assert throttle.admit("10.0.0.4") is not None  # six waiting in all
    throttle.release("10.0.0.4")  # not admitted: releasing it changes nothing
    assert throttle.admit("10.0.0.4") is not None


def test_the_throttle_forgets_quiet_addresses() -> None:
    clock = Clock()
    throttle = _throttle(clock, connect_burst=2)
    for index in range(1100):
        address = f"10.1.{index // 256}.{index % 256}"
        assert throttle.admit(address) is None
        throttle.release(address)
    clock.now += 10.0
    throttle.admit("10.9.9.9")
    assert len(throttle._states) < 10


def test_session_limits_per_user_and_in_total() -> None:
    limits = SessionLimits(max_total=3, max_per_user=2)
    assert limits.open(1) is None
    assert limits.open(1) is None
    assert limits.open(1) == (
        "you already have 2 open session(s), the most allowed per person; close one of them and try again"
    )
    assert limits.open(2) is None
    assert limits.open(3) == "the server already runs its maximum of 3 sessions; please try again later"
    limits.close(1)
    assert limits.open(3) is None
    limits.close(99)  # never opened: ignored
    assert limits.total == 3


@pytest.mark.parametrize(
    ("term", "env", "expected"),
    [
        ("xterm-256color", {}, ("xterm-256color", "")),
        ("xterm-kitty", {"COLORTERM": "truecolor"}, ("xterm-kitty", "truecolor")),
        ("xterm-256color", {"COLORTERM": "24BIT"}, ("xterm-256color", "truecolor")),
        ("xterm-direct", {}, ("xterm-direct", "truecolor")),
        ("screen.xterm-24bit", {}, ("screen.xterm-24bit", "truecolor")),
        ("vt100", {"COLORTERM": "yes"}, ("vt100", "")),
        (None, {}, ("xterm-256color", "")),
        ("", {}, ("xterm-256color", "")),
        ("x" * 65, {}, ("xterm-256color", "")),
        ("xterm;rm -rf /", {}, ("xterm-256color", "")),
        ("../../etc/passwd", {}, ("xterm-256color", "")),
    ],
)
def test_display_hints(term: str | None, env: dict[str, str], expected: tuple[str, str]) -> None:
    assert display_hints(term, env) == expected


def test_the_host_key_is_made_once_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ssh_host_ed25519_key"
    key = load_or_create_host_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.algorithm == b"ssh-ed25519"
    assert fingerprint(load_or_create_host_key(path)) == fingerprint(key)
    assert fingerprint(key).startswith("SHA256:")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_a_host_key_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "key"
    first = load_or_create_host_key(path)
    os.chmod(path, 0o644)
    assert fingerprint(load_or_create_host_key(path)) == fingerprint(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_child_command_fills_in_the_identity_descriptor() -> None:
    command = ChildCommand(entry="pkg.mod:run", args=("--data-dir", "/d", "tui", "--identity-fd", IDENTITY_FD))
    assert command.argv(7) == ["--data-dir", "/d", "tui", "--identity-fd", "7"]
    assert command.exec_argv(9)[:2] == [sys.executable, "-c"]
    assert "from pkg.mod import run" in command.exec_argv(9)[2]
    assert command.exec_argv(9)[3:] == ["--data-dir", "/d", "tui", "--identity-fd", "9"]


def test_the_real_child_gets_database_and_key_through_its_environment_only(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://sb:s3cret@127.0.0.1/sb",
        secret_key="k" * 44,
    )
    command = tui_command(settings)
    assert command.entry == "core.cli:main"
    assert command.argv(5) == ["--data-dir", str(tmp_path), "tui", "--identity-fd", "5"]
    assert not any("s3cret" in a or "k" * 44 in a for a in command.exec_argv(5))  # not in the process list
    assert dict(command.env)["SWITCHBOARD_DATABASE_URL"] == settings.database_url
    assert dict(command.env)["SWITCHBOARD_SECRET_KEY"] == "k" * 44


def test_create_service_reads_the_serve_options(tmp_path: Path) -> None:
    from core.runtime import open_runtime
    from core.serve import ServeOptions

    runtime = open_runtime(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    try:
        options = ServeOptions(ssh_host="127.0.0.1", ssh_port=2022, ssh_idle_timeout=60.0, ssh_max_sessions=5)
        service = create_service(runtime, options)  # the pool knobs: see the next test
        assert isinstance(service, SshService)
        assert service.name == "ssh"
        assert service.config == SshConfig(
            host="127.0.0.1",
            port=2022,
            idle_timeout=60.0,
            max_sessions=5,
            max_sessions_per_user=10,
            child=tui_command(runtime.settings, public_url="http://127.0.0.1:8080"),
        )
    finally:
        runtime.close()


def test_sessions_send_oauth_sign_ins_back_to_the_port_the_shim_listens_on(tmp_path: Path) -> None:
    from core.serve import ServeOptions

    def public_url(settings: Settings, options: ServeOptions) -> str | None:
        return dict(SshConfig.from_options(settings, options, {}).child.env).get("SWITCHBOARD_PUBLIC_URL")

    plain = Settings(data_dir=tmp_path)
    assert public_url(plain, ServeOptions(http_port=9000)) == "http://127.0.0.1:9000"
    assert public_url(plain, ServeOptions(http=False)) is None  # no shim here: the settings' default stands
    configured = Settings(data_dir=tmp_path, public_url="https://switchboard.example.com")
    assert public_url(configured, ServeOptions(http_port=9000)) == "https://switchboard.example.com"


async def test_describe_names_the_fingerprint_and_the_command(ssh_server: SshService) -> None:
    lines = ssh_server.describe()
    assert lines == [
        f"ssh: listening on 127.0.0.1:{ssh_server.port}, host key {ssh_server.host_key_fingerprint}",
        f"ssh: connect with: ssh -p {ssh_server.port} USERNAME@127.0.0.1",
    ]
    assert ssh_server.port != 0


def test_pool_size_and_spawner_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    config = SshConfig.from_options(
        settings, object(), {"SWITCHBOARD_SSH_POOL_SIZE": "0", "SWITCHBOARD_SSH_SPAWNER": "exec"}
    )
    assert (config.pool_size, config.spawner, config.port) == (0, "exec", 2222)
    assert SshConfig.from_options(settings, object(), {}).pool_size == 2
    with pytest.raises(ConfigurationError, match="pool size") as bad:
        SshConfig.from_options(settings, object(), {"SWITCHBOARD_SSH_POOL_SIZE": "lots"})
    assert bad.value.field == "ssh_pool_size"
    with pytest.raises(ConfigurationError, match=r"fork .* or exec"):
        SshConfig.from_options(settings, object(), {"SWITCHBOARD_SSH_SPAWNER": "thread"})
