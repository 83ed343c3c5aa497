"""Conversions of condition values (policy side and request side) to comparable forms.

Each parser returns None when the text does not convert; the caller decides what that means
(an unknown condition at evaluation, a legacy-parsing failure at validation, a rejected context
entry at the API). Dates become integer nanoseconds since the epoch so that comparisons are exact
for every year IAM accepts, far beyond what ``datetime`` can hold.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import lru_cache, wraps
from typing import NamedTuple, TypeVar

_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_EPOCH = re.compile(r"^\d+\Z")
_ISO = re.compile(
    r"^(?P<y>-?\d{1,9})(?:-(?P<mo>\d{1,2})(?:-(?P<d>\d{1,2}))?)?"
    r"(?:[Tt](?:(?P<h>\d{1,2})(?::(?P<mi>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,9}))?)?)?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?\Z"
)
_MIN_YEAR, _MAX_YEAR = -292275054, 292278993
_MAX_EPOCH = 2**63 - 1
_NS = 1_000_000_000
T = TypeVar("T")


def parse_number(text: str) -> Decimal | None:
    if not _NUMBER.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None


def _cached_if_short(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Cache the parses of texts of at most 64 characters (8,192 of them, so under 4 MiB in
    all); a longer text (a valid date or address is shorter, spaces aside) is parsed each
    time, not kept."""
    cached = lru_cache(maxsize=8192)(parse)

    @wraps(parse)
    def parse_text(text: str) -> T:
        return cached(text) if len(text) <= 64 else parse(text)

    return parse_text


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar, for any year."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@_cached_if_short
def parse_date(text: str) -> int | None:
    """W3C ISO-8601 date/time or epoch seconds -> nanoseconds since the epoch (UTC)."""
    if _EPOCH.match(text):
        seconds = int(text)
        return seconds * _NS if seconds <= _MAX_EPOCH else None
    m = _ISO.match(text)
    if m is None:
        return None
    year = int(m["y"])
    month = int(m["mo"] or 1)
    day = int(m["d"] or 1)
    hour, minute, second = int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0)
    if not (
        _MIN_YEAR <= year <= _MAX_YEAR
        and 1 <= month <= 12
        and 1 <= day <= 31
        and hour <= 23
        and minute <= 59
        and second <= 59
    ):
        return None
    offset = 0
    tz = m["tz"]
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:] or 0)
        if oh > 23 or om > 59:
            return None
        offset = sign * (oh * 3600 + om * 60)
    frac = m["f"] or ""
    nanos = int(frac.ljust(9, "0")) if frac else 0
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * _NS + nanos


def parse_bool(text: str) -> bool:
    """Java's parseBoolean, as the AWS simulator reads Bool values (docs/SEMANTICS.md §3.2)."""
    return text.lower() == "true"


def is_bool_text(text: str) -> bool:
    return text.lower() in ("true", "false")


def parse_binary(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class Cidr(NamedTuple):
    """An address block as integers, so containment is two integer operations."""

    version: int
    network: int
    mask: int
    prefixlen: int


_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/(\d{1,2}))?\Z")


@_cached_if_short
def parse_network(text: str) -> Cidr | None:
    """A CIDR block; a bare address is a /32 (or /128). Cached: the same client addresses and
    policy blocks come back request after request."""
    m = _IPV4.match(text.strip())
    if m is not None and not any(len(g) > 1 and g[0] == "0" for g in m.groups()[:4]):
        # The common case, without the ipaddress module's cost (which also refuses leading 0s).
        octets = [int(g) for g in m.groups()[:4]]
        prefix = int(m.group(5)) if m.group(5) is not None else 32
        if max(octets) > 255 or prefix > 32:
            return None
        addr = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
        mask = ((1 << prefix) - 1) << (32 - prefix) if prefix else 0
        return Cidr(4, addr & mask, mask, prefix)
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    return Cidr(net.version, int(net.network_address), int(net.netmask), net.prefixlen)


def parse_address(text: str) -> Cidr | None:
    """A request's IP value: one address, never a block (docs/SEMANTICS.md §3.5), as a
    one-host Cidr."""
    return None if "/" in text else parse_network(text)


def ip_in(value: Cidr, block: Cidr) -> bool:
    """Is the request address (or block) inside the policy block? Other family: no."""
    return (
        value.version == block.version
        and value.prefixlen >= block.prefixlen
        and (value.network & block.mask) == block.network
    )
