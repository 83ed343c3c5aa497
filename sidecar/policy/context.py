"""The request context: condition keys and their values, as the evaluator sees them.

Keys are case-insensitive, so they are stored lowercased. Every value is a string, exactly as a
caller or the sidecar supplied it; operators convert on use (a value that does not convert makes
its condition unknown, docs/SEMANTICS.md §3.5). Whether a key is multivalued is a property of the
request (a *_LIST context type), not of the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Context:
    """Condition keys -> values. Single-valued keys hold exactly one value."""

    __slots__ = ("memo", "multi", "values")

    def __init__(
        self,
        values: Mapping[str, tuple[str, ...]] | None = None,
        multi: Iterable[str] = (),
    ) -> None:
        self.values: dict[str, tuple[str, ...]] = {k.lower(): v for k, v in (values or {}).items()}
        self.multi: frozenset[str] = frozenset(k.lower() for k in multi)
        # Conversions of values already made for this request ((kind, text) -> parsed).
        self.memo: dict[tuple[str, str], Any] = {}

    def set(self, key: str, value: str) -> None:
        """Set a single-valued key."""
        k = key.lower()
        self.values[k] = (value,)
        if k in self.multi:
            self.multi = self.multi - {k}

    def set_multi(self, key: str, values: Iterable[str]) -> None:
        """Set a multivalued key (possibly empty)."""
        k = key.lower()
        self.values[k] = tuple(values)
        self.multi = self.multi | {k}

    def setdefault(self, key: str, value: str) -> None:
        """Set a single-valued key only when the caller did not give it."""
        if key.lower() not in self.values:
            self.set(key, value)

    def get(self, key_lower: str) -> tuple[str, ...] | None:
        return self.values.get(key_lower)

    def is_multi(self, key_lower: str) -> bool:
        return key_lower in self.multi

    def single(self, key_lower: str) -> str | None:
        """The value of a single-valued key, or None if missing or multivalued."""
        if key_lower in self.multi:
            return None
        vals = self.values.get(key_lower)
        return vals[0] if vals else None

    def __contains__(self, key: str) -> bool:
        return key.lower() in self.values

    def __repr__(self) -> str:
        return f"Context({self.values!r}, multi={sorted(self.multi)!r})"
