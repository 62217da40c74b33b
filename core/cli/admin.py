"""Operator commands: the database, tenants, users and API tokens."""

from __future__ import annotations

import sys

import click
from sqlmodel import select

from core.cli.base import (
    State,
    cli,
    emit_json,
    emit_table,
    json_option,
    load_tenant,
    pass_state,
    tenant_option,
)
from core.db import current_revision
from core.errors import InvalidInput
from core.models import Tenant, TenantPublic, User
from core.security import generate_password
from core.services import tenants, tokens, users
from core.services.users import get_user


@cli.command("init")
@pass_state
def init_cmd(state: State) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    runtime = state.runtime
    click.echo(
        f"database ready at revision {current_revision(runtime.engine)}: "
        f"{runtime.engine.url.render_as_string(hide_password=True)}"
    )


# --- tenants ------------------------------------------------------------------------------------------------


@cli.group("tenant")
def tenant_group() -> None:
    """Create and list tenants (organisations)."""


@tenant_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The organisation's name, e.g. 'Acme B.V.'.")
@click.option("--country", required=True, metavar="CC", help="ISO country code: the default for phone numbers.")
@click.option("--timezone", default="UTC", show_default=True, metavar="TZ", help="IANA time zone.")
@json_option
@pass_state
def tenant_create(state: State, slug: str, name: str, country: str, timezone: str, as_json: bool) -> None:
    """Create a tenant with id SLUG."""
    with state.session() as session:
        tenant = tenants.create_tenant(
            session=session, actor=state.actor, slug=slug, name=name, country=country, timezone=timezone
        )
        public = TenantPublic.model_validate(tenant, from_attributes=True)
    if as_json:
        emit_json(public)
    else:
        click.echo(f"created tenant {public.slug} ({public.name}, {public.country}, {public.timezone})")


@tenant_group.command("list")
@json_option
@pass_state
def tenant_list(state: State, as_json: bool) -> None:
    """List all tenants."""
    with state.session() as session:
        rows = tenants.list_tenants(session=session)
    if as_json:
        emit_json(rows)
        return
    emit_table([(t.slug, t.name, t.country, t.timezone) for t in rows], ["tenant", "name", "country", "timezone"])


# --- users --------------------------------------------------------------------------------------------------


def _read_password(password_stdin: bool, *, confirm: bool = True) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@cli.group("user")
def user_group() -> None:
    """Manage users: who may sign in, with a password or SSH key."""


