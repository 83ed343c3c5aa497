"""Bounded caches for the hot path: verified tokens, decisions, policies in scope.

All are LRU (cachetools) with a limit on entries and, given a ``weigh`` function (an upper
estimate of an entry's bytes, sidecar/engine/weights.py), a limit on bytes; they count hits,
misses and evictions for metrics. A cache must never change an answer: entries of the token
cache are used only while the token is within its validity window, and decision keys cover
everything a decision depends on (see ``engine.decide``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from threading import Lock
from typing import Generic, TypeVar

from cachetools import LRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class _CountingLRU(LRUCache[K, V]):
    def __init__(
        self, maxsize: int, stats: CacheStats, getsizeof: Callable[[V], int] | None = None
    ) -> None:
        super().__init__(maxsize, getsizeof)
        self._stats = stats

    def popitem(self) -> tuple[K, V]:
        self._stats.evictions += 1
        return super().popitem()


def weighted_lru(
    max_entries: int, max_bytes: int, weigh: Callable[[V], int], stats: CacheStats | None = None
) -> LRUCache[K, V]:
    """An LRU holding at most ``max_entries`` entries and ``max_bytes`` of weight: each entry
    weighs at least max_bytes / max_entries, so the byte limit also caps the count."""
    floor = -(-max_bytes // max(max_entries, 1))

    def size(value: V) -> int:
        return max(weigh(value), floor)

    return _CountingLRU(max_bytes, stats or CacheStats(), size)


@dataclass
class BoundedCache(Generic[V]):
    """A thread-safe LRU map with statistics. With ``weigh``, also bounded by ``max_bytes``:
    an entry heavier than ``max_bytes`` alone is not kept."""

    maxsize: int
    max_bytes: int | None = None
    weigh: Callable[[V], int] | None = None
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        self._data: LRUCache[Hashable, V]
        if self.weigh is None or self.max_bytes is None:
            self._data = _CountingLRU(self.maxsize, self.stats)
        else:
            self._data = weighted_lru(self.maxsize, self.max_bytes, self.weigh, self.stats)
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
        """Insert, or re-weigh an entry whose value grew (the key already held is kept)."""
        with self._lock:
            try:
                self._data[key] = value
            except ValueError:  # heavier than the whole budget: not kept
                self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    @property
    def weight(self) -> int:
        """Entries, or (with ``weigh``) their total weight in bytes."""
        return int(self._data.currsize)

    def __len__(self) -> int:
        return len(self._data)
