"""The sidecar process: gRPC and HTTP servers over one engine, hot reload, graceful drain, and
`--workers N` (N processes on one port with SO_REUSEPORT, forked before any server exists)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sidecar.demo import DEMO_SECRET, DEMO_SECRET_ENV, WORLD_FILE
from sidecar.engine.engine import Engine
from sidecar.errors import SidecarError
from sidecar.identity.model import World
from sidecar.server.http import build_http_app, start_http
from sidecar.server.keyfile import SystemEntropy, read_key_ring
from sidecar.server.metrics import Metrics, MetricsInterceptor
from sidecar.server.servicers import AUTHORIZER, STS, ServerDeps, Services, generic_handlers
from sidecar.server.world_file import load_world_file
from sidecar.sts.clock import Clock
from sidecar.sts.keys import KeyRing

log = logging.getLogger("iam_sidecar")


class SystemClock:
    def now(self) -> float:
        return time.time()


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
    decision_cache_size: int = 50_000
    token_cache_size: int = 10_000


def load_world(opts: ServeOptions, generation: int = 0) -> World:
    if opts.config:
        return load_world_file(opts.config, generation=generation)
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
        self._http: object | None = None
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._signatures = self._current_signatures()
        self._reload_lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None

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
        )
        server = grpc.aio.server(
            interceptors=[MetricsInterceptor(self.metrics)],
            options=[
                ("grpc.max_receive_message_length", opts.max_message_bytes),
                ("grpc.max_send_message_length", opts.max_message_bytes),
                ("grpc.so_reuseport", 1),
            ],
        )
        server.add_generic_rpc_handlers([*generic_handlers(Services(deps)), *self.extra_handlers])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            STS,
            AUTHORIZER,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
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
        runner = await start_http(
            build_http_app(self.metrics, lambda: self.ready),
            opts.http_listen,
            reuse_port=opts.workers > 1,
        )
        self._http = runner
        self.http_port = _runner_port(runner)
        for name in ("", STS, AUTHORIZER):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.ready = True
        self.metrics.ready.set(1)
        self._watch_task = asyncio.create_task(self._watch())
        log.info(
            "serving",
            extra={
                "grpc": opts.listen,
                "grpc_port": self.grpc_port,
                "http": opts.http_listen,
                "http_port": self.http_port,
                "world": opts.config or f"embedded demo world ({WORLD_FILE})",
                "generation": self.engine.snapshot.generation,
                "pid": os.getpid(),
            },
        )

    async def reload(self, why: str) -> bool:
        """Load and validate everything, then swap; a bad file keeps the last good world."""
        async with self._reload_lock:
            self._signatures = self._current_signatures()
            try:
                world = await asyncio.to_thread(load_world, self.opts)
                keys = self.engine.snapshot.keys
                if self.keys_from or keys_path(self.opts, world):
                    keys, self.keys_from = await asyncio.to_thread(load_keys, self.opts, world)
            except (SidecarError, OSError) as err:
                self.metrics.reloads.labels("failure").inc()
                log.error(
                    "reload failed; still serving the last good world",
                    extra={"why": why, "error": str(err),
                           "generation": self.engine.snapshot.generation},
                )  # fmt: skip
                return False
            generation = self.engine.swap(world, keys)
            self.metrics.reloads.labels("success").inc()
            self.metrics.generation.set(generation)
            log.info("reloaded", extra={"why": why, "generation": generation})
            return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.opts.reload_interval)
            if self._current_signatures() != self._signatures:
                await self.reload("file changed")

    async def drain(self) -> None:
        """Health NOT_SERVING, let in-flight calls finish (up to the grace period), stop."""
        self.ready = False
        self.metrics.ready.set(0)
        await self._health.enter_graceful_shutdown()
        log.info("draining", extra={"grace_seconds": self.opts.grace})
        if self._watch_task is not None:
            self._watch_task.cancel()
        delay = min(self.opts.drain_delay, self.opts.grace)
        await asyncio.sleep(delay)
        if self._server is not None:
            await self._server.stop(self.opts.grace - delay)
        if self._http is not None:
            await self._http.cleanup()  # type: ignore[attr-defined]
        log.info("stopped")


def _runner_port(runner: object) -> int:
    for site in getattr(runner, "sites", ()):
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or ():
            name = sock.getsockname()
            if isinstance(name, tuple):
                return int(name[1])
    return 0


async def run_process(
    opts: ServeOptions, world: World, keys: KeyRing, keys_from: str | None
) -> int:
    sidecar = Sidecar(opts, world, keys, keys_from)
    await sidecar.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(sidecar.reload("SIGHUP")))
    await stop.wait()
    await sidecar.drain()
    return 0


def serve(opts: ServeOptions) -> int:
    """Load, then serve in this process or in ``opts.workers`` forked ones."""
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
        return asyncio.run(run_process(opts, world, keys, keys_from))
    return _prefork(opts, world, keys, keys_from)


def _prefork(opts: ServeOptions, world: World, keys: KeyRing, keys_from: str | None) -> int:
    """Fork N workers before any gRPC object exists; forward signals; exit when all exit."""
    children: list[int] = []
    for _ in range(opts.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = asyncio.run(run_process(opts, world, keys, keys_from))
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    log.info("workers started", extra={"workers": children})
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(code) != 0:
            status = 1
    return status
