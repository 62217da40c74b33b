"""Remote sign-in use-cases: whose key this is, the last sign-in time, and access events in the audit log."""

from __future__ import annotations

import asyncssh
from sqlmodel import Session

from core.services import signins
from core.services.audit import list_events
from tests.factories import make_tenant, make_user


def _key() -> tuple[asyncssh.SSHKey, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key, key.export_public_key().decode()


def test_a_key_belongs_to_the_user_it_is_stored_for(session: Session) -> None:
    _, line = _key()
    _, other = _key()
    tenant = make_tenant(session)
    alice = make_user(session, tenant, "alice", ssh_keys=[line])
    make_user(session, tenant, "bob")
    owner = signins.find_key_owner(session=session, username="Alice", public_key=line.strip() + " a comment")
    assert owner is not None and owner.id == alice.id  # comments and case do not matter, the key does
    assert signins.find_key_owner(session=session, username="alice", public_key=other) is None
    assert signins.find_key_owner(session=session, username="bob", public_key=line) is None
    assert signins.find_key_owner(session=session, username="nobody", public_key=line) is None


def test_mark_signed_in_sets_the_time(session: Session) -> None:
    user = make_user(session, make_tenant(session), "carol")
    assert user.last_login_at is None
    signins.mark_signed_in(session=session, user_id=user.id or 0)
    signins.mark_signed_in(session=session, user_id=12345)  # gone meanwhile: nothing to do
    assert user.last_login_at is not None


def test_access_events_belong_to_the_users_tenant(session: Session) -> None:
    tenant = make_tenant(session)
    make_user(session, tenant, "dave")
    signins.record_access(
        session=session, action=signins.LOGIN_FAILED, address="192.0.2.7", username="Dave", details={"method": "x"}
    )
    signins.record_access(session=session, action=signins.CONNECT, address="192.0.2.8", username="nobody" * 60)
    session.flush()
    events = list_events(session=session, tenant_id=tenant.id or 0, actions=(signins.LOGIN_FAILED,))
    assert [(e.actor, e.details) for e in events] == [("Dave", {"address": "192.0.2.7", "method": "x"})]
    assert not list_events(session=session, tenant_id=tenant.id or 0, actions=(signins.CONNECT,))
