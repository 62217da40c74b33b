"""The per-session child processes: a real PTY each, the identity pipe, two ways to start them, and a warm pool.

Every child runs the app's entry point with stdin/stdout/stderr on the slave side of its own PTY (its
controlling terminal, in a session of its own) and reads who signed in from a pipe: one line of JSON that only
this server writes. A pool keeps a few children started and waiting on that pipe, so an admin who signs in
does not wait for Python to start.

Two spawners start children: ``ForkServerSpawner`` (default) asks a helper process that has imported the app
once to fork (milliseconds, and shared memory); ``ExecSpawner`` starts a fresh interpreter per child. Either
way the server watches each child through a pidfd (no threads, no SIGCHLD handler) and every child dies with
the server, even on ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import termios
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from sshd.config import ChildCommand

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 16


class ChildError(Exception):
    """A child could not be started or did not take the identity."""


class Child:
    """One child process: its PTY master, the write end of its identity pipe and a pidfd to watch it."""

    def __init__(self, *, pid: int, pidfd: int, master: int, identity: int, reap: Callable[[], int | None]) -> None:
        self.pid = pid
        self.master = master
        self.returncode: int | None = None
        self._identity: int | None = identity
        self._pidfd: int | None = pidfd
        self._reap = reap
        self._exited = asyncio.Event()
        self._status_known = asyncio.Event()
        asyncio.get_running_loop().add_reader(pidfd, self._on_exit)

    @property
    def exited(self) -> bool:
        """Whether the process has ended."""
        return self._exited.is_set()

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
        self.set_returncode(self._reap())
        self._exited.set()

    def set_returncode(self, code: int | None) -> None:
        """Record the exit status (the fork server reports it separately from the pidfd)."""
        if code is not None and self.returncode is None:
            self.returncode = code
            self._status_known.set()

    async def wait(self) -> int | None:
        """Wait until the process has ended; its exit status (None if it is not reported within a second)."""
        await self._exited.wait()
        if self.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_known.wait(), 1.0)
        return self.returncode

    def resize(self, cols: int, rows: int, pixwidth: int = 0, pixheight: int = 0) -> None:
        """Set the PTY's window size; the kernel sends SIGWINCH to the child's foreground process group."""
        set_window_size(self.master, cols, rows, pixwidth, pixheight)

    def send_identity(self, payload: dict[str, Any]) -> None:
        """Write the one line of JSON the child waits for, then close the pipe (it is never written again)."""
        if self._identity is None:
            raise ChildError("this child was already given an identity")
        fd, self._identity = self._identity, None
        try:
            os.write(fd, json.dumps(payload).encode() + b"\n")
        except OSError as exc:
            raise ChildError(f"the app process did not take the identity ({exc})") from None
        finally:
            os.close(fd)

    def send_signal(self, sig: int) -> None:
        """Signal the process (through its pidfd, so never a recycled pid)."""
        if self._pidfd is not None and not self.exited:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, sig)

    async def terminate(self, grace: float) -> int | None:
        """End the process: SIGTERM, then SIGKILL when it is still there after ``grace`` seconds."""
        if not self.exited:
            self.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._exited.wait(), grace)
            except TimeoutError:
                self.send_signal(signal.SIGKILL)
                await self._exited.wait()
        return self.returncode

    def close(self) -> None:
        """Release the descriptors (after the process has ended)."""
        if self._identity is not None:
            os.close(self._identity)
            self._identity = None
        if self._pidfd is not None:
            if not self.exited:
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def set_window_size(fd: int, cols: int, rows: int, pixwidth: int = 0, pixheight: int = 0) -> None:
    """TIOCSWINSZ on a PTY descriptor, clamped to what the kernel's structure holds."""

    def clamp(value: int) -> int:
        return max(0, min(int(value), 0xFFFF))

    size = struct.pack("HHHH", clamp(rows), clamp(cols), clamp(pixwidth), clamp(pixheight))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


def open_pty(cols: int = 80, rows: int = 24) -> tuple[int, int]:
    """A PTY pair (master, slave) whose slave starts without echo, line editing or job-control keys.

    The app puts the terminal in raw mode itself; starting that way means keys typed while it is still
    starting are neither echoed over the screen nor turned into signals that would kill it.
    """
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    set_window_size(master, cols, rows)
    return master, slave


class Spawner(Protocol):
    """Starts children; ``spawn`` gets the PTY slave and the identity pipe's read end (and closes neither)."""

    async def start(self) -> None:
        """Get ready to spawn."""

    async def spawn(self, slave: int, identity: int) -> tuple[int, int, Callable[[], int | None]]:
        """Start a child; its pid, a pidfd for it and a function giving its exit status once it has ended."""

    async def stop(self) -> None:
        """Release everything (every child has been ended before)."""

    def register(self, child: Child) -> None:
        """Follow a child started by ``spawn`` (for exit statuses reported out of band)."""


