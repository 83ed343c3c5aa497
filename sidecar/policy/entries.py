"""Typed context entries (IAM's ContextEntry) checked and turned into a Context.

A value that does not parse as its declared type is refused before evaluation (ValidationError),
so the evaluator only meets conversion failures where a policy compares a value with an operator
of another family (docs/SEMANTICS.md §3.5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum

from sidecar.errors import ValidationError
from sidecar.policy.context import Context
from sidecar.policy.values import (
    is_bool_text,
    parse_address,
    parse_binary,
    parse_date,
    parse_number,
)


class ContextType(IntEnum):
    """Numbered as the wire's ``iamsidecar.v1.ContextKeyType``."""

    UNSPECIFIED = 0
    STRING = 1
    STRING_LIST = 2
    NUMERIC = 3
    NUMERIC_LIST = 4
    BOOLEAN = 5
    BOOLEAN_LIST = 6
    IP = 7
    IP_LIST = 8
    BINARY = 9
    BINARY_LIST = 10
    DATE = 11
    DATE_LIST = 12

    @property
    def is_list(self) -> bool:
        return self.name.endswith("_LIST")

    @property
    def scalar(self) -> ContextType:
        if self is ContextType.UNSPECIFIED:
            return ContextType.STRING
        return ContextType[self.name.removesuffix("_LIST")]


_CHECKS: dict[ContextType, Callable[[str], object]] = {
    ContextType.STRING: lambda v: True,
    ContextType.NUMERIC: lambda v: parse_number(v) is not None,
    ContextType.BOOLEAN: is_bool_text,
    ContextType.IP: lambda v: parse_address(v) is not None,  # an address, not a block
    ContextType.BINARY: lambda v: parse_binary(v) is not None,
    ContextType.DATE: lambda v: parse_date(v) is not None,
}

MAX_ENTRIES = 256
MAX_VALUES = 256
MAX_TEXT = 4096


def context_from_entries(
    entries: Iterable[tuple[str, Sequence[str], ContextType]], *, field: str = "contextEntries"
) -> Context:
    """Check typed entries and build a Context. Keys compare case-insensitively."""
    ctx = Context()
    for n, (key, values, ctype) in enumerate(entries, start=1):
        where = f"{field}.{n}"
        if n > MAX_ENTRIES:
            raise ValidationError(f"Too many context entries: at most {MAX_ENTRIES}")
        if not key or len(key) > MAX_TEXT:
            raise ValidationError(f"Context key at '{where}' must have length 1 to {MAX_TEXT}")
        if key.lower() in ctx.values:
            raise ValidationError(f"Context key '{key}' is given more than once")
        if len(values) > MAX_VALUES:
            raise ValidationError(f"Context key '{key}' has more than {MAX_VALUES} values")
        scalar = ctype.scalar
        check = _CHECKS[scalar]
        for v in values:
            if len(v) > MAX_TEXT or not check(v):
                raise ValidationError(
                    f"Context key '{key}' has a value that is not a valid {scalar.name}: '{v[:64]}'"
                )
        if ctype.is_list:
            ctx.set_multi(key, values)
        elif len(values) != 1:
            raise ValidationError(
                f"Context key '{key}' of type {scalar.name} takes exactly one value"
                f" (use {scalar.name}_LIST for several)"
            )
        else:
            ctx.set(key, values[0])
    return ctx
