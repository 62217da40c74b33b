"""Users: who may sign in (password or SSH key), in which tenant, with or without the admin privilege."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.errors import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from core.models import SshKey, SshKeyPublic, Tenant, User, UserPublic, utcnow
from core.security import (
    check_password_strength,
    hash_password,
    parse_ssh_public_key,
    verify_password,
)
from core.services.audit import Actor, record
from core.services.tenants import get_tenant_by_id

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,253}$")


def _check_username(username: str) -> str:
    value = (username or "").strip().lower()
    if not USERNAME_RE.match(value) or value.endswith((".", "@")):
        raise InvalidInput(
            f"{username!r} cannot be a user name: use letters, digits and . _ @ + - (an e-mail address works), "
            "no spaces",
            field="username",
        )
    return value


def _check_display_name(name: str) -> str:
    value = (name or "").strip()
    if not value or len(value) > 200:
        raise InvalidInput("give the person's name (1-200 characters)", field="name")
    return value


def _public(session: Session, user: User) -> UserPublic:
    tenant = get_tenant_by_id(session=session, tenant_id=user.tenant_id)
    keys = session.exec(select(SshKey).where(SshKey.user_id == user.id).order_by(col(SshKey.id))).all()
    return UserPublic(
        id=user.id or 0,
        username=user.username,
        display_name=user.display_name,
        is_admin=user.is_admin,
        tenant=tenant.slug,
        has_password=bool(user.password_hash),
        ssh_keys=[SshKeyPublic.model_validate(k, from_attributes=True) for k in keys],
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def to_public(*, session: Session, user: User) -> UserPublic:
    """What may be shown of a user: never the password hash."""
    return _public(session, user)


def create_user(
    *,
    session: Session,
    actor: Actor,
    tenant: Tenant,
    username: str,
    display_name: str,
    is_admin: bool = False,
    password: str | None = None,
    ssh_keys: list[str] | None = None,
) -> User:
    """Create a user; every input is checked before anything is written."""
    name = _check_username(username)
    display = _check_display_name(display_name)
    if password is not None:
        check_password_strength(password, username=name)
    parsed = [parse_ssh_public_key(k) for k in ssh_keys or []]
    if session.exec(select(User).where(User.username == name)).first():
        raise AlreadyExists(
            f"the user name {name!r} is taken (user names are unique across all tenants)", field="username"
        )
    user = User(
        username=name,
        display_name=display,
        is_admin=is_admin,
        tenant_id=tenant.id or 0,
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    session.flush()
    for key in parsed:
        session.add(
            SshKey(
                user_id=user.id or 0,
                algorithm=key.algorithm,
                public_key=key.public_key,
                fingerprint=key.fingerprint,
                comment=key.comment,
            )
        )
    record(
        session,
        actor=actor,
        action="user.create",
        tenant_id=tenant.id,
        target=name,
        details={"admin": is_admin, "ssh_keys": [k.fingerprint for k in parsed]},
    )
    return user


def get_user(*, session: Session, username: str, tenant: Tenant | None = None) -> User:
    """The user with this name (in this tenant, when one is given), or NotFound."""
    user = session.exec(select(User).where(User.username == (username or "").strip().lower())).first()
    if user is None or (tenant is not None and user.tenant_id != tenant.id):
        raise NotFound(f"there is no user {username!r}", field="username")
    return user


def list_users(*, session: Session, tenant: Tenant) -> list[UserPublic]:
    """The tenant's users, by name."""
    rows = session.exec(select(User).where(User.tenant_id == tenant.id).order_by(col(User.username))).all()
    return [_public(session, u) for u in rows]


def set_password(*, session: Session, actor: Actor, user: User, password: str) -> None:
    """Replace a user's password after checking its strength."""
    check_password_strength(password, username=user.username)
    user.password_hash = hash_password(password)
    session.add(user)
    record(session, actor=actor, action="user.set_password", tenant_id=user.tenant_id, target=user.username)


def add_ssh_key(*, session: Session, actor: Actor, user: User, public_key: str) -> SshKey:
    """Let the user sign in with this public key as well."""
    parsed = parse_ssh_public_key(public_key)
    exists = session.exec(
        select(SshKey).where(SshKey.user_id == user.id, SshKey.fingerprint == parsed.fingerprint)
    ).first()
    if exists:
        raise AlreadyExists(f"{user.username} already has the key {parsed.fingerprint}", field="ssh_key")
    key = SshKey(
        user_id=user.id or 0,
        algorithm=parsed.algorithm,
        public_key=parsed.public_key,
        fingerprint=parsed.fingerprint,
        comment=parsed.comment,
    )
    session.add(key)
    record(
        session,
        actor=actor,
        action="user.add_key",
        tenant_id=user.tenant_id,
        target=user.username,
        details={"fingerprint": parsed.fingerprint},
    )
    return key


def remove_ssh_key(*, session: Session, actor: Actor, user: User, fingerprint: str) -> None:
    """Remove one of the user's keys, named by its fingerprint (``SHA256:...``) or key id."""
    wanted = fingerprint.strip()
    keys = session.exec(select(SshKey).where(SshKey.user_id == user.id)).all()
    match = [k for k in keys if k.fingerprint == wanted or str(k.id) == wanted]
    if not match:
        raise NotFound(
            f"{user.username} has no key {wanted!r}; `switchboard user list` shows the fingerprints",
            field="fingerprint",
        )
    session.delete(match[0])
    record(
        session,
        actor=actor,
        action="user.remove_key",
        tenant_id=user.tenant_id,
        target=user.username,
        details={"fingerprint": match[0].fingerprint},
    )


def authenticate_password(*, session: Session, username: str, password: str) -> User:
    """The user whose name and password these are; one neutral error for every kind of failure."""
    user = session.exec(select(User).where(User.username == (username or "").strip().lower())).first()
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise AuthenticationFailed("the user name or password is not right")
    user.last_login_at = utcnow()
    session.add(user)
    return user


def user_keys(*, session: Session, username: str) -> list[SshKey]:
    """The public keys a user may sign in with (empty for an unknown user)."""
    user = session.exec(select(User).where(User.username == (username or "").strip().lower())).first()
    if user is None:
        return []
    return list(session.exec(select(SshKey).where(SshKey.user_id == user.id)).all())


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is signed in, as every front end needs it: the user, their tenant, and whether they may administer it."""

    user_id: int
    username: str
    display_name: str
    is_admin: bool
    tenant_id: int
    tenant_slug: str
    tenant_name: str

    @property
    def actor(self) -> Actor:
        """The audit actor for changes this person makes."""
        return Actor(name=self.username, tenant_id=self.tenant_id)


NOT_ADMIN_MESSAGE = (
    "Changes made here affect your whole organisation, so they need the administrative privilege, "
    "which your account does not have. Please inquire with your telephony provider."
)


def identity_for(*, session: Session, user_id: int) -> Identity:
    """The current identity of a user, read fresh from the database (privileges may have changed)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("this account no longer exists", field="username")
    tenant = get_tenant_by_id(session=session, tenant_id=user.tenant_id)
    return Identity(
        user_id=user.id or 0,
        username=user.username,
        display_name=user.display_name,
        is_admin=user.is_admin,
        tenant_id=tenant.id or 0,
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
    )


def require_admin(identity: Identity) -> Identity:
    """The identity, if it holds the administrative privilege; otherwise the neutral explanation."""
    if not identity.is_admin:
        raise PermissionDenied(NOT_ADMIN_MESSAGE, title="Administrative privilege needed")
    return identity
