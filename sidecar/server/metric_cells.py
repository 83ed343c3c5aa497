"""Counters and histograms for the per-call path: plain Python numbers that a collector reads at
scrape time, exported with the same names, labels and samples as prometheus-client's own.

prometheus-client's ``Counter.inc`` takes a lock and runs four functions, and
``Histogram.observe`` scans its buckets; five such updates per call were about 14 µs of a
loaded server's CPU per call (docs/BENCHMARKS.md, "Against a bare gRPC server"). A cell here
is one attribute update (a bisect for a histogram). Cells are updated from the event loop's
thread only; the few metrics updated elsewhere stay prometheus-client's. With ``--workers N``
the sidecar uses prometheus-client's file-backed metrics instead (sidecar/server/metrics.py),
whose values every worker's scrape merges.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class HistogramChild(Protocol):
    def observe(self, amount: float) -> None: ...


class LabeledCounter(Protocol):
    def labels(self, *values: str) -> CounterChild: ...


class LabeledHistogram(Protocol):
    def labels(self, *values: str) -> HistogramChild: ...

    def observe(self, amount: float) -> None: ...  # a histogram without labels


class CounterCell:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramCell:
    """Counts per bucket (not cumulative; the collector adds them up) and the sum. A value
    equal to a bound falls in that bound's bucket, as Prometheus's ``le`` says."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _Family:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}, got {values}")


class CellCounter(_Family):
    """A labelled counter of CounterCells (``labels(...)`` as prometheus-client's)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, documentation, labelnames)
        self._cells: dict[tuple[str, ...], CounterCell] = {}

    def labels(self, *values: str) -> CounterCell:
        cell = self._cells.get(values)
        if cell is None:
            self._check(values)
            cell = self._cells[values] = CounterCell()
        return cell

    def family(self) -> Metric:
        out = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, cell in list(self._cells.items()):
            out.add_metric(values, cell.value, created=cell.created)
        return out


class CellHistogram(_Family):
    """A labelled histogram of HistogramCells; without labels, it observes itself."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets))
        les = (floatToGoString(b) for b in self.bounds)  # type: ignore[no-untyped-call]
        self._les = [*les, "+Inf"]
        self._cells: dict[tuple[str, ...], HistogramCell] = {}
        if not self.labelnames:
            self._cells[()] = HistogramCell(self.bounds)

    def labels(self, *values: str) -> HistogramCell:
        cell = self._cells.get(values)
        if cell is None:
            self._check(values)
            cell = self._cells[values] = HistogramCell(self.bounds)
        return cell

    def observe(self, amount: float) -> None:
        self._cells[()].observe(amount)

    def family(self) -> Metric:
        out = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, cell in list(self._cells.items()):
            total, buckets = 0, []
            for le, count in zip(self._les, list(cell.counts), strict=True):
                total += count
                buckets.append((le, float(total)))
            out.add_metric(values, buckets, cell.sum)
            labels = dict(zip(self.labelnames, values, strict=True))
            out.samples.append(Sample(f"{self.name}_created", labels, cell.created))
        return out


class CellCollector(Collector):
    """Exports the cell metrics registered with it, at scrape time."""

    def __init__(self) -> None:
        self._metrics: list[CellCounter | CellHistogram] = []

    def add(self, metric: CellCounter | CellHistogram) -> None:
        self._metrics.append(metric)

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.family()
