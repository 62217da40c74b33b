"""Signing in over SSH against core: passwords, stored keys, refusals, and the audit trail (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest
from sqlmodel import Session, col, select

from core.models import AuditEvent, User
from core.runtime import Runtime
from core.services.users import NOT_ADMIN_MESSAGE
from sshd.service import SshService
from tests.factories import PASSWORD
from tests.sshd.conftest import ServerFactory, Site, connect, open_terminal


def _events(runtime: Runtime, prefix: str = "ssh.") -> list[AuditEvent]:
    with Session(runtime.engine) as session:
        rows = session.exec(select(AuditEvent).where(col(AuditEvent.action).startswith(prefix))).all()
        return sorted(rows, key=lambda e: e.id or 0)


async def _settled(runtime: Runtime, action: str, count: int = 1) -> list[AuditEvent]:
    """The audit events of ``action`` once ``count`` of them are there (they are written in the background)."""
    for _ in range(200):
        events = [e for e in _events(runtime) if e.action == action]
        if len(events) >= count:
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {action} event; the log has {[e.action for e in _events(runtime)]}")


async def test_password_sign_in_shows_the_admin_and_the_organisation(
    ssh_server: SshService, site: Site, runtime: Runtime
) -> None:
    async with await connect(ssh_server, site.admin, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        screen = await terminal.read_until("Welcome Alice of Acme B.V.")
        assert "ctty True" in screen  # the PTY is the child's controlling terminal
        terminal.send("q")
        await terminal.read_to_end()
        assert terminal.process.exit_status == 3  # the app's own exit status comes through
    login = (await _settled(runtime, "ssh.login"))[0]
    assert login.actor == site.admin
    assert login.details["method"] == "password"
    assert login.details["address"] == "127.0.0.1"
    with Session(runtime.engine) as session:
        user = session.exec(select(User).where(User.username == site.admin)).one()
        assert user.last_login_at is not None
        tenant_id = user.tenant_id
    assert login.tenant_id == tenant_id  # the tenant's admins see sign-ins to their accounts
    end = (await _settled(runtime, "ssh.session_end"))[0]
    assert end.details["outcome"] == "app_exited"
    assert end.details["duration_seconds"] >= 0


async def test_key_sign_in_with_a_stored_key(ssh_server: SshService, site: Site, runtime: Runtime) -> None:
    async with await connect(ssh_server, site.admin, client_keys=[site.key]) as conn:
        terminal = await open_terminal(conn)
        await terminal.read_until("Welcome Alice of Acme B.V.")
    login = (await _settled(runtime, "ssh.login"))[0]
    assert login.details["method"] == "publickey"
    assert login.details["fingerprint"] == site.key.get_fingerprint("sha256")
    with Session(runtime.engine) as session:
        assert session.exec(select(User).where(User.username == site.admin)).one().last_login_at is not None


async def test_a_key_that_is_not_stored_is_refused_and_audited(
    ssh_server: SshService, site: Site, runtime: Runtime
) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(ssh_server, site.admin, client_keys=[stranger])
    failed = (await _settled(runtime, "ssh.login_failed"))[0]
    assert failed.details["method"] == "publickey"
    assert failed.details["fingerprints"] == [stranger.get_fingerprint("sha256")]


async def test_a_key_of_another_user_does_not_open_this_account(
    ssh_server: SshService, site: Site, runtime: Runtime
) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(ssh_server, site.member, client_keys=[site.key])  # alice's key, bob's name


@pytest.mark.parametrize("username", ["alice@acme.example", "nobody@acme.example"])
async def test_wrong_password_and_unknown_user_are_refused_alike(
    ssh_server: SshService, site: Site, runtime: Runtime, username: str
) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(ssh_server, username, password="not the password at all")
    failed = (await _settled(runtime, "ssh.login_failed"))[0]
    assert failed.actor == username
    assert failed.details == {"address": "127.0.0.1", "method": "password"}
    assert failed.tenant_id == (None if username.startswith("nobody") else failed.tenant_id)
    everything = repr([(e.actor, e.target, e.details) for e in _events(runtime, "")])
    assert "not the password" not in everything and PASSWORD not in everything  # passwords are never logged


async def test_a_user_without_the_privilege_gets_the_local_message_and_nothing_else(
    ssh_server: SshService, site: Site, runtime: Runtime
) -> None:
    async with await connect(ssh_server, site.member, password=PASSWORD) as conn:
        terminal = await open_terminal(conn)
        screen = await terminal.read_to_end()
    assert " ".join(screen.split()) == " ".join(NOT_ADMIN_MESSAGE.split())
    assert terminal.process.exit_status == 1
    refused = (await _settled(runtime, "ssh.session_refused"))[0]
    assert refused.details["reason"] == "not_admin"
    assert ssh_server.pool.spawned == 2  # only the pool's own children: no app was started for bob


async def test_every_connection_is_audited(ssh_server: SshService, site: Site, runtime: Runtime) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(ssh_server, "mallory", password="guess")
    connected = (await _settled(runtime, "ssh.connect"))[0]
    assert connected.details == {"address": "127.0.0.1"}


async def test_too_many_failures_block_the_address_before_authentication(
    start_server: ServerFactory, site: Site, runtime: Runtime
) -> None:
    service = await start_server(address_failure_limit=2, pool_size=0)
    with pytest.raises(asyncssh.PermissionDenied):
        await connect(service, site.admin, password="wrong guess")
    with pytest.raises(asyncssh.DisconnectError, match="too many failed sign-ins"):
        await connect(service, site.admin, password="wrong again")  # the limit: closed at once
    with pytest.raises(asyncssh.DisconnectError, match="too many failed sign-ins from your address"):
        await connect(service, site.admin, password=PASSWORD)  # even the right password: refused before auth
    await _settled(runtime, "ssh.throttled")
