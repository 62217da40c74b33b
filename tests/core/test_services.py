"""Use-case functions: the happy paths and every bad input, with nothing written on failure."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from core.errors import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound, StaleUpdate
from core.models import ApiToken, AuditEvent, Integration, SshKey, Tenant, User
from core.runtime import Runtime
from core.services import integrations, tenants, tokens, users
from core.services.audit import OPERATOR, list_events
from tests.factories import PASSWORD, make_integration, make_tenant, make_user

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"


def _count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "-x"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"name": "  "}, "name"),
        ({"country": "XX"}, "country"),
        ({"country": "Netherlands"}, "country"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
    ],
)
def test_create_tenant_refuses_bad_input(session: Session, kwargs: dict[str, str], field: str) -> None:
    args = {"slug": "acme", "name": "Acme", "country": "NL", "timezone": "Europe/Amsterdam", **kwargs}
    with pytest.raises(InvalidInput) as info:
        tenants.create_tenant(session=session, actor=OPERATOR, **args)
    assert info.value.field == field
    assert info.value.message
    assert _count(session, Tenant) == 0


def test_duplicate_tenant_slug(session: Session) -> None:
    make_tenant(session, "acme")
    with pytest.raises(AlreadyExists, match="acme"):
        make_tenant(session, "acme")


def test_unknown_tenant(session: Session) -> None:
    with pytest.raises(NotFound, match="nosuch"):
        tenants.get_tenant(session=session, slug="nosuch")


def test_create_user_and_sign_in(session: Session) -> None:
    tenant = make_tenant(session)
    user = make_user(session, tenant, "Alice@Example.com", ssh_keys=[ED25519])
    session.commit()
    assert user.username == "alice@example.com"
    assert user.password_hash and PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")
    signed_in = users.authenticate_password(session=session, username="ALICE@example.com", password=PASSWORD)
    assert signed_in.id == user.id and signed_in.last_login_at is not None
    key = session.exec(select(SshKey)).one()
    assert key.fingerprint.startswith("SHA256:") and key.comment == "alice@laptop"


@pytest.mark.parametrize(
    ("username", "password"), [("alice@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)]
)
def test_sign_in_failures_are_neutral(session: Session, username: str, password: str) -> None:
    make_user(session, make_tenant(session), "alice@example.com")
    with pytest.raises(AuthenticationFailed) as info:
        users.authenticate_password(session=session, username=username, password=password)
    assert info.value.message == "the user name or password is not right"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "has space"}, "username"),
        ({"username": ""}, "username"),
        ({"display_name": ""}, "name"),
        ({"password": ""}, "password"),
        ({"password": "short1"}, "password"),
        ({"password": "password123"}, "password"),
        ({"password": "aaaaaaaaaaaaaa"}, "password"),
        ({"password": "bob-the-builder-xyz"}, "password"),
        ({"ssh_keys": ["ssh-ed25519 notbase64!!"]}, "ssh_key"),
        ({"ssh_keys": ["hello world"]}, "ssh_key"),
        ({"ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsab"]}, "ssh_key"),
    ],
)
def test_create_user_refuses_bad_input(session: Session, kwargs: dict[str, object], field: str) -> None:
    tenant = make_tenant(session)
    session.commit()
    args: dict[str, object] = {"username": "bob", "display_name": "Bob", "password": PASSWORD, **kwargs}
    with pytest.raises(InvalidInput) as info:
        users.create_user(session=session, actor=OPERATOR, tenant=tenant, **args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert _count(session, User) == 0 and _count(session, SshKey) == 0


def test_usernames_are_unique_across_tenants(session: Session) -> None:
    make_user(session, make_tenant(session), "carol")
    with pytest.raises(AlreadyExists, match="across all tenants"):
        make_user(session, make_tenant(session), "CAROL")


def test_ssh_keys_add_and_remove(session: Session) -> None:
    user = make_user(session, make_tenant(session), "dave")
    key = users.add_ssh_key(session=session, actor=OPERATOR, user=user, public_key=ED25519)
    with pytest.raises(AlreadyExists):
        users.add_ssh_key(session=session, actor=OPERATOR, user=user, public_key=ED25519)
    with pytest.raises(NotFound):
        users.remove_ssh_key(session=session, actor=OPERATOR, user=user, fingerprint="SHA256:nope")
    users.remove_ssh_key(session=session, actor=OPERATOR, user=user, fingerprint=key.fingerprint)
    session.flush()
    assert _count(session, SshKey) == 0


def test_tokens_hashed_shown_once_and_revocable(session: Session) -> None:
    tenant = make_tenant(session)
    public, value = tokens.create_token(session=session, actor=OPERATOR, tenant=tenant, name="PBX")
    session.commit()
    stored = session.exec(select(ApiToken)).one()
    assert value not in stored.token_hash and value.startswith(public.prefix)
    assert tokens.tenant_for_token(session=session, value=value).id == tenant.id
    assert tokens.tenant_for_token(session=session, value=value + "x") is None
    tokens.revoke_token(session=session, actor=OPERATOR, tenant=tenant, token_ref=public.prefix)
    session.commit()
    assert tokens.tenant_for_token(session=session, value=value) is None
    other = make_tenant(session)
    with pytest.raises(NotFound):
        tokens.revoke_token(session=session, actor=OPERATOR, tenant=other, token_ref=str(public.id))


def test_integration_enable_disable_keeps_everything(session: Session, runtime: Runtime) -> None:
    tenant = make_tenant(session)
    integ = make_integration(session, tenant, runtime.box)
    session.commit()
    before = integ.version
    integrations.set_enabled(session=session, actor=OPERATOR, integration=integ, enabled=False)
    session.commit()
    assert integ.enabled is False and integ.version == before + 1
    assert integrations.read_secrets(integration=integ, box=runtime.box)
    integrations.set_enabled(session=session, actor=OPERATOR, integration=integ, enabled=True)
    session.commit()
    events = [e.action for e in list_events(session=session, tenant_id=tenant.id)]
    assert events[:2] == ["integration.enable", "integration.disable"]


def test_stale_update_is_refused_and_writes_nothing(session: Session, runtime: Runtime) -> None:
    tenant = make_tenant(session)
    integ = make_integration(session, tenant, runtime.box, name="Original")
    session.commit()
    opened_version = integ.version
    integrations.update_integration(
        session=session,
        actor=OPERATOR,
        integration=integ,
        box=runtime.box,
        expected_version=opened_version,
        name="Theirs",
    )
    session.commit()
    with pytest.raises(StaleUpdate, match="changed by someone else"):
        integrations.update_integration(
            session=session,
            actor=OPERATOR,
            integration=integ,
            box=runtime.box,
            expected_version=opened_version,
            name="Mine",
        )
    session.expire_all()
    assert session.get(Integration, integ.id).name == "Theirs"


def test_integration_of_another_tenant_is_not_found(session: Session, runtime: Runtime) -> None:
    mine, theirs = make_tenant(session), make_tenant(session)
    integ = make_integration(session, theirs, runtime.box)
    with pytest.raises(NotFound):
        integrations.get_integration(session=session, tenant=mine, integration_id=integ.id)
    with pytest.raises(NotFound):
        integrations.get_integration(session=session, tenant=None, integration_id=9999)


@pytest.mark.parametrize("schedule", ["every night", "61 2 * * *", "* * *", "0 2 * * * *"])
def test_bad_schedule(session: Session, runtime: Runtime, schedule: str) -> None:
    tenant = make_tenant(session)
    session.commit()
    with pytest.raises(InvalidInput) as info:
        integrations.create_integration(
            session=session,
            actor=OPERATOR,
            tenant=tenant,
            box=runtime.box,
            preset="hubspot",
            name="x",
            settings={},
            schedule=schedule,
        )
    assert info.value.field == "schedule"
    assert _count(session, Integration) == 0


def test_default_schedule_is_nightly_and_spread() -> None:
    schedules = {integrations.default_schedule(tenant_slug=f"t{i}", name="CRM") for i in range(50)}
    assert len(schedules) > 30
    for cron in schedules:
        minute, hour, *rest = cron.split()
        assert 0 <= int(hour) <= 5 and 0 <= int(minute) <= 59 and rest == ["*", "*", "*"]


def test_every_change_is_audited(session: Session, runtime: Runtime) -> None:
    tenant = make_tenant(session)
    make_user(session, tenant)
    tokens.create_token(session=session, actor=OPERATOR, tenant=tenant)
    make_integration(session, tenant, runtime.box)
    session.commit()
    actions = {e.action for e in session.exec(select(AuditEvent).where(AuditEvent.tenant_id == tenant.id))}
    assert {"tenant.create", "user.create", "token.create", "integration.create"} <= actions
