"""One admin's SSH session: checks, a child from the pool, and the relay between the channel and its PTY.

The relay is ours rather than ``process.redirect`` so that the idle timeout follows the admin's input (an
idle Textual screen still sends output), window changes go to the PTY with TIOCSWINSZ, and a session that
the server ends (idle, shutdown) still lets the app restore the terminal before a plain message is shown.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh
from asyncssh.misc import SoftEOFReceived

from core.errors import NotFound
from core.services import signins, users
from sshd.children import Child, ChildError

if TYPE_CHECKING:
    from sshd.service import SshService

log = logging.getLogger(__name__)

# Leave the alternate screen, show the cursor, reset colours, stop mouse reporting and bracketed paste:
# whatever state the app left the admin's terminal in, this makes the message after it readable.
TERMINAL_RESET = "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[0m\x1b[?25h\x1b[?1049l"

_SAFE_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_DEFAULT_TERM = "xterm-256color"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who authenticated on a connection, and how (never with the password)."""

    user_id: int
    username: str
    method: str
    fingerprint: str | None
    address: str


def display_hints(term: str | None, env: dict[str, Any]) -> tuple[str, str]:
    """The terminal type to give the app and whether to use 24-bit colour ("truecolor" or "").

    Both are display hints only: they never decide who is signed in. A malformed TERM becomes the default.
    """
    value = term if term and _SAFE_TERM.match(term) else _DEFAULT_TERM
    colorterm = str(env.get("COLORTERM", "")).strip().lower()
    wants = colorterm in {"truecolor", "24bit"} or any(k in value.lower() for k in ("truecolor", "24bit", "direct"))
    return value, "truecolor" if wants else ""


def _line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n"


