"""The world loader's schema toolkit: reading a parsed YAML/JSON document field by field.

Every problem is recorded as (path, message) and reading carries on, so that one pass reports
them all. Paths read like `accounts[0].roles[2].name`: ``at`` adds a key, ``each`` an index.
"""

from __future__ import annotations

import datetime as _dt
import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def kind(value: object) -> str:
    """The YAML/JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, _dt.date):
        return "a date"
    return type(value).__name__


def at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def plain(value: Any) -> Any:
    """JSON-shaped data from YAML: string keys, and dates (an unquoted 2012-10-17) as text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, _dt.date):  # datetime is a date too
        return value.isoformat()
    return value


class Reader:
    """Reads fields of maps, reporting what is wrong instead of raising."""

    def __init__(self) -> None:
        self.issues: list[tuple[str, str]] = []

    def issue(self, path: str, message: str) -> None:
        self.issues.append((path, message))

    def fields(
        self, value: object, path: str, allowed: tuple[str, ...], required: Iterable[str] = ()
    ) -> dict[Any, Any] | None:
        """``value`` as a map whose keys are checked: unknown keys and missing ones reported."""
        if not isinstance(value, dict):
            self.issue(path, f"expected a map, got {kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.issue(path, f"unknown key {key!r}{hint}")
        for key in required:
            if key not in value:
                self.issue(path, f"missing required key '{key}'")
        return value

    def string(
        self, m: Mapping[Any, Any], key: str, path: str, *, empty: bool = True
    ) -> str | None:
        """A string field; None when absent or not a string (reported)."""
        if key not in m:
            return None
        value = m[key]
        if not isinstance(value, str):
            self.issue(at(path, key), f"expected a string, got {kind(value)}")
            return None
        if not empty and not value:
            self.issue(at(path, key), "must not be empty")
            return None
        return value

    def items(self, m: Mapping[Any, Any], key: str, path: str) -> list[Any]:
        """A list field; empty when absent or not a list (reported)."""
        value = m.get(key, [])
        if not isinstance(value, list):
            self.issue(at(path, key), f"expected a list, got {kind(value)}")
            return []
        return value

    def each(self, m: Mapping[Any, Any], key: str, path: str) -> Iterator[tuple[Any, str]]:
        """The items of a list field, each with its path `path.key[i]`."""
        where = at(path, key)
        for i, item in enumerate(self.items(m, key, path)):
            yield item, f"{where}[{i}]"

    def strings(
        self, m: Mapping[Any, Any], key: str, path: str, *, required: bool = False
    ) -> list[str]:
        """A list of non-empty strings; items of other types are reported and left out."""
        out = []
        for v, where in self.each(m, key, path):
            if not isinstance(v, str) or not v:
                self.issue(where, f"expected a non-empty string, got {kind(v)}")
            else:
                out.append(v)
        if required and isinstance(m.get(key), list) and not m[key]:
            self.issue(at(path, key), "must list at least one value")
        return out

    def mapping(
        self, m: Mapping[Any, Any], key: str, path: str, what: str
    ) -> dict[Any, Any] | None:
        """A map field of ``what`` (e.g. "tag keys to values"); empty when absent, None when
        not a map (reported)."""
        value = m.get(key, {})
        if not isinstance(value, dict):
            self.issue(at(path, key), f"expected a map of {what}, got {kind(value)}")
            return None
        return value

    def boolean(self, m: Mapping[Any, Any], key: str, path: str) -> bool:
        value = m.get(key, False)
        if not isinstance(value, bool):
            self.issue(at(path, key), f"expected true or false, got {kind(value)}")
            return False
        return value

    def one_of(self, m: Mapping[Any, Any], keys: tuple[str, str], path: str) -> str | None:
        """Exactly one of two alternative keys; returns the one present."""
        present = [k for k in keys if k in m]
        if len(present) != 1:
            self.issue(path, f"give exactly one of '{keys[0]}' or '{keys[1]}'")
            return None
        return present[0]
