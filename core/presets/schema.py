"""The schema of a preset file, as frozen pydantic models (``extra`` keys are refused).

A preset by example (``presets/hubspot.toml`` is a complete one)::

    key = "acme"                        # = the file name; name, category, description, keywords follow
    kind = "api"                        # or "script-only": no settings/auth/objects, scripts only
    # module = "presets.acme"           # optional code module with create_connector(context)

    [[settings]]                        # what the admin fills in, in order
    name = "api_key"
    label = "API key"
    kind = "secret"                     # text | url | secret | choice | number
    required = true
    pattern = '[A-Za-z0-9]+'            # full match; pattern_hint is the message when it fails
    help = "Acme: Settings → API → Key"

    [[settings]]
    name = "api_base_url"               # every API preset has one; defaults may use earlier settings
    label = "API address"
    kind = "url"
    default = "https://api.acme.example/v2"

    [auth]                              # none | api_key | basic | bearer | headers |
    type = "api_key"                    # oauth2_client_credentials | oauth2_refresh_token |
    in = "header"                       # oauth2_authorization_code
    name = "X-Api-Key"
    value = "{api_key}"

    [fields]                            # the CRM's own fields, name → label (DisplayName, Identifier
    email = "E-mail"                    # and PopUpUri are always there)

    [[objects]]
    type = "contacts"                   # record ids become "contacts:<id>"
    label = "Contacts"
    path = "/contacts"                  # appended to api_base_url; method, params, body, headers optional
    records = "data"                    # dotted path to the list; leave out for a bare JSON array
    id = "id"
    phones = [
        { source = "field", path = "phone", label = "Phone" },
        { source = "array", path = "phones[].value", label_key = "label", labels = { mobile = "Mobile" } },
        { source = "vcard", path = "card" },
    ]
    [objects.fields]                    # templates over the record; {settings.x} reads a setting
    DisplayName = "{first_name} {last_name}"
    PopUpUri = "https://app.acme.example/contacts/{id}"
    email = "{emails.0.address}"
    [objects.pagination]                # offset | page | cursor | next_link | link_header | page_token
    style = "cursor"
    cursor_param = "after"
    cursor_path = "paging.next"
    size_param = "limit"
    default_size = 100
    max_size = 100                      # the vendor's maximum: never exceeded

    [[notification]]                    # default call-notification lines, in order
    field = "DisplayName"
    label = "Name"

    [[scripts]]                         # default scripts; when = match | nomatch | always
    name = "Open in Acme"
    url = "$(PopUpUri)"
    when = "match"
    auto_open = true
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, PrivateAttr, field_validator

STANDARD_FIELDS: dict[str, str] = {"DisplayName": "Name", "Identifier": "Identifier", "PopUpUri": "CRM link"}
TOKEN_NAMES = frozenset({"access_token", "refresh_token"})
_NAME = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Setting(_Strict):
    """One value the admin fills in when connecting the CRM."""

    name: Annotated[str, Field(pattern=_NAME)]
    label: str
    help: str = ""
    kind: Literal["text", "url", "secret", "choice", "number"] = "text"
    default: str | None = None
    required: bool = False
    pattern: str | None = None
    pattern_hint: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    placeholder: str = ""

    @property
    def secret(self) -> bool:
        """Whether the value must be stored encrypted and never shown or logged."""
        return self.kind == "secret"


class _AuthBase(_Strict):
    hint: str = ""  # what to check when the CRM refuses the credentials (401/403)


class NoAuth(_AuthBase):
    """No authentication (a public or proxied API)."""

    type: Literal["none"]


class ApiKeyAuth(_AuthBase):
    """An API key in one header or one query parameter."""

    type: Literal["api_key"]
    location: Literal["header", "query"] = Field(alias="in")
    name: str
    value: str


class BasicAuth(_AuthBase):
    """HTTP Basic; for "API key as user name", set ``username`` to the key and leave ``password`` empty."""

    type: Literal["basic"]
    username: str
    password: str = ""


class BearerAuth(_AuthBase):
    """A static bearer token: ``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: str


