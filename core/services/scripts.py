"""Scripts: the links offered with a call (screen pop, callback mail, "add contact"...), per tenant.

A script belongs to one of the tenant's integrations, or to the tenant itself (``integration_id`` empty: it runs
for every call). Its template is checked with :mod:`core.templates` against the fields it may use: call
properties and the standard fields always; an integration's script also the fields of that CRM (its preset's
and those seen in its cache). Every change is audited.

Each change also moves the script's ``updated_at`` past every other script of the tenant, so the lookup's
configuration cache (which compares the number of scripts and their newest change) notices it on every node,
whatever the nodes' clocks say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from core.errors import InvalidInput, NotFound, PhoneNumberError, StaleUpdate, SwitchboardError
from core.models import CachedRecord, Integration, Script, ScriptPublic, ScriptWhen, Tenant, utcnow
from core.numbers import normalize
from core.presets.loader import get_preset
from core.services.audit import Actor, record
from core.services.integrations import get_integration
from core.templates import STANDARD_FIELDS, render, sample_call, validate

log = logging.getLogger(__name__)

MAX_TEMPLATE = 4000
"""Longest script template accepted."""

FIELD_SAMPLE = 200
"""Cached records read to learn an integration's field names."""

_WHEN_WORDS = {
    "match": ScriptWhen.MATCH,
    "matched": ScriptWhen.MATCH,
    "nomatch": ScriptWhen.NOMATCH,
    "no_match": ScriptWhen.NOMATCH,
    "no match": ScriptWhen.NOMATCH,
    "no-match": ScriptWhen.NOMATCH,
    "always": ScriptWhen.ALWAYS,
}


@dataclass(frozen=True, slots=True)
class ScriptDraft:
    """What the script editor (or the wizard) submits; checked by :func:`check_draft`."""

    name: str
    url_template: str
    when: ScriptWhen | str = ScriptWhen.MATCH
    auto_open: bool = False
    ddi_filter: str | None = None
    integration_id: int | None = None


def to_public(script: Script) -> ScriptPublic:
    """What may leave the process."""
    return ScriptPublic.model_validate(script, from_attributes=True)


# --- checks -------------------------------------------------------------------------------------------------


def check_when(when: ScriptWhen | str) -> ScriptWhen:
    """``match``, ``nomatch`` (also ``no_match``) or ``always``."""
    if isinstance(when, ScriptWhen):
        return when
    found = _WHEN_WORDS.get(" ".join(str(when or "").split()).lower())
    if found is None:
        raise InvalidInput(
            f"{when!r} is not a choice: use match (the caller was found), nomatch (not found) or always",
            field="when",
        )
    return found


def check_ddi_filter(ddi_filter: str | None, *, tenant: Tenant) -> str | None:
    """Empty, or a phone number (stored as E.164) or a short internal number (stored as its digits)."""
    text = (ddi_filter or "").strip()
    if not text:
        return None
    try:
        number = normalize(text, country=tenant.country)
    except PhoneNumberError as exc:
        raise InvalidInput(
            f"{exc.message} Give the number the call came in on (e.g. 020 7654321), a short number, "
            "or leave it empty for every call.",
            field="ddi_filter",
        ) from None
    return number.e164 or number.national


def _check_name(name: str) -> str:
    value = " ".join((name or "").split())
    if not value or len(value) > 200:
        raise InvalidInput("give the script a name of 1-200 characters, e.g. Open in CRM", field="name")
    return value


def available_fields(*, session: Session, integration: Integration | None) -> list[str]:
    """The record fields a script may use: the standard ones, then the CRM's (preset and cache), no repeats.

    A tenant-level script (``integration`` None) has only the standard fields.
    """
    names: dict[str, str] = {name.casefold(): name for name in STANDARD_FIELDS}
    if integration is None:
        return list(names.values())
    try:
        preset_fields: list[str] = list(get_preset(integration.preset).fields)
    except SwitchboardError as exc:  # a preset no longer shipped (or unreadable): the cache still tells the fields
        log.warning(
            "script fields of integration %s: preset %r unavailable (%s)", integration.id, integration.preset, exc.title
        )
        preset_fields = []
    for name in [*preset_fields, *_cached_field_names(session, integration)]:
        names.setdefault(name.casefold(), name)
    return list(names.values())


