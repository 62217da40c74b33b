"""The server's ed25519 host key: made once with mode 0600 in the data directory, then kept and reused."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

import asyncssh

log = logging.getLogger(__name__)


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The host key at ``path``, generating an ed25519 key there (mode 0600) when there is none.

    A key readable by others gets its mode tightened to 0600. Two servers starting at once on the same data
    directory both end up with the one key that was written first.
    """
    if not path.exists():
        _write_new_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("the SSH host key %s was readable by others (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
    return asyncssh.read_private_key(str(path))


def _write_new_key(path: Path) -> None:
    """Write a fresh key to a private temporary file, then link it into place (atomic: never half a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="switchboard host key")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.export_private_key("openssh"))
        os.link(temporary, path)
        log.info("generated the SSH host key %s", path)
    except FileExistsError:
        pass  # another server on this data directory made it first: use theirs
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The key's SHA256 fingerprint as ``ssh`` shows it (``SHA256:...``)."""
    return str(key.get_fingerprint("sha256"))