class HeaderAuth(_AuthBase):
    """Vendor header schemes: ``Zoho-oauthtoken {access_token}``, Copper's three ``X-PW-*`` headers, ..."""

    type: Literal["headers"]
    headers: dict[str, str]


class _OAuthBase(_AuthBase):
    token_url: str
    client_id: str
    client_secret: str = ""
    scope: str = ""
    client_auth: Literal["body", "basic"] = "body"
    token_params: dict[str, str] = {}
    header: str = "Authorization"
    header_format: str = "Bearer {access_token}"
    keep: tuple[str, ...] = ()  # extra token-response fields to keep, e.g. "instance_url"
    base_url_field: str | None = None  # a kept field that replaces api_base_url, e.g. "instance_url"


class OAuth2ClientCredentials(_OAuthBase):
    """OAuth2 client credentials: the connector fetches (and re-fetches) its own access token."""

    type: Literal["oauth2_client_credentials"]


class OAuth2RefreshToken(_OAuthBase):
    """OAuth2 with a long-lived refresh token the admin pasted (e.g. a Zoho self-client)."""

    type: Literal["oauth2_refresh_token"]
    refresh_token: str = "{refresh_token}"  # noqa: S105 (a template)


class OAuth2AuthorizationCode(_OAuthBase):
    """OAuth2 authorization code: the admin signs in at the CRM; tokens arrive through the callback."""

    type: Literal["oauth2_authorization_code"]
    authorize_url: str
    authorize_params: dict[str, str] = {}
    pkce: bool = False
    refresh_token: str = "{refresh_token}"  # noqa: S105 (a template)


Auth = Annotated[
    NoAuth
    | ApiKeyAuth
    | BasicAuth
    | BearerAuth
    | HeaderAuth
    | OAuth2ClientCredentials
    | OAuth2RefreshToken
    | OAuth2AuthorizationCode,
    Field(discriminator="type"),
]
OAuthConfig = OAuth2ClientCredentials | OAuth2RefreshToken | OAuth2AuthorizationCode


class _Paging(_Strict):
    size_param: str | None = None
    size_header: str | None = None
    size_format: str = "{size}"
    default_size: PositiveInt
    max_size: PositiveInt
    min_size: PositiveInt = 1
    max_pages: PositiveInt = 10_000
    params_in: Literal["query", "body"] = "query"
    total_path: str | None = None
    total_header: str | None = None


class OffsetPaging(_Paging):
    """Offset and limit parameters; ends on a short page, a false ``more_path`` or a negative next offset."""

    style: Literal["offset"]
    offset_param: str
    start: int = 0
    more_path: str | None = None
    next_offset_path: str | None = None


class PagePaging(_Paging):
    """Page numbers; ends on a short page, a false ``more_path``, ``total_pages_path`` or ``total_path``."""

    style: Literal["page"]
    page_param: str = "page"
    first_page: int = 1
    more_path: str | None = None
    total_pages_path: str | None = None


class CursorPaging(_Paging):
    """A cursor read from the body (``paging.next.after``); ends when it is absent or empty."""

    style: Literal["cursor"]
    cursor_param: str
    cursor_path: str
    more_path: str | None = None


class NextLinkPaging(_Paging):
    """The next URL read from the body (``@odata.nextLink``, ``nextRecordsUrl``); ends when absent or done."""

    style: Literal["next_link"]
    next_path: str
    done_path: str | None = None


class LinkHeaderPaging(_Paging):
    """RFC 8288 ``Link: <...>; rel="next"`` headers; ends when there is no next link."""

    style: Literal["link_header"]


class PageTokenPaging(_Paging):
    """Zoho: page numbers up to ``token_after`` records, then the page token from the previous response."""

    style: Literal["page_token"]
    page_param: str = "page"
    more_path: str
    token_param: str = "page_token"  # noqa: S105 (a parameter name)
    token_path: str
    token_after: PositiveInt = 2000


