"""Turning one raw CRM record into a ``FetchedRecord``: id, display fields and phone numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from core.connector.base import FetchedRecord
from core.connector.paths import resolve, resolve_all, to_text
from core.presets import ArrayPhone, FieldPhone, ObjectType, Preset, Template, VCardPhone

_URL_FIELDS = frozenset({"PopUpUri"})


class RecordMapper:
    """Maps the raw records of one object type; templates are parsed once."""

    def __init__(self, preset: Preset, obj: ObjectType, settings: Mapping[str, str]) -> None:
        self.object_type = obj.type
        self._obj = obj
        self._field_names = list(preset.fields)
        self._templates = {name: Template.parse(text) for name, text in obj.fields.items()}
        self._settings = {f"settings.{name}": value for name, value in settings.items()}

    def map(self, raw: Any) -> FetchedRecord | None:
        """The record, or ``None`` when it has no id (it cannot be cached)."""
        record_id = to_text(resolve(raw, self._obj.id))
        if not record_id:
            return None
        fields = {name: self._render(name, raw) for name in self._field_names}
        phones: list[tuple[str, str]] = []
        for source in self._obj.phones:
            phones.extend(_phones(source, raw))
        return FetchedRecord(self.object_type, f"{self.object_type}:{record_id}", fields, phones)

    def _render(self, name: str, raw: Any) -> str:
        template = self._templates.get(name)
        if template is None:
            return ""
        whole = template.literals == ("", "")  # exactly one placeholder: the value is used as it is
        values: dict[str, str] = {}
        for key in template.names:
            if key in self._settings:
                values[key] = self._settings[key]
            else:
                text = to_text(resolve(raw, key))
                values[key] = text if whole or name not in _URL_FIELDS else quote(text, safe="")
        if name in _URL_FIELDS:
            return template.render_url(values)
        return template.render_text(values)


def _phones(source: FieldPhone | ArrayPhone | VCardPhone, raw: Any) -> list[tuple[str, str]]:
    if isinstance(source, FieldPhone):
        value = resolve(raw, source.path)
        values = value if isinstance(value, list) else [value]
        return [(source.label, text) for text in (to_text(v) for v in values) if text]
    if isinstance(source, ArrayPhone):
        head, _, key = source.path.partition("[].")
        labels = {k.lower(): v for k, v in source.labels.items()}
        found: list[tuple[str, str]] = []
        for item in resolve_all(raw, f"{head}[]"):
            number = to_text(resolve(item, key))
            if not number:
                continue
            own = to_text(resolve(item, source.label_key)) if source.label_key else ""
            found.append((labels.get(own.lower(), own) or source.label, number))
        return found
    return vcard_phones(to_text(resolve(raw, source.path)), default_label=source.label)


# --------------------------------------------------------------------------------------------------- vCard

_TYPE_LABELS = {
    "CELL": "Mobile",
    "WORK": "Work",
    "HOME": "Home",
    "FAX": "Fax",
    "PAGER": "Pager",
    "MAIN": "Main",
    "OTHER": "Other",
    "CAR": "Car",
    "ISDN": "ISDN",
    "VIDEO": "Video",
    "IPHONE": "iPhone",
}
_APPLE_LABEL = re.compile(r"^_\$!<(.*)>!\$_$")


def vcard_phones(text: str, *, default_label: str = "Phone") -> list[tuple[str, str]]:
    """The ``TEL`` numbers of a vCard (3.0/4.0, Apple ``itemN.X-ABLabel`` groups), with readable labels."""
    apple_labels: dict[str, str] = {}
    tels: list[tuple[str, list[str], str]] = []
    for line in _unfold(text):
        head, value = _split_property(line)
        if head is None:
            continue
        name, *params = split_unquoted(head, ";")
        group, _, name = name.rpartition(".")
        name = name.upper()
        if name == "TEL":
            number = _unescape(value).strip()
            if number.lower().startswith("tel:"):
                number = number[4:]
            if number:
                tels.append((group.lower(), _types(params), number))
        elif name == "X-ABLABEL" and group:
            label = _unescape(value).strip()
            match = _APPLE_LABEL.match(label)
            apple_labels[group.lower()] = match.group(1) if match else label
    found = []
    for group, types, number in tels:
        named = [_TYPE_LABELS[t] for t in types if t in _TYPE_LABELS]
        label = apple_labels.get(group, "") or " ".join(dict.fromkeys(named))
        found.append((label or default_label, number))
    return found


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for line in re.split(r"\r\n|\n|\r", text):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]
        elif line.strip():
            lines.append(line)
    return lines


def _split_property(line: str) -> tuple[str | None, str]:
    """``name;params`` and the value, split at the first colon outside quotes."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:i], line[i + 1 :]
    return None, ""


def split_unquoted(text: str, separator: str) -> list[str]:
    """Split a vCard line part on ``separator``, except inside double quotes (``TYPE="work,voice"``)."""
    if '"' not in text:
        return text.split(separator)
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _types(params: list[str]) -> list[str]:
    types: list[str] = []
    for param in params:
        key, has_value, value = param.partition("=")
        if not has_value:  # vCard 2.1: TEL;WORK;VOICE:
            types.append(key.strip().upper())
        elif key.strip().upper() == "TYPE":
            types.extend(t.strip().strip('"').upper() for t in value.strip('"').split(","))
    return types


def _unescape(value: str) -> str:
    return value.replace("\\,", ",").replace("\\;", ";").replace("\\n", " ").replace("\\N", " ")
