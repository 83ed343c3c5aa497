"""The mesh's service principals: a name and the SPIFFE ids that authenticate as it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sidecar.identity.load.toolkit import Reader, at
from sidecar.identity.model import ServicePrincipal


def read_service_principals(r: Reader, m: Mapping[Any, Any], path: str) -> list[ServicePrincipal]:
    """The ``service_principals`` list of the map ``m`` at ``path``."""
    out: list[ServicePrincipal] = []
    names: set[str] = set()
    spiffe_paths: dict[str, str] = {}
    for item, where in r.each(m, "service_principals", path):
        sp = r.fields(item, where, ("name", "spiffe_ids"), ("name", "spiffe_ids"))
        if sp is None:
            continue
        name = r.string(sp, "name", where, empty=False)
        if name is not None:
            if any(c.isspace() or c == "*" for c in name):
                r.issue(
                    at(where, "name"),
                    f"service principal name {name!r} must not contain whitespace or *",
                )
            elif name in names:
                r.issue(at(where, "name"), f"duplicate service principal name {name!r}")
            names.add(name)
        spiffe_ids = r.strings(sp, "spiffe_ids", where, required=True)
        for j, sid in enumerate(spiffe_ids):
            place = f"{where}.spiffe_ids[{j}]"
            if not sid.startswith("spiffe://") or len(sid) == len("spiffe://"):
                r.issue(place, f"SPIFFE id {sid!r} must start with spiffe://")
            elif sid in spiffe_paths:
                r.issue(place, f"duplicate SPIFFE id {sid!r} (also {spiffe_paths[sid]})")
            else:
                spiffe_paths[sid] = place
        if name is not None:
            out.append(ServicePrincipal(name, tuple(spiffe_ids)))
    return out
