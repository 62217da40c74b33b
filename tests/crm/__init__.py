"""Emulated CRM servers for tests: faithful to the documented APIs, fed with data, with faults on demand.

Typical use (from any test)::

    from tests.crm import HubSpotEmulator, Fault, serve

    crm = HubSpotEmulator(token="pat-1", contacts=[{"firstname": "Jörg", "phone": "+49 30 1234567"}])
    crm.faults.on(2, fault=Fault.rate_limit(retry_after="1"))
    with serve(crm.app) as url:       # http://127.0.0.1:<free port>
        ...                            # point the preset's api_base_url at url
    crm.requests                       # what the server received (headers, query, body)
"""

from tests.crm.base import EmulatedCrm, Fault, FaultPlan, RecordedRequest, header_is, query_is
from tests.crm.generic import (
    CapsuleCrm,
    CloseCrm,
    CopperCrm,
    DataverseCrm,
    FreshsalesCrm,
    SalesforceCrm,
    ZohoCrm,
)
from tests.crm.hubspot import HubSpotEmulator
from tests.crm.insightly import InsightlyEmulator
from tests.crm.oauth import OAuthProvider
from tests.crm.pipedrive import PipedriveEmulator
from tests.crm.server import serve
from tests.crm.tls import TlsFiles, make_tls_files

__all__ = [
    "CapsuleCrm",
    "CloseCrm",
    "CopperCrm",
    "DataverseCrm",
    "EmulatedCrm",
    "Fault",
    "FaultPlan",
    "FreshsalesCrm",
    "HubSpotEmulator",
    "InsightlyEmulator",
    "OAuthProvider",
    "PipedriveEmulator",
    "RecordedRequest",
    "SalesforceCrm",
    "TlsFiles",
    "ZohoCrm",
    "header_is",
    "make_tls_files",
    "query_is",
    "serve",
]
