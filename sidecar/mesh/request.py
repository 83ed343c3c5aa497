"""The HTTP request Envoy asks about, as the mapping needs it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str  # "GET"
    host: str  # :authority as Envoy reports it (may carry :port)
    path: str  # the raw path as Envoy reports it, query string included
    # Lower-case names, as Envoy sends them. Envoy joins a repeated header's values with ","
    # (sidecar/mesh/context.py decides what that means for a condition key).
    headers: Mapping[str, str]
