"""Bounded caches for the hot path: verified tokens, decisions, policies in scope.

All are LRU with a limit on entries and, given a ``weigh`` function (an upper estimate of an
entry's bytes, sidecar/engine/weights.py), a limit on bytes; they count hits, misses and
evictions for metrics. A cache must never change an answer: entries of the token cache are
used only while the token is within its validity window, and decision keys cover everything a
decision depends on (see ``engine.decide``).

The LRU is our own, on an OrderedDict: a hit is a lookup and a ``move_to_end``, both in C,
where cachetools' LRUCache runs four Python functions. Two hits per cached Authorize made that
a measurable part of a loaded server's CPU per call (docs/BENCHMARKS.md, "Against a bare gRPC
server"). tests/engine/test_lru.py checks it against a plain model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from threading import Lock
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class LRU(Generic[K, V]):
    """A map of at most ``max_entries`` entries and, with ``weigh``, at most ``max_bytes`` of
    weight, evicting the least recently used. Each entry weighs at least max_bytes /
    max_entries, so the byte limit also caps the count; an entry heavier than ``max_bytes``
    alone is not kept (and a kept one that grew past it is dropped). Values are never None.
    Not thread-safe (BoundedCache is)."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        weigh: Callable[[V], int] | None = None,
        stats: CacheStats | None = None,
    ) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._weights: dict[K, int] = {}
        self._weigh = weigh if max_bytes is not None else None
        if self._weigh is None or max_bytes is None:
            self._limit, self._floor = max(max_entries, 0), 1
        else:
            self._limit, self._floor = max_bytes, -(-max_bytes // max(max_entries, 1))
        self.currsize = 0
        self.stats = stats or CacheStats()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        """Insert, or re-weigh an entry whose value grew (the key object already held is
        kept, as a dict keeps it)."""
        size = self._floor if self._weigh is None else max(self._weigh(value), self._floor)
        if size > self._limit:
            self.pop(key)
            return
        data = self._data
        self.currsize += size - self._weights.get(key, 0)
        self._weights[key] = size
        data[key] = value
        data.move_to_end(key)
        while self.currsize > self._limit:  # the newest entry fits alone: never evicted
            old, _ = data.popitem(last=False)
            self.currsize -= self._weights.pop(old)
            self.stats.evictions += 1

    def pop(self, key: K) -> V | None:
        value = self._data.pop(key, None)
        if value is not None:
            self.currsize -= self._weights.pop(key)
        return value

    def clear(self) -> None:
        self._data.clear()
        self._weights.clear()
        self.currsize = 0

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class BoundedCache(Generic[V]):
    """A thread-safe LRU map with statistics. With ``weigh``, also bounded by ``max_bytes``:
    an entry heavier than ``max_bytes`` alone is not kept."""

    maxsize: int
    max_bytes: int | None = None
    weigh: Callable[[V], int] | None = None
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        self._lru: LRU[Hashable, V] = LRU(self.maxsize, self.max_bytes, self.weigh, self.stats)
        self._data = self._lru._data  # get() below is the hot path: no call into LRU
        self._lock = Lock()

    def get(self, key: Hashable) -> V | None:
        data = self._data
        with self._lock:
            value = data.get(key)
            if value is not None:
                data.move_to_end(key)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        """Insert, or re-weigh an entry whose value grew (the key already held is kept)."""
        with self._lock:
            self._lru[key] = value

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()

    @property
    def weight(self) -> int:
        """Entries, or (with ``weigh``) their total weight in bytes."""
        return self._lru.currsize

    def __len__(self) -> int:
        return len(self._data)
