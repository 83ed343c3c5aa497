"""Bounded caches for the hot path: verified tokens and decisions.

Both are LRU (cachetools) with a size limit, and count hits, misses and evictions for metrics.
A cache must never change an answer: entries of the token cache are used only while the token
is within its validity window, and decision keys cover everything a decision depends on (see
``engine.decide``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

V = TypeVar("V")


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class _CountingLRU(LRUCache[Hashable, Any]):
    def __init__(self, maxsize: int, stats: CacheStats) -> None:
        super().__init__(maxsize)
        self._stats = stats

    def popitem(self) -> tuple[Hashable, Any]:
        self._stats.evictions += 1
        return super().popitem()


@dataclass
class BoundedCache(Generic[V]):
    """A thread-safe LRU map with statistics."""

    maxsize: int
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        self._data = _CountingLRU(self.maxsize, self.stats)
        self._lock = Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value: V | None = self._data.get(key)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._data[key] = value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
