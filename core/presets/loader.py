"""Reading preset files as package data and checking them, with errors that name the file and the key."""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import re
import tomllib
from collections.abc import Callable, Iterable
from importlib.resources.abc import Traversable
from typing import Any

from pydantic import ValidationError

from core.errors import NotFound, PresetError
from core.presets.schema import (
    TOKEN_NAMES,
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HeaderAuth,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OAuthConfig,
    ObjectType,
    Preset,
    Setting,
)
from core.presets.template import Template

PRESET_PACKAGE = "presets"


def parse_preset(text: str, *, source: str, package: str | None = None) -> Preset:
    """Parse and validate one preset file's text; ``PresetError`` names ``source`` and the key path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: not valid TOML: {exc}") from None
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        raise PresetError(f"{source}: {_describe_errors(exc, data)}") from None
    preset._source = source
    for path, problem in _semantic_problems(preset, package):
        raise PresetError(f"{source}: {path}: {problem}")
    return preset


def load_presets_from(package: str) -> dict[str, Preset]:
    """Load every ``*.toml`` file of ``package`` as package data; each key must match its file name."""
    root: Traversable = importlib.resources.files(package)
    presets: dict[str, Preset] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml") or not entry.is_file():
            continue
        source = f"{package.replace('.', '/')}/{entry.name}"
        preset = parse_preset(entry.read_text(encoding="utf-8"), source=source, package=package)
        if preset.key != entry.name.removesuffix(".toml"):
            raise PresetError(f"{source}: key: must match the file name ({entry.name.removesuffix('.toml')!r})")
        presets[preset.key] = preset
    return presets


@functools.cache
def load_presets() -> dict[str, Preset]:
    """All presets shipped in the ``presets`` package, by key (loaded once)."""
    return load_presets_from(PRESET_PACKAGE)


def get_preset(key: str) -> Preset:
    """The preset called ``key``; ``NotFound`` if there is none."""
    try:
        return load_presets()[key]
    except KeyError:
        raise NotFound(f"There is no CRM preset called {key!r}.", field="preset") from None


def load_preset_module(preset: Preset) -> Any:
    """Import the code module a preset names (``module = "presets.name"``), by the string in its file."""
    if preset.module is None:
        raise PresetError(f"{preset.source}: module: this preset has no code module")
    return importlib.import_module(preset.module)


def _describe_errors(exc: ValidationError, data: Any) -> str:
    """The first validation error, as ``key.path[0].name: readable problem``."""
    error = exc.errors()[0]
    path = _key_path(error["loc"], data)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'")
        path = f"{path}.{tag}" if path else tag
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        message = f"must be one of {', '.join(expected)}"
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "unknown key (check the spelling)"
    elif kind == "literal_error":
        message = "must be one of " + str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    return f"{path}: {message}" if path else message


def _key_path(loc: Iterable[int | str], data: Any) -> str:
    """Render a pydantic location as ``objects[0].pagination.style``, skipping union tags it inserts."""
    parts: list[str] = []
    current = data
    locs = list(loc)
    for index, item in enumerate(locs):
        if isinstance(current, list) and isinstance(item, int):
            parts.append(f"[{item}]")
            current = current[item] if item < len(current) else None
        elif isinstance(current, dict) and item in current:
            parts.append(f".{item}")
            current = current[item]
        elif index == len(locs) - 1 and isinstance(item, str):
            parts.append(f".{item}")
        # otherwise a union tag or validator name that is not part of the file
    return "".join(parts).lstrip(".")


def _semantic_problems(preset: Preset, package: str | None) -> Iterable[tuple[str, str]]:
    """Checks that span several keys: templates, sizes, field names, required settings, the code module."""
    names = [s.name for s in preset.settings]
    yield from _duplicates("settings", names)
    for i, setting in enumerate(preset.settings):
        yield from _setting_problems(f"settings[{i}]", setting, names[:i])
    if preset.kind == "script-only":
        if preset.objects or preset.settings or not isinstance(preset.auth, NoAuth):
            yield "kind", "a script-only preset has no settings, auth or objects"
        if not preset.default_scripts:
            yield "scripts", "a script-only preset needs at least one script"
        return
    if "api_base_url" not in names and preset.module is None:
        yield "settings", "an API preset needs an 'api_base_url' setting (the vendor's address, overridable)"
    if not preset.objects and preset.module is None:
        yield "objects", "an API preset needs at least one object type"
    yield from _duplicates("objects", [o.type for o in preset.objects])
    yield from _auth_problems(preset.auth, set(names))
    for i, obj in enumerate(preset.objects):
        yield from _object_problems(f"objects[{i}]", obj, preset, set(names))
    known_fields = preset.fields
    for i, line in enumerate(preset.default_notification):
        if line.field not in known_fields:
            yield (
                f"notification[{i}].field",
                f"unknown field {line.field!r} (known: {', '.join(known_fields)})",
            )
    if preset.module is not None:
        yield from _module_problems(preset.module, package)


def _duplicates(path: str, names: list[str]) -> Iterable[tuple[str, str]]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield f"{path}[{i}]", f"{name!r} is declared twice"
        seen.add(name)


def _template_problems(path: str, text: str, allowed: Callable[[str], bool], what: str) -> Iterable[tuple[str, str]]:
    try:
        template = Template.parse(text)
    except ValueError as exc:
        yield path, str(exc)
        return
    for name in template.names:
        if not allowed(name):
            yield path, f"{{{name}}} is not {what}"


def _setting_problems(path: str, setting: Setting, earlier: list[str]) -> Iterable[tuple[str, str]]:
    if setting.pattern is not None:
        try:
            re.compile(setting.pattern)
        except re.error as exc:
            yield f"{path}.pattern", f"not a valid regular expression ({exc})"
    if setting.kind == "choice" and not setting.choices:
        yield f"{path}.choices", "a choice setting needs choices"
    if setting.default is not None:
        yield from _template_problems(
            f"{path}.default", setting.default, earlier.__contains__, "a setting declared before this one"
        )
        if setting.kind == "choice" and setting.default not in setting.choices:
            yield f"{path}.default", "must be one of the choices"


def _auth_problems(
    auth: NoAuth | ApiKeyAuth | BasicAuth | BearerAuth | HeaderAuth | OAuthConfig, settings: set[str]
) -> Iterable[tuple[str, str]]:
    oauth = auth if isinstance(auth, OAuth2ClientCredentials | OAuth2RefreshToken | OAuth2AuthorizationCode) else None
    allowed = (settings | TOKEN_NAMES).__contains__ if oauth else settings.__contains__
    skipped = ("type", "hint", "header_format", "keep", "base_url_field", "pkce", "client_auth", "in")
    for key, value in auth.model_dump(by_alias=True).items():
        if key in skipped:
            continue
        texts = value.items() if isinstance(value, dict) else [("", value)]
        for sub, text in texts:
            if isinstance(text, str):
                where = f"auth.{key}.{sub}" if sub else f"auth.{key}"
                yield from _template_problems(where, text, allowed, "a setting")
    if oauth is not None:
        yield from _template_problems(
            "auth.header_format", oauth.header_format, TOKEN_NAMES.__contains__, "a token (access_token)"
        )
        if oauth.base_url_field is not None and oauth.base_url_field not in oauth.keep:
            yield "auth.base_url_field", "must also be listed in auth.keep"


def _object_problems(path: str, obj: ObjectType, preset: Preset, settings: set[str]) -> Iterable[tuple[str, str]]:
    def setting_ref(name: str) -> bool:
        return name in settings

    def record_ref(name: str) -> bool:
        return not name.startswith("settings.") or name.removeprefix("settings.") in settings

    yield from _template_problems(f"{path}.path", obj.path, setting_ref, "a setting")
    for key, value in obj.params.items():
        if isinstance(value, str):
            yield from _template_problems(f"{path}.params.{key}", value, setting_ref, "a setting")
    for key, value in obj.headers.items():
        yield from _template_problems(f"{path}.headers.{key}", value, setting_ref, "a setting")
    if "DisplayName" not in obj.fields:
        yield f"{path}.fields", "DisplayName is required"
    known = preset.fields
    for name, template in obj.fields.items():
        if name not in known:
            yield f"{path}.fields.{name}", "not a standard field nor declared in the top-level [fields] table"
        yield from _template_problems(f"{path}.fields.{name}", template, record_ref, "a declared setting")
    paging = obj.pagination
    if not paging.min_size <= paging.default_size <= paging.max_size:
        yield f"{path}.pagination.default_size", "must lie between min_size and max_size"
    if paging.size_param is None and paging.size_header is None and paging.style != "next_link":
        yield f"{path}.pagination.size_param", "is required for this style (or set size_header)"
    if paging.params_in == "body" and obj.method != "POST":
        yield f"{path}.pagination.params_in", 'paging parameters go in the body only with method = "POST"'


def _module_problems(module: str, package: str | None) -> Iterable[tuple[str, str]]:
    home = package or PRESET_PACKAGE
    if not re.fullmatch(rf"{re.escape(home)}\.[a-z_][a-z0-9_]*", module):
        yield "module", f"must name a module beside the preset file, like '{home}.name'"
        return
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        yield "module", f"cannot be imported ({exc})"
        return
    if not callable(getattr(loaded, "create_connector", None)):
        yield "module", "the module has no create_connector(context) function"
