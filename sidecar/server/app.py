"""The sidecar process: gRPC and HTTP servers over one engine, hot reload, graceful drain, and
`--workers N` (N processes on one port with SO_REUSEPORT, forked before any server exists)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from sidecar.demo import DEMO_SECRET, DEMO_SECRET_ENV, WORLD_FILE
from sidecar.engine.engine import Engine, Snapshot
from sidecar.errors import SidecarError
from sidecar.identity.model import World
from sidecar.server import event_loop
from sidecar.server.event_loop import running_loop_name
from sidecar.server.ext_authz import AUTHORIZATION, CheckService, check_handler
from sidecar.server.ext_authz_principal import is_local_listener
from sidecar.server.health_listener import HealthListener, start_health_listener
from sidecar.server.http import (
    HttpLimits,
    HttpPort,
    build_http_app,
    server_ssl_context,
    start_http,
)
from sidecar.server.keyfile import SystemEntropy, read_key_ring
from sidecar.server.metrics import Metrics, MetricsInterceptor
from sidecar.server.multiproc_metrics import single_process
from sidecar.server.offload import SimulationPool
from sidecar.server.servicers import AUTHORIZER, STS, ServerDeps, Services, generic_handlers
from sidecar.server.world_file import MAX_WORLD_BYTES, load_world_file
from sidecar.sts.clock import Clock
from sidecar.sts.keys import KeyRing

log = logging.getLogger("iam_sidecar")

T = TypeVar("T")


class SystemClock:
    # time.time itself, not a method calling it: the engine asks on every cached decision.
    now = staticmethod(time.time)


@dataclass
class ServeOptions:
    config: str | None = None
    listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:9901"
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    workers: int = 1
    keys_file: str | None = None
    decision_log_rate: float = 0.0
    reload_interval: float = 1.0
    grace: float = 10.0
    # After going NOT_SERVING, keep answering this long (within the grace period) so calls
    # already on the wire are dispatched before the server stops taking new ones.
    drain_delay: float = 1.0
    max_message_bytes: int = 4 * 1024 * 1024
    event_loop: str = "auto"  # auto (uvloop when installed), uvloop or asyncio: event_loop.py
    decision_cache_size: int = 50_000
    token_cache_size: int = 10_000
    max_world_bytes: int = MAX_WORLD_BYTES
    # The HTTP port's limits (docs/SERVER.md, "The HTTP port").
    http_header_timeout: float = 10.0
    http_idle_timeout: float = 75.0
    http_max_connections: int = 1024
    # TLS for the HTTP port (pods reaching /v1/credentials from other hosts need https).
    http_tls_cert: str | None = None
    http_tls_key: str | None = None
    # A plaintext listener with only health (gRPC, /healthz, /readyz): kubelet probes reach the
    # pod IP and cannot present client certificates, so they cannot use an mTLS --listen
    # (docs/SERVER.md, "The health listener").
    health_listen: str | None = None
    # --workers N: the directory of the workers' metric files (sidecar/server/
    # multiproc_metrics.py); None: $PROMETHEUS_MULTIPROC_DIR, else a fresh temporary one.
    metrics_dir: str | None = None
    # gRPC core's TCP listener, as `serve` chose it before loading grpc (grpc_listener.py);
    # for the start-up log.
    grpc_listener: str = "grpc_default"


def load_world(opts: ServeOptions, generation: int = 0) -> World:
    if opts.config:
        return load_world_file(opts.config, generation=generation, max_bytes=opts.max_world_bytes)
    environ = {**os.environ}
    environ.setdefault(DEMO_SECRET_ENV, DEMO_SECRET)
    return load_world_file(str(WORLD_FILE), generation=generation, environ=environ)


def keys_path(opts: ServeOptions, world: World) -> str | None:
    path = opts.keys_file or world.signing_keys_file or None
    if path and opts.config and not os.path.isabs(path):
        path = str(Path(opts.config).parent / path)
    return path


def load_keys(opts: ServeOptions, world: World) -> tuple[KeyRing, str | None]:
    path = keys_path(opts, world)
    if path:
        return read_key_ring(path), path
    kid = "dev-" + secrets.token_hex(4)
    ring = KeyRing.generate(SystemEntropy(), kid)
    log.warning(
        "NO SIGNING KEYS CONFIGURED: generated a development key set for this process only "
        "(tokens will not verify on other replicas or after a restart); configure "
        "signing.keys_file or --keys for production",
        extra={"kid": kid},
    )
    return ring, None


def _file_signature(path: str | None) -> tuple[object, ...] | None:
    """What changes when a file is rewritten or a ConfigMap swaps its symlinks."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return ("missing",)
    return (os.path.realpath(path), st.st_ino, st.st_mtime_ns, st.st_size)


