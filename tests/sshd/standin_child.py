"""A stand-in for the TUI child that follows the same protocol, for the tests that need a predictable app.

It reads the identity line from ``--identity-fd``, looks the user up in the database (so a test sees what the
server handed over, not what the client claimed), prints who is signed in, then echoes what it receives:
``got <repr>`` per chunk and ``size COLSxROWS`` on SIGWINCH. ``b`` keeps it busy (no input read) for two
seconds, ``t`` makes it print a tick every 0.1 s (output without input), ``q`` quits with status 3.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())  # unbuffered: signal handlers print too, so no reentrant buffer


def _tick(*_: object) -> None:
    _say("tick")


def _size() -> str:
    size = os.get_terminal_size(0)
    return f"{size.columns}x{size.lines}"


def main(argv: list[str] | None = None) -> None:
    """``--identity-fd N``: wait for the identity, show it, then echo input until ``q``."""
    args = list(sys.argv[1:] if argv is None else argv)
    fd = int(args[args.index("--identity-fd") + 1])
    from core.runtime import open_runtime
    from core.services import users
    from core.settings import load_settings

    runtime = open_runtime(load_settings(), migrate=False)
    with os.fdopen(fd, "rb") as pipe:
        line = pipe.readline()
    if not line:
        return  # the server went away before anyone signed in
    given = json.loads(line)
    from sqlmodel import Session

    with Session(runtime.engine) as session:
        identity = users.identity_for(session=session, user_id=given["user_id"])
    signal.signal(signal.SIGWINCH, lambda *_: _say(f"size {_size()}"))
    _say(f"pid {os.getpid()} tty {os.ttyname(0)} ctty {os.tcgetpgrp(0) == os.getpgrp() == os.getsid(0)}")
    _say(f"Welcome {identity.display_name} of {identity.tenant_name}")
    _say(f"term {given['term']} colorterm {given['colorterm'] or '-'} size {_size()}")
    _say(f"env TERM {os.environ.get('TERM')}")
    while True:
        data = os.read(0, 4096)
        if not data:
            return
        if data == b"t":
            signal.signal(signal.SIGALRM, _tick)
            signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
            continue
        if data == b"b":
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                pass
            _say("busy done")
            continue
        _say(f"got {data!r}")
        if data == b"q":
            sys.exit(3)


if __name__ == "__main__":
    main()
