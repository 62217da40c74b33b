"""API tokens for the HTTP shim: per tenant, stored hashed, shown once, revocable."""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.errors import InvalidInput, NotFound
from core.models import ApiToken, ApiTokenPublic, Tenant, utcnow
from core.security import new_api_token, token_digest
from core.services.audit import Actor, record


def _public(token: ApiToken, tenant_slug: str) -> ApiTokenPublic:
    return ApiTokenPublic(
        id=token.id or 0,
        tenant=tenant_slug,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


def create_token(
    *, session: Session, actor: Actor, tenant: Tenant, name: str = "phone system"
) -> tuple[ApiTokenPublic, str]:
    """Create a token; returns what may be shown of it and the full value, which is never stored."""
    label = (name or "").strip()
    if not label or len(label) > 100:
        raise InvalidInput("give the token a name of 1-100 characters, e.g. the phone system it is for", field="name")
    made = new_api_token()
    token = ApiToken(tenant_id=tenant.id or 0, name=label, prefix=made.prefix, token_hash=made.digest)
    session.add(token)
    session.flush()
    record(
        session,
        actor=actor,
        action="token.create",
        tenant_id=tenant.id,
        target=label,
        details={"prefix": made.prefix},
    )
    return _public(token, tenant.slug), made.value


def list_tokens(*, session: Session, tenant: Tenant) -> list[ApiTokenPublic]:
    """The tenant's tokens (prefix and times only)."""
    rows = session.exec(select(ApiToken).where(ApiToken.tenant_id == tenant.id).order_by(col(ApiToken.id)))
    return [_public(t, tenant.slug) for t in rows]


def revoke_token(*, session: Session, actor: Actor, tenant: Tenant, token_ref: str) -> ApiTokenPublic:
    """Revoke a token named by id or visible prefix; revoking twice is harmless."""
    ref = (token_ref or "").strip()
    rows = session.exec(select(ApiToken).where(ApiToken.tenant_id == tenant.id)).all()
    match = [t for t in rows if str(t.id) == ref or (len(ref) >= 6 and t.prefix.startswith(ref))]
    if len(match) != 1:
        raise NotFound(
            f"the tenant {tenant.slug} has no token {ref!r}; `switchboard token list` shows them",
            field="token",
        )
    token = match[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        record(
            session,
            actor=actor,
            action="token.revoke",
            tenant_id=tenant.id,
            target=token.name,
            details={"prefix": token.prefix},
        )
    return _public(token, tenant.slug)


def tenant_for_token(*, session: Session, value: str) -> Tenant | None:
    """The tenant a bearer token belongs to, or None for a missing, unknown or revoked token."""
    if not value or len(value) > 200:
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == token_digest(value))).first()
    if token is None or token.revoked_at is not None:
        return None
    return session.get(Tenant, token.tenant_id)