class GenericOnly:
    """Takes what grpc's generated ``add_*Servicer_to_server`` functions add, keeping only the
    generic handlers, which then go behind MetricsInterceptor.handlers with ours: grpc would
    answer a *registered* method before asking any generic handler, so health and reflection
    calls would no longer be counted. The generic handler added with them serves the same
    methods."""

    def __init__(self) -> None:
        self.all: list[grpc.GenericRpcHandler[Any, Any]] = []

    def add_generic_rpc_handlers(
        self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self.all.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: object) -> None:
        pass


class Sidecar:
    """One serving process."""

    def __init__(
        self,
        opts: ServeOptions,
        world: World,
        keys: KeyRing,
        keys_from: str | None,
        *,
        clock: Clock | None = None,
        extra_handlers: Sequence[grpc.GenericRpcHandler[Any, Any]] = (),
    ) -> None:
        self.opts = opts
        # More services on the same server (benchmarks register a no-op method here).
        self.extra_handlers = tuple(extra_handlers)
        self.clock: Clock = clock or SystemClock()
        self.metrics = Metrics()
        self.engine = Engine(
            world,
            keys,
            self.clock,
            decision_cache_size=opts.decision_cache_size,
            token_cache_size=opts.token_cache_size,
        )
        self.metrics.watch_caches(
            lambda: {"decision": self.engine.decisions.stats, "token": self.engine.tokens.stats}
        )
        self.metrics.generation.set(self.engine.snapshot.generation)
        self.keys_from = keys_from
        self.ready = False
        self.grpc_port = 0
        self.http_port = 0
        self._server: grpc.aio.Server | None = None
        self._http: HttpPort | None = None
        self._health_listener: HealthListener | None = None
        self.health_port = 0
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._signatures = self._current_signatures()
        self._reload_lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None
        self._metrics_sync: asyncio.Task[None] | None = None  # --workers N only
        # SimulateCustomPolicy's worker processes: started by the first simulation.
        self.simulations = SimulationPool(max_response_bytes=opts.max_message_bytes)
        self._signal_reloads: set[asyncio.Task[bool]] = set()  # referenced until they finish

    def _current_signatures(self) -> tuple[object, ...]:
        return (_file_signature(self.opts.config), _file_signature(self.keys_from))

    async def start(self) -> None:
        opts = self.opts
        deps = ServerDeps(
            engine=self.engine,
            clock=self.clock,
            entropy=SystemEntropy(),
            metrics=self.metrics,
            decision_log_rate=opts.decision_log_rate,
            secure=bool(opts.tls_cert and opts.tls_key),
            simulations=self.simulations,
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", opts.max_message_bytes),
                ("grpc.max_send_message_length", opts.max_message_bytes),
                ("grpc.so_reuseport", 1),
            ],
        )
        services = Services(deps)
        # Envoy on loopback is believed only when the port is not reachable from elsewhere.
        checks = CheckService(services, local_callers=is_local_listener(opts.listen))
        handlers = GenericOnly()
        handlers.add_generic_rpc_handlers(
            [*generic_handlers(services), check_handler(checks), *self.extra_handlers]
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, handlers)
        names = (
            STS,
            AUTHORIZER,
            AUTHORIZATION,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(names),  # type: ignore[attr-defined]
            handlers,
        )
        # Metrics in front of every handler, not as a grpc interceptor (MetricsInterceptor).
        server.add_generic_rpc_handlers([MetricsInterceptor(self.metrics).handlers(handlers.all)])
        if opts.tls_cert and opts.tls_key:
            creds = grpc.ssl_server_credentials(
                [(Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())],
                root_certificates=Path(opts.client_ca).read_bytes() if opts.client_ca else None,
                require_client_auth=bool(opts.client_ca),
            )
            self.grpc_port = server.add_secure_port(opts.listen, creds)
        else:
            self.grpc_port = server.add_insecure_port(opts.listen)
        if self.grpc_port == 0 and not opts.listen.startswith("unix:"):
            raise OSError(f"cannot listen on {opts.listen}")
        await server.start()
        self._server = server
        if opts.health_listen:
            self._health_listener = await start_health_listener(
                self._health, opts.health_listen, lambda: self.ready, reuse_port=opts.workers > 1
            )
            self.health_port = self._health_listener.port
        self._http = await start_http(
            build_http_app(self.metrics, lambda: self.ready, deps),
            opts.http_listen,
            reuse_port=opts.workers > 1,
            limits=HttpLimits(
                header_timeout=opts.http_header_timeout,
                idle_timeout=opts.http_idle_timeout,
                max_connections=opts.http_max_connections,
            ),
            ssl_context=(
                server_ssl_context(opts.http_tls_cert, opts.http_tls_key)
                if opts.http_tls_cert and opts.http_tls_key
                else None
            ),
        )
        self.http_port = self._http.port
        for name in ("", STS, AUTHORIZER, AUTHORIZATION):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.ready = True
        self.metrics.ready.set(1)
        self._watch_task = asyncio.create_task(self._watch())
        self._metrics_sync = self.metrics.start_sync()
        log.info(
            "serving",
            extra={
                "grpc": opts.listen,
                "grpc_port": self.grpc_port,
                "http": opts.http_listen,
                "http_port": self.http_port,
                "health": opts.health_listen,
                "world": opts.config or f"embedded demo world ({WORLD_FILE})",
                "generation": self.engine.snapshot.generation,
                "pid": os.getpid(),
                "event_loop": running_loop_name(),
                "grpc_listener": opts.grpc_listener,
            },
        )

    def _prepare(self) -> tuple[Snapshot, str | None]:
        """The next snapshot, built and compiled: the whole CPU-heavy part of a reload, run in
        a thread so the event loop keeps answering."""
        world = load_world(self.opts)
        keys, keys_from = self.engine.snapshot.keys, self.keys_from
        if keys_from or keys_path(self.opts, world):
            keys, keys_from = load_keys(self.opts, world)
        return self.engine.prepare(world, keys), keys_from

    async def reload(self, why: str) -> bool:
        """Load and validate everything, then install it; any failure keeps the last good
        world (logged, counted as a failed reload)."""
        async with self._reload_lock:
            self._signatures = self._current_signatures()
            try:
                snapshot, keys_from = await in_daemon_thread(self._prepare)
            except Exception as err:  # whatever the file holds, keep serving
                expected = isinstance(err, SidecarError | OSError)
                self.metrics.reloads.labels("failure").inc()
                log.error(
                    "reload failed; still serving the last good world",
                    extra={"why": why, "error": str(err) if expected else repr(err),
                           "generation": self.engine.snapshot.generation},
                    exc_info=None if expected else err,  # an unexpected error is a bug: trace it
                )  # fmt: skip
                return False
            generation = self.engine.install(snapshot)
            if gc.get_freeze_count():  # the serving process froze its heap (run_process)
                keep_out_of_collections()  # collect the last world, freeze the new one
            self.keys_from = keys_from
            self.metrics.reloads.labels("success").inc()
            self.metrics.generation.set(generation)
            log.info("reloaded", extra={"why": why, "generation": generation})
            return True

    def reload_soon(self, why: str) -> None:
        """Start a reload from a signal handler (the task is kept until it finishes)."""
        task = asyncio.ensure_future(self.reload(why))
        self._signal_reloads.add(task)
        task.add_done_callback(self._signal_reloads.discard)

    async def _watch(self) -> None:
        """Poll the files; nothing a reload or a stat does ends this loop (only cancel)."""
        while True:
            await asyncio.sleep(self.opts.reload_interval)
            try:
                if self._current_signatures() != self._signatures:
                    await self.reload("file changed")
            except Exception:  # reload() catches its own; this is the last resort
                log.exception("file watch check failed; still watching")

    async def drain(self) -> None:
        """Health NOT_SERVING, let in-flight calls finish (up to the grace period), stop."""
        self.ready = False
        self.metrics.ready.set(0)
        await self._health.enter_graceful_shutdown()
        log.info("draining", extra={"grace_seconds": self.opts.grace})
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self._metrics_sync is not None:
            self._metrics_sync.cancel()
        for task in list(self._signal_reloads):
            task.cancel()  # its thread, if stuck, is a daemon: the process exits without it
        delay = min(self.opts.drain_delay, self.opts.grace)
        await asyncio.sleep(delay)
        if self._server is not None:
            await self._server.stop(self.opts.grace - delay)
        if self._health_listener is not None:
            await self._health_listener.close()  # probes saw NOT_SERVING / 503 throughout
        await self.simulations.close()
        if self._http is not None:
            await self._http.close()
        log.info("stopped")


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a new daemon thread, awaited. Unlike asyncio.to_thread, whose executor
    asyncio.run joins at exit, a stuck call (a secret file on a hung mount) never keeps the
    process from exiting after SIGTERM."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled while the thread ran
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (fn(), None)
        except BaseException as err:  # handed to the awaiting task
            outcome = (None, err)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="iam-sidecar-reload", daemon=True).start()
    return await future


