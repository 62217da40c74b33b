"""Sign-ins from remote front ends (the SSH server): public-key checks and the audit trail of access.

Passwords are checked by ``users.authenticate_password``; this module adds what a remote sign-in needs besides:
whether an offered public key belongs to the user, marking a successful sign-in, and recording connections,
sign-ins, refusals and sessions in the audit log. Nothing here ever receives or records a password.
"""

from __future__ import annotations

import hmac
from typing import Any

from sqlmodel import Session, select

from core.models import SshKey, User, utcnow
from core.services.audit import Actor, record

# The audit log's column sizes (see core.models.AuditEvent).
_MAX_ACTOR = 254
_MAX_TARGET = 200

# The actions this module records.
CONNECT = "ssh.connect"
LOGIN = "ssh.login"
LOGIN_FAILED = "ssh.login_failed"
THROTTLED = "ssh.throttled"
SESSION_START = "ssh.session_start"
SESSION_END = "ssh.session_end"
SESSION_REFUSED = "ssh.session_refused"


def _find_user(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == (username or "").strip().lower())).first()


def _canonical(public_key: str) -> str:
    """``algorithm base64`` of an OpenSSH public key line, without its comment."""
    return " ".join(public_key.split()[:2])


def find_key_owner(*, session: Session, username: str, public_key: str) -> User | None:
    """The user named ``username``, if ``public_key`` (an OpenSSH line) is one of the keys stored for them.

    The comparison is on the exact key (algorithm and key blob), not on a name or a comment; an unknown user
    and a key that is not theirs both give None.
    """
    user = _find_user(session, username)
    if user is None:
        return None
    offered = _canonical(public_key).encode()
    keys = session.exec(select(SshKey).where(SshKey.user_id == user.id)).all()
    if any(hmac.compare_digest(_canonical(k.public_key).encode(), offered) for k in keys):
        return user
    return None


def mark_signed_in(*, session: Session, user_id: int) -> None:
    """Remember when the user last signed in (password sign-ins do this in ``authenticate_password``)."""
    user = session.get(User, user_id)
    if user is not None:
        user.last_login_at = utcnow()
        session.add(user)


def record_access(
    *,
    session: Session,
    action: str,
    address: str,
    username: str = "",
    target: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Add an access event (connection, sign-in, refusal, session) to the audit log.

    The event belongs to the tenant of ``username`` when such a user exists, so a tenant's admins see the
    attempts on their accounts; otherwise it has no tenant. ``details`` must never hold a password.
    """
    user = _find_user(session, username) if username else None
    name = (username or "-")[:_MAX_ACTOR]
    record(
        session,
        actor=Actor(name=name, tenant_id=user.tenant_id if user else None, address=address),
        action=action,
        tenant_id=user.tenant_id if user else None,
        target=target[:_MAX_TARGET],
        details={"address": address, **(details or {})},
    )
