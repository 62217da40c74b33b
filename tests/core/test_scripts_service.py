"""The scripts service: create, update, delete, list and move scripts, every bad input refused by field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, func, select

from core.errors import InvalidInput, NotFound, StaleUpdate, TemplateError
from core.models import AuditEvent, Integration, Script, ScriptWhen, Tenant
from core.runtime import Runtime
from core.services import scripts
from core.services.audit import OPERATOR
from core.services.scripts import ScriptDraft
from tests.factories import make_cached_records, make_integration, make_tenant

POP = "$(PopUpUri)"


@pytest.fixture
def acme(session: Session) -> Tenant:
    """A Dutch tenant."""
    return make_tenant(session, "acme")


@pytest.fixture
def hubspot(session: Session, runtime: Runtime, acme: Tenant) -> Integration:
    """One of acme's integrations."""
    return make_integration(session, acme, runtime.box, preset="hubspot", name="HubSpot")


def create(session: Session, tenant: Tenant, name: str = "Pop", template: str = POP, **kwargs: Any) -> Script:
    """A script made through the service."""
    return scripts.create_script(
        session=session, actor=OPERATOR, tenant=tenant, draft=ScriptDraft(name, template, **kwargs)
    )


def count(session: Session) -> int:
    """How many scripts are stored."""
    return session.exec(select(func.count()).select_from(Script)).one()


