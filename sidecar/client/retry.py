"""Retries with exponential backoff and jitter, on UNAVAILABLE only, within the call's deadline."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """The defaults ride out a sidecar restart of a few seconds within the default 10 s timeout:
    waits of 50 ms doubling up to 1 s, each between half and all of its nominal value."""

    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    max_attempts: int | None = None  # None: as many as the timeout allows

    def __post_init__(self) -> None:
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before the 2nd, 3rd, ... attempt (jittered so clients spread out)."""
        rng = rng or random.Random()
        nominal = self.initial_backoff
        attempt = 1
        while self.max_attempts is None or attempt < self.max_attempts:
            yield nominal / 2 + rng.uniform(0, nominal / 2)
            nominal = min(nominal * self.multiplier, self.max_backoff)
            attempt += 1


NO_RETRIES = RetryPolicy(max_attempts=1)
