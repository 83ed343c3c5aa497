"""Prometheus metrics, registered on an injected registry so tests are isolated.

gRPC metrics use the go-grpc-prometheus names; domain metrics count decisions, cache use,
token refusals, credentials issued and reloads. Labels never hold a token, a secret or a
caller-supplied string other than the gRPC method.

With `--workers N` (N > 1) every worker writes its values to files in one directory and its
/metrics merges all of them (sidecar/server/multiproc_metrics.py), so a scrape shows the
process group whichever worker answers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from sidecar.engine.cache import CacheStats
from sidecar.server.metric_cells import (
    CellCollector,
    CellCounter,
    CellHistogram,
    LabeledCounter,
    LabeledHistogram,
)

if TYPE_CHECKING:  # grpc-stubs types these as generics; at run time they are plain classes
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
    GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:
    Ctx = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    InterceptorBase = grpc.aio.ServerInterceptor
    GenericHandler = grpc.GenericRpcHandler

log = logging.getLogger("iam_sidecar")

LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
)  # fmt: skip
EVAL_BUCKETS = (
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.005, 0.01,
)  # fmt: skip
# With --workers N: how often a worker copies its caches' counts into its metric files (the
# worker answering a scrape copies its own just before; the others' may be this much behind).
CACHE_SYNC_SECONDS = 1.0


class _CacheCollector(Collector):
    """Reads the engine caches' counters at scrape time (the engine stays free of
    prometheus_client)."""

    def __init__(self, caches: Callable[[], dict[str, CacheStats]]) -> None:
        self._caches = caches

    def collect(self) -> Iterator[Any]:
        events = CounterMetricFamily(
            "iam_sidecar_cache_events",
            "Cache hits, misses and evictions.",
            labels=["cache", "event"],
        )
        for name, stats in self._caches().items():
            events.add_metric([name, "hit"], stats.hits)
            events.add_metric([name, "miss"], stats.misses)
            events.add_metric([name, "eviction"], stats.evictions)
        yield events


class _CacheCounters:
    """With --workers N: the caches' counts copied into a file-backed counter (collectors that
    compute at scrape time see only the worker that answers), by what they grew since the last
    copy, so the merged counter is the sum over the workers, dead ones included."""

    EVENTS = (("hit", "hits"), ("miss", "misses"), ("eviction", "evictions"))

    def __init__(self, caches: Callable[[], dict[str, CacheStats]], counter: Counter) -> None:
        self._caches = caches
        self._counter = counter
        self._copied: dict[tuple[str, str], tuple[Counter, int]] = {}

    def sync(self) -> None:
        for name, stats in self._caches().items():
            for event, attr in self.EVENTS:
                count: int = getattr(stats, attr)
                child, copied = self._copied.get((name, event)) or (
                    self._counter.labels(name, event),  # exported at 0 from the start
                    0,
                )
                if count > copied:
                    child.inc(count - copied)
                self._copied[(name, event)] = (child, count)


class _BeforeScrape(Collector):
    """Runs the hooks at the start of each scrape (registered before the file reader)."""

    def __init__(self, hooks: list[Callable[[], None]]) -> None:
        self._hooks = hooks

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        for hook in self._hooks:
            hook()
        yield from ()


class _WorkerExitsCollector(Collector):
    """The `--workers` parent's count of worker exits, read from its shared memory at scrape
    time, so every worker's /metrics shows the same total (sidecar/server/supervisor.py)."""

    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        exits = CounterMetricFamily(
            "iam_sidecar_worker_exits",
            "Workers that died while the sidecar was not shutting down (each is replaced), "
            "by cause: signal (e.g. the OOM killer's SIGKILL) or exit.",
            labels=["cause"],
        )
        for cause, count in self._read().items():
            exits.add_metric([cause], count)
        yield exits


# Set by the `--workers` supervisor before it forks; empty in a single-process sidecar.
_worker_exits: list[Callable[[], Mapping[str, int]]] = []
# Set in each `--workers` worker (sidecar/server/multiproc_metrics.py); empty otherwise.
_multiprocess_dir: list[str] = []