def test_create_list_and_audit(session: Session, acme: Tenant, hubspot: Integration) -> None:
    pop = create(session, acme, "Open in CRM", POP, integration_id=hubspot.id, auto_open=True)
    search = create(session, acme, "Search", "https://www.google.nl?q=#(Caller number)", when="always")
    mail = create(session, acme, "Mail", "mailto:?body=$(DisplayName)", integration_id=hubspot.id, when="no_match")
    assert (pop.when, pop.auto_open, pop.position) == (ScriptWhen.MATCH, True, 0)
    assert (mail.when, mail.position) == (ScriptWhen.NOMATCH, 1)
    assert search.integration_id is None and search.position == 0
    listed = scripts.list_scripts(session=session, tenant=acme)
    assert [s.name for s in listed] == ["Search", "Open in CRM", "Mail"]
    assert [s.name for s in scripts.list_scripts(session=session, tenant=acme, tenant_level=True)] == ["Search"]
    only = scripts.list_scripts(session=session, tenant=acme, integration_id=hubspot.id)
    assert [s.name for s in only] == ["Open in CRM", "Mail"]
    assert scripts.to_public(pop).integration_id == hubspot.id
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "script.create")).all()
    assert len(events) == 3 and events[0].details["name"] == "Open in CRM"


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (ScriptDraft("", POP), "name"),
        (ScriptDraft("x" * 201, POP), "name"),
        (ScriptDraft("Pop", ""), "url_template"),
        (ScriptDraft("Pop", "javascript:alert(1)"), "url_template"),
        (ScriptDraft("Pop", "https://x.example.com/?q=#(Caller nummer)"), "url_template"),
        (ScriptDraft("Pop", "https://x.example.com/" + "a" * 4000), "url_template"),
        (ScriptDraft("Pop", POP, when="sometimes"), "when"),
        (ScriptDraft("Pop", POP, ddi_filter="sales line"), "ddi_filter"),
        (ScriptDraft("Pop", POP, ddi_filter="+31 20 000"), "ddi_filter"),
    ],
)
def test_bad_drafts_are_refused_by_field_and_nothing_is_saved(
    session: Session, acme: Tenant, draft: ScriptDraft, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        scripts.create_script(session=session, actor=OPERATOR, tenant=acme, draft=draft)
    assert info.value.field == field
    assert info.value.message
    assert count(session) == 0


def test_template_errors_list_every_problem_with_positions(session: Session, acme: Tenant) -> None:
    with pytest.raises(TemplateError) as info:
        create(session, acme, template="ftp://x/#(Nope)/$(Account)")
    positions = [problem.position for problem in info.value.problems]
    assert len(positions) == 3 and positions == sorted(positions)


def test_tenant_level_scripts_may_use_only_call_properties_and_standard_fields(
    session: Session, acme: Tenant, hubspot: Integration
) -> None:
    create(session, acme, template="https://x.example.com/?n=$(DisplayName)&c=#(Caller number)")
    with pytest.raises(TemplateError):
        create(session, acme, template="https://x.example.com/?e=$(email)")
    create(session, acme, template="https://x.example.com/?e=$(email)", integration_id=hubspot.id)


def test_fields_come_from_the_preset_and_from_the_cache(session: Session, acme: Tenant, hubspot: Integration) -> None:
    session.commit()
    make_cached_records(session, hubspot, [("c1", {"DisplayName": "A", "AccountNumber": "7"}, ["020 123 4567"])])
    fields = scripts.available_fields(session=session, integration=hubspot)
    assert fields[:3] == ["DisplayName", "Identifier", "PopUpUri"]
    assert "AccountNumber" in fields and "email" in fields
    assert len(fields) == len({f.casefold() for f in fields})
    create(session, acme, template="https://x.example.com/?a=$(AccountNumber)", integration_id=hubspot.id)
    assert scripts.available_fields(session=session, integration=None) == ["DisplayName", "Identifier", "PopUpUri"]


def test_ddi_filter_is_stored_normalised(session: Session, acme: Tenant) -> None:
    assert create(session, acme, ddi_filter=" 020 765 4321 ").ddi_filter == "+31207654321"
    assert create(session, acme, ddi_filter="200").ddi_filter == "200"
    assert create(session, acme, ddi_filter="   ").ddi_filter is None


def test_another_tenants_integration_or_script_is_not_found(
    session: Session, runtime: Runtime, acme: Tenant, hubspot: Integration
) -> None:
    globex = make_tenant(session, "globex")
    with pytest.raises(NotFound) as info:
        create(session, globex, integration_id=hubspot.id)
    assert info.value.field == "integration"
    mine = create(session, acme)
    for call in (
        lambda: scripts.get_script(session=session, tenant=globex, script_id=mine.id or 0),
        lambda: scripts.delete_script(session=session, actor=OPERATOR, tenant=globex, script_id=mine.id or 0),
        lambda: scripts.update_script(
            session=session, actor=OPERATOR, tenant=globex, script_id=mine.id or 0, draft=ScriptDraft("x", POP)
        ),
    ):
        with pytest.raises(NotFound):
            call()
    assert scripts.list_scripts(session=session, tenant=globex) == []


def test_update_replaces_the_settings_and_audits_what_changed(
    session: Session, acme: Tenant, hubspot: Integration
) -> None:
    script = create(session, acme, "Pop", POP, integration_id=hubspot.id)
    before = script.updated_at
    draft = ScriptDraft("Pop up", POP, when="always", integration_id=hubspot.id, ddi_filter="0207654321")
    saved = scripts.update_script(session=session, actor=OPERATOR, tenant=acme, script_id=script.id or 0, draft=draft)
    assert (saved.name, saved.when, saved.ddi_filter) == ("Pop up", ScriptWhen.ALWAYS, "+31207654321")
    assert saved.updated_at > before
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "script.update")).one()
    assert event.details == {"name": "Pop up", "when": "always", "ddi_filter": "+31207654321"}


def test_update_refuses_a_stale_edit(session: Session, acme: Tenant) -> None:
    script = create(session, acme)
    loaded = script.updated_at
    scripts.update_script(
        session=session, actor=OPERATOR, tenant=acme, script_id=script.id or 0, draft=ScriptDraft("A", POP)
    )
    with pytest.raises(StaleUpdate):
        scripts.update_script(
            session=session,
            actor=OPERATOR,
            tenant=acme,
            script_id=script.id or 0,
            draft=ScriptDraft("B", POP),
            expected_updated_at=loaded,
        )


def test_a_bad_update_changes_nothing(session: Session, acme: Tenant) -> None:
    script = create(session, acme, "Pop")
    with pytest.raises(InvalidInput):
        scripts.update_script(
            session=session, actor=OPERATOR, tenant=acme, script_id=script.id or 0, draft=ScriptDraft("", POP)
        )
    session.refresh(script)
    assert script.name == "Pop"