@user_group.command("create")
@click.argument("username")
@tenant_option()
@click.option("--name", "display_name", required=True, help="The person's name, shown in the app.")
@click.option("--admin", is_flag=True, help="Grant the administrative privilege (change the tenant's setup).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="No password: sign in with an SSH key only.")
@click.option("--ssh-key", "ssh_keys", multiple=True, metavar="KEY", help="An OpenSSH public key line (repeatable).")
@json_option
@pass_state
def user_create(
    state: State,
    username: str,
    tenant_slug: str,
    display_name: str,
    admin: bool,
    password_stdin: bool,
    no_password: bool,
    ssh_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create the user USERNAME (unique across all tenants; may be an e-mail address)."""
    if no_password and not ssh_keys:
        raise InvalidInput("a user without a password needs at least one --ssh-key", field="ssh_key")
    with state.session() as session:
        tenant = load_tenant(session, tenant_slug)
        # Check the user name before asking for a password, so a typo costs nothing.
        users._check_username(username)
        password = None if no_password else _read_password(password_stdin)
        user = users.create_user(
            session=session,
            actor=state.actor,
            tenant=tenant,
            username=username,
            display_name=display_name,
            is_admin=admin,
            password=password,
            ssh_keys=list(ssh_keys),
        )
        public = users.to_public(session=session, user=user)
    if as_json:
        emit_json(public)
    else:
        role = "admin" if public.is_admin else "user"
        click.echo(f"created {role} {public.username} in tenant {public.tenant}")


@user_group.command("list")
@tenant_option()
@json_option
@pass_state
def user_list(state: State, tenant_slug: str, as_json: bool) -> None:
    """List a tenant's users."""
    with state.session() as session:
        rows = users.list_users(session=session, tenant=load_tenant(session, tenant_slug))
    if as_json:
        emit_json(rows)
        return
    emit_table(
        [
            (
                u.username,
                u.display_name,
                u.is_admin,
                u.has_password,
                ", ".join(k.fingerprint for k in u.ssh_keys) or "-",
                u.last_login_at,
            )
            for u in rows
        ],
        ["user", "name", "admin", "password", "ssh keys", "last sign-in"],
    )


@user_group.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_state
def user_set_password(state: State, username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME."""
    with state.session() as session:
        user = get_user(session=session, username=username)
        users.set_password(session=session, actor=state.actor, user=user, password=_read_password(password_stdin))
    click.echo(f"password of {user.username} changed")


@user_group.command("add-key")
@click.argument("username")
@click.argument("public_key")
@pass_state
def user_add_key(state: State, username: str, public_key: str) -> None:
    """Let USERNAME sign in with PUBLIC_KEY (one line of an id_*.pub file, or @FILE)."""
    if public_key.startswith("@"):
        with open(public_key[1:], encoding="utf-8") as handle:
            public_key = handle.read()
    with state.session() as session:
        user = get_user(session=session, username=username)
        key = users.add_ssh_key(session=session, actor=state.actor, user=user, public_key=public_key)
    click.echo(f"added key {key.fingerprint} for {user.username}")


@user_group.command("remove-key")
@click.argument("username")
@click.argument("fingerprint")
@pass_state
def user_remove_key(state: State, username: str, fingerprint: str) -> None:
    """Remove USERNAME's key FINGERPRINT (SHA256:..., as `user list` shows it)."""
    with state.session() as session:
        user = get_user(session=session, username=username)
        users.remove_ssh_key(session=session, actor=state.actor, user=user, fingerprint=fingerprint)
    click.echo(f"removed key {fingerprint} of {user.username}")


# --- API tokens ---------------------------------------------------------------------------------------------


@cli.group("token")
def token_group() -> None:
    """API tokens with which the phone system asks the HTTP shim who is calling."""


@token_group.command("create")
@tenant_option()
@click.option("--name", default="phone system", show_default=True, help="What the token is for.")
@json_option
@pass_state
def token_create(state: State, tenant_slug: str, name: str, as_json: bool) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    with state.session() as session:
        public, value = tokens.create_token(
            session=session, actor=state.actor, tenant=load_tenant(session, tenant_slug), name=name
        )
    if as_json:
        emit_json({**public.model_dump(mode="json"), "token": value})
        return
    click.echo(value)
    click.echo(f"(token {public.prefix}… for {public.tenant}; copy it now, it is not shown again)", err=True)


@token_group.command("list")
@tenant_option()
@json_option
@pass_state
def token_list(state: State, tenant_slug: str, as_json: bool) -> None:
    """List a tenant's tokens (their prefixes only)."""
    with state.session() as session:
        rows = tokens.list_tokens(session=session, tenant=load_tenant(session, tenant_slug))
    if as_json:
        emit_json(rows)
        return
    emit_table(
        [(t.id, t.prefix + "…", t.name, t.created_at, t.last_used_at, t.revoked_at) for t in rows],
        ["id", "prefix", "name", "created", "last used", "revoked"],
    )


@token_group.command("revoke")
@tenant_option()
@click.argument("token")
@pass_state
def token_revoke(state: State, tenant_slug: str, token: str) -> None:
    """Revoke TOKEN (its id or prefix, as `token list` shows it)."""
    with state.session() as session:
        public = tokens.revoke_token(
            session=session, actor=state.actor, tenant=load_tenant(session, tenant_slug), token_ref=token
        )
    click.echo(f"revoked token {public.prefix}… ({public.name})")


# --- demo ---------------------------------------------------------------------------------------------------

DEMO_TENANT = "demo"
DEMO_ADMIN = "admin@demo"


@cli.command("demo")
@pass_state
def demo_cmd(state: State) -> None:
    """Seed a demo tenant ('demo', Demo Company, NL) and an admin; keeps what exists."""
    with state.session() as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == DEMO_TENANT)).first()
        if tenant is None:
            tenant = tenants.create_tenant(
                session=session,
                actor=state.actor,
                slug=DEMO_TENANT,
                name="Demo Company",
                country="NL",
                timezone="Europe/Amsterdam",
            )
            click.echo("created tenant demo (Demo Company, NL)")
        else:
            click.echo("tenant demo exists already: kept as it is")
        admin = session.exec(select(User).where(User.username == DEMO_ADMIN)).first()
        if admin is None:
            password = generate_password()
            users.create_user(
                session=session,
                actor=state.actor,
                tenant=tenant,
                username=DEMO_ADMIN,
                display_name="Demo Admin",
                is_admin=True,
                password=password,
            )
            click.echo(f"created admin {DEMO_ADMIN} with password: {password}")
            click.echo("  (shown once; change it with: switchboard user set-password admin@demo)")
        else:
            click.echo(
                f"admin {DEMO_ADMIN} exists already: password unchanged "
                "(reset it with: switchboard user set-password admin@demo)"
            )