Pagination = Annotated[
    OffsetPaging | PagePaging | CursorPaging | NextLinkPaging | LinkHeaderPaging | PageTokenPaging,
    Field(discriminator="style"),
]
PAGINATION_STYLES = ("offset", "page", "cursor", "next_link", "link_header", "page_token")


class FieldPhone(_Strict):
    """A phone number in a plain field (a string, or a list of strings)."""

    source: Literal["field"]
    path: str
    label: str


class ArrayPhone(_Strict):
    """Phone numbers in an array of objects: ``path = "phones[].value"``, label from ``label_key``."""

    source: Literal["array"]
    path: Annotated[str, Field(pattern=r"^[^\[\]]+\[\]\.[^\[\]]+$")]
    label: str = "Phone"
    label_key: str | None = None
    labels: dict[str, str] = {}


class VCardPhone(_Strict):
    """``TEL`` lines of a vCard held in a string field (CardDAV ``address-data``)."""

    source: Literal["vcard"]
    path: str
    label: str = "Phone"


PhoneSource = Annotated[FieldPhone | ArrayPhone | VCardPhone, Field(discriminator="source")]


class ObjectType(_Strict):
    """One list endpoint (contacts, companies, leads, ...) and how its records map onto switchboard."""

    type: Annotated[str, Field(pattern=_NAME)]
    label: str
    method: Literal["GET", "POST"] = "GET"
    path: str
    params: dict[str, str | int | bool] = {}
    body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    records: str | None = None  # dotted path to the list of records; None: the body is the list
    id: str = "id"
    fields: dict[str, str]
    phones: tuple[PhoneSource, ...] = ()
    pagination: Pagination


class NotificationField(_Strict):
    """One line of the default call notification."""

    field: str
    label: str


class ScriptDefault(_Strict):
    """A script offered by default, e.g. the screen pop opening ``$(PopUpUri)``.

    ``when`` is spelt as the API and the script editor spell it: ``match``, ``nomatch`` or ``always``. The
    older ``no_match`` is still read, as ``nomatch``.
    """

    name: str
    url: str
    when: Literal["match", "nomatch", "always"] = "match"
    auto_open: bool = False

    @field_validator("when", mode="before")
    @classmethod
    def _read_no_match(cls, value: Any) -> Any:
        return "nomatch" if value == "no_match" else value


class Preset(_Strict):
    """A validated preset file."""

    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    name: str
    category: str
    description: str
    keywords: tuple[str, ...] = ()
    kind: Literal["api", "script-only"] = "api"
    module: str | None = None
    settings: tuple[Setting, ...] = ()
    auth: Auth = NoAuth(type="none")
    headers: dict[str, str] = {}
    own_fields: dict[str, str] = Field(default={}, alias="fields")
    objects: tuple[ObjectType, ...] = ()
    default_notification: tuple[NotificationField, ...] = Field(default=(), alias="notification")
    default_scripts: tuple[ScriptDefault, ...] = Field(default=(), alias="scripts")

    _source: str = PrivateAttr(default="<preset>")

    @property
    def source(self) -> str:
        """Where the preset was read from, e.g. ``presets/hubspot.toml``."""
        return self._source

    @property
    def is_script_only(self) -> bool:
        """No API: the wizard skips configuration and notification and offers scripts only."""
        return self.kind == "script-only"

    @property
    def secret_settings(self) -> frozenset[str]:
        """Names of the settings that must be stored encrypted and never shown."""
        return frozenset(s.name for s in self.settings if s.secret)

    @property
    def fields(self) -> dict[str, str]:
        """Every field a record of this preset has (standard three first), name → label."""
        if self.is_script_only:
            return {}
        return {**STANDARD_FIELDS, **self.own_fields}

    @property
    def object_types(self) -> list[str]:
        """The object types in fetch order."""
        return [o.type for o in self.objects]

    def setting(self, name: str) -> Setting:
        """The setting called ``name`` (``KeyError`` if there is none)."""
        for setting in self.settings:
            if setting.name == name:
                return setting
        raise KeyError(name)
