"""Schemathesis over the shim's OpenAPI description: generated valid and invalid requests never get a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.shim.conftest import ServerThread, World

CONFIG = {"generation": {"mode": "all", "max-examples": 40}}


@pytest.fixture
def api_schema(shim: ServerThread, world: World) -> schemathesis.BaseSchema:
    """The shim's own description of itself, fetched from the running server."""
    return schemathesis.openapi.from_url(f"{shim.url}/openapi.json", config=SchemathesisConfig.from_dict(CONFIG))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case, shim: ServerThread, world: World) -> None:
    case.call_and_validate(
        base_url=shim.url,
        headers={"Authorization": f"Bearer {world.acme_token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
