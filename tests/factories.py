"""Small factories for test data, all through the use-case functions (never hand-written SQL)."""

from __future__ import annotations

import itertools

from sqlmodel import Session

from core.models import Integration, Tenant, User
from core.security import SecretBox
from core.services import integrations, tenants, users
from core.services.audit import OPERATOR

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def make_tenant(
    session: Session,
    slug: str | None = None,
    *,
    country: str = "NL",
    timezone: str = "Europe/Amsterdam",
    name: str | None = None,
) -> Tenant:
    """A tenant with a unique slug unless one is given."""
    slug = slug or f"tenant-{next(_counter)}"
    return tenants.create_tenant(
        session=session,
        actor=OPERATOR,
        slug=slug,
        name=name or slug.title(),
        country=country,
        timezone=timezone,
    )


def make_user(
    session: Session,
    tenant: Tenant,
    username: str | None = None,
    *,
    admin: bool = True,
    password: str | None = PASSWORD,
    ssh_keys: list[str] | None = None,
) -> User:
    """A user (an admin by default) with the standard test password."""
    username = username or f"user{next(_counter)}@{tenant.slug}.example"
    return users.create_user(
        session=session,
        actor=OPERATOR,
        tenant=tenant,
        username=username,
        display_name=username.split("@")[0].title(),
        is_admin=admin,
        password=password,
        ssh_keys=ssh_keys,
    )


def make_integration(
    session: Session,
    tenant: Tenant,
    box: SecretBox,
    *,
    preset: str = "hubspot",
    name: str | None = None,
    settings: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    notification: list[dict[str, str]] | None = None,
) -> Integration:
    """An integration stored as the wizard would store it."""
    return integrations.create_integration(
        session=session,
        actor=OPERATOR,
        tenant=tenant,
        box=box,
        preset=preset,
        name=name or f"CRM {next(_counter)}",
        settings=settings or {"portal_id": "123"},
        secrets=secrets if secrets is not None else {"access_token": "pat-na1-secret-value-0001"},
        notification=notification or [{"field": "DisplayName", "label": "Name"}],
    )


CachedSpec = tuple[str, dict[str, str], list[str | tuple[str, str]]]
"""A record to cache: (record id, fields, numbers as raw text or (raw text, label))."""


def make_cached_records(session: Session, integration: Integration, records: list[CachedSpec]) -> int:
    """Write a new cache generation for ``integration`` and make it the active one, as a sync does.

    Numbers are normalised with the tenant's country; returns the new generation.
    """
    from sqlmodel import func, select

    from core.models import CachedNumber, CachedRecord
    from core.numbers import normalize, suffix_key

    tenant = session.get(Tenant, integration.tenant_id)
    assert tenant is not None
    last = session.exec(
        select(func.max(CachedRecord.generation)).where(CachedRecord.integration_id == integration.id)
    ).one()
    generation = (last or 0) + 1
    for record_id, fields, numbers in records:
        record = CachedRecord(
            integration_id=integration.id or 0, generation=generation, record_id=record_id, fields=fields
        )
        session.add(record)
        session.flush()
        for item in numbers:
            raw, label = (item, "Phone") if isinstance(item, str) else item
            number = normalize(raw, country=tenant.country)
            e164 = number.e164
            assert e164 is not None, f"{raw!r} is an internal number; a sync never caches those"
            session.add(
                CachedNumber(
                    integration_id=integration.id or 0,
                    generation=generation,
                    record_pk=record.id or 0,
                    e164=e164,
                    suffix=suffix_key(e164),
                    raw=raw,
                    label=label,
                    national=number.national,
                )
            )
    integration.active_generation = generation
    session.add(integration)
    session.commit()
    return generation
