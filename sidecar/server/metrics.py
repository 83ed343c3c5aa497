"""Prometheus metrics, registered on an injected registry so tests are isolated.

gRPC metrics use the go-grpc-prometheus names; domain metrics count decisions, cache use,
token refusals, credentials issued and reloads. Labels never hold a token, a secret or a
caller-supplied string other than the gRPC method.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sidecar.engine.cache import CacheStats

if TYPE_CHECKING:  # grpc-stubs types these as generics; at run time they are plain classes
    Ctx = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
    InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    Ctx = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
    InterceptorBase = grpc.aio.ServerInterceptor

LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
)  # fmt: skip
EVAL_BUCKETS = (
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.005, 0.01,
)  # fmt: skip


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


def export_worker_exits(read: Callable[[], Mapping[str, int]]) -> None:
    """Make every Metrics created from now on in this process (and in processes forked from
    it) export ``read()`` as iam_sidecar_worker_exits_total{cause}."""
    _worker_exits[:] = [read]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", labels, registry=r
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            [*labels, "grpc_code"],
            registry=r,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time to handle an RPC.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "iam_sidecar_decisions_total", "Authorization decisions by result.", ["decision"],
            registry=r,
        )  # fmt: skip
        self.evaluation = Histogram(
            "iam_sidecar_policy_evaluation_seconds",
            "Time to evaluate one uncached decision.",
            buckets=EVAL_BUCKETS,
            registry=r,
        )
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
        self.generation = Gauge(
            "iam_sidecar_world_generation", "Generation of the world being served.", registry=r
        )
        self.ready = Gauge("iam_sidecar_ready", "1 while serving, 0 while draining.", registry=r)
        for read in _worker_exits:
            r.register(_WorkerExitsCollector(read))

    def watch_caches(self, caches: Callable[[], dict[str, CacheStats]]) -> None:
        self.registry.register(_CacheCollector(caches))


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class MetricsInterceptor(InterceptorBase):
    """Counts and times every unary RPC (the only kind this server has). The wrapped handler
    and its label children are made once per method, not per call."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(method, handler)
        if len(self._wrapped) < 256:  # our methods only; unknown ones are not handled here
            self._wrapped[method] = wrapped
        return wrapped

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
            start = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except BaseException:
                code = _code_name(context, "UNKNOWN")
                raise
            finally:
                if code == "OK":
                    code = _code_name(context, "OK")
                if code == "OK":
                    handled_ok.inc()
                else:
                    m.handled.labels(*labels, code).inc()
                handling.observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(context: Ctx, default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for sc in grpc.StatusCode:
            if sc.value[0] == code:
                return sc.name
    return default