def _cached_field_names(session: Session, integration: Integration) -> list[str]:
    if integration.active_generation is None:
        return []
    rows = session.exec(
        select(CachedRecord.fields)
        .where(
            CachedRecord.integration_id == integration.id,
            CachedRecord.generation == integration.active_generation,
        )
        .limit(FIELD_SAMPLE)
    )
    seen: dict[str, None] = {}
    for fields in rows:
        for name in fields or {}:
            seen.setdefault(str(name), None)
    return list(seen)


def check_draft(*, session: Session, tenant: Tenant, draft: ScriptDraft) -> dict[str, Any]:
    """Check every field of a draft; returns the clean values or raises naming the first wrong field.

    A bad template raises :class:`~core.errors.TemplateError` with every problem and its position.
    """
    integration = None
    if draft.integration_id is not None:
        integration = get_integration(session=session, tenant=tenant, integration_id=draft.integration_id)
    name = _check_name(draft.name)
    template = (draft.url_template or "").strip()
    if len(template) > MAX_TEMPLATE:
        raise InvalidInput(f"the script is longer than {MAX_TEMPLATE} characters", field="url_template")
    validate(template, record_fields=available_fields(session=session, integration=integration))
    return {
        "name": name,
        "url_template": template,
        "when": check_when(draft.when),
        "auto_open": bool(draft.auto_open),
        "ddi_filter": check_ddi_filter(draft.ddi_filter, tenant=tenant),
        "integration_id": integration.id if integration else None,
    }


# --- reading ------------------------------------------------------------------------------------------------


def get_script(*, session: Session, tenant: Tenant, script_id: int) -> Script:
    """The tenant's script with this id (another tenant's script is "not found")."""
    script = session.get(Script, script_id)
    if script is None or script.tenant_id != tenant.id:
        raise NotFound(
            f"the tenant {tenant.slug} has no script {script_id}; `switchboard script list` shows them",
            field="script",
        )
    return script


def list_scripts(
    *, session: Session, tenant: Tenant, integration_id: int | None = None, tenant_level: bool = False
) -> list[Script]:
    """The tenant's scripts in the order they are offered: tenant-level first, then per integration.

    With ``integration_id``, only that integration's; with ``tenant_level``, only the tenant's own.
    """
    query = select(Script).where(Script.tenant_id == tenant.id)
    if integration_id is not None:
        get_integration(session=session, tenant=tenant, integration_id=integration_id)
        query = query.where(Script.integration_id == integration_id)
    elif tenant_level:
        query = query.where(col(Script.integration_id).is_(None))
    order = (col(Script.integration_id).is_not(None), col(Script.integration_id), col(Script.position), col(Script.id))
    return list(session.exec(query.order_by(*order)).all())


def _scope(session: Session, tenant: Tenant, integration_id: int | None) -> list[Script]:
    return list_scripts(
        session=session, tenant=tenant, integration_id=integration_id, tenant_level=integration_id is None
    )


def preview_script(*, session: Session, tenant: Tenant, draft: ScriptDraft) -> str | None:
    """The draft's link for a sample call (and a cached record, if the integration has one); None if refused."""
    values = check_draft(session=session, tenant=tenant, draft=draft)
    sample: dict[str, Any] = {"DisplayName": "Jansen BV", "Identifier": "4711", "PopUpUri": "https://crm.example.com/"}
    if values["integration_id"] is not None:
        integration = get_integration(session=session, tenant=tenant, integration_id=values["integration_id"])
        if integration.active_generation is not None:
            cached = session.exec(
                select(CachedRecord.fields)
                .where(
                    CachedRecord.integration_id == integration.id,
                    CachedRecord.generation == integration.active_generation,
                )
                .limit(1)
            ).first()
            sample = dict(cached or sample)
    return render(values["url_template"], call=sample_call(), record=sample)


