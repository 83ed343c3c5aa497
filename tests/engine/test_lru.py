"""The engine's own LRU (sidecar/engine/cache.py) against a plain model: a list in recency
order with each entry's weight, evicting from the front until both limits hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.engine.cache import LRU, BoundedCache, CacheStats

MAX_ENTRIES = 4
MAX_BYTES = 100
FLOOR = MAX_BYTES // MAX_ENTRIES

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 7), st.integers(0, 130)),
        st.tuples(st.just("get"), st.integers(0, 7), st.just(0)),
        st.tuples(st.just("pop"), st.integers(0, 7), st.just(0)),
    ),
    max_size=60,
)


class Model:
    def __init__(self, weighted: bool) -> None:
        self.weighted = weighted
        self.order: list[tuple[int, int]] = []  # (key, value), least recent first
        self.evictions = 0

    def size(self, value: int) -> int:
        return max(value, FLOOR) if self.weighted else 1

    def limit(self) -> int:
        return MAX_BYTES if self.weighted else MAX_ENTRIES

    def weight(self) -> int:
        return sum(self.size(v) for _, v in self.order)

    def find(self, key: int) -> int | None:
        for i, (k, _) in enumerate(self.order):
            if k == key:
                return i
        return None

    def get(self, key: int) -> int | None:
        i = self.find(key)
        if i is None:
            return None
        entry = self.order.pop(i)
        self.order.append(entry)
        return entry[1]

    def pop(self, key: int) -> None:
        i = self.find(key)
        if i is not None:
            self.order.pop(i)

    def put(self, key: int, value: int) -> None:
        self.pop(key)
        if self.size(value) > self.limit():
            return
        self.order.append((key, value))
        while self.weight() > self.limit():
            self.order.pop(0)
            self.evictions += 1


@settings(max_examples=300, deadline=None)
@given(ops=ops, weighted=st.booleans())
def test_lru_behaves_as_the_model(ops: list[tuple[str, int, int]], weighted: bool) -> None:
    stats = CacheStats()
    lru: LRU[int, int] = (
        LRU(MAX_ENTRIES, MAX_BYTES, lambda v: v, stats)
        if weighted
        else LRU(MAX_ENTRIES, stats=stats)
    )
    model = Model(weighted)
    for op, key, value in ops:
        if op == "put":
            lru[key] = value + 1  # values are never None; 0 is kept as 1 in both
            model.put(key, value + 1)
        elif op == "get":
            assert lru.get(key) == model.get(key)
        else:
            lru.pop(key)
            model.pop(key)
        assert list(lru._data.items()) == model.order
        assert lru.currsize == model.weight() <= model.limit()
        assert len(lru) == len(model.order)
    assert stats.evictions == model.evictions


def test_re_put_keeps_the_key_object_already_held() -> None:
    """The engine relies on it: a decision key holds the token string the token cache holds."""
    cache: BoundedCache[int] = BoundedCache(4)
    first = ("".join(["token-", "x" * 20]), "a")
    cache.put(first, 1)
    equal = ("".join(["token-", "x" * 20]), "a")
    assert equal is not first
    cache.put(equal, 2)
    (held,) = cache._data.keys()
    assert held is first
    assert cache.get(equal) == 2


def test_bounded_cache_counts_hits_and_misses() -> None:
    cache: BoundedCache[str] = BoundedCache(2)
    assert cache.get("a") is None
    cache.put("a", "A")
    assert cache.get("a") == "A"
    cache.put("b", "B")
    cache.put("c", "C")  # evicts "a", the least recently used
    assert cache.get("a") is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (1, 2, 1)
    cache.clear()
    assert len(cache) == 0
    assert cache.weight == 0
