"""Preset templates: ``{name}`` placeholders in strings (``{{`` and ``}}`` stand for literal braces).

In setting defaults, auth values and request paths/params the names are setting names; in record fields
they are paths into the record, and ``settings.<name>`` reads a setting.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: ``literals`` surround ``names`` (always one literal more than names)."""

    literals: tuple[str, ...]
    names: tuple[str, ...]

    @staticmethod
    @functools.lru_cache(maxsize=2048)
    def parse(text: str) -> Template:
        """Split ``text`` into literals and placeholder names; ``ValueError`` on an unbalanced brace."""
        literals: list[str] = []
        names: list[str] = []
        current: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char in "{}" and text[i : i + 2] in ("{{", "}}"):
                current.append(char)
                i += 2
            elif char == "{":
                end = text.find("}", i)
                name = text[i + 1 : end].strip() if end >= 0 else ""
                if end < 0 or not name or "{" in name:
                    raise ValueError(f"unbalanced '{{' at position {i} (write '{{{{' for a literal brace)")
                literals.append("".join(current))
                names.append(name)
                current = []
                i = end + 1
            elif char == "}":
                raise ValueError(f"unbalanced '}}' at position {i} (write '}}}}' for a literal brace)")
            else:
                current.append(char)
                i += 1
        literals.append("".join(current))
        return Template(tuple(literals), tuple(names))

    def render(self, values: Mapping[str, str]) -> str:
        """Fill in every placeholder (a missing name counts as empty); no clean-up."""
        out = [self.literals[0]]
        for name, literal in zip(self.names, self.literals[1:], strict=True):
            out.append(values.get(name, ""))
            out.append(literal)
        return "".join(out)

    def render_text(self, values: Mapping[str, str]) -> str:
        """Render for display: empty parts vanish together with the separators around them.

        ``{first} {last}`` with no first name gives ``Doe``; ``{last}, {first}`` gives ``Doe``; in
        ``{first} {last} ({company})`` a missing company also drops the brackets. Literals that contain
        letters or digits are always kept; runs of white space become one space.
        """
        present = [i for i, name in enumerate(self.names) if values.get(name, "").strip()]
        last = len(self.names)
        kept: list[str] = []
        for k, literal in enumerate(self.literals):
            # literal k sits between value k-1 and value k; a separator survives only where it joins
            # the previous present value to value k (or leads/trails a present first/last value)
            if k == 0:
                keep = 0 in present
            elif k == last:
                keep = last - 1 in present
            else:
                keep = k in present and present[0] < k
            kept.append(literal if keep or not _is_separator(literal) else "")
        out = [kept[0]]
        for name, literal in zip(self.names, kept[1:], strict=True):
            out.append(values.get(name, ""))
            out.append(literal)
        return " ".join("".join(out).split())

    def render_url(self, values: Mapping[str, str]) -> str:
        """Render a link: if any part is missing the result is empty, never a half-built address."""
        if any(not values.get(name, "").strip() for name in self.names):
            return ""
        return self.render(values).strip()


def _is_separator(literal: str) -> bool:
    """A literal made only of white space and punctuation, such as ``", "`` or ``" ("``."""
    return not any(ch.isalnum() for ch in literal)


def render_settings_template(text: str, settings: Mapping[str, str]) -> str:
    """Fill a template whose placeholders are setting names (defaults, auth values, request paths)."""
    return Template.parse(text).render(settings)
