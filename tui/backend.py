"""The app's one door into core: each method opens a transaction, calls use-case functions, returns plain data.

Screens call these from thread workers and never touch a session, a model row or SQL themselves. Every call
reloads the signed-in identity and checks the administrative privilege again, so an admin whose privilege is
withdrawn (or whose account is deleted) by someone else cannot change anything from a session left open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.connector import ConnectionTest
from core.db import session_scope
from core.errors import StaleUpdate, SwitchboardError, TemplateError
from core.lookup import Lookups
from core.matching import CallInput
from core.models import (
    Integration,
    Script,
    ScriptWhen,
    SyncOutcome,
    SyncRunPublic,
    Tenant,
    utcnow,
)
from core.presets import Preset, get_preset, load_presets
from core.runtime import Runtime
from core.security import mask
from core.services import audit, integration_tokens, integrations, oauth, scripts, setup, tenants, users
from core.services import sync as syncing
from core.services.scripts import ScriptDraft
from core.services.users import Identity
from core.sync import ProgressCallback
from core.templates import find_problems
from tui.views import (
    SAMPLE_RECORD,
    Activity,
    HomeSummary,
    IntegrationRow,
    Overview,
    ScriptContext,
    ScriptRow,
    SettingRow,
    Status,
)
from tui.wizard_state import NotificationLine, WizardScript, WizardState


class Backend:
    """Use-case calls on behalf of one app session; safe to call from worker threads."""

    def __init__(self, runtime: Runtime, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.runtime = runtime
        self.clock = clock
        self._presets: dict[str, Preset] | None = None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with session_scope(self.runtime.engine) as session:
            yield session

    def _tenant(self, session: Session, identity: Identity) -> Tenant:
        """The admin's tenant, after checking (fresh from the database) that they still hold the privilege."""
        users.require_admin(users.identity_for(session=session, user_id=identity.user_id))
        return tenants.get_tenant_by_id(session=session, tenant_id=identity.tenant_id)

    def _integration(self, session: Session, identity: Identity, integration_id: int) -> Integration:
        tenant = self._tenant(session, identity)
        return integrations.get_integration(session=session, tenant=tenant, integration_id=integration_id)

    # --- signing in ------------------------------------------------------------------------------------------

    def sign_in(self, username: str, password: str) -> Identity:
        """The identity of whoever these credentials belong to (admin or not); one neutral error otherwise."""
        with self._session() as session:
            user = users.authenticate_password(session=session, username=username, password=password)
            return users.identity_for(session=session, user_id=user.id or 0)

    def identity(self, user_id: int) -> Identity:
        """A user's identity, read fresh from the database."""
        with self._session() as session:
            return users.identity_for(session=session, user_id=user_id)

    # --- reading ---------------------------------------------------------------------------------------------

    def change_marker(self, identity: Identity) -> int:
        """A number that changes whenever anyone changes the tenant's configuration (the newest audit event)."""
        with self._session() as session:
            newest = audit.list_events(session=session, tenant_id=identity.tenant_id, limit=1)
            return newest[0].id if newest else 0

    def integration_rows(self, identity: Identity) -> list[IntegrationRow]:
        """The tenant's integrations, in order, with their status marks."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            return [self._row(session, item) for item in integrations.list_integrations(session=session, tenant=tenant)]

    def home(self, identity: Identity) -> HomeSummary:
        """The home screen's summary."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            rows = [self._row(session, item) for item in integrations.list_integrations(session=session, tenant=tenant)]
            fresh = users.identity_for(session=session, user_id=identity.user_id)
            own = scripts.list_scripts(session=session, tenant=tenant, tenant_level=True)
            return HomeSummary(
                identity=fresh, timezone=tenant.timezone, integrations=rows, scripts=[_script_row(s) for s in own]
            )

    def overview(self, identity: Identity, integration_id: int) -> Overview:
        """One integration's settings (secrets masked), notification fields and status."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            item = integrations.get_integration(session=session, tenant=tenant, integration_id=integration_id)
            public = integrations.to_public(session=session, integration=item)
            state = syncing.sync_state(session=session, integration=item) if _has_api(item.preset) else None
            return Overview(
                integration=public,
                timezone=tenant.timezone,
                preset_name=_preset_name(item.preset),
                status=self._status(session, item, state),
                sync=state,
                history=syncing.list_runs(session=session, integration=item, limit=30) if state else [],
                settings=self._settings(item),
                scripts=[
                    _script_row(s)
                    for s in scripts.list_scripts(session=session, tenant=tenant, integration_id=integration_id)
                ],
            )

    def activity(self, identity: Identity, *, limit: int = 200) -> Activity:
        """The tenant's configuration changes, newest first."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            events = audit.list_events(session=session, tenant_id=identity.tenant_id, limit=limit * 2)
            changes = [event for event in events if not event.action.startswith(ACCESS_PREFIXES)]
            return Activity(events=changes[:limit], timezone=tenant.timezone)

    def test_call(self, identity: Identity, caller_number: str, ddi_number: str | None = None) -> dict[str, Any]:
        """What the HTTP shim would answer for this call, as the same JSON-ready data."""
        with self._session() as session:
            self._tenant(session, identity)
        lookups = Lookups(self.runtime.engine, clock=self.clock)
        try:
            call = CallInput(caller_number=caller_number, ddi_number=ddi_number or None)
            return lookups.by_tenant(identity.tenant_slug, call).body
        finally:
            lookups.close()

    def _status(self, session: Session, item: Integration, state: syncing.SyncState | None = None) -> Status:
        """Syncing, disabled, last sync failed, or fine, in that order of precedence."""
        if state is None and _has_api(item.preset):
            state = syncing.sync_state(session=session, integration=item)
        if state is not None and state.running_on:
            return Status.SYNCING
        if not item.enabled:
            return Status.DISABLED
        if state is not None and state.last_run is not None and state.last_run.outcome in FAILED_OUTCOMES:
            return Status.FAILED
        return Status.ENABLED

    def _row(self, session: Session, item: Integration) -> IntegrationRow:
        state = syncing.sync_state(session=session, integration=item) if _has_api(item.preset) else None
        status = self._status(session, item, state)
        last = state.last_run if state is not None else None
        return IntegrationRow(
            id=item.id or 0,
            name=item.name,
            preset=item.preset,
            status=status,
            numbers_cached=integrations.numbers_cached(session=session, integration=item),
            last_error=last.error if last is not None and status is Status.FAILED else None,
            script_only=state is None,
        )

    def _settings(self, item: Integration) -> list[SettingRow]:
        """The settings in the preset's order and words; secrets masked; OAuth tokens never shown at all."""
        values, _tokens = setup.stored_values(integration=item, box=self.runtime.box)
        try:
            preset: Preset | None = get_preset(item.preset)
        except SwitchboardError:
            preset = None
        if preset is None:
            return [SettingRow(name=k, label=k, value=v) for k, v in item.settings.items()]
        rows = []
        for setting in preset.settings:
            value = values.get(setting.name, "")
            shown = mask(value) if setting.secret else value
            rows.append(SettingRow(name=setting.name, label=setting.label, value=shown, secret=setting.secret))
        return rows

    # --- changing --------------------------------------------------------------------------------------------

    def set_enabled(self, identity: Identity, integration_id: int, *, enabled: bool, expected_version: int) -> None:
        """Disable (matches suppressed, nothing removed) or re-enable; refused if someone saved meanwhile."""
        with self._session() as session:
            item = self._integration(session, identity, integration_id)
            integrations.set_enabled(
                session=session,
                actor=identity.actor,
                integration=item,
                enabled=enabled,
                expected_version=expected_version,
            )

    def delete(self, identity: Identity, integration_id: int) -> str:
        """Erase an integration with its settings and cached data; returns its name for the message."""
        with self._session() as session:
            item = self._integration(session, identity, integration_id)
            name = item.name
            integrations.delete_integration(session=session, actor=identity.actor, integration=item)
            return name

    # --- scripts ---------------------------------------------------------------------------------------------

    def script_context(self, identity: Identity, integration_id: int | None) -> ScriptContext:
        """The fields a script for this integration (or, with ``None``, for every call) may use."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            item = None
            if integration_id is not None:
                item = integrations.get_integration(session=session, tenant=tenant, integration_id=integration_id)
            fields = scripts.available_fields(session=session, integration=item)
            cached = item is not None and item.active_generation is not None
            return ScriptContext(
                integration_id=integration_id,
                scope=item.name if item else "every call",
                fields=tuple(fields),
                sample_record=None if cached else dict(SAMPLE_RECORD),
            )

    def script(self, identity: Identity, script_id: int) -> ScriptRow:
        """One saved script."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            return _script_row(scripts.get_script(session=session, tenant=tenant, script_id=script_id))

    def check_script(self, identity: Identity, draft: ScriptDraft, context: ScriptContext) -> None:
        """Raise the first problem of a draft, naming its field, exactly as saving it would."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            if context.saved:
                scripts.check_draft(session=session, tenant=tenant, draft=draft)
                return
            scripts.check_when(draft.when)
            scripts.check_ddi_filter(draft.ddi_filter, tenant=tenant)
            problems = find_problems(draft.url_template, record_fields=context.fields)
            if problems:
                raise TemplateError(problems[0].message, position=problems[0].position, problems=problems)

    def preview_script(self, identity: Identity, draft: ScriptDraft) -> str | None:
        """A saved scope's preview, rendered by core with a record from the integration's cache."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            return scripts.preview_script(session=session, tenant=tenant, draft=draft)

    def create_script(self, identity: Identity, draft: ScriptDraft) -> str:
        """Save a new script; returns its name."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            return scripts.create_script(session=session, actor=identity.actor, tenant=tenant, draft=draft).name

    def update_script(self, identity: Identity, script_id: int, draft: ScriptDraft, *, loaded: datetime) -> str:
        """Save changes to a script, refused if someone else saved it after it was ``loaded``."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            current = scripts.get_script(session=session, tenant=tenant, script_id=script_id)
            if current.updated_at != loaded:
                raise StaleUpdate(
                    f"the script {current.name!r} was changed by someone else after you opened it; "
                    "open it again and make your change again",
                    field="version",
                )
            saved = scripts.update_script(
                session=session, actor=identity.actor, tenant=tenant, script_id=script_id, draft=draft
            )
            return saved.name

    def delete_script(self, identity: Identity, script_id: int) -> str:
        """Remove a script for good; returns its name."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            name = scripts.get_script(session=session, tenant=tenant, script_id=script_id).name
            scripts.delete_script(session=session, actor=identity.actor, tenant=tenant, script_id=script_id)
            return name

    # --- the wizard ------------------------------------------------------------------------------------------

    def presets(self) -> dict[str, Preset]:
        """Every preset, by key (read once)."""
        if self._presets is None:
            self._presets = load_presets()
        return self._presets

    def test_connection(
        self,
        identity: Identity,
        preset_key: str,
        values: dict[str, str],
        *,
        integration_id: int | None = None,
        oauth_state: str | None = None,
    ) -> ConnectionTest:
        """Ask the CRM for its first page with these settings (an edited integration's stored secrets fill gaps)."""
        preset = get_preset(preset_key)
        settings = dict(values)
        tokens: dict[str, str] | None = None
        with self._session() as session:
            tenant = self._tenant(session, identity)
            if integration_id is not None:
                item = self._integration(session, identity, integration_id)
                stored, tokens = setup.stored_values(integration=item, box=self.runtime.box)
                settings = {**{k: v for k, v in stored.items() if k in preset.secret_settings}, **settings}
            if oauth_state is not None:
                tokens = oauth.take_tokens(session=session, box=self.runtime.box, tenant=tenant, state=oauth_state)
                session.rollback()  # only borrowed for the test: Finish takes them for good
        checked = setup.check_values(preset, settings)
        check = asyncio.run(
            setup.check_connection(preset=preset, values=checked, tokens=tokens or None, tenant=identity.tenant_slug)
        )
        if oauth_state is not None and tokens is not None and check.tokens != tokens:
            with self._session() as session:  # the test renewed them: Finish must store the new ones
                tenant = self._tenant(session, identity)
                oauth.keep_renewed_tokens(
                    session=session, box=self.runtime.box, tenant=tenant, state=oauth_state, tokens=check.tokens
                )
        return ConnectionTest(check.count, check.sample, list(check.object_types))

    def begin_sign_in(self, identity: Identity, preset_key: str, values: dict[str, str]) -> oauth.PendingAuthorization:
        """Start the CRM's OAuth sign-in with these settings: the address to open and the state to wait on."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            return oauth.begin_authorization(
                session=session,
                actor=identity.actor,
                tenant=tenant,
                box=self.runtime.box,
                preset_key=preset_key,
                settings=values,
                redirect_base=self.runtime.settings.public_base_url(),
            )

    def callback_problem(self, pending: oauth.PendingAuthorization) -> str | None:
        """Why the CRM's redirect may find no shim at its address (asked over HTTP); None if one answers."""
        return oauth.callback_problem(pending.redirect_uri)

    def sign_in_status(self, identity: Identity, state: str) -> oauth.AuthorizationStatus:
        """How a started sign-in stands (pending, completed, failed, expired, used)."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            return oauth.authorization_status(session=session, tenant=tenant, state=state)

    def sync_now(
        self, identity: Identity, integration_id: int, progress: ProgressCallback | None = None
    ) -> SyncRunPublic:
        """Sync the integration now, here, under its lease (``SyncBusy`` if a sync of it is running)."""
        with self._session() as session:
            self._integration(session, identity, integration_id)
        return asyncio.run(syncing.sync_now(runtime=self.runtime, integration_id=integration_id, progress=progress))

    def wizard_for_edit(self, identity: Identity, integration_id: int) -> WizardState:
        """An integration as the wizard's steps 2-4 show it (secrets not included: left empty, they stay)."""
        with self._session() as session:
            tenant = self._tenant(session, identity)
            item = integrations.get_integration(session=session, tenant=tenant, integration_id=integration_id)
            preset = get_preset(item.preset)
            stored, _tokens = setup.stored_values(integration=item, box=self.runtime.box)
            saved = scripts.list_scripts(session=session, tenant=tenant, integration_id=integration_id)
            return WizardState(
                preset=preset,
                settings={k: v for k, v in item.settings.items() if k not in preset.secret_settings},
                notification=[NotificationLine(n["field"], n.get("label") or n["field"]) for n in item.notification],
                scripts=[WizardScript(_draft_of(s), s.id, s.updated_at) for s in saved],
                name=item.name,
                editing=item.id,
                version=item.version,
                kept_secrets=frozenset(k for k in preset.secret_settings if stored.get(k)),
            )

    def save_wizard(self, identity: Identity, state: WizardState) -> int:
        """Create the integration with its scripts, or save the edit; all or nothing. Returns its id."""
        assert state.preset is not None
        with self._session() as session:
            tenant = self._tenant(session, identity)
            tokens = None
            if state.oauth_state is not None:
                tokens = oauth.take_tokens(
                    session=session, box=self.runtime.box, tenant=tenant, state=state.oauth_state
                )
            if state.editing is None:
                item = self._create(session, identity, tenant, state)
            else:
                item = self._update(session, identity, tenant, state)
            if tokens:
                integration_tokens.store_tokens(session=session, box=self.runtime.box, integration=item, tokens=tokens)
            self._save_scripts(session, identity, tenant, state, item.id or 0)
            return item.id or 0

    def _create(self, session: Session, identity: Identity, tenant: Tenant, state: WizardState) -> Integration:
        preset = state.preset
        assert preset is not None
        values = {} if preset.is_script_only else setup.check_values(preset, state.settings)
        plain, secret = setup.split_values(preset, values)
        return integrations.create_integration(
            session=session,
            actor=identity.actor,
            tenant=tenant,
            box=self.runtime.box,
            preset=preset.key,
            name=state.name,
            settings=plain,
            secrets=secret,
            notification=[{"field": line.field, "label": line.label} for line in state.notification],
        )

    def _update(self, session: Session, identity: Identity, tenant: Tenant, state: WizardState) -> Integration:
        preset = state.preset
        assert preset is not None and state.editing is not None and state.version is not None
        item = integrations.get_integration(session=session, tenant=tenant, integration_id=state.editing)
        stored, _tokens = setup.stored_values(integration=item, box=self.runtime.box)
        typed = {k: v for k, v in state.settings.items() if v}
        values = {} if preset.is_script_only else setup.check_values(preset, {**stored, **typed})
        plain, _ = setup.split_values(preset, values)
        secret = {k: v for k, v in typed.items() if k in preset.secret_settings}
        return integrations.update_integration(
            session=session,
            actor=identity.actor,
            integration=item,
            box=self.runtime.box,
            expected_version=state.version,
            name=state.name,
            settings=plain,
            secrets=secret,
            notification=[{"field": line.field, "label": line.label} for line in state.notification],
        )

    def _save_scripts(
        self, session: Session, identity: Identity, tenant: Tenant, state: WizardState, integration_id: int
    ) -> None:
        for gone in state.removed:
            if gone.script_id is not None:
                self._check_fresh(session, tenant, gone)
                scripts.delete_script(session=session, actor=identity.actor, tenant=tenant, script_id=gone.script_id)
        for script in state.scripts:
            draft = replace(script.draft, integration_id=integration_id)
            if script.script_id is None:
                scripts.create_script(session=session, actor=identity.actor, tenant=tenant, draft=draft)
            elif draft != _draft_of(scripts.get_script(session=session, tenant=tenant, script_id=script.script_id)):
                self._check_fresh(session, tenant, script)
                scripts.update_script(
                    session=session, actor=identity.actor, tenant=tenant, script_id=script.script_id, draft=draft
                )

    def _check_fresh(self, session: Session, tenant: Tenant, script: WizardScript) -> None:
        assert script.script_id is not None
        current = scripts.get_script(session=session, tenant=tenant, script_id=script.script_id)
        if current.updated_at != script.updated_at:
            raise StaleUpdate(
                f"the script {current.name!r} was changed by someone else while you were editing; "
                "nothing was saved: open the integration again and make your changes again",
                field="version",
            )


ACCESS_PREFIXES = ("ssh.",)
"""Audit actions that record access (connections, sign-ins), not configuration changes."""

FAILED_OUTCOMES = frozenset({SyncOutcome.FAILED, SyncOutcome.SUSPICIOUS})
"""A sync that ended like this leaves the previous cache in place and marks the integration as failing."""


def _has_api(preset_key: str) -> bool:
    """Whether the preset fetches from an API (a preset no longer shipped is assumed to)."""
    try:
        return not get_preset(preset_key).is_script_only
    except SwitchboardError:
        return True


def _preset_name(preset_key: str) -> str:
    """The preset's name for people (its key if it is no longer shipped)."""
    try:
        return get_preset(preset_key).name
    except SwitchboardError:
        return preset_key


def _script_row(script: Script) -> ScriptRow:
    return ScriptRow(script=scripts.to_public(script), updated_at=script.updated_at)


def _draft_of(script: Script) -> ScriptDraft:
    """A saved script as a draft (the form the editor and the scripts service take)."""
    return ScriptDraft(
        name=script.name,
        url_template=script.url_template,
        when=ScriptWhen(script.when),
        auto_open=script.auto_open,
        ddi_filter=script.ddi_filter,
        integration_id=script.integration_id,
    )
