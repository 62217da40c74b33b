"""The part of a sync that runs in its helper process: parsing phone fields. Kept small to start fast.

Only :mod:`core.numbers` is imported here, so the helper process (started with ``spawn``) loads
phonenumbers and little else.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from core.numbers import split_numbers, suffix_key

ParsedField = tuple[tuple[tuple[str, str, str, str], ...], tuple[str, ...]]
"""One phone field parsed: ``(e164, suffix key, raw piece, national form)`` per matchable number, and the
unparsable pieces."""


def parse_phone_fields(raws: Sequence[str], country: str) -> list[ParsedField]:
    """Split and normalise each raw phone field; internal numbers are left out (they are never matched)."""
    parsed: list[ParsedField] = []
    for raw in raws:
        numbers, unparsed = split_numbers(raw, country=country)
        found = tuple(
            (n.e164, suffix_key(n.e164), n.raw, n.national) for n in numbers if n.e164 is not None and not n.internal
        )
        parsed.append((found, tuple(unparsed)))
    return parsed


def watch_parent(parent: int) -> None:
    """In the helper process: exit as soon as the sync process is gone (even after ``kill -9``).

    A pool worker whose parent died would otherwise wait on its task queue forever.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