def keep_out_of_collections() -> None:
    """Move every object alive now (the world, its compiled policies, the modules) out of the
    garbage collector's reach: they live as long as the process, and a full collection would
    walk all of them again and again while serving (docs/BENCHMARKS.md, "Garbage collection").
    After a reload it runs again: what was frozen is given back first, so the replaced world
    (cycles included) is collected, and the new one is frozen in its turn."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def run_process(
    opts: ServeOptions, world: World, keys: KeyRing, keys_from: str | None
) -> int:
    sidecar = Sidecar(opts, world, keys, keys_from)
    await sidecar.start()
    keep_out_of_collections()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, sidecar.reload_soon, "SIGHUP")
    await stop.wait()
    await sidecar.drain()
    return 0


def serve(opts: ServeOptions) -> int:
    """Load, then serve in this process or in ``opts.workers`` forked ones."""
    try:
        opts.event_loop = event_loop.resolve(opts.event_loop)
    except (ValueError, event_loop.EventLoopUnavailable) as err:
        print(str(err), file=sys.stderr)
        return 2
    try:
        world = load_world(opts)
        keys, keys_from = load_keys(opts, world)
    except SidecarError as err:
        log.error("cannot start: the configuration is invalid", extra={"error": str(err)})
        print(str(err), file=sys.stderr)
        return 1
    if not opts.config:
        log.info(
            "no --config given: serving the embedded demo world", extra={"file": str(WORLD_FILE)}
        )
    if opts.workers <= 1:
        single_process()  # metrics in memory, even with $PROMETHEUS_MULTIPROC_DIR set
        return event_loop.run(lambda: run_process(opts, world, keys, keys_from), opts.event_loop)
    return _prefork(opts, world, keys, keys_from)


def _prefork(opts: ServeOptions, world: World, keys: KeyRing, keys_from: str | None) -> int:
    """Fork N workers before any gRPC object exists and keep N running (replaced when they die,
    with the current world); forward signals; exit when all have drained."""
    from sidecar.server.supervisor import supervise  # it imports this module

    return supervise(opts, world, keys, keys_from)