def _child_environment(command: ChildCommand) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLORTERM", None)  # the operator's terminal is not the admin's: the identity carries theirs
    env["TERM"] = "xterm-256color"
    env.update(command.env)
    return env


class ExecSpawner:
    """Starts each child as a fresh interpreter (``python -c ...``): simple, about a second per child."""

    def __init__(self, command: ChildCommand) -> None:
        self._command = command
        self._env = _child_environment(command)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = libc.prctl  # resolved here, so the child only calls it

    async def start(self) -> None:
        """Nothing to prepare."""

    async def spawn(self, slave: int, identity: int) -> tuple[int, int, Callable[[], int | None]]:
        """Fork and exec the child with the PTY as its controlling terminal."""
        parent = os.getpid()
        prctl = self._prctl

        def attach() -> None:  # runs in the child between fork and exec: keep it tiny
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)

        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            self._command.exec_argv(identity),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            pass_fds=(identity,),
            start_new_session=True,
            preexec_fn=attach,  # setsid (start_new_session) + TIOCSCTTY + PDEATHSIG need the child side
            env=self._env,
        )
        self._procs[proc.pid] = proc
        return proc.pid, os.pidfd_open(proc.pid), lambda: self._procs.pop(proc.pid, proc).poll()

    def register(self, child: Child) -> None:
        """Popen reaps its own children."""

    async def stop(self) -> None:
        """Reap anything left (normally nothing)."""
        for proc in self._procs.values():
            with contextlib.suppress(OSError):
                proc.kill()
            await _wait_process(proc)
        self._procs.clear()


