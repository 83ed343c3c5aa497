"""Condition keys a route takes from the request's query parameters and headers.

Only keys a route declares (the world loader has refused every sidecar-owned key). An absent
parameter or header leaves its key absent. A single-valued key given a repeated query parameter
(`?a=1&a=2`) is refused, never "first wins". A header is one field value, as HTTP defines it: a
repeated header is the comma-joined list of its values (RFC 9110, 5.3), which is how Envoy sends
it, so a single-valued key takes the whole value, commas included (a `User-Agent` has them), and
a typed one refuses what does not parse. A *_LIST key takes every occurrence of a query
parameter, and a header's comma-separated elements.
Values are checked against their type as Authorize checks typed context entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.errors import ValidationError
from sidecar.mesh.paths import decode
from sidecar.mesh.refusals import BadRequest
from sidecar.policy.context import Context
from sidecar.policy.entries import MAX_VALUES, ContextType, context_from_entries

# Authorize's limit on a context value (sidecar/engine/limits.py): refused here as a 400.
MAX_VALUE_CHARS = 2048
_UNCHECKED = (ContextType.STRING, ContextType.STRING_LIST)  # any text is a string


@dataclass(frozen=True, slots=True)
class ContextSpec:
    query: bool  # from the query string, else from a header
    name: str  # the parameter as written, or the header name lower-cased
    key: str
    ctype: ContextType
    is_list: bool  # ctype.is_list, computed once

    @classmethod
    def of(cls, entry: Mapping[str, object]) -> ContextSpec:
        query = entry["from"] == "query"
        name = str(entry["name"])
        ctype = ContextType[str(entry.get("type", "STRING"))]
        return cls(
            query=query,
            name=name if query else name.lower(),
            key=str(entry["key"]),
            ctype=ctype,
            is_list=ctype.is_list,
        )

    @property
    def where(self) -> str:
        return f"query parameter {self.name!r}" if self.query else f"header {self.name!r}"


def parse_query(query: str) -> dict[str, list[str]]:
    """Every parameter's values, in order; names and values decoded ('+' is a space)."""
    out: dict[str, list[str]] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        key = decode(name, "query parameter", plus=True)
        out.setdefault(key, []).append(decode(value, "query parameter", plus=True))
    return out


def extract(
    specs: tuple[ContextSpec, ...], query: str, headers: Mapping[str, str]
) -> Context | None:
    """The declared keys the request gives; None when it gives none of them."""
    params: dict[str, list[str]] | None = None
    ctx: Context | None = None
    for spec in specs:
        if spec.query:
            if params is None:
                params = parse_query(query)
            values = params.get(spec.name)
            if values is None:
                continue
        else:
            header = headers.get(spec.name)
            if header is None:
                continue
            if spec.is_list:
                values = [v for part in header.split(",") if (v := part.strip(" \t"))]
            else:
                values = [header]
        _check(spec, values)
        if ctx is None:
            ctx = Context()
        if spec.is_list:
            ctx.set_multi(spec.key, values)
        else:
            ctx.set(spec.key, values[0])
    return ctx


def _check(spec: ContextSpec, values: list[str]) -> None:
    """Refuse what Authorize would refuse in a typed context entry, as a 400."""
    if len(values) > 1 and not spec.is_list:
        raise BadRequest(
            f"The request gives {spec.where} several values, but the condition key "
            f"{spec.key} it fills takes one"
        )
    if len(values) > MAX_VALUES:
        raise BadRequest(
            f"The request gives {spec.where} {len(values)} values; a condition key takes at "
            f"most {MAX_VALUES}"
        )
    for value in values:
        if len(value) > MAX_VALUE_CHARS:
            raise BadRequest(
                f"The request gives {spec.where} a value of {len(value)} characters; "
                f"a condition value has at most {MAX_VALUE_CHARS}"
            )
    if spec.ctype not in _UNCHECKED:  # typed values: checked by Authorize's own rules
        try:
            context_from_entries([(spec.key, values, spec.ctype)], field="ext_authz context")
        except ValidationError as err:
            raise BadRequest(
                f"The request's {spec.where} does not fit its condition key: {err.message}"
            ) from None
