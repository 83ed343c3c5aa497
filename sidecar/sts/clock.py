"""Injected time and randomness. The server passes real ones; tests pass fixed ones."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class Entropy(Protocol):
    def token_bytes(self, n: int) -> bytes: ...


class FixedClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, start: float) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class CountingEntropy:
    """Deterministic bytes for tests: a counter expanded to the asked length."""

    def __init__(self, seed: int = 0) -> None:
        self.counter = seed

    def token_bytes(self, n: int) -> bytes:
        import hashlib

        self.counter += 1
        out = b""
        block = 0
        while len(out) < n:
            out += hashlib.sha256(f"{self.counter}:{block}".encode()).digest()
            block += 1
        return out[:n]


def iso8601(epoch: float) -> str:
    """UTC time as AWS writes it (second precision, Z)."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