# --- writing ------------------------------------------------------------------------------------------------


def _changed_at(session: Session, tenant: Tenant) -> datetime:
    """Now, or just after the tenant's newest script change if a clock is behind (see the module docstring)."""
    now = utcnow()
    newest = session.exec(select(func.max(Script.updated_at)).where(Script.tenant_id == tenant.id)).one()
    if newest is not None and newest >= now:
        return newest + timedelta(microseconds=1)
    return now


def _audit(session: Session, actor: Actor, action: str, script: Script, details: dict[str, Any]) -> None:
    record(
        session,
        actor=actor,
        action=action,
        tenant_id=script.tenant_id,
        target=f"{script.id}:{script.name}",
        details=details,
    )


def _details(values: dict[str, Any]) -> dict[str, Any]:
    return {key: (value.value if isinstance(value, ScriptWhen) else value) for key, value in values.items()}


def create_script(*, session: Session, actor: Actor, tenant: Tenant, draft: ScriptDraft) -> Script:
    """Add a script at the end of its list (the integration's, or the tenant's own)."""
    values = check_draft(session=session, tenant=tenant, draft=draft)
    scope = _scope(session, tenant, values["integration_id"])
    stamp = _changed_at(session, tenant)
    script = Script(
        tenant_id=tenant.id or 0,
        position=max((s.position for s in scope), default=-1) + 1,
        created_at=stamp,
        updated_at=stamp,
        **values,
    )
    session.add(script)
    session.flush()
    _audit(session, actor, "script.create", script, _details(values))
    return script


def update_script(
    *,
    session: Session,
    actor: Actor,
    tenant: Tenant,
    script_id: int,
    draft: ScriptDraft,
    expected_updated_at: datetime | None = None,
) -> Script:
    """Replace a script's settings with the draft's; moving it to another integration puts it last there.

    With ``expected_updated_at`` (the ``updated_at`` the editor loaded), a script saved by someone else since
    is refused with :class:`~core.errors.StaleUpdate`.
    """
    script = get_script(session=session, tenant=tenant, script_id=script_id)
    if expected_updated_at is not None and script.updated_at != expected_updated_at:
        raise StaleUpdate(
            f"the script {script.name!r} was changed by someone else after you opened it; "
            "open it again and make your change again",
            field="version",
        )
    values = check_draft(session=session, tenant=tenant, draft=draft)
    if values["integration_id"] != script.integration_id:
        scope = _scope(session, tenant, values["integration_id"])
        script.position = max((s.position for s in scope), default=-1) + 1
    changed = {key: value for key, value in values.items() if getattr(script, key) != value}
    for key, value in values.items():
        setattr(script, key, value)
    script.updated_at = _changed_at(session, tenant)
    session.add(script)
    session.flush()
    _audit(session, actor, "script.update", script, _details(changed))
    return script


def delete_script(*, session: Session, actor: Actor, tenant: Tenant, script_id: int) -> None:
    """Remove a script for good."""
    script = get_script(session=session, tenant=tenant, script_id=script_id)
    _audit(session, actor, "script.delete", script, {"integration_id": script.integration_id})
    session.delete(script)
    session.flush()


def move_script(*, session: Session, actor: Actor, tenant: Tenant, script_id: int, offset: int) -> list[Script]:
    """Move a script ``offset`` places down (negative: up) within its list; returns the list in its new order."""
    script = get_script(session=session, tenant=tenant, script_id=script_id)
    scope = _scope(session, tenant, script.integration_id)
    old = next(index for index, item in enumerate(scope) if item.id == script.id)
    new = min(max(old + offset, 0), len(scope) - 1)
    if new == old:
        return scope
    scope.insert(new, scope.pop(old))
    stamp = _changed_at(session, tenant)
    for position, item in enumerate(scope):
        if item.position != position:
            item.position = position
            item.updated_at = stamp
            session.add(item)
    session.flush()
    _audit(session, actor, "script.move", script, {"from": old, "to": new})
    return scope
