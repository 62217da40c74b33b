"""How the app writes times, counts and states: short, in the tenant's time zone, the same on every screen."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def local_time(value: datetime | None, timezone: str, *, empty: str = "never") -> str:
    """A moment as ``2024-05-14 09:30`` in the tenant's time zone (``empty`` when there is none)."""
    if value is None:
        return empty
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def ago(value: datetime | None, now: datetime, *, empty: str = "never") -> str:
    """How long ago, in words an admin reads at a glance: ``just now``, ``5 min ago``, ``3 h ago``, ``2 days ago``."""
    if value is None:
        return empty
    seconds = int((now - value).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


def count(value: int, singular: str, plural: str | None = None) -> str:
    """``1 number``, ``12,345 numbers``."""
    word = singular if value == 1 else (plural or singular + "s")
    return f"{value:,} {word}"
