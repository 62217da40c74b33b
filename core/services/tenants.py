"""Tenants: the organisations that own integrations, scripts and users."""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from sqlmodel import Session, col, select

from core.errors import AlreadyExists, InvalidInput, NotFound
from core.models import Tenant, TenantPublic
from core.services.audit import Actor, record

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


def check_country(country: str) -> str:
    """An ISO 3166 alpha-2 code that has a telephone country code, upper-cased."""
    code = (country or "").strip().upper()
    if len(code) != 2 or not code.isalpha() or phonenumbers.country_code_for_region(code) == 0:
        raise InvalidInput(
            f"{country!r} is not a country code; use the two-letter ISO 3166 code, e.g. NL, DE, GB, US",
            field="country",
        )
    return code


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(timezone: str) -> str:
    """An IANA time zone name such as Europe/Amsterdam."""
    name = (timezone or "").strip()
    try:
        if not name or name not in _zones():
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{timezone!r} is not a time zone; use an IANA name such as Europe/Amsterdam or UTC",
            field="timezone",
        ) from None
    return name


def _check_slug(slug: str) -> str:
    value = (slug or "").strip()
    if not SLUG_RE.match(value):
        raise InvalidInput(
            f"{slug!r} is not a valid tenant id: use 1-40 lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit (e.g. acme-nl)",
            field="slug",
        )
    return value


def _check_name(name: str) -> str:
    value = (name or "").strip()
    if not value or len(value) > 200:
        raise InvalidInput("give the organisation's name (1-200 characters)", field="name")
    return value


def create_tenant(
    *, session: Session, actor: Actor, slug: str, name: str, country: str, timezone: str = "UTC"
) -> Tenant:
    """Create a tenant after checking every field; nothing is written if one is wrong."""
    tenant = Tenant(
        slug=_check_slug(slug),
        name=_check_name(name),
        country=check_country(country),
        timezone=check_timezone(timezone),
    )
    if session.exec(select(Tenant).where(Tenant.slug == tenant.slug)).first():
        raise AlreadyExists(f"a tenant with id {tenant.slug!r} exists already; choose another id", field="slug")
    session.add(tenant)
    session.flush()
    record(
        session,
        actor=actor,
        action="tenant.create",
        tenant_id=tenant.id,
        target=tenant.slug,
        details={"name": tenant.name, "country": tenant.country, "timezone": tenant.timezone},
    )
    return tenant


def get_tenant(*, session: Session, slug: str) -> Tenant:
    """The tenant with this slug, or NotFound naming it."""
    tenant = session.exec(select(Tenant).where(Tenant.slug == (slug or "").strip().lower())).first()
    if tenant is None:
        raise NotFound(f"there is no tenant {slug!r}; `switchboard tenant list` shows them", field="tenant")
    return tenant


def get_tenant_by_id(*, session: Session, tenant_id: int) -> Tenant:
    """The tenant with this id."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"there is no tenant with id {tenant_id}", field="tenant")
    return tenant


def list_tenants(*, session: Session) -> list[TenantPublic]:
    """All tenants, by slug."""
    rows = session.exec(select(Tenant).order_by(col(Tenant.slug)))
    return [TenantPublic.model_validate(t, from_attributes=True) for t in rows]
