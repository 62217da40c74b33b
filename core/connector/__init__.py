"""The CRM connector engine: auth, pagination, retries and record mapping over httpx, driven by presets.

Use ``build_connector(preset, settings)`` and iterate ``connector.fetch()``; a preset with a code module
(``module = "presets.name"``) supplies its own connector through ``create_connector(ConnectorContext)``.
"""

from core.connector.base import (
    ConnectionTest,
    Connector,
    FetchedRecord,
    PageProgress,
    RetryPolicy,
    Timeouts,
    TokenCallback,
)
from core.connector.engine import ApiConnector, ConnectorContext, build_connector
from core.connector.mapping import vcard_phones
from core.connector.oauth import AuthorizationRequest, authorization_url, exchange_code
from core.presets import Preset, get_preset, load_presets, validate_settings

__all__ = [
    "ApiConnector",
    "AuthorizationRequest",
    "ConnectionTest",
    "Connector",
    "ConnectorContext",
    "FetchedRecord",
    "PageProgress",
    "Preset",
    "RetryPolicy",
    "Timeouts",
    "TokenCallback",
    "authorization_url",
    "build_connector",
    "exchange_code",
    "get_preset",
    "load_presets",
    "validate_settings",
    "vcard_phones",
]