class AdminSession:
    """Runs one session channel from the checks to the end, and tells the audit log how it went."""

    def __init__(self, service: SshService, process: asyncssh.SSHServerProcess[str], who: SignedIn) -> None:
        self._service = service
        self._process = process
        self._who = who
        self._child: Child | None = None
        self._last_input = time.monotonic()
        self._ended_by_server: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._counted = False

    @property
    def child(self) -> Child | None:
        """The session's child process, once it has one."""
        return self._child

    def end(self, message: str) -> None:
        """End the session from the server's side (shutdown): the app is stopped and ``message`` shown."""
        if not self._ended_by_server.done():
            self._ended_by_server.set_result(message)

    async def run(self) -> None:
        """The whole session; never raises."""
        started = time.monotonic()
        outcome = "refused"
        try:
            refusal = await self._refusal()
            if refusal is not None:
                reason, message = refusal
                self._audit(signins.SESSION_REFUSED, reason=reason)
                await self._finish(message, status=1)
                return
            outcome = await self._serve()
        except ChildError as exc:
            log.error("SSH session of %s: %s", self._who.username, exc)
            outcome = "app_failed"
            await self._finish("The app could not be started; please try again in a moment.", status=1, reset=True)
        except Exception:
            log.exception("SSH session of %s failed", self._who.username)
            outcome = "error"
            await self._finish(
                "Something went wrong on the server; please sign in again.", status=1, reset=self._child is not None
            )
        finally:
            await self._cleanup()
            if outcome != "refused":
                duration = round(time.monotonic() - started, 1)
                self._audit(signins.SESSION_END, outcome=outcome, duration_seconds=duration)

    async def _refusal(self) -> tuple[str, str] | None:
        """Why this session may not start (reason for the log, message for the admin), or None."""
        if self._service.closing:
            return "shutting_down", "The server is shutting down; please sign in again in a minute."
        if not self._process.get_terminal_type():
            return "no_pty", (
                "switchboard is an interactive app and needs a terminal: connect with "
                f"ssh -t -p {self._service.port} {self._who.username}@{self._service.connect_host}"
            )
        user_id = self._who.user_id
        try:
            identity = await self._service.call_db(lambda s: users.identity_for(session=s, user_id=user_id))
        except NotFound:
            return "no_account", "This account no longer exists."
        if not identity.is_admin:
            return "not_admin", users.NOT_ADMIN_MESSAGE
        reason = self._service.limits.open(user_id)
        if reason is not None:
            return "session_limit", reason[0].upper() + reason[1:] + "."
        self._counted = True
        return None

    async def _serve(self) -> str:
        """Give a child the identity and relay until one side ends; how it ended."""
        cols, rows, pixwidth, pixheight = self._process.get_terminal_size()
        cols, rows = min(cols, 10_000) or 80, min(rows, 10_000) or 24
        term, colorterm = display_hints(self._process.get_terminal_type(), dict(self._process.env))
        handover = {"user_id": self._who.user_id, "term": term, "colorterm": colorterm, "cols": cols, "rows": rows}
        for attempt in (1, 2):  # a waiting child may have died just now: then take another
            child = self._child = await self._service.pool.acquire()
            child.resize(cols, rows, pixwidth, pixheight)
            try:
                child.send_identity(handover)
                break
            except ChildError:
                self._child = None
                await self._service.pool.release(child)
                if attempt == 2:
                    raise
        self._audit(signins.SESSION_START, term=term, pid=child.pid)
        return await self._relay(child)

    async def _relay(self, child: Child) -> str:
        """Pump both ways until the app ends, the admin leaves, the idle timeout passes or the server stops."""
        loop = asyncio.get_running_loop()
        reader, writer, close_streams = await _open_streams(child.master)
        output = loop.create_task(self._pump_output(reader), name="sshd-output")
        endings: dict[asyncio.Future[Any], str] = {
            loop.create_task(self._pump_input(writer), name="sshd-input"): "client_closed",
            output: "app_exited",
            loop.create_task(child.wait(), name="sshd-child"): "app_exited",
            loop.create_task(self._watch_idle(), name="sshd-idle"): "idle",
            self._ended_by_server: "shutdown",
        }
        tasks = [task for task in endings if task is not self._ended_by_server]
        try:
            done, _ = await asyncio.wait(endings, return_when=asyncio.FIRST_COMPLETED)
            reasons = {endings[task] for task in done}
            reason = next(r for r in ("shutdown", "idle", "app_exited", "client_closed") if r in reasons)
            return await self._conclude(reason, child, output)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            close_streams()

    async def _conclude(self, reason: str, child: Child, output: asyncio.Task[None]) -> str:
        """Bring the session to its end for ``reason``."""
        if reason == "app_exited":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(output), 1.0)  # what the app printed last
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 1.0)
            await self._service.pool.release(child)
            await self._finish(None, status=_exit_status(child.returncode))
            return reason
        await self._service.pool.release(child)  # the app can restore the terminal while its output flows
        if reason == "client_closed":
            return reason
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(output), 0.5)
        message = self._ended_by_server.result() if reason == "shutdown" else self._idle_message()
        await self._finish(message, status=0, reset=True)
        return reason

    def _idle_message(self) -> str:
        timeout = self._service.config.idle_timeout
        if timeout < 120:
            return f"Signed out after {timeout:g} seconds without input."
        return f"Signed out after {round(timeout / 60)} minutes without input."

    async def _pump_input(self, writer: asyncio.StreamWriter) -> None:
        """Admin -> app: keys (already valid UTF-8, see ``errors='replace'``) and window changes."""
        stdin = self._process.stdin
        while True:
            try:
                data = await stdin.read(1 << 16)
            except asyncssh.TerminalSizeChanged as change:
                if self._child is not None:
                    self._child.resize(change.width, change.height, change.pixwidth, change.pixheight)
                self._last_input = time.monotonic()
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived, SoftEOFReceived):  # not meaningful to the app
                continue
            except (asyncssh.Error, OSError):
                return
            if not data:
                return
            self._last_input = time.monotonic()
            try:
                writer.write(data.encode("utf-8", "replace"))
                await writer.drain()
            except (OSError, RuntimeError):  # the app's side is gone: its exit ends the session
                await asyncio.Future()

    async def _pump_output(self, reader: asyncio.StreamReader) -> None:
        """App -> admin: the PTY's output, decoded leniently, with the channel's flow control."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stdout = self._process.stdout
        while True:
            try:
                data = await reader.read(1 << 16)
            except OSError:  # EIO: the app closed the terminal
                data = b""
            text = decoder.decode(data, final=not data)
            try:
                if text:
                    stdout.write(text)
                    await stdout.drain()
            except (asyncssh.Error, OSError):  # the admin is gone
                await asyncio.Future()
            if not data:
                return

    async def _watch_idle(self) -> None:
        """Return once the admin has sent nothing for the idle timeout (keys and window changes count; output not)."""
        timeout = self._service.config.idle_timeout
        while True:
            remaining = self._last_input + timeout - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    async def _finish(self, message: str | None, *, status: int, reset: bool = False) -> None:
        """Show ``message`` (if any), send the exit status and close the channel."""
        process = self._process
        try:
            if message:
                if process.get_terminal_type():
                    process.stdout.write((TERMINAL_RESET if reset else "") + _line(message))
                else:
                    process.stderr.write(message + "\n")
                await asyncio.wait_for(process.stdout.drain(), 5.0)
            process.exit(status)
        except (asyncssh.Error, OSError, TimeoutError):
            process.close()

    async def _cleanup(self) -> None:
        if self._child is not None:
            with contextlib.suppress(Exception):
                await self._service.pool.release(self._child)
        if self._counted:
            self._service.limits.close(self._who.user_id)
            self._counted = False
        if not self._process.is_closing():
            self._process.close()

    def _audit(self, action: str, **details: Any) -> None:
        who = self._who
        self._service.audit(
            action, address=who.address, username=who.username, details={"method": who.method, **details}
        )


async def _open_streams(master: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Callable[[], None]]:
    """A reader and a writer with flow control on copies of a PTY master, and a function that closes both."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader),
        open(os.dup(master), "rb", buffering=0),  # noqa: SIM115 (the transport closes it)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin,
        open(os.dup(master), "wb", buffering=0),  # noqa: SIM115 (the transport closes it)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)

    def close() -> None:
        read_transport.close()
        write_transport.abort()  # drop keys the app will never read

    return reader, writer, close


def _exit_status(code: int | None) -> int:
    """An SSH exit status (0-255) for a process's return code (negative: killed by that signal)."""
    if code is None:
        return 0
    return 128 - code if code < 0 else min(code, 255)
