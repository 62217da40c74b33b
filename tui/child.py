"""The child-process side of an SSH session: wait for the signed-in user on a pipe, then run the app.

The SSH server starts a few children ahead of time (a warm pool), each with its PTY slave as stdin, stdout and
stderr and the read end of a pipe as descriptor N. A child imports everything heavy and opens the database
first, then blocks on the pipe for ONE line of JSON::

    {"user_id": 7, "term": "xterm-256color", "colorterm": "truecolor", "cols": 120, "rows": 40}

It sets ``TERM``/``COLORTERM`` before Textual looks at them, closes the pipe, reads the identity fresh from
the database and runs the app: the home screen for an admin, the neutral explanation for anyone else. End of
file on the pipe (the server went away, or it retired this child) ends the process quietly with 0. The
identity comes only from the server, never from anything the SSH client can set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.cli.base import State

MAX_LINE = 4096
_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
DEFAULT_TERM = "xterm-256color"


class HandoverError(ValueError):
    """The server sent something that is not a valid handover line."""


@dataclass(frozen=True, slots=True)
class Handover:
    """What the server tells the child about the session."""

    user_id: int
    term: str
    colorterm: str
    cols: int
    rows: int


def read_line(fd: int) -> bytes | None:
    """One line from ``fd`` (without the newline); ``None`` on end of file before a complete line."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, MAX_LINE)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_LINE:
            raise HandoverError("the handover line is too long")
    return data.rstrip(b"\r\n")


def _int(payload: dict[str, object], key: str, *, low: int, high: int, default: int | None = None) -> int:
    value = payload.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise HandoverError(f"{key} must be a whole number from {low} to {high}")
    return value


def parse_handover(line: bytes) -> Handover:
    """Check the line's JSON; the terminal type falls back to a safe default when it looks odd."""
    try:
        payload = json.loads(line)
    except ValueError as exc:
        raise HandoverError(f"the handover line is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise HandoverError("the handover line is not a JSON object")
    term = payload.get("term")
    colorterm = payload.get("colorterm") or ""
    return Handover(
        user_id=_int(payload, "user_id", low=1, high=2**63 - 1),
        term=term if isinstance(term, str) and _TERM.match(term) else DEFAULT_TERM,
        colorterm=colorterm if colorterm in ("truecolor", "24bit") else "",
        cols=_int(payload, "cols", low=1, high=10_000, default=80),
        rows=_int(payload, "rows", low=1, high=10_000, default=24),
    )


def apply_terminal(handover: Handover) -> None:
    """Set ``TERM``/``COLORTERM`` and, if the PTY has no size yet, the size the client asked for."""
    os.environ["TERM"] = handover.term
    if handover.colorterm:
        os.environ["COLORTERM"] = handover.colorterm
    else:
        os.environ.pop("COLORTERM", None)
    _ensure_size(handover.cols, handover.rows)


def _ensure_size(cols: int, rows: int) -> None:
    import fcntl
    import struct
    import termios

    with contextlib.suppress(OSError, ValueError):
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        size = os.get_terminal_size(fd)
        if size.columns == 0 or size.lines == 0:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run_child(state: State, fd: int) -> int:
    """The whole life of a pooled child; returns the process's exit code."""
    from core.db import session_scope
    from core.errors import NotFound
    from core.services.users import identity_for
    from tui.app import make_app  # the heavy part: Textual, every screen

    runtime = state.runtime
    with runtime.engine.connect():
        pass  # open the first database connection while nobody waits for it
    try:
        line = read_line(fd)
        if line is None:
            return 0
        handover = parse_handover(line)
    except (HandoverError, OSError) as exc:
        print(f"switchboard tui: {exc}", file=sys.stderr)
        return 2
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    apply_terminal(handover)
    try:
        with session_scope(runtime.engine) as session:
            identity = identity_for(session=session, user_id=handover.user_id)
        app = make_app(runtime=runtime, identity=identity)
    except NotFound as exc:
        app = make_app(runtime=runtime, farewell=exc.message[:1].upper() + exc.message[1:] + ".")
    app.run()
    return app.return_code or 0
