"""The sync of one integration, on SQLite and PostgreSQL: generations, the guard, failures, and CRM faults.

Every failure case checks the same promise: the run is recorded with an error in admin terms and the previous
cache still answers lookups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.connector import RetryPolicy, Timeouts, build_connector, get_preset
from core.connector.base import Connector
from core.db import make_engine
from core.errors import ConnectorError
from core.lookup import Lookups
from core.matching import CallInput
from core.models import CachedNumber, CachedRecord, Integration, SyncOutcome, SyncRun, SyncRunPublic, Tenant
from core.runtime import Runtime
from core.scheduler import Claim, LeaseFence, claim_now
from core.sync import INTERRUPTED, SyncOptions, SyncProgress, _begin, sync_integration
from core.sync_writer import Writer
from tests.core.sync_fakes import FakeConnector, pages_of, people, person
from tests.crm import Fault, HubSpotEmulator, serve
from tests.factories import make_integration, make_tenant

SMALL = SyncOptions(batch_records=40, parallel_after=None)


@pytest.fixture
def setup(session: Session, runtime: Runtime) -> tuple[Tenant, Integration]:
    """A Dutch tenant with one HubSpot integration, committed."""
    tenant = make_tenant(session, country="NL", timezone="Europe/Amsterdam")
    integration = make_integration(session, tenant, runtime.box)
    session.commit()
    return tenant, integration


async def sync(
    engine: Engine, integration: Integration, connector: Connector | Callable[[], Connector], **options: object
) -> SyncRunPublic:
    base = {"batch_records": SMALL.batch_records, "parallel_after": SMALL.parallel_after, **options}
    return await sync_integration(
        engine=engine,
        integration_id=integration.id or 0,
        connector=connector,
        options=SyncOptions(**base),  # type: ignore[arg-type]
    )


def active(engine: Engine, integration: Integration) -> int | None:
    with Session(engine) as session:
        return session.get(Integration, integration.id).active_generation  # type: ignore[union-attr]


def cached(engine: Engine, integration: Integration) -> dict[str, set[str]]:
    """E.164 → record ids in the active generation."""
    generation = active(engine, integration)
    with Session(engine) as session:
        rows = session.exec(
            select(CachedNumber.e164, CachedRecord.record_id)
            .join(CachedRecord, CachedRecord.id == CachedNumber.record_pk)
            .where(CachedNumber.integration_id == integration.id, CachedNumber.generation == generation)
        ).all()
    result: dict[str, set[str]] = {}
    for e164, record_id in rows:
        result.setdefault(e164, set()).add(record_id)
    return result


def generations(engine: Engine, integration: Integration) -> set[int]:
    """Every generation with rows in either cache table."""
    with Session(engine) as session:
        numbers = session.exec(select(CachedNumber.generation).where(CachedNumber.integration_id == integration.id))
        records = session.exec(select(CachedRecord.generation).where(CachedRecord.integration_id == integration.id))
        return set(numbers) | set(records)


def who_calls(engine: Engine, tenant: Tenant, number: str) -> list[str]:
    """The record ids a lookup of ``number`` answers with (exact or partial)."""
    lookups = Lookups(engine)
    try:
        body = lookups.by_tenant(tenant.slug, CallInput(caller_number=number)).body
    finally:
        lookups.close()
    return [match["record_id"] for match in body["matches"]]


# --- writing generations ---------------------------------------------------------------------------------


async def test_first_sync_caches_records_and_numbers(engine: Engine, setup: tuple[Tenant, Integration]) -> None:
    tenant, integration = setup
    records = [
        person(1, ("Phone", "020-123 4567"), ("Mobile", "+31 6 12345678, 06-12345678")),
        person(2, ("Phone", "n/a"), ("Direct", "201")),  # garbage and an internal extension
        person(3, ("Phone", "+49 30 1234567 x 12")),
    ]
    run = await sync(engine, integration, FakeConnector([records]))
    assert run.outcome is SyncOutcome.SUCCESS and run.error is None
    assert (run.records, run.numbers, run.unparsed, run.shared_numbers) == (3, 3, 1, 0)
    assert run.unparsed_examples == ["Person 2: n/a"]
    assert active(engine, integration) == run.id
    assert cached(engine, integration) == {
        "+31201234567": {"contacts:1"},
        "+31612345678": {"contacts:1"},
        "+49301234567": {"contacts:3"},
    }
    with Session(engine) as session:
        number = session.exec(select(CachedNumber).where(CachedNumber.e164 == "+31201234567")).one()
        record = session.get(CachedRecord, number.record_pk)
    assert (number.suffix, number.raw, number.label) == ("76543210213", "020-123 4567", "Phone")
    assert record is not None and record.fields["DisplayName"] == "Person 1"
    assert who_calls(engine, tenant, "0201234567") == ["contacts:1"]
    assert who_calls(engine, tenant, "201") == []  # internal numbers are never matched


async def test_a_new_sync_replaces_the_generation_and_drops_the_old_one(
    engine: Engine, setup: tuple[Tenant, Integration]
) -> None:
    tenant, integration = setup
    first = await sync(engine, integration, FakeConnector(pages_of(people(0, 100), 30)))
    moved = [person(5, ("Phone", "020 7654321")), *people(6, 90)]
    second = await sync(engine, integration, FakeConnector(pages_of(moved, 30)))
    assert second.outcome is SyncOutcome.SUCCESS and second.records == 91
    assert generations(engine, integration) == {second.id}
    assert first.id != second.id
    assert who_calls(engine, tenant, "020 7654321") == ["contacts:5"]
    assert who_calls(engine, tenant, "020 2000005") == []  # the old number of record 5 is gone


async def test_another_node_sees_the_new_generation_as_soon_as_it_commits(
    engine: Engine, setup: tuple[Tenant, Integration]
) -> None:
    tenant, integration = setup
    other_node = make_engine(engine.url.render_as_string(hide_password=False))
    lookups = Lookups(other_node)  # kept across the sync, as a shim process keeps it
    try:
        await sync(engine, integration, FakeConnector([[person(1, ("Phone", "020 1111111"))]]))
        body = lookups.by_tenant(tenant.slug, CallInput(caller_number="020 1111111")).body
        assert [m["record_id"] for m in body["matches"]] == ["contacts:1"]
        await sync(engine, integration, FakeConnector([[person(2, ("Phone", "020 1111111"))]]))
        body = lookups.by_tenant(tenant.slug, CallInput(caller_number="020 1111111")).body
        assert [m["record_id"] for m in body["matches"]] == ["contacts:2"]
    finally:
        lookups.close()
        other_node.dispose()


async def test_duplicates_across_pages_and_shared_numbers_are_counted(
    engine: Engine, setup: tuple[Tenant, Integration]
) -> None:
    _tenant, integration = setup
    pages = [
        [person(1, ("Phone", "020 1111111")), person(2, ("Phone", "020 1111111"))],  # one switchboard, two people
        [person(1, ("Phone", "020 9999999")), person(3, ("Phone", "020 3333333"), ("Fax", "020 3333333"))],
    ]
    run = await sync(engine, integration, FakeConnector(pages))
    assert (run.records, run.numbers, run.shared_numbers) == (3, 3, 1)
    assert cached(engine, integration)["+31201111111"] == {"contacts:1", "contacts:2"}
    assert "+31209999999" not in cached(engine, integration)  # the duplicate of record 1 was left out


async def test_progress_is_reported_per_page(engine: Engine, setup: tuple[Tenant, Integration]) -> None:
    _tenant, integration = setup
    seen: list[SyncProgress] = []
    await sync_integration(
        engine=engine,
        integration_id=integration.id or 0,
        connector=FakeConnector(pages_of(people(0, 25), 10)),
        options=SMALL,
        progress=seen.append,
    )
    assert [(p.pages, p.records) for p in seen] == [(1, 10), (2, 20), (3, 25)]


async def test_big_runs_parse_numbers_in_a_helper_process(engine: Engine, setup: tuple[Tenant, Integration]) -> None:
    tenant, integration = setup
    connector = FakeConnector(pages_of(people(0, 300), 50))
    run = await sync(engine, integration, connector, parallel_after=100, batch_records=120)
    assert (run.outcome, run.records, run.numbers) == (SyncOutcome.SUCCESS, 300, 600)
    assert who_calls(engine, tenant, "06 12000299") == ["contacts:299"]
    assert connector.closed


# --- the guard -------------------------------------------------------------------------------------------


async def test_a_shrunken_result_is_held_back_and_can_be_accepted(
    engine: Engine, setup: tuple[Tenant, Integration]
) -> None:
    tenant, integration = setup
    good = await sync(engine, integration, FakeConnector(pages_of(people(0, 100), 25)))
    empty = await sync(engine, integration, FakeConnector([]))
    assert empty.outcome is SyncOutcome.SUSPICIOUS
    assert "returned 0 records where the cache holds 100" in (empty.error or "")
    assert "--accept-shrink" in (empty.error or "")
    assert active(engine, integration) == good.id and generations(engine, integration) == {good.id}
    assert who_calls(engine, tenant, "020 2000042") == ["contacts:42"]

    half = await sync(engine, integration, FakeConnector([people(0, 49)]))
    assert half.outcome is SyncOutcome.SUSPICIOUS  # 49 < 50 % of 100
    enough = await sync(engine, integration, FakeConnector([people(0, 50)]))
    assert enough.outcome is SyncOutcome.SUCCESS  # exactly half is accepted
    accepted = await sync(engine, integration, FakeConnector([people(0, 3)]), accept_shrink=True)
    assert accepted.outcome is SyncOutcome.SUCCESS and active(engine, integration) == accepted.id
    assert who_calls(engine, tenant, "020 2000042") == []


async def test_the_guard_follows_the_integration_setting(engine: Engine, setup: tuple[Tenant, Integration]) -> None:
    _tenant, integration = setup
    await sync(engine, integration, FakeConnector([people(0, 100)]))
    with engine.begin() as connection:
        connection.execute(
            sa.update(Integration.__table__).values(sync_guard_percent=0)  # type: ignore[attr-defined]
        )
    run = await sync(engine, integration, FakeConnector([]))
    assert run.outcome is SyncOutcome.SUCCESS and run.records == 0


async def test_an_empty_first_sync_is_fine(engine: Engine, setup: tuple[Tenant, Integration]) -> None:
    _tenant, integration = setup
    run = await sync(engine, integration, FakeConnector([]))
    assert (run.outcome, run.records) == (SyncOutcome.SUCCESS, 0)
    assert active(engine, integration) == run.id


# --- failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ConnectorError("HubSpot refused the access token (401): check the token"), "HubSpot refused the access"),
        (ValueError("secret pat-123 in a message"), "internal error (ValueError)"),
    ],
)
async def test_a_failure_half_way_keeps_the_previous_cache(
    engine: Engine,
    setup: tuple[Tenant, Integration],
    error: Exception,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant, integration = setup
    good = await sync(engine, integration, FakeConnector(pages_of(people(0, 100), 20)))
    changed = pages_of(people(0, 100, base=3_000_000), 20)
    with caplog.at_level(logging.INFO):
        run = await sync(engine, integration, FakeConnector(changed, fail_at=4, error=error))  # 60 fetched
    assert run.outcome is SyncOutcome.FAILED and message in (run.error or "")
    assert "pat-123" not in (run.error or "") and "Traceback" not in (run.error or "")
    assert "pat-123" not in caplog.text
    assert run.records == 60 and run.finished_at is not None
    assert active(engine, integration) == good.id
    assert generations(engine, integration) == {good.id}  # the half-written generation is gone
    assert who_calls(engine, tenant, "020 2000042") == ["contacts:42"]


async def test_a_failure_to_build_the_connector_is_recorded(engine: Engine, setup: tuple[Tenant, Integration]) -> None:
    _tenant, integration = setup

    def broken() -> Connector:
        raise ConnectorError("HubSpot: the setting portal_id is missing")

    run = await sync(engine, integration, broken)
    assert run.outcome is SyncOutcome.FAILED and run.error == "HubSpot: the setting portal_id is missing"


async def test_a_cancelled_sync_is_recorded_and_keeps_the_cache(
    engine: Engine, setup: tuple[Tenant, Integration]
) -> None:
    tenant, integration = setup
    good = await sync(engine, integration, FakeConnector(pages_of(people(0, 100), 20)))
    gate = asyncio.Event()
    connector = FakeConnector(pages_of(people(0, 100, base=3_000_000), 20), fail_at=4, gate=gate)
    task = asyncio.create_task(sync(engine, integration, connector))
    while connector.served < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with Session(engine) as session:
        run = session.exec(select(SyncRun).order_by(SyncRun.id.desc())).first()  # type: ignore[union-attr]
    assert run is not None and run.outcome == SyncOutcome.FAILED and "stopped before it finished" in (run.error or "")
    assert connector.closed
    assert active(engine, integration) == good.id and generations(engine, integration) == {good.id}
    assert who_calls(engine, tenant, "020 2000042") == ["contacts:42"]


async def test_left_overs_of_a_dead_run_are_cleaned_up_by_the_next(
    engine: Engine, setup: tuple[Tenant, Integration]
) -> None:
    tenant, integration = setup
    good = await sync(engine, integration, FakeConnector([people(0, 50)]))
    # A run that died (kill -9) after writing a batch: its run stays "running", its rows stay behind.
    start = _begin(engine, integration.id or 0, SMALL)
    writer = Writer(engine, integration.id or 0, start.generation)
    parsed = [((("+31203000001", "10003021013", "x", "0203000001"),), ())] + [((), ())] * 19
    writer.add(people(0, 10, base=3_000_000), parsed)
    writer.write(writer.take())
    assert generations(engine, integration) == {good.id, start.generation}
    assert who_calls(engine, tenant, "020 3000001") == []  # never visible to lookups

    run = await sync(engine, integration, FakeConnector([people(0, 50)]))
    assert run.outcome is SyncOutcome.SUCCESS
    assert generations(engine, integration) == {run.id}
    with Session(engine) as session:
        dead = session.get(SyncRun, start.run_id)
    assert dead is not None and dead.outcome == SyncOutcome.FAILED and dead.error == INTERRUPTED


async def test_a_sync_that_lost_its_lease_does_not_switch_the_cache(
    engine: Engine, runtime: Runtime, setup: tuple[Tenant, Integration]
) -> None:
    tenant, integration = setup
    good = await sync(engine, integration, FakeConnector([people(0, 50)]))
    from core.models import utcnow

    claim = claim_now(engine, integration_id=integration.id or 0, node="here:1", now=utcnow())
    fence = LeaseFence(engine, claim)
    with engine.begin() as connection:  # another node took the lease over meanwhile
        connection.execute(sa.text("UPDATE synclease SET owner = 'elsewhere:2/abc'"))
    run = await sync_integration(
        engine=engine,
        integration_id=integration.id or 0,
        connector=FakeConnector([people(0, 60, base=3_000_000)]),
        options=SMALL,
        fence=fence,
    )
    assert run.outcome is SyncOutcome.FAILED and "another node took this sync over" in (run.error or "")
    assert active(engine, integration) == good.id and generations(engine, integration) == {good.id}
    assert who_calls(engine, tenant, "020 2000007") == ["contacts:7"]
    assert isinstance(claim, Claim)


# --- CRM faults through the emulated HubSpot API ------------------------------------------------------------

TOKEN = "pat-na1-0123456789abcdef"
FAST = Timeouts(connect=2.0, read=0.5)
RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total=5.0)


def contacts(count: int, *, first: int = 0, area: str = "20") -> list[dict[str, object]]:
    return [
        {
            "hs_object_id": str(100 + i),
            "firstname": "Jan",
            "lastname": f"de Vries {i}",
            "phone": f"0{area} {4000000 + i}",
        }
        for i in range(first, first + count)
    ]


def hubspot(url: str, *, retry: RetryPolicy = RETRY) -> Callable[[], Connector]:
    """A function building a HubSpot connector for the emulator at ``url``, with short timeouts."""
    preset = get_preset("hubspot")
    values = {"access_token": TOKEN, "portal_id": "42", "api_base_url": url}
    return lambda: build_connector(preset, values, timeouts=FAST, retry=retry, page_size=100)


@pytest.fixture
def crm() -> HubSpotEmulator:
    """HubSpot with 450 contacts (5 pages of 100)."""
    return HubSpotEmulator(token=TOKEN, contacts=contacts(450))


async def _good_then(engine: Engine, integration: Integration, crm: HubSpotEmulator, url: str) -> SyncRunPublic:
    good = await sync(engine, integration, hubspot(url))
    assert good.outcome is SyncOutcome.SUCCESS and good.records == 450, good.error
    crm.objects["contacts"] = [crm._record(p, 0) for p in contacts(450, area="30")]  # the CRM changes
    return good


@pytest.mark.parametrize(
    ("fault", "outcome", "message"),
    [
        (Fault.rate_limit(retry_after="1"), SyncOutcome.SUCCESS, None),
        (Fault.server_error(503), SyncOutcome.SUCCESS, None),
        (Fault.truncated_json(), SyncOutcome.FAILED, "page 3 of contacts"),
        (Fault.unauthorized(), SyncOutcome.FAILED, "refused"),
    ],
    ids=["429-retry-after", "500-retried", "truncated-json", "401-half-way"],
)
async def test_crm_faults_half_way(
    engine: Engine,
    setup: tuple[Tenant, Integration],
    crm: HubSpotEmulator,
    fault: Fault,
    outcome: SyncOutcome,
    message: str | None,
) -> None:
    tenant, integration = setup
    with serve(crm.app) as url:
        good = await _good_then(engine, integration, crm, url)
        crm.faults.on(crm.data_requests + 3, fault=fault)
        run = await sync(engine, integration, hubspot(url))
    assert run.outcome is outcome, run.error
    if outcome is SyncOutcome.SUCCESS:
        assert run.records == 450 and who_calls(engine, tenant, "030 4000007") == ["contacts:107"]
        return
    assert message is not None and message in (run.error or "")
    assert TOKEN not in (run.error or "")
    assert active(engine, integration) == good.id and generations(engine, integration) == {good.id}
    assert who_calls(engine, tenant, "020 4000007") == ["contacts:107"]


async def test_a_crm_that_keeps_failing_or_hangs_fails_cleanly(
    engine: Engine, setup: tuple[Tenant, Integration], crm: HubSpotEmulator
) -> None:
    tenant, integration = setup
    with serve(crm.app) as url:
        good = await _good_then(engine, integration, crm, url)
        crm.faults.always(Fault.server_error(500))
        failed = await sync(engine, integration, hubspot(url))
        crm.faults.always(Fault.hang(2.0))
        hung = await sync(engine, integration, hubspot(url, retry=RetryPolicy(max_attempts=2, base_delay=0.01)))
        crm.faults.always(None)
    assert failed.outcome is SyncOutcome.FAILED and "500" in (failed.error or "")
    assert hung.outcome is SyncOutcome.FAILED and hung.error
    for run in (failed, hung):
        assert TOKEN not in (run.error or "")
    assert active(engine, integration) == good.id and generations(engine, integration) == {good.id}
    assert who_calls(engine, tenant, "020 4000449") == ["contacts:549"]


async def test_an_empty_crm_is_suspicious_and_duplicates_are_dropped(
    engine: Engine, setup: tuple[Tenant, Integration], crm: HubSpotEmulator
) -> None:
    tenant, integration = setup
    with serve(crm.app) as url:
        good = await _good_then(engine, integration, crm, url)
        crm.objects["contacts"] = []
        empty = await sync(engine, integration, hubspot(url))
        assert empty.outcome is SyncOutcome.SUSPICIOUS and active(engine, integration) == good.id
        assert who_calls(engine, tenant, "020 4000007") == ["contacts:107"]
        # Records moving between pages while the CRM is read: the same ids come twice.
        doubled = contacts(150) + contacts(150) + contacts(150, first=150)
        crm.objects["contacts"] = [crm._record(p, 0) for p in doubled]
        run = await sync(engine, integration, hubspot(url), accept_shrink=True)
    assert run.outcome is SyncOutcome.SUCCESS and run.records == 300 and run.shared_numbers == 0
    assert who_calls(engine, tenant, "020 4000007") == ["contacts:107"]
