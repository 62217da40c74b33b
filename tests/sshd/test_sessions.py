"""Sessions over a real SSH connection: the real app's first frame, what is refused, resizes, bad input, load.

These start real processes, so they run on SQLite only; sign-in itself is tested on both backends in
``test_auth.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import asyncssh
import pytest
from sqlmodel import Session

from core.runtime import Runtime
from sshd.service import SshService
from tests import factories
from tests.factories import PASSWORD
from tests.sshd.conftest import ROOT, ServerFactory, Site, Terminal, connect, open_terminal

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def _session_pid(terminal: Terminal) -> int:
    screen = await terminal.read_until("Welcome")
    return int(screen.split("pid ", 1)[1].split()[0])


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


async def _gone(*pids: int) -> bool:
    for _ in range(200):
        if not any(_alive(pid) for pid in pids):
            return True
        await asyncio.sleep(0.05)
    return False


# --- the real app -------------------------------------------------------------------------------------------


async def test_the_real_app_shows_the_admin_and_organisation_on_its_first_frame(
    tui_server: SshService, site: Site
) -> None:
    async with await connect(tui_server, site.admin, client_keys=[site.key]) as conn:
        terminal = await open_terminal(conn, size=(120, 36))
        await terminal.read_until("Alice", "Acme B.V.")
        await terminal.read_until("Welcome, Alice")  # the home screen's own data
        assert "\x1b[44;" not in terminal.raw  # nothing drawn below row 36 so far
        terminal.process.change_terminal_size(130, 44)
        await terminal.read_until_raw("\x1b[44;")  # redrawn down to row 44: the resize reached the app
        terminal.send("\x11")  # Ctrl+Q
        await terminal.read_to_end()
        assert terminal.process.exit_status == 0


async def test_invalid_utf8_and_a_flood_of_keys_do_not_break_the_real_app(tui_server: SshService, site: Site) -> None:
    async with await connect(tui_server, site.admin, client_keys=[site.key]) as conn:
        process = await conn.create_process(term_type="xterm-256color", term_size=(100, 30), encoding=None)
        terminal = Terminal(process)
        await terminal.read_until("Acme B.V.")
        process.stdin.write(b"\xff\xfe\xc3(\xed\xa0\x80 \x80\x80")  # not UTF-8 at all
        process.stdin.write(b"\x1b[" * 500 + b"jk" * 20_000)  # broken escapes and a flood of keys
        await process.stdin.drain()
        terminal.send(b"\x11")
        await terminal.read_to_end()
        assert process.exit_status == 0  # the app quit normally: it neither crashed nor was cut off
    async with await connect(tui_server, site.admin, client_keys=[site.key]) as conn:  # the server serves on
        await (await open_terminal(conn)).read_until("Acme B.V.")


# --- what the server refuses ---------------------------------------------------------------------------------


async def test_exec_sftp_scp_and_forwarding_are_refused(ssh_server: SshService, site: Site, tmp_path: Path) -> None:
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("cat /etc/passwd")
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("id", term_type="xterm")
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.start_sftp_client()
        with pytest.raises(asyncssh.ChannelOpenError):
            await asyncssh.scp((conn, "switchboard.db"), tmp_path / "copy")
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", ssh_server.port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", ssh_server.port)
        terminal = await open_terminal(conn)  # the connection is still good for what is allowed
        await terminal.read_until("Welcome Alice of Acme B.V.")
    assert not (tmp_path / "copy").exists()


async def test_agent_forwarding_is_refused(ssh_server: SshService, site: Site, tmp_path: Path) -> None:
    async with await connect(
        ssh_server, site.admin, password=PASSWORD, agent_forwarding=True, agent_path=str(tmp_path / "agent.sock")
    ) as conn:
        terminal = await open_terminal(conn)
        await terminal.read_until("Welcome Alice")
        server_side = ssh_server.connections
        assert server_side and all(c.get_agent_path() is None for c in server_side)


async def test_a_session_without_a_terminal_gets_one_clear_line(ssh_server: SshService, site: Site) -> None:
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        result = await conn.run()
    assert result.exit_status == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"switchboard is an interactive app and needs a terminal: connect with ssh -t -p {ssh_server.port} "
        f"{site.admin}@127.0.0.1\n"
    )


# --- the terminal --------------------------------------------------------------------------------------------


async def test_window_resizes_reach_the_app(ssh_server: SshService, site: Site) -> None:
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn, size=(100, 30))
        await terminal.read_until("size 100x30")  # the PTY had the client's size before the app started
        terminal.process.change_terminal_size(132, 43)
        await terminal.read_until("size 132x43")  # SIGWINCH, and the new size on the PTY
        terminal.process.change_terminal_size(20, 5)
        await terminal.read_until("size 20x5")


@pytest.mark.parametrize(
    ("term", "env", "expected"),
    [
        ("xterm-256color", {}, "term xterm-256color colorterm -"),
        ("xterm-256color", {"COLORTERM": "truecolor"}, "term xterm-256color colorterm truecolor"),
        ("xterm-direct", {}, "term xterm-direct colorterm truecolor"),
        ("../../etc/passwd", {"COLORTERM": "24bit"}, "term xterm-256color colorterm truecolor"),
    ],
)
async def test_terminal_type_and_truecolour_come_from_the_client_as_hints_only(
    ssh_server: SshService, site: Site, term: str, env: dict[str, str], expected: str
) -> None:
    spoof = {"SWITCHBOARD_USER_ID": "1", "USER": "bob@acme.example", "LOGNAME": "root", **env}
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn, term=term, env=spoof)
        screen = await terminal.read_until("env TERM")
    assert "Welcome Alice of Acme B.V." in screen  # who is signed in never comes from the client's environment
    assert expected in screen


async def test_invalid_utf8_is_replaced_and_the_session_goes_on(ssh_server: SshService, site: Site) -> None:
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        process = await conn.create_process(term_type="xterm-256color", term_size=(80, 24), encoding=None)
        terminal = Terminal(process)
        await terminal.read_until("Welcome")
        process.stdin.write(b"\xffA\xc3")
        await terminal.read_until(r"got b'\xef\xbf\xbdA'")  # U+FFFD for the bad byte; the cut-off one waits
        process.stdin.write(b"\xa9")
        await terminal.read_until(r"got b'\xc3\xa9'")  # ...and completes into é with the next packet
        process.stdin.write(b"q")
        await terminal.read_to_end()
        assert process.exit_status == 3


async def test_breaks_and_signals_from_the_client_are_ignored(ssh_server: SshService, site: Site) -> None:
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        await terminal.read_until("Welcome")
        terminal.process.send_break(250)
        terminal.process.send_signal("INT")
        terminal.process.send_signal("KILL")
        terminal.send("z")
        await terminal.read_until("got b'z'")  # the same app, still there
        terminal.send("q")
        await terminal.read_to_end()
        assert terminal.process.exit_status == 3


async def test_a_busy_session_does_not_hold_up_typing_in_another(ssh_server: SshService, site: Site) -> None:
    async with (
        await connect(ssh_server, site.admin, password=PASSWORD) as first,
        await connect(ssh_server, site.admin, client_keys=[site.key]) as second,
    ):
        busy, typing = await open_terminal(first), await open_terminal(second)
        await busy.read_until("Welcome")
        await typing.read_until("Welcome")
        busy.send("b")  # its app now spends two seconds without reading anything
        await asyncio.sleep(0.1)
        for key in "wxyz1":  # each one distinct, each echoed before the next is typed
            typing.send(key)
            await typing.read_until(f"got b'{key}'")
        assert "busy done" not in busy.text  # every key echoed while the other app was still busy
        await busy.read_until("busy done")


async def test_twenty_sessions_at_once_all_get_their_own_app(
    start_server: ServerFactory, site: Site, runtime: Runtime
) -> None:
    service = await start_server(max_sessions_per_user=20, address_connect_burst=40)

    async def one() -> tuple[int, str]:
        async with await connect(service, site.admin, client_keys=[site.key]) as conn:
            terminal = await open_terminal(conn)
            pid = await _session_pid(terminal)
            terminal.send("x")
            screen = await terminal.read_until("got b'x'")
            return pid, screen

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert len({pid for pid, _ in results}) == 20  # one process per session
    assert all("Welcome Alice of Acme B.V." in screen for _, screen in results)


# --- limits --------------------------------------------------------------------------------------------------


async def test_idle_timeout_follows_input_not_output(start_server: ServerFactory, site: Site) -> None:
    service = await start_server(idle_timeout=1.5)
    async with await connect(service, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        pid = await _session_pid(terminal)
        terminal.send("t")  # the app now prints a line every 0.1 s, the admin types nothing
        screen = await terminal.read_to_end()
    assert screen.count("tick") > 3
    assert screen.rstrip().endswith("Signed out after 1.5 seconds without input.")
    assert "\x1b[?1049l" in terminal.raw  # the terminal is given back in a usable state
    assert await _gone(pid)


async def test_typing_keeps_a_session_open(start_server: ServerFactory, site: Site) -> None:
    service = await start_server(idle_timeout=2.0)
    async with await connect(service, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        await terminal.read_until("Welcome")
        for index in range(12):  # three seconds of typing, longer than the idle timeout
            terminal.send(str(index % 10))
            await asyncio.sleep(0.25)
        await terminal.read_until("got b'1'")
        assert "Signed out" not in terminal.text
        assert not terminal.process.is_closing()


async def test_sessions_are_capped_per_user_and_in_total(
    start_server: ServerFactory, site: Site, runtime: Runtime
) -> None:
    service = await start_server(max_sessions_per_user=1, max_sessions=2)
    with Session(runtime.engine) as session:
        tenant = factories.make_tenant(session, "other", name="Other Ltd")
        factories.make_user(session, tenant, "carol@other.example")
        factories.make_user(session, tenant, "dave@other.example")
        session.commit()
    async with (
        await connect(service, site.admin, password=PASSWORD) as first,
        await connect(service, "carol@other.example", password=PASSWORD) as carol,
        await connect(service, "dave@other.example", password=PASSWORD) as dave,
    ):
        await (await open_terminal(first)).read_until("Welcome Alice")
        again = await open_terminal(first)
        assert "You already have 1 open session(s), the most allowed per person" in await again.read_to_end()
        await (await open_terminal(carol)).read_until("Welcome Carol")
        third = await open_terminal(dave)
        assert "maximum of 2 sessions" in await third.read_to_end()


async def test_a_connection_that_does_not_sign_in_is_closed(start_server: ServerFactory) -> None:
    service = await start_server(login_timeout=0.5, pool_size=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        banner = await asyncio.wait_for(reader.readline(), 30)
        assert banner.startswith(b"SSH-2.0-switchboard")
        rest = await asyncio.wait_for(reader.read(), 30)  # the server hangs up on its own
        assert isinstance(rest, bytes)
    finally:
        writer.close()
        await writer.wait_closed()


# --- the children ---------------------------------------------------------------------------------------------


async def test_the_exec_spawner_runs_sessions_too(start_server: ServerFactory, site: Site) -> None:
    service = await start_server(spawner="exec", pool_size=1)
    async with await connect(service, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        screen = await terminal.read_until("Welcome Alice of Acme B.V.")
        assert "ctty True" in screen


async def test_a_pooled_child_that_died_is_replaced(start_server: ServerFactory, site: Site) -> None:
    service = await start_server(pool_size=1)
    for _ in range(200):
        if service.pool.idle:
            break
        await asyncio.sleep(0.05)
    waiting = service.pool.idle_pids()
    os.kill(waiting[0], signal.SIGKILL)
    assert await _gone(*waiting)
    async with await connect(service, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        pid = await _session_pid(terminal)
    assert pid not in waiting


async def test_shutdown_tells_the_sessions_and_leaves_no_process(start_server: ServerFactory, site: Site) -> None:
    service = await start_server(pool_size=2)
    async with (
        await connect(service, site.admin, password=PASSWORD) as first,
        await connect(service, site.admin, client_keys=[site.key]) as second,
    ):
        one, two = await open_terminal(first), await open_terminal(second)
        pids = [await _session_pid(one), await _session_pid(two)]
        two.send("t")  # one of them busy printing
        pids += service.pool.idle_pids()
        helper = service.pool.spawner_pid()
        await service.stop()
        for terminal in (one, two):
            screen = await terminal.read_to_end()
            assert screen.rstrip().endswith("The server is shutting down; please sign in again in a minute.")
    assert await _gone(*pids, *([helper] if helper else []))


async def test_after_kill_9_of_the_server_no_child_lives_on(site: Site, runtime: Runtime) -> None:
    settings = runtime.settings
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sshd.run_server",
        str(settings.data_dir),
        settings.effective_database_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        report = json.loads(await asyncio.wait_for(server.stdout.readline(), 60))
        conn = await asyncssh.connect(
            "127.0.0.1", report["port"], username=site.admin, password=PASSWORD, known_hosts=None, agent_path=None
        )
        terminal = await open_terminal(conn)
        pids = [await _session_pid(terminal), report["helper"], *report["pool"]]
        assert all(_alive(pid) for pid in pids)
        server.kill()  # SIGKILL: no clean-up code runs in the server
        await server.wait()
        assert await _gone(*pids)  # the fork server, the waiting children and the session's app all ended
        conn.close()
        await conn.wait_closed()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


# --- a real OpenSSH client --------------------------------------------------------------------------------------


async def _openssh(service: SshService, site: Site, tmp_path: Path, term: str) -> asyncio.subprocess.Process:
    """``ssh -tt`` (OpenSSH's client) signing in with the admin's key, its terminal on pipes."""
    key_file = tmp_path / "id_ed25519"
    site.key.write_private_key(str(key_file))
    key_file.chmod(0o600)
    return await asyncio.create_subprocess_exec(
        *("ssh", "-F", "/dev/null", "-tt", "-i", str(key_file), "-p", str(service.port), "-l", site.admin),
        *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no"),
        *("-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "127.0.0.1"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "TERM": term},
    )


async def _read_until(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    seen = b""
    while needle not in seen:
        chunk = await asyncio.wait_for(stream.read(4096), 60)
        assert chunk, f"the client ended before {needle!r}; it showed {seen!r}"
        seen += chunk
    return seen


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's client is not installed")
async def test_openssh_client_signs_in_with_its_terminal_type(
    ssh_server: SshService, site: Site, tmp_path: Path
) -> None:
    client = await _openssh(ssh_server, site, tmp_path, term="xterm-direct")
    assert client.stdout is not None and client.stdin is not None
    screen = await _read_until(client.stdout, b"env TERM")
    assert b"Welcome Alice of Acme B.V." in screen
    assert b"term xterm-direct colorterm truecolor" in screen
    client.stdin.write(b"q")
    await asyncio.wait_for(client.wait(), 60)
    assert client.returncode == 3  # ssh exits with the app's status


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's client is not installed")
async def test_keepalives_notice_a_client_that_stopped_answering(
    start_server: ServerFactory, site: Site, tmp_path: Path, runtime: Runtime
) -> None:
    service = await start_server(keepalive_interval=0.3, keepalive_count_max=2)
    client = await _openssh(service, site, tmp_path, term="xterm-256color")
    try:
        assert client.stdout is not None
        screen = await _read_until(client.stdout, b"Welcome")
        pid = int(screen.split(b"pid ", 1)[1].split()[0])
        client.send_signal(signal.SIGSTOP)  # the connection stays open, but nobody answers any more
        assert await _gone(pid)  # the server gave up on the client and ended its app
        for _ in range(200):
            if not service.sessions:
                break
            await asyncio.sleep(0.05)
        assert not service.sessions
    finally:
        client.kill()
        client.send_signal(signal.SIGCONT)
        await client.wait()
