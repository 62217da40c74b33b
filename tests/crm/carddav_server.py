"""A real Radicale CardDAV server for tests, in a child process, on 127.0.0.1 and a port the kernel picks.

Radicale's own command line refuses port 0, so the child runs Radicale's WSGI application under
``wsgiref`` on a socket bound to port 0 and prints the port; the test reads it. Authentication is
htpasswd with plain-text passwords (no bcrypt needed), storage is a temporary folder, and every user
sees only their own collections (``owner_only``).

``radicale_server(tmp_path, users={"anna": "geheim"})`` yields the base URL; ``make_address_book`` creates
an address book with ``MKCOL`` and ``put_cards`` uploads vCards with ``PUT``, as a CardDAV client would;
``import_address_book`` creates a whole address book in one request, for bigger data sets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server
from xml.sax.saxutils import escape

import httpx

MKCOL_ADDRESS_BOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>
    <D:displayname>{name}</D:displayname>
  </D:prop></D:set>
</D:mkcol>
"""

PROPPATCH_NAME = """<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>{name}</D:displayname></D:prop></D:set>
</D:propertyupdate>
"""


@contextlib.contextmanager
def radicale_server(root: Path, *, users: Mapping[str, str]) -> Iterator[str]:
    """Start Radicale with ``users`` (name → password) and storage under ``root``; yield ``http://127.0.0.1:<port>``."""
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = root / "users"
    htpasswd.write_text("".join(f"{name}:{password}\n" for name, password in users.items()), encoding="utf-8")
    command = [sys.executable, "-m", "tests.crm.carddav_server", "--storage", str(root / "collections")]
    command += ["--users", str(htpasswd)]
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.isdigit():
            child.kill()
            _, errors = child.communicate(timeout=10)
            raise RuntimeError(f"Radicale did not start: {line} {errors[-2000:]}")
        yield f"http://127.0.0.1:{line}"
    finally:
        child.terminate()
        try:
            child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()


def make_address_book(base_url: str, user: str, password: str, book: str, *, name: str = "Contacts") -> str:
    """Create the address book ``/<user>/<book>/`` (MKCOL with the CardDAV resource type); return its URL."""
    url = f"{base_url}/{user}/{book}/"
    body = MKCOL_ADDRESS_BOOK.format(name=escape(name)).encode("utf-8")
    response = httpx.request(
        "MKCOL", url, content=body, auth=(user, password), headers={"Content-Type": "application/xml"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"MKCOL {url} answered {response.status_code}: {response.text[:300]}")
    return url


def put_cards(book_url: str, user: str, password: str, cards: Iterable[tuple[str, str]]) -> int:
    """Upload ``(file name, vCard text)`` pairs into the address book, one ``PUT`` each; return how many.

    Several uploads run at once: the server serialises its storage, but the HTTP round trips overlap.
    """
    with httpx.Client(auth=(user, password), timeout=60) as client:

        def put(card: tuple[str, str]) -> None:
            name, text = card
            response = client.put(
                f"{book_url}{name}",
                content=text.encode("utf-8"),
                headers={"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"},
            )
            if response.status_code not in (201, 204):
                raise RuntimeError(f"PUT {name} answered {response.status_code}: {response.text[:300]}")

        with ThreadPoolExecutor(max_workers=6) as pool:
            return len(list(pool.map(put, cards)))


def import_address_book(base_url: str, user: str, password: str, book: str, *, name: str, cards: list[str]) -> str:
    """Create ``/<user>/<book>/`` from many vCards in one ``PUT`` (Radicale's import: each card is stored as
    ``<UID>.vcf``), then name it with ``PROPPATCH``; much faster than a ``PUT`` per card. Returns its URL."""
    url = f"{base_url}/{user}/{book}/"
    with httpx.Client(auth=(user, password), timeout=60) as client:
        response = client.put(url, content="".join(cards).encode("utf-8"), headers={"Content-Type": "text/vcard"})
        if response.status_code != 201:
            raise RuntimeError(f"PUT {url} answered {response.status_code}: {response.text[:300]}")
        body = PROPPATCH_NAME.format(name=escape(name)).encode("utf-8")
        response = client.request("PROPPATCH", url, content=body, headers={"Content-Type": "application/xml"})
        if response.status_code != 207:
            raise RuntimeError(f"PROPPATCH {url} answered {response.status_code}: {response.text[:300]}")
    return url


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main(argv: list[str] | None = None) -> None:
    """Child process: serve Radicale on 127.0.0.1, print the port, run until terminated."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--users", required=True)
    args = parser.parse_args(argv)

    import radicale
    from radicale import config
    from radicale.server import RequestHandler  # decodes UTF-8 paths (wsgiref alone reads them as Latin-1)

    configuration = config.load()
    configuration.update(
        {
            "auth": {"type": "htpasswd", "htpasswd_filename": args.users, "htpasswd_encryption": "plain"},
            "storage": {"filesystem_folder": args.storage, "_filesystem_fsync": "False"},  # a test: no fsync
            "rights": {"type": "owner_only"},
            "logging": {"level": "warning", "mask_passwords": "True"},
        },
        "test",
        privileged=True,
    )
    application = radicale.Application(configuration)
    server = make_server("127.0.0.1", 0, application, server_class=_ThreadingServer, handler_class=RequestHandler)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