def export_worker_exits(read: Callable[[], Mapping[str, int]]) -> None:
    """Make every Metrics created from now on in this process (and in processes forked from
    it) export ``read()`` as iam_sidecar_worker_exits_total{cause}."""
    _worker_exits[:] = [read]


def export_multiprocess_dir(path: str) -> None:
    """Make every Metrics created from now on in this process serve the merged values of the
    metric files in ``path`` (prometheus_client must already write its values there)."""
    _multiprocess_dir[:] = [path]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = _multiprocess_dir[0] if _multiprocess_dir else None
        self._before_scrape: list[Callable[[], None]] = []
        self._cache_counters: _CacheCounters | None = None
        r = self.registry
        if self.multiprocess_dir:
            # The metrics below write to this worker's files; the registry scraped reads all.
            self.registry.register(_BeforeScrape(self._before_scrape))
            MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=self.multiprocess_dir
            )
            r = CollectorRegistry()
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        # Updated on every call: plain cells read at scrape time in one process; with
        # --workers N, prometheus-client's file-backed values (metric_cells.py says why).
        cells = None if self.multiprocess_dir else CellCollector()
        self.started = _counter(
            cells, r, "grpc_server_started_total", "RPCs started on the server.", labels
        )
        self.handled = _counter(
            cells,
            r,
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            [*labels, "grpc_code"],
        )
        self.handling = _histogram(
            cells, r, "grpc_server_handling_seconds", "Time to handle an RPC.", labels,
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.decisions = _counter(
            cells, r, "iam_sidecar_decisions_total", "Authorization decisions by result.",
            ["decision"],
        )  # fmt: skip
        self.evaluation = _histogram(
            cells, r, "iam_sidecar_policy_evaluation_seconds",
            "Time to evaluate one uncached decision.", (), EVAL_BUCKETS,
        )  # fmt: skip
        self.ext_authz_checks = _counter(
            cells,
            r,
            "iam_sidecar_ext_authz_checks_total",
            "Envoy ext_authz Check answers, by result (dry_run_*: the real outcome, let through).",
            ["result"],
        )
        if cells is not None:
            r.register(cells)
        self.token_failures = Counter(
            "iam_sidecar_token_validation_failures_total",
            "Refused session tokens and credentials, by reason.",
            ["reason"],
            registry=r,
        )
        self.credentials = Counter(
            "iam_sidecar_credentials_issued_total", "Temporary credentials issued, by API.",
            ["api"], registry=r,
        )  # fmt: skip
        self.reloads = Counter(
            "iam_sidecar_reloads_total", "World and key reloads, by result.", ["result"],
            registry=r,
        )  # fmt: skip
        # The multiprocess modes apply with --workers N only: a worker's generation counts
        # its own reloads, so each live worker has its series (label pid); the group is ready
        # while any live worker serves. A dead worker's series go with it.
        self.generation = Gauge(
            "iam_sidecar_world_generation", "Generation of the world being served.",
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.ready = Gauge(
            "iam_sidecar_ready", "1 while serving, 0 while draining.", registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        for read in _worker_exits:
            self.registry.register(_WorkerExitsCollector(read))

    def watch_caches(self, caches: Callable[[], dict[str, CacheStats]]) -> None:
        if not self.multiprocess_dir:
            self.registry.register(_CacheCollector(caches))
            return
        counter = Counter(
            "iam_sidecar_cache_events", "Cache hits, misses and evictions.", ["cache", "event"],
            registry=None,
        )  # fmt: skip
        self._cache_counters = _CacheCounters(caches, counter)
        self._cache_counters.sync()
        self._before_scrape.append(self._cache_counters.sync)

    def start_sync(self) -> asyncio.Task[None] | None:
        """With --workers N, a task copying the caches' counts to the files every
        CACHE_SYNC_SECONDS (cancel it to stop); None otherwise."""
        if self._cache_counters is None:
            return None
        return asyncio.create_task(_every(CACHE_SYNC_SECONDS, self._cache_counters.sync))


def _counter(
    cells: CellCollector | None,
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    labelnames: Sequence[str],
) -> LabeledCounter:
    if cells is None:
        return Counter(name, documentation, labelnames, registry=registry)
    counter = CellCounter(name, documentation, labelnames)
    cells.add(counter)
    return counter


def _histogram(
    cells: CellCollector | None,
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    buckets: Sequence[float],
) -> LabeledHistogram:
    if cells is None:
        return Histogram(name, documentation, labelnames, buckets=buckets, registry=registry)
    histogram = CellHistogram(name, documentation, labelnames, buckets=buckets)
    cells.add(histogram)
    return histogram


async def _every(seconds: float, fn: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            fn()
        except Exception:  # retried at the next tick; the worker keeps serving
            log.exception("cannot copy the cache counts to the metric files")


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class MetricsInterceptor(InterceptorBase):
    """Counts and times every unary RPC (the only kind this server has). The wrapped handler
    and its label children are made once per method, not per call.

    The server installs it with ``handlers()``, in front of its method handlers, not as a grpc
    interceptor: grpc.aio runs an interceptor in two more coroutines on every call, about 9 µs
    of CPU per call on a bare server (docs/BENCHMARKS.md, "Against a bare gRPC server").
    ``intercept_service`` keeps it usable as an interceptor elsewhere."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._wrapped: dict[str, Handler] = {}

    def handlers(self, inner: Sequence[GenericHandler]) -> GenericHandler:
        """One generic handler that finds a method in ``inner`` (first match, as grpc does)
        and answers with the measured handler of each unary one."""
        return _MeasuredHandlers(self, tuple(inner))

    def _measured(self, method: str, handler: Handler | None) -> Handler | None:
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(method, handler)
        if len(self._wrapped) < 256:  # our methods only; unknown ones are not handled here
            self._wrapped[method] = wrapped
        return wrapped

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        return self._measured(method, await continuation(handler_call_details))  # type: ignore[return-value]

    def _wrap(self, method: str, handler: Handler) -> Handler:
        service, name = _split(method)
        labels = ("unary", service, name)
        m = self.metrics
        started = m.started.labels(*labels)
        handling = m.handling.labels(*labels)
        handled_ok = m.handled.labels(*labels, "OK")
        # Our handlers are coroutines taking an aio context (grpc-stubs types the sync kind).
        inner: Callable[[Any, Ctx], Awaitable[Any]] = handler.unary_unary  # type: ignore[assignment]

        async def timed(request: Any, context: Ctx) -> Any:
            started.inc()
            start = perf_counter()
            try:
                response = await inner(request, context)
            except BaseException:
                m.handled.labels(*labels, _code_name(context, "UNKNOWN")).inc()
                handling.observe(perf_counter() - start)
                raise
            # A handler that answers normally leaves the code unset (None) on grpc.aio.
            code = "OK" if context.code() is None else _code_name(context, "OK")
            if code == "OK":
                handled_ok.inc()
            else:
                m.handled.labels(*labels, code).inc()
            handling.observe(perf_counter() - start)
            return response

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _MeasuredHandlers(GenericHandler):
    """MetricsInterceptor in front of the server's generic handlers: the measured handler of
    a known method is one dict lookup away (grpc asks ``service`` on every call)."""

    def __init__(self, interceptor: MetricsInterceptor, inner: tuple[GenericHandler, ...]) -> None:
        self._interceptor = interceptor
        self._wrapped = interceptor._wrapped
        self._inner = inner

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        found = self._wrapped.get(handler_call_details.method)
        if found is not None:
            return found
        for generic in self._inner:
            handler = generic.service(handler_call_details)
            if handler is not None:
                return self._interceptor._measured(handler_call_details.method, handler)
        return None


def _code_name(context: Ctx, default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for sc in grpc.StatusCode:
            if sc.value[0] == code:
                return sc.name
    return default
