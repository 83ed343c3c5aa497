"""The per-call metrics (sidecar/server/metric_cells.py) scrape exactly as prometheus-client's
own Counter and Histogram given the same updates: names, labels, buckets, sums, counts, and a
``_created`` sample (whose value, a time, is left out of the comparison)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from sidecar.server.metric_cells import CellCollector, CellCounter, CellHistogram
from sidecar.server.metrics import LATENCY_BUCKETS

CREATED = re.compile(r"^(\S+_created\S*) \S+$", re.M)


def scrape(registry: CollectorRegistry) -> str:
    return CREATED.sub(r"\1 <time>", generate_latest(registry).decode())


def cells() -> tuple[CollectorRegistry, CellCollector]:
    registry, collector = CollectorRegistry(), CellCollector()
    registry.register(collector)
    return registry, collector


labels = st.sampled_from([("a", "x"), ("a", "y"), ("b", "x")])
# Values on the bounds, between them, below the first and above the last.
amounts = st.one_of(
    st.sampled_from([*LATENCY_BUCKETS, 0.0, 7.5]),
    st.floats(0, 10, allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(updates=st.lists(st.tuples(labels, st.integers(1, 5)), max_size=20))
def test_counter_scrapes_as_prometheus_client(updates: list[tuple[tuple[str, str], int]]) -> None:
    theirs = CollectorRegistry()
    counter = Counter("calls_total", "Calls.", ["k", "v"], registry=theirs)
    ours, collector = cells()
    cell_counter = CellCounter("calls_total", "Calls.", ["k", "v"])
    collector.add(cell_counter)
    for values, amount in updates:
        counter.labels(*values).inc(amount)
        cell_counter.labels(*values).inc(amount)
    assert scrape(ours) == scrape(theirs)


@settings(max_examples=100, deadline=None)
@given(updates=st.lists(st.tuples(labels, amounts), max_size=30))
def test_histogram_scrapes_as_prometheus_client(
    updates: list[tuple[tuple[str, str], float]],
) -> None:
    theirs = CollectorRegistry()
    hist = Histogram("t_seconds", "Time.", ["k", "v"], buckets=LATENCY_BUCKETS, registry=theirs)
    ours, collector = cells()
    cell_hist = CellHistogram("t_seconds", "Time.", ["k", "v"], buckets=LATENCY_BUCKETS)
    collector.add(cell_hist)
    for values, amount in updates:
        hist.labels(*values).observe(amount)
        cell_hist.labels(*values).observe(amount)
    assert scrape(ours) == scrape(theirs)


def test_histogram_without_labels_observes_itself() -> None:
    theirs = CollectorRegistry()
    hist = Histogram("e_seconds", "Eval.", buckets=(0.001, 0.01), registry=theirs)
    ours, collector = cells()
    cell_hist = CellHistogram("e_seconds", "Eval.", buckets=(0.001, 0.01))
    collector.add(cell_hist)
    for amount in (0.0005, 0.001, 0.002, 5.0):
        hist.observe(amount)
        cell_hist.observe(amount)
    assert scrape(ours) == scrape(theirs)
    assert 'e_seconds_bucket{le="0.001"} 2.0' in scrape(ours)


def test_wrong_label_count_is_refused() -> None:
    counter = CellCounter("calls_total", "Calls.", ["k", "v"])
    with pytest.raises(ValueError, match="takes the labels"):
        counter.labels("only-one")
    hist = CellHistogram("t_seconds", "Time.", ["k"], buckets=(1.0,))
    with pytest.raises(ValueError, match="takes the labels"):
        hist.labels("a", "b")
