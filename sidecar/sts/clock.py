"""Injected time and randomness. The server passes real ones; tests pass fixed ones
(tests/fakes.py)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class Entropy(Protocol):
    def token_bytes(self, n: int) -> bytes:
        """``n`` unpredictable bytes (keys, access key ids)."""
        ...

    def random(self) -> float:
        """A float in [0, 1), for sampling (decision logs)."""
        ...


def iso8601(epoch: float) -> str:
    """UTC time as AWS writes it (second precision, Z)."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