class ForkServerSpawner:
    """Asks the fork server (``sshd.forkserver``) for each child: milliseconds instead of a second."""

    def __init__(self, command: ChildCommand, *, start_timeout: float = 60.0) -> None:
        self._command = command
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[None] | None = None
        self._replies: deque[asyncio.Future[tuple[int, int]]] = deque()
        self._children: dict[int, Child] = {}
        self._statuses: dict[int, int] = {}
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The fork server's pid while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    async def start(self) -> None:
        """Start the fork server and wait until it has imported the app."""
        async with self._lock:
            if self._sock is None:
                await self._launch()

    async def _launch(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec = json.dumps({"entry": self._command.entry, "preload": list(self._command.preload)})
        code = "from sshd.forkserver import main; main()"
        try:
            self._proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                [sys.executable, "-c", code, str(theirs.fileno()), str(os.getpid()), spec],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env=_child_environment(self._command),
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_message)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._start_timeout)
        except BaseException:
            await self._shut_down()
            raise

    def _on_message(self) -> None:
        assert self._sock is not None
        try:
            data, fds, _flags, _addr = socket.recv_fds(self._sock, _MAX_MESSAGE, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            self._lost()
            return
        self._dispatch(json.loads(data), fds)

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        kind = message.get("type")
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif kind == "spawned" and self._replies:
            reply = self._replies.popleft()
            if reply.done():  # whoever asked gave up (shutdown): do not leave the child behind
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(fds[0], signal.SIGKILL)
                os.close(fds[0])
            else:
                reply.set_result((int(message["pid"]), fds[0]))
        elif kind == "failed":
            error = ChildError(f"the fork server could not start the app: {message.get('error')}")
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(error)
            elif self._replies and not (reply := self._replies.popleft()).done():
                reply.set_exception(error)
        elif kind == "exited":
            pid, status = int(message["pid"]), int(message["status"])
            child = self._children.pop(pid, None)
            if child is not None:
                child.set_returncode(status)
            else:
                self._statuses[pid] = status
        else:
            for fd in fds:
                os.close(fd)

    def _lost(self) -> None:
        """The fork server went away: fail whoever waits; the next spawn starts a new one."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        error = ChildError("the fork server stopped")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        while self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                reply.set_exception(error)
        if self._proc is not None:
            self._proc.poll()

    async def spawn(self, slave: int, identity: int) -> tuple[int, int, Callable[[], int | None]]:
        """Hand the PTY slave and the identity pipe to the fork server and get the new child's pid and pidfd."""
        async with self._lock:
            if self._sock is None:
                await self._reset()
                await self._launch()
            assert self._sock is not None
            reply: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
            self._replies.append(reply)
            message = json.dumps({"args": list(self._command.args)}).encode()  # the helper fills in {identity_fd}
            try:
                socket.send_fds(self._sock, [message], [slave, identity])
            except OSError as exc:
                self._replies.remove(reply)
                raise ChildError(f"cannot reach the fork server ({exc})") from None
        pid, pidfd = await reply
        return pid, pidfd, lambda: self._statuses.pop(pid, None)

    def register(self, child: Child) -> None:
        """Deliver the exit status the fork server reports (it may come before or after the pidfd fires)."""
        status = self._statuses.pop(child.pid, None)
        if status is not None:
            child.set_returncode(status)
        elif not child.exited or child.returncode is None:
            self._children[child.pid] = child

    async def _reset(self) -> None:
        if self._proc is not None:
            await self._shut_down()

    async def stop(self) -> None:
        """Close the socket (the fork server then exits) and reap it."""
        async with self._lock:
            await self._shut_down()

    async def _shut_down(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                await asyncio.wait_for(_wait_process(proc), 5.0)
            except TimeoutError:
                proc.kill()
                await _wait_process(proc)
        self._children.clear()
        self._statuses.clear()


async def _wait_process(proc: subprocess.Popen[bytes]) -> int:
    """Wait for a direct child without a thread: through a pidfd."""
    if proc.poll() is not None:
        return proc.returncode
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(proc.pid)
    done: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, exited)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return proc.wait()


class ChildPool:
    """Keeps ``size`` children started and waiting for an identity; ``acquire`` hands one out and refills."""

    def __init__(self, spawner: Spawner, *, size: int, kill_grace: float, refill_delay: float = 0.0) -> None:
        self._spawner = spawner
        self._size = size
        self._kill_grace = kill_grace
        self._refill_delay = refill_delay
        self._idle: deque[Child] = deque()
        self._starting = 0
        self._refill_task: asyncio.Task[None] | None = None
        self._closed = False
        self.spawned = 0

    @property
    def idle(self) -> int:
        """How many started children wait for an admin."""
        return len(self._idle)

    def idle_pids(self) -> list[int]:
        """The process ids of the waiting children."""
        return [child.pid for child in self._idle]

    def spawner_pid(self) -> int | None:
        """The fork server's process id, when children come from one."""
        pid = getattr(self._spawner, "pid", None)
        return pid if isinstance(pid, int) else None

    async def start(self) -> None:
        """Start the spawner and fill the pool (in the background)."""
        await self._spawner.start()
        self._schedule_refill()

    async def spawn(self) -> Child:
        """Start one child, waiting on its identity pipe."""
        master, slave = open_pty()
        identity_r, identity_w = os.pipe()
        try:
            pid, pidfd, reap = await self._spawner.spawn(slave, identity_r)
        except BaseException:
            os.close(master)
            os.close(identity_w)
            raise
        finally:
            os.close(slave)
            os.close(identity_r)
        child = Child(pid=pid, pidfd=pidfd, master=master, identity=identity_w, reap=reap)
        self._spawner.register(child)
        self.spawned += 1
        return child

    async def acquire(self) -> Child:
        """A child for a new session: a waiting one if there is one, else a new one."""
        if self._closed:
            raise ChildError("the server is shutting down")
        child = None
        while self._idle:
            candidate = self._idle.popleft()
            if not candidate.exited:
                child = candidate
                break
            _log_early_exit(candidate)
            candidate.close()
        # A new child's start-up would compete for the CPU with this session's first frame: refill a moment later.
        self._schedule_refill(self._refill_delay)
        return child if child is not None else await self.spawn()

    def _schedule_refill(self, delay: float = 0.0) -> None:
        if self._closed or (self._refill_task is not None and not self._refill_task.done()):
            return
        if len(self._idle) + self._starting < self._size:
            self._refill_task = asyncio.get_running_loop().create_task(self._refill(delay), name="sshd-pool-refill")

    async def _refill(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        while not self._closed and len(self._idle) + self._starting < self._size:
            self._starting += 1
            try:
                child = await self.spawn()
            except Exception:
                log.exception("could not start a child for the SSH session pool; will try again on demand")
                return
            finally:
                self._starting -= 1
            if self._closed:
                await self.release(child)
                return
            self._idle.append(child)

    async def release(self, child: Child) -> int | None:
        """End a child (SIGTERM, then SIGKILL after the grace period) and free its descriptors."""
        try:
            return await child.terminate(self._kill_grace)
        finally:
            child.close()

    async def stop(self) -> None:
        """End every waiting child and the spawner."""
        self._closed = True
        if self._refill_task is not None:
            self._refill_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill_task
        idle, self._idle = list(self._idle), deque()
        await asyncio.gather(*(self.release(child) for child in idle))
        await self._spawner.stop()


def _log_early_exit(child: Child) -> None:
    """A pooled child that died before it was used: say what it printed, for the operator."""
    output = b""
    with contextlib.suppress(OSError):
        os.set_blocking(child.master, False)
        output = os.read(child.master, 2000)
    log.warning(
        "a waiting SSH session process ended on its own (status %s): %s",
        child.returncode,
        output.decode("utf-8", "replace").strip() or "no output",
    )
