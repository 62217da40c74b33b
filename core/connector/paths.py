"""Dotted paths into JSON: ``paging.next.after``, ``@odata.nextLink``, ``phones[].value``, ``items.0.id``.

A key that itself contains dots (``@odata.nextLink``) is found because, at each level, the longest run of
segments that names a key wins. A segment of digits indexes a list; ``[]`` after a segment visits every element.
"""

from __future__ import annotations

from typing import Any


def resolve(data: Any, path: str | None) -> Any:
    """The value at ``path`` (``None`` or ``""`` means ``data`` itself); ``None`` where anything is missing."""
    if not path:
        return data
    segments = path.split(".")
    current = data
    i = 0
    while i < len(segments):
        if isinstance(current, dict):
            for j in range(len(segments), i, -1):
                key = ".".join(segments[i:j])
                if key in current:
                    current = current[key]
                    i = j
                    break
            else:
                return None
        elif isinstance(current, list) and segments[i].isdigit():
            index = int(segments[i])
            if index >= len(current):
                return None
            current = current[index]
            i += 1
        else:
            return None
    return current


def resolve_all(data: Any, path: str) -> list[Any]:
    """Every value at ``path``, where ``[]`` iterates over a list (``phones[].value``); missing ones skipped."""
    head, marker, tail = path.partition("[]")
    found = resolve(data, head)
    if not marker:
        return [] if found is None else [found]
    if not isinstance(found, list):
        return []
    tail = tail.removeprefix(".")
    out: list[Any] = []
    for item in found:
        out.extend(resolve_all(item, tail) if tail else [item])
    return [value for value in out if value is not None]


def to_text(value: Any) -> str:
    """A display string: ``None`` → ``""``, booleans as ``true``/``false``, lists joined with ``", "``."""
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(text for text in (to_text(v) for v in value) if text)
    return str(value).strip()


def to_int(value: Any) -> int | None:
    """A count or offset: ints and digit strings; ``None`` for anything else (booleans included)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_false(value: Any) -> bool:
    """A "more records" flag that says no: ``False``, ``0``, ``"false"``; ``None`` (absent) is not false."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("false", "0", "no", "")
    return not value
