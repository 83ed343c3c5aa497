"""The HTTP request Envoy asks about, as the mapping needs it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class HttpRequest(NamedTuple):
    """A tuple, not a frozen dataclass: one is made per Check, and a tuple is built in a
    fraction of the time."""

    method: str  # "GET"
    host: str  # :authority as Envoy reports it (may carry :port)
    path: str  # the raw path as Envoy reports it, query string included
    # Lower-case names, as Envoy sends them. Envoy joins a repeated header's values with ","
    # (sidecar/mesh/context.py decides what that means for a condition key).
    headers: Mapping[str, str]
