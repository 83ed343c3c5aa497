"""TOTP (RFC 6238) for virtual MFA devices: 6 digits, 30-second steps, SHA-1."""

from __future__ import annotations

import hashlib
import hmac
import struct


def totp(seed: bytes, at: float, *, step: int = 30, digits: int = 6) -> str:
    counter = int(at // step)
    mac = hmac.new(seed, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % (10**digits)
    return str(code).zfill(digits)


def verify_totp(seed: bytes, code: str, at: float, *, window: int = 1) -> bool:
    """Accept the code of the current step or of ``window`` steps either side (clock drift)."""
    ok = False
    for drift in range(-window, window + 1):
        # Compare every candidate in constant time; never stop early on a match.
        ok |= hmac.compare_digest(totp(seed, at + drift * 30), code)
    return ok
