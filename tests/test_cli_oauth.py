"""``integration add`` for a CRM signed in to in a browser, end to end on both databases.

A real ``switchboard integration add`` process prints the sign-in address and waits; the test plays the admin's
browser against an emulated SuperOffice, which sends it to a real served shim's ``/oauth/callback``. The
process and the shim share the database and the secret key in the data directory, as on a server.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.models import AuditEvent, Integration, OAuthAuthorization, OAuthStatus, Script
from core.runtime import Runtime, open_runtime
from core.services.integration_tokens import read_tokens
from core.services.oauth import CALLBACK_PATH
from core.settings import load_settings
from tests.crm import Fault, serve
from tests.crm.superoffice import SuperOfficeEmulator
from tests.presets.messy_numbers import make_people
from tests.shim.conftest import ServerThread
from tests.shim.test_oauth_callback import CLIENT_ID, CLIENT_SECRET, TENANT, browse
from tests.test_cli import Cli


@dataclass
class Setup:
    """The CLI's database and data directory, the served shim, and the emulated SuperOffice."""

    cli: Cli
    runtime: Runtime
    shim: ServerThread
    crm: SuperOfficeEmulator
    crm_url: str


@pytest.fixture
def setup(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    """Tenant ``acme``, a shim over the CLI's data directory (so the same secret key), SuperOffice with 4 persons."""
    url = engine.url.render_as_string(hide_password=False)
    cli = Cli(url, tmp_path / "data", capsys, monkeypatch)
    code, _out, err = cli("tenant", "create", "acme", "--name", "Acme", "--country", "NL")
    assert code == 0, err
    runtime = open_runtime(load_settings(data_dir=tmp_path / "data", database_url=url), migrate=False)
    emulator = SuperOfficeEmulator(
        tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        persons=[{"personId": 700 + p.index, "contactId": 1, "fullName": p.name, "retired": False,
                  "personMobilePhone/formattedNumber": p.phone("mobile") or ""} for p in make_people(4, seed=31)],
    )  # fmt: skip
    try:
        with serve(emulator.app) as crm_url, ServerThread(runtime) as shim:
            yield Setup(cli, runtime, shim, emulator, crm_url)
    finally:
        runtime.engine.dispose()


class Adding:
    """A running ``switchboard integration add --preset superoffice`` (client secret given on stdin)."""

    def __init__(self, setup: Setup, started: list[Adding], *extra: str) -> None:
        url = setup.crm_url
        command = [
            str(Path(sys.executable).parent / "switchboard"), *setup.cli.base, "integration", "add",
            "--tenant", "acme", "--preset", "superoffice", "--set", f"tenant={TENANT}",
            "--set", f"client_id={CLIENT_ID}", "--set", f"login_url={url}/login/common/oauth",
            "--set", f"api_base_url={url}/{TENANT}/api/v1",
            "--secret-stdin", "client_secret", *extra,
        ]  # fmt: skip
        env = {**os.environ, "SWITCHBOARD_PUBLIC_URL": setup.shim.url}
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        started.append(self)  # stopped after the test even if it fails before the address is shown
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write(CLIENT_SECRET + "\n")
        self.proc.stdin.close()
        self.reader = threading.Thread(target=self._read, args=(self.proc.stderr,), name="cli-stderr")
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.said: list[str] = []
        self.reader.start()
        self.address = ""
        while not self.address and (line := self.lines.get(timeout=60)) is not None:
            if line.startswith("  http"):
                self.address = line.strip()
        assert self.address, "".join(self.said)
        self.state = parse_qs(urlsplit(self.address).query)["state"][0]

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.said.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the command: (exit code, stdout, stderr)."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        self.reader.join(30)
        return self.proc.returncode, out, "".join(self.said)

    def stop(self) -> None:
        """Kill it if a failed assertion left it running; close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.reader.join(30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def adding(setup: Setup) -> Iterator[list[Adding]]:
    """Started commands, stopped after the test whatever happened."""
    started: list[Adding] = []
    yield started
    for command in started:
        command.stop()


def start(setup: Setup, adding: list[Adding], *extra: str) -> Adding:
    return Adding(setup, adding, *extra)


def sign_in_row(engine: Engine) -> OAuthAuthorization:
    with Session(engine) as session:
        return session.exec(select(OAuthAuthorization)).one()


def integrations(engine: Engine) -> list[Integration]:
    with Session(engine) as session:
        return list(session.exec(select(Integration)).all())


def test_signing_in_in_a_browser_adds_the_integration(setup: Setup, adding: list[Adding], engine: Engine) -> None:
    command = start(setup, adding, "--json")
    assert "To connect SuperOffice, open this address in a browser and sign in:" in "".join(command.said)
    assert command.address.startswith(f"{setup.crm_url}/login/common/oauth/authorize?")

    page = browse(command.address)  # the admin signs in; SuperOffice sends the browser to the shim
    assert page.status == 200 and page.url.startswith(setup.shim.url + CALLBACK_PATH), page.text
    code, out, err = command.finish()

    assert code == 0, err
    assert f"sends the browser back to {setup.shim.url}{CALLBACK_PATH}: `switchboard serve` must be running" in err
    assert "signed in at SuperOffice; testing the connection" in err
    result = json.loads(out)
    assert result["integration"]["preset"] == "superoffice" and result["integration"]["tenant"] == "acme"
    assert result["sync"]["outcome"] == "success" and result["sync"]["records"] == 4
    assert setup.crm.grants == ["authorization_code"]  # the test and the sync used the sign-in's tokens
    (integration,) = integrations(engine)
    tokens = read_tokens(integration=integration, box=setup.runtime.box)
    assert tokens["access_token"] == setup.crm.access_token and tokens["refresh_token"] in setup.crm.refresh_tokens
    row = sign_in_row(engine)
    assert row.status == OAuthStatus.USED and row.tokens == ""
    with engine.connect() as connection:
        stored = repr([connection.execute(sa.text(f"SELECT * FROM {t}")).all() for t in ("integration", "auditevent")])
    secrets = [CLIENT_SECRET, tokens["access_token"], tokens["refresh_token"], command.state]
    assert [s for s in secrets if s in stored or s in out] == []
    assert [s for s in secrets[:3] if s in err] == []
    with Session(engine) as session:
        assert session.exec(select(Script).where(Script.integration_id == integration.id)).all()


def test_the_crm_declining_stores_nothing(setup: Setup, adding: list[Adding], engine: Engine) -> None:
    command = start(setup, adding)
    declined = urlencode({"error": "access_denied", "error_description": "The user said no", "state": command.state})
    assert browse(f"{setup.shim.url}{CALLBACK_PATH}?{declined}").status == 400
    code, out, err = command.finish()

    assert code == 2 and out == ""
    assert "SuperOffice did not give switchboard access (access_denied: The user said no)" in err
    assert "Run `switchboard integration add` again." in err and "wizard" not in err
    assert "Nothing was stored." in err
    assert integrations(engine) == [] and setup.crm.grants == []
    assert sign_in_row(engine).status == OAuthStatus.FAILED


def test_ctrl_c_cancels_the_sign_in(setup: Setup, adding: list[Adding], engine: Engine) -> None:
    command = start(setup, adding, "--json")
    command.proc.send_signal(signal.SIGINT)
    code, out, err = command.finish()

    assert code == 130 and out == "", err
    assert "sign-in at SuperOffice cancelled; nothing was stored" in err and "Traceback" not in err
    late = browse(command.address)  # signing in afterwards: the shim refuses, no code is traded
    assert late.status == 400 and "already failed" in late.text
    assert integrations(engine) == [] and setup.crm.grants == []
    row = sign_in_row(engine)
    assert row.status == OAuthStatus.FAILED and row.tokens == "" and "cancelled" in (row.error or "")
    with Session(engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "oauth.cancel")).one()


def test_a_timeout_stores_nothing_and_cancels_the_sign_in(setup: Setup, adding: list[Adding], engine: Engine) -> None:
    command = start(setup, adding, "--timeout", "0.5")
    code, out, err = command.finish()

    assert code == 2 and out == ""
    assert "Nobody signed in at SuperOffice within 0.5 seconds; nothing was stored." in err
    assert browse(command.address).status == 400
    assert integrations(engine) == [] and setup.crm.grants == []
    assert sign_in_row(engine).status == OAuthStatus.FAILED


def test_a_failed_connection_test_after_signing_in_stores_nothing(
    setup: Setup, adding: list[Adding], engine: Engine
) -> None:
    setup.crm.faults.always(Fault.server_error(403))
    command = start(setup, adding)
    assert browse(command.address).status == 200
    code, out, err = command.finish()

    assert code == 2 and out == "" and "403" in err
    assert integrations(engine) == [] and setup.crm.grants == ["authorization_code"]
    row = sign_in_row(engine)  # the tokens it received are dropped, not left waiting
    assert row.status == OAuthStatus.FAILED and row.tokens == ""


def test_bad_settings_are_refused_before_a_sign_in_starts(setup: Setup, adding: list[Adding], engine: Engine) -> None:
    code, _out, err = setup.cli("integration", "add", "--tenant", "acme", "--preset", "superoffice",
                                "--set", f"tenant={TENANT}", "--set", "client_secret=x")  # fmt: skip
    assert code == 2 and "client_id" in err
    code, _out, err = setup.cli("integration", "add", "--tenant", "acme", "--preset", "superoffice",
                                "--set", f"tenant={TENANT}", "--set", f"client_id={CLIENT_ID}",
                                "--set", "client_secret=x", "--schedule", "nightly")  # fmt: skip
    assert code == 2 and "schedule" in err
    with Session(engine) as session:
        assert session.exec(select(OAuthAuthorization)).all() == []


def test_a_shim_that_does_not_answer_where_the_crm_sends_the_browser_is_warned_about(
    setup: Setup, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", closed)
    url = setup.crm_url
    code, out, err = setup.cli(
        "integration", "add", "--tenant", "acme", "--preset", "superoffice", "--set", f"tenant={TENANT}",
        "--set", f"client_id={CLIENT_ID}", "--set", f"client_secret={CLIENT_SECRET}",
        "--set", f"login_url={url}/login/common/oauth", "--set", f"api_base_url={url}/{TENANT}/api/v1",
        "--timeout", "0.2",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert f"warning: nothing answered at {closed} from here (ConnectError): start `switchboard serve` there" in err
    assert f"back to {closed}{CALLBACK_PATH}" in err  # the sign-in still went ahead: only advice
    assert CLIENT_SECRET not in err and integrations(engine) == []
