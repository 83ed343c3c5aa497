"""Deterministic stand-ins for the injected clock and randomness (sidecar/sts/clock.py)."""

from __future__ import annotations

import hashlib


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class CountingEntropy:
    """Deterministic bytes: a counter expanded to the asked length."""

    def __init__(self, seed: int = 0) -> None:
        self.counter = seed

    def token_bytes(self, n: int) -> bytes:
        self.counter += 1
        out = b""
        block = 0
        while len(out) < n:
            out += hashlib.sha256(f"{self.counter}:{block}".encode()).digest()
            block += 1
        return out[:n]

    def random(self) -> float:
        return (int.from_bytes(self.token_bytes(8)) >> 11) / (1 << 53)
