"""Any JSON API, described by the admin: the preset's object type, auth and paging are built from the settings.

Nothing here talks HTTP itself: the settings become the same ``ObjectType``, pagination and auth models a
preset file declares, and the engine's ``ApiConnector`` does the fetching (retries, rate limits, paging end
conditions, loop detection, redaction of secrets). Field settings are dotted paths into a record
(``company.name``, ``emails.0.address``); phone fields are comma-separated paths, and ``phones[].number``
takes the number from every element of an array.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationError

from core.connector import ApiConnector, ConnectorContext, FetchedRecord
from core.connector.auth import build_auth
from core.connector.mapping import RecordMapper
from core.errors import InvalidInput
from core.presets import ApiKeyAuth, BasicAuth, BearerAuth, NoAuth, ObjectType, Preset, Template

OBJECT_TYPE = "records"
STYLE_PARAMS = {"offset": "offset", "page": "page", "cursor": "cursor"}  # the usual parameter names
_PATH = re.compile(r"^[^{}\s,]+$")
_HINT = "check the credentials in the Authentication settings"


def object_type(settings: Mapping[str, str]) -> ObjectType:
    """The object type the settings describe; ``InvalidInput`` naming the setting that is wrong."""
    phones = [_phone(path.strip()) for path in settings.get("phone_fields", "").split(",") if path.strip()]
    if not phones:
        raise InvalidInput("Phone fields: name at least one field that holds phone numbers.", field="phone_fields")
    endpoint = urlsplit(settings.get("records_endpoint", "").strip())  # fixed parameters may follow a "?"
    data: dict[str, Any] = {
        "type": OBJECT_TYPE,
        "label": "Records",
        "path": _literal(endpoint.path or "/"),
        "params": {name: _literal(value) for name, value in parse_qsl(endpoint.query, keep_blank_values=True)},
        "records": _path(settings, "records_path", required=False),
        "id": _path(settings, "id_field", required=True),
        "fields": _fields(settings),
        "phones": phones,
        "pagination": pagination(settings),
    }
    try:
        return ObjectType.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"The API description is not usable: {exc.errors()[0]['msg']}.") from None


def _fields(settings: Mapping[str, str]) -> dict[str, str]:
    names = [p.strip() for p in settings.get("name_fields", "").split(",") if p.strip()]
    if not names:
        raise InvalidInput("Name fields: name the field(s) the caller's name is made of.", field="name_fields")
    fields = {"DisplayName": " ".join(f"{{{_check_path(n, 'name_fields')}}}" for n in names)}
    fields["Identifier"] = f"{{{_path(settings, 'id_field', required=True)}}}"
    for name, setting in (("company", "company_field"), ("email", "email_field")):
        path = _path(settings, setting, required=False)
        if path:
            fields[name] = f"{{{path}}}"
    popup = settings.get("popup_url", "").strip()
    if popup:
        fields["PopUpUri"] = _popup(popup)
    return fields


def _popup(text: str) -> str:
    try:
        template = Template.parse(text)
    except ValueError as exc:
        raise InvalidInput(f"Screen-pop link: {exc}.", field="popup_url") from None
    if not text.lower().startswith(("https://", "http://", "{")):
        raise InvalidInput("Screen-pop link: must start with https://", field="popup_url")
    for name in template.names:
        _check_path(name, "popup_url")
    return text


def _phone(path: str) -> dict[str, str]:
    _check_path(path, "phone_fields")
    if "[]" not in path:
        return {"source": "field", "path": path, "label": _label(path)}
    if not re.fullmatch(r"[^\[\]]+\[\]\.[^\[\]]+", path):
        raise InvalidInput(
            f"Phone fields: {path!r} — write an array as list[].field, with one [] (e.g. phones[].number).",
            field="phone_fields",
        )
    return {"source": "array", "path": path, "label": _label(path.partition("[]")[0])}


def _label(path: str) -> str:
    """``mobile_phone`` → ``Mobile phone``; ``contact.workPhone`` → ``Work phone``."""
    last = path.rstrip(".").rpartition(".")[2]
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", last).replace("_", " ").replace("-", " ").split()
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:] if text else "Phone"


def _path(settings: Mapping[str, str], setting: str, *, required: bool) -> str | None:
    value = settings.get(setting, "").strip()
    if not value:
        if required:
            raise InvalidInput(f"{setting}: required.", field=setting)
        return None
    return _check_path(value, setting)


def _check_path(path: str, setting: str) -> str:
    if not _PATH.fullmatch(path):
        raise InvalidInput(
            f"{path!r} is not a field path: use names joined by dots, like company.name or emails.0.address.",
            field=setting,
        )
    return path


def _literal(text: str) -> str:
    """A setting value used as a template: braces stand for themselves."""
    return text.replace("{", "{{").replace("}", "}}")


def pagination(settings: Mapping[str, str]) -> dict[str, Any]:
    """The ``pagination`` table the settings describe."""
    style = settings.get("pagination", "none") or "none"
    size = int(float(settings.get("page_size") or 100))
    size_param = settings.get("size_param", "").strip() or None
    param = settings.get("page_param", "").strip() or STYLE_PARAMS.get(style, "")
    next_path = settings.get("next_path", "").strip() or None
    more_path = settings.get("more_path", "").strip() or None
    table: dict[str, Any] = {"default_size": size, "max_size": size, "size_param": size_param}
    if style == "none":
        return {**table, "style": "link_header", "size_param": None}  # one request (follows a Link if one comes)
    if style in ("offset", "page") and size_param is None:
        raise InvalidInput(
            f"Page size parameter: {style} paging needs it (e.g. limit or per_page).", field="size_param"
        )
    if style in ("cursor", "next_link") and next_path is None:
        what = "the next cursor" if style == "cursor" else "the next page's link"
        raise InvalidInput(f"Next-page field: {style} paging needs the field holding {what}.", field="next_path")
    if style == "offset":
        return {**table, "style": "offset", "offset_param": param, "more_path": more_path}
    if style == "page":
        return {**table, "style": "page", "page_param": param, "more_path": more_path}
    if style == "cursor":
        return {**table, "style": "cursor", "cursor_param": param, "cursor_path": next_path, "more_path": more_path}
    return {**table, "style": style, **({"next_path": next_path} if style == "next_link" else {})}


def auth_model(settings: Mapping[str, str]) -> NoAuth | BearerAuth | BasicAuth | ApiKeyAuth:
    """The auth table the settings describe (values stay ``{setting}`` templates, filled in by the engine)."""
    kind = settings.get("auth_type", "none") or "none"
    if kind == "none":
        return NoAuth(type="none")
    if kind == "basic":
        if not settings.get("username", "").strip():
            raise InvalidInput("User name: required for Basic authentication.", field="username")
        return BasicAuth(type="basic", username="{username}", password="{password}", hint=_HINT)  # noqa: S106 (templates)
    if not settings.get("token", "").strip():
        raise InvalidInput("API token or key: required for this authentication.", field="token")
    if kind == "bearer":
        return BearerAuth(type="bearer", token="{token}", hint=_HINT)  # noqa: S106 (a template)
    name = settings.get("api_key_name", "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise InvalidInput("API key name: give the header or parameter name, e.g. X-API-Key.", field="api_key_name")
    location = "header" if kind == "api_key_header" else "query"
    return ApiKeyAuth.model_validate(
        {"type": "api_key", "in": location, "name": name, "value": "{token}", "hint": _HINT}
    )


def described_preset(preset: Preset, settings: Mapping[str, str]) -> Preset:
    """The preset with the object type and auth the settings describe."""
    return preset.model_copy(update={"objects": (object_type(settings),), "auth": auth_model(settings)})


def create_connector(context: ConnectorContext) -> ApiConnector:
    """The connector interface entry point (``module = "presets.generic_rest"``): the engine, described."""
    preset = described_preset(context.preset, context.settings)
    http = context.http
    http.auth = build_auth(preset, context.settings, redactor=http.redact, clock=http.clock)
    return ApiConnector(preset, context.settings, http, page_size=context.page_size)


def sample_record(preset: Preset, settings: Mapping[str, str]) -> FetchedRecord:
    """A record as this preset maps it, from a made-up record holding a value at every configured path."""
    described = described_preset(preset, settings)
    obj = described.objects[0]
    raw: dict[str, Any] = {}
    _put(raw, obj.id, "4711")
    for name, value in zip(Template.parse(obj.fields["DisplayName"]).names, ["Zoë", "Brückner", "Jr."], strict=False):
        _put(raw, name, value)
    for key, value in (("company", "Brückner & Söhne KG"), ("email", "zoe@brueckner.example")):
        if key in obj.fields:
            _put(raw, Template.parse(obj.fields[key]).names[0], value)
    for number, phone in enumerate(obj.phones):
        value = f"+49 30 123456{number}"
        if phone.source == "array":
            head, _, key = phone.path.partition("[].")
            _put(raw, head, [_nested(key, value)])
        else:
            _put(raw, phone.path, value)
    popup = Template.parse(obj.fields.get("PopUpUri", ""))
    for name in popup.names:  # a field holding the whole address, or a part of one
        _put(raw, name, "https://crm.example.com/records/4711" if popup.literals == ("", "") else "4711")
    record = RecordMapper(described, obj, settings).map(raw)
    assert record is not None
    return record


def _nested(path: str, value: Any) -> Any:
    out: dict[str, Any] = {}
    _put(out, path, value)
    return out


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path, creating objects (and lists for numeric segments) on the way."""
    node: Any = data
    segments = path.split(".")
    for segment, following in zip(segments, [*segments[1:], None], strict=True):
        last = following is None
        container: Any = [] if following is not None and following.isdigit() else {}
        if isinstance(node, list):
            index = int(segment)
            while len(node) <= index:
                node.append({} if not last else None)
            if last:
                node[index] = value
            elif not isinstance(node[index], dict | list):
                node[index] = container
            node = node[index]
        else:
            if last:
                node[segment] = value
            else:
                node = node.setdefault(segment, container)
