"""Checking an admin's settings against a preset, with messages an admin can act on."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from core.errors import InvalidInput
from core.presets.schema import ApiKeyAuth, BearerAuth, HeaderAuth, Preset, Setting
from core.presets.template import Template, render_settings_template


def validate_settings(preset: Preset, values: Mapping[str, str]) -> dict[str, str]:
    """Check an admin's settings against the preset; return all of them with templated defaults applied.

    Raises ``InvalidInput`` with ``field`` set to the setting's name and a message an admin can act on.
    """
    declared = {s.name for s in preset.settings}
    for name in values:
        if name not in declared:
            raise InvalidInput(f"{preset.name} has no setting called {name!r}.", field=name)
    result: dict[str, str] = {}
    for setting in preset.settings:
        value = str(values.get(setting.name) or "").strip()
        if not value and setting.default is not None:
            value = render_settings_template(setting.default, result)
        result[setting.name] = _check_value(preset, setting, value)
    return result


def check_header_values(preset: Preset, values: Mapping[str, str]) -> None:
    """Refuse, naming the setting, a value that would travel in an HTTP header but is not ASCII.

    Header values carry ASCII only, so a token pasted with a typographic quote or a special space could
    never be sent; the connector refuses it too (when it is about to send it), but an admin saving
    the settings should hear it then, from the field itself.
    """
    in_headers = header_settings(preset)
    for setting in preset.settings:
        if setting.name in in_headers and not (values.get(setting.name) or "").isascii():
            raise InvalidInput(not_ascii_message(setting.label, preset.name), field=setting.name)


def not_ascii_message(label: str, crm: str) -> str:
    """What to tell an admin whose setting ``label`` cannot travel in an HTTP header to ``crm``."""
    return (
        f"{label}: holds a character that cannot be sent to {crm} in an HTTP header (an accented letter, a "
        f"typographic quote or a special space, for example); type it again in plain ASCII characters, or copy "
        f"it again from {crm}"
    )


def header_settings(preset: Preset) -> frozenset[str]:
    """The settings whose values the preset puts into HTTP header values."""
    templates = [*preset.headers.values()]
    for objects in preset.objects:
        templates.extend(objects.headers.values())
    auth = preset.auth
    if isinstance(auth, ApiKeyAuth) and auth.location == "header":
        templates.append(auth.value)
    elif isinstance(auth, BearerAuth):
        templates.append(auth.token)
    elif isinstance(auth, HeaderAuth):
        templates.extend(auth.headers.values())
    names: set[str] = set()
    for text in templates:
        try:
            names.update(Template.parse(text).names)
        except ValueError:  # the preset loader refuses such templates; nothing to learn from one here
            continue
    return frozenset(names)


def _check_value(preset: Preset, setting: Setting, value: str) -> str:
    def fail(problem: str) -> InvalidInput:
        return InvalidInput(f"{setting.label}: {problem}", field=setting.name)

    if not value:
        if setting.required:
            where = f" ({setting.help})" if setting.help else ""
            raise fail(f"required — enter the value from {preset.name}{where}.")
        return ""
    if setting.pattern is not None and not re.fullmatch(setting.pattern, value):
        raise fail(setting.pattern_hint or "not in the expected format.")
    if setting.kind == "choice" and value not in setting.choices:
        raise fail(f"must be one of {', '.join(setting.choices)}.")
    if setting.kind == "number":
        return _check_number(value, setting, fail)
    if setting.kind == "url":
        return _check_url(value, fail)
    return value


def _check_number(value: str, setting: Setting, fail: Callable[[str], InvalidInput]) -> str:
    try:
        number = float(value)
    except ValueError:
        raise fail("must be a number.") from None
    if setting.minimum is not None and number < setting.minimum:
        raise fail(f"must be at least {setting.minimum:g}.")
    if setting.maximum is not None and number > setting.maximum:
        raise fail(f"must be at most {setting.maximum:g}.")
    return value


def _check_url(value: str, fail: Callable[[str], InvalidInput]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail("must be a web address starting with https://")
    if parts.query or parts.fragment:
        raise fail("must not contain '?' or '#'.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise fail("must use https:// (plain http is allowed only for this machine, e.g. a test server).")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