def test_moving_between_integrations_puts_the_script_last(
    session: Session, runtime: Runtime, acme: Tenant, hubspot: Integration
) -> None:
    other = make_integration(session, acme, runtime.box, name="Other")
    create(session, acme, "Other pop", integration_id=other.id)
    script = create(session, acme, "Pop", integration_id=hubspot.id)
    moved = scripts.update_script(
        session=session, actor=OPERATOR, tenant=acme, script_id=script.id or 0,
        draft=ScriptDraft("Pop", POP, integration_id=other.id),
    )  # fmt: skip
    assert (moved.integration_id, moved.position) == (other.id, 1)


def test_delete(session: Session, acme: Tenant) -> None:
    script = create(session, acme)
    scripts.delete_script(session=session, actor=OPERATOR, tenant=acme, script_id=script.id or 0)
    assert count(session) == 0
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "script.delete")).one().target.endswith("Pop")


def test_move_within_its_list(session: Session, acme: Tenant) -> None:
    a, b, c = (create(session, acme, name) for name in "ABC")
    order = scripts.move_script(session=session, actor=OPERATOR, tenant=acme, script_id=c.id or 0, offset=-1)
    assert [s.name for s in order] == ["A", "C", "B"]
    order = scripts.move_script(session=session, actor=OPERATOR, tenant=acme, script_id=a.id or 0, offset=10)
    assert [s.name for s in order] == ["C", "B", "A"]
    assert [s.position for s in order] == [0, 1, 2]
    unmoved = scripts.move_script(session=session, actor=OPERATOR, tenant=acme, script_id=c.id or 0, offset=-1)
    assert [s.name for s in unmoved] == ["C", "B", "A"]
    assert [s.name for s in scripts.list_scripts(session=session, tenant=acme)] == ["C", "B", "A"]
    assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "script.move")).all()) == 2
    assert b.position == 1


def test_every_change_moves_the_newest_change_time_forward(session: Session, acme: Tenant) -> None:
    first = create(session, acme, "A")
    first.updated_at = first.updated_at + timedelta(hours=1)  # as if written by a node whose clock runs ahead
    session.add(first)
    session.flush()
    second = create(session, acme, "B")
    assert second.updated_at > first.updated_at


def test_preview_uses_a_sample_call_and_a_cached_record(session: Session, acme: Tenant, hubspot: Integration) -> None:
    session.commit()
    make_cached_records(session, hubspot, [("c1", {"PopUpUri": "https://crm.example.com/c/1"}, ["020 123 4567"])])
    draft = ScriptDraft("Pop", "$(PopUpUri)?from=#(Caller number)", integration_id=hubspot.id)
    assert (
        scripts.preview_script(session=session, tenant=acme, draft=draft)
        == "https://crm.example.com/c/1?from=0201234567"
    )
    tenant_level = ScriptDraft("Search", "https://www.google.nl?q=#(Caller name)")
    assert (
        scripts.preview_script(session=session, tenant=acme, draft=tenant_level)
        == "https://www.google.nl?q=Anna%20de%20Vries"
    )


@pytest.mark.parametrize(
    ("given", "when"),
    [
        ("match", ScriptWhen.MATCH),
        ("No match", ScriptWhen.NOMATCH),
        ("no_match", ScriptWhen.NOMATCH),
        ("ALWAYS", ScriptWhen.ALWAYS),
    ],
)
def test_check_when_accepts_the_usual_spellings(given: str, when: ScriptWhen) -> None:
    assert scripts.check_when(given) is when


def test_an_integration_whose_preset_is_gone_still_offers_its_cached_fields(
    session: Session, runtime: Runtime, acme: Tenant
) -> None:
    old = make_integration(session, acme, runtime.box, preset="no-longer-shipped", name="Old CRM")
    session.commit()
    make_cached_records(session, old, [("c1", {"DisplayName": "A", "Region": "North"}, ["020 123 4567"])])
    assert scripts.available_fields(session=session, integration=old) == [
        "DisplayName",
        "Identifier",
        "PopUpUri",
        "Region",
    ]
