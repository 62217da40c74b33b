"""``switchboard tui --identity-fd N`` in a real PTY, as the SSH server runs it: handover, first frame, exit."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.db import session_scope
from core.runtime import open_runtime
from core.settings import Settings
from tests import factories
from tui.child import DEFAULT_TERM, HandoverError, parse_handover, read_line

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
CSI = re.compile(rb"\x1b\[[0-9;?<=>$ ]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")
GUARD = 60.0  # seconds: only so that a broken child cannot hang the suite


@dataclass
class Site:
    """A data directory with a database and a secret key, as ``switchboard serve`` would have it."""

    data_dir: Path
    url: str
    admin_id: int
    member_id: int


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'switchboard.db'}"
    runtime = open_runtime(Settings(data_dir=data_dir, database_url=url))
    try:
        with session_scope(runtime.engine) as session:
            tenant = factories.make_tenant(session, "acme", name="Acme B.V.")
            alice = factories.make_user(session, tenant, "alice@acme.example")
            bob = factories.make_user(session, tenant, "bob@acme.example", admin=False)
            factories.make_integration(session, tenant, runtime.box, name="HubSpot")
            yield_value = Site(data_dir, url, alice.id or 0, bob.id or 0)
    finally:
        runtime.close()
    yield yield_value


class Child:
    """A ``switchboard tui --identity-fd`` process on a PTY, with the write end of its handover pipe."""

    def __init__(self, site: Site, *, cols: int = 100, rows: int = 30) -> None:
        read_end, self.pipe = os.pipe()
        os.set_inheritable(read_end, True)
        argv = [
            SWITCHBOARD,
            "--data-dir",
            str(site.data_dir),
            "--database-url",
            site.url,
            "tui",
            "--identity-fd",
            str(read_end),
        ]
        env = {**os.environ, "TERM": "dumb"}
        env.pop("COLORTERM", None)
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # the child: the PTY slave is its stdin, stdout and stderr
            os.close(self.pipe)
            os.execve(SWITCHBOARD, argv, env)
        os.close(read_end)
        self.resize(cols, rows)
        self.output = b""

    def resize(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def hand_over(self, payload: dict[str, object]) -> None:
        os.write(self.pipe, json.dumps(payload).encode() + b"\n")
        os.close(self.pipe)

    def text(self) -> str:
        return CSI.sub(b"", self.output).decode("utf-8", "replace")

    def read_until(self, *needles: str) -> str:
        """Read the PTY until every needle has appeared on it (escape sequences removed)."""
        deadline = time.monotonic() + GUARD
        while not all(needle in self.text() for needle in needles):
            assert time.monotonic() < deadline, f"never saw {needles!r}; screen so far: {self.text()[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
        return self.text()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self) -> int:
        """The exit code (draining the PTY meanwhile, so the child never blocks on a full terminal)."""
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.master)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    self.output += os.read(self.master, 65536)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.master)
        raise AssertionError(f"the child did not exit; screen so far: {self.text()[-2000:]!r}")


def test_an_admin_gets_the_home_screen_on_the_first_frame_and_quits_with_0(site: Site) -> None:
    child = Child(site)
    child.hand_over(
        {"user_id": site.admin_id, "term": "xterm-256color", "colorterm": "truecolor", "cols": 100, "rows": 30}
    )
    screen = child.read_until("Alice", "Acme B.V.")  # the header shows who and where from the first frame
    assert "Add New Integration" in screen
    child.read_until("Welcome, Alice", "HubSpot")  # then the home screen's data arrives
    child.resize(120, 40)  # SIGWINCH through the PTY: the app draws again at the new size
    child.send(b"\x11")  # Ctrl+Q
    assert child.wait() == 0


def test_a_non_admin_sees_why_and_leaves_on_a_key(site: Site) -> None:
    child = Child(site)
    child.hand_over({"user_id": site.member_id, "term": "xterm-256color", "colorterm": "", "cols": 100, "rows": 30})
    child.read_until("administrative privilege", "Press any key")
    child.send(b"x")
    assert child.wait() == 0
    assert "Add New Integration" not in child.text()


def test_end_of_file_on_the_pipe_ends_the_child_quietly(site: Site) -> None:
    child = Child(site)
    os.close(child.pipe)  # the server went away before handing over a session
    assert child.wait() == 0
    assert "error" not in child.text().lower()


def test_the_handover_line_is_checked() -> None:
    line = b'{"user_id": 7, "term": "xterm-256color", "colorterm": "truecolor", "cols": 120, "rows": 40}'
    handover = parse_handover(line)
    assert (handover.user_id, handover.term, handover.colorterm, handover.cols, handover.rows) == (
        7,
        "xterm-256color",
        "truecolor",
        120,
        40,
    )
    odd = parse_handover(b'{"user_id": 7, "term": "\\u001b]0;evil", "colorterm": "bright", "cols": 80, "rows": 24}')
    assert (odd.term, odd.colorterm) == (DEFAULT_TERM, "")
    for bad in (b"not json", b"[1]", b'{"user_id": true}', b'{"user_id": "7"}', b'{"user_id": 7, "cols": 0}'):
        with pytest.raises(HandoverError):
            parse_handover(bad)


def test_read_line_stops_at_the_newline_and_reports_end_of_file() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b'{"user_id": 1}\n')
    assert read_line(read_end) == b'{"user_id": 1}'
    os.close(write_end)
    assert read_line(read_end) is None
    os.close(read_end)


def test_local_mode_outside_a_terminal_says_what_it_needs(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [SWITCHBOARD, "--data-dir", str(tmp_path / "data"), "tui"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    assert result.returncode == 1
    assert "needs a terminal" in result.stderr
    listed = subprocess.run([SWITCHBOARD, "--help"], capture_output=True, text=True, timeout=GUARD)
    assert "tui" in listed.stdout
