"""The fork server: a helper process that imports the app once and forks one child per SSH session.

Starting Python and importing the app takes about a second on a small machine; forking a process that has
already done it takes milliseconds, and the children share the imported code's memory. The SSH server starts
this helper (``python -c "from sshd.forkserver import main; main()" CTRL_FD PARENT_PID SPEC``) in a session of
its own and talks to it over a ``SOCK_SEQPACKET`` socket:

- helper -> server ``{"type": "ready"}`` once ``entry`` and ``preload`` are imported;
- server -> helper ``{"args": [...]}`` with two descriptors: the PTY slave and the read end of the identity pipe;
- helper -> server ``{"type": "spawned", "pid": N}`` with a pidfd of the child (race-free signals and exit
  notification), or ``{"type": "failed", "error": "..."}``;
- helper -> server ``{"type": "exited", "pid": N, "status": S}`` when a child ends (the helper reaps them).

Each child becomes a session leader with the PTY as its controlling terminal and stdin/stdout/stderr, then
calls ``entry(args)`` (``{identity_fd}`` in ``args`` replaced by the identity descriptor's number) exactly as
a freshly started ``python -c`` would, and exits with its status. The helper dies with the server and every
child with the helper (``PR_SET_PDEATHSIG``), so nothing survives a ``kill -9`` of the server.

This module runs in the helper, so it imports nothing but the standard library (and never asyncssh).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import termios
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

IDENTITY_FD = "{identity_fd}"
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_MAX_MESSAGE = 1 << 16

Entry = Callable[[list[str]], Any]


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent ends; exit at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def set_process_name(name: str) -> None:
    """The short name ``ps -o comm`` and ``top`` show (at most 15 bytes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def load_entry(name: str) -> Entry:
    """The function named ``module:function``."""
    module, _, function = name.partition(":")
    entry: Entry = getattr(importlib.import_module(module), function)
    return entry


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


class ForkServer:
    """The helper's loop: fork a child per request, reap children, report both to the server."""

    def __init__(self, sock: socket.socket, entry: Entry) -> None:
        self.sock = sock
        self.entry = entry
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def run(self) -> None:
        """Serve requests until the server closes its end of the socket."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        _send(self.sock, {"type": "ready"})
        while True:
            readable, _, _ = select.select([self.sock.fileno(), self.wake_r], [], [])
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
                self._reap()
            if self.sock.fileno() in readable and not self._serve_one():
                break
        self._reap()

    def _serve_one(self) -> bool:
        """Handle one request; False when the server has gone."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 2)
        except (ConnectionError, OSError):
            return False
        if not data:
            return False
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(self.sock, {"type": "failed", "error": "a request needs the PTY and the identity pipe"})
            return True
        slave, identity = fds
        try:
            args = [str(a).replace(IDENTITY_FD, str(identity)) for a in json.loads(data)["args"]]
            pid = os.fork()
            if pid == 0:
                self._become_child(slave, identity, args)
            pidfd = os.pidfd_open(pid)
        except Exception as exc:
            _send(self.sock, {"type": "failed", "error": f"{type(exc).__name__}: {exc}"})
            return True
        finally:
            os.close(slave)
            os.close(identity)
        try:
            _send(self.sock, {"type": "spawned", "pid": pid}, [pidfd])
        finally:
            os.close(pidfd)
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            with contextlib.suppress(OSError):
                _send(self.sock, {"type": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    def _become_child(self, slave: int, identity: int, args: list[str]) -> NoReturn:
        """In the forked child: take the PTY as controlling terminal and stdio, then run the entry point."""
        code = 1
        try:
            zygote = os.getppid()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            attach_terminal(slave)
            die_with_parent(zygote)
            set_process_name("sb-session")
            reset_stdio()
            code = run_entry(self.entry, args)
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)


def attach_terminal(slave: int) -> None:
    """Start a new session with ``slave`` as controlling terminal and as descriptors 0, 1 and 2."""
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def reset_stdio() -> None:
    """Rebuild ``sys.stdin``/``stdout``/``stderr`` on the new descriptors, as the interpreter does at start-up."""
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # type: ignore[misc]  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # type: ignore[misc]  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(  # type: ignore[misc]  # noqa: SIM115
        2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
    )


def run_entry(entry: Entry, args: list[str]) -> int:
    """Call ``entry(args)`` as a program: its exit status (``SystemExit`` included)."""
    sys.argv = ["switchboard", *args]
    try:
        entry(args)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    """The helper process: ``CTRL_FD PARENT_PID SPEC`` where SPEC is ``{"entry": ..., "preload": [...]}``."""
    ctrl_fd, parent_pid, spec = (argv if argv is not None else sys.argv[1:])[:3]
    die_with_parent(int(parent_pid))
    set_process_name("sb-forkserver")
    sock = socket.socket(fileno=int(ctrl_fd))
    sock.set_inheritable(False)
    config = json.loads(spec)
    try:
        entry = load_entry(config["entry"])
    except Exception as exc:
        _send(sock, {"type": "failed", "error": f"cannot import {config['entry']}: {exc}"})
        sys.exit(1)
    for name in config.get("preload", []):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module only makes the children start slower
            print(f"switchboard fork server: could not preload {name}: {exc}", file=sys.stderr)
    gc.collect()
    gc.freeze()  # the children then never touch the preloaded objects' pages for garbage collection: they stay shared
    ForkServer(sock, entry).run()
