"""CRM presets: the schema of a preset file, its loader and the validation of an admin's settings.

A preset is a TOML file in the ``presets`` package, read as package data (``core`` never imports ``presets``
by name). It says what the admin must fill in, how to authenticate, which object types to list, how to page
through them and how a record maps onto switchboard's fields and phone numbers. ``core.connector`` turns a
preset and its settings into requests.
"""

from core.presets.loader import (
    PRESET_PACKAGE,
    get_preset,
    load_preset_module,
    load_presets,
    load_presets_from,
    parse_preset,
)
from core.presets.schema import (
    PAGINATION_STYLES,
    STANDARD_FIELDS,
    TOKEN_NAMES,
    ApiKeyAuth,
    ArrayPhone,
    BasicAuth,
    BearerAuth,
    CursorPaging,
    FieldPhone,
    HeaderAuth,
    LinkHeaderPaging,
    NextLinkPaging,
    NoAuth,
    NotificationField,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OAuthConfig,
    ObjectType,
    OffsetPaging,
    PagePaging,
    PageTokenPaging,
    Preset,
    ScriptDefault,
    Setting,
    VCardPhone,
)
from core.presets.settings import check_header_values, header_settings, validate_settings
from core.presets.template import Template, render_settings_template

__all__ = [
    "PAGINATION_STYLES",
    "PRESET_PACKAGE",
    "STANDARD_FIELDS",
    "TOKEN_NAMES",
    "ApiKeyAuth",
    "ArrayPhone",
    "BasicAuth",
    "BearerAuth",
    "CursorPaging",
    "FieldPhone",
    "HeaderAuth",
    "LinkHeaderPaging",
    "NextLinkPaging",
    "NoAuth",
    "NotificationField",
    "OAuth2AuthorizationCode",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "OAuthConfig",
    "ObjectType",
    "OffsetPaging",
    "PagePaging",
    "PageTokenPaging",
    "Preset",
    "ScriptDefault",
    "Setting",
    "Template",
    "VCardPhone",
    "check_header_values",
    "get_preset",
    "header_settings",
    "load_preset_module",
    "load_presets",
    "load_presets_from",
    "parse_preset",
    "render_settings_template",
    "validate_settings",
]
