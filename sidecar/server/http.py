"""The HTTP port (default 127.0.0.1:9901): /metrics, /healthz and /readyz, and with the
server's dependencies GET /v1/credentials (pod identity) and POST / (the STS Query API).

aiohttp serves the requests; this module bounds the connections (docs/SERVER.md, "The HTTP
port"). aiohttp closes idle kept-alive connections but has no deadline for a request's head and
no connection cap, so a client sending half a request line held its connection forever. Here:

- a request's line and headers must arrive within ``header_timeout`` of its first byte (of the
  connection, for the first request);
- an idle kept-alive connection is closed after ``idle_timeout``;
- at most ``max_connections`` are open at once: one more is closed as soon as it is accepted
  (a scraper retries; waiting in the accept queue would hide the overload);
- a malformed request is answered 400 and logged as one line, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar.server.metrics import Metrics
from sidecar.server.pod_identity_http import add_pod_identity_routes
from sidecar.server.sts_query import MAX_BODY_BYTES, add_sts_query

if TYPE_CHECKING:
    from sidecar.server.servicers import ServerDeps

log = logging.getLogger("iam_sidecar")


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 10.0
    idle_timeout: float = 75.0
    max_connections: int = 1024


def build_http_app(
    metrics: Metrics, ready: Callable[[], bool], deps: ServerDeps | None = None
) -> web.Application:
    async def metrics_page(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="draining\n")

    app = web.Application(client_max_size=MAX_BODY_BYTES)  # a maximal SAML assertion fits
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if deps is not None:
        add_pod_identity_routes(app, deps)  # GET /v1/credentials
        add_sts_query(app, deps)  # POST /: the STS Query API
    return app


class _Gate:
    """Counts open connections; refuses beyond the limit, logging at most every 10 s."""

    LOG_EVERY = 10.0

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._refused = 0
        self._logged_at = float("-inf")

    def admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= self.LOG_EVERY:
            log.warning(
                "HTTP connection limit reached: closing new connections",
                extra={"limit": self.limit, "refused": self._refused},
            )
            self._logged_at, self._refused = now, 0
        return False

    def release(self) -> None:
        self.open -= 1


class _Connection(web.RequestHandler):
    """aiohttp's connection handler with the port's limits (see the module docstring). It
    reads aiohttp's ``_request_count`` (requests whose head was parsed) and counts the
    responses it finished: tests/server/process/test_hardening_http.py fails if a new aiohttp
    changes either. (aiohttp's ``_waiter``, set while the connection waits for its next
    request, is set only once the handler's task has resumed after a response: the next
    request's first bytes can arrive before that, on uvloop more often.)"""

    def __init__(
        self, manager: web.Server, *, gate: _Gate, header_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._header_timeout = header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None
        self._answered = 0  # requests whose response is written
        self._admitted = False
        self._quiet = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._gate.admit():
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._arm()  # the first request's head is due from now

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._gate.release()
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:  # a head is complete (a malformed one is answered 400)
            self._disarm()
        elif data and self._head_deadline is None and self._answered == self._request_count:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:  # right after the response is written: no other callback runs in between
            self._answered += 1

    def _arm(self) -> None:
        if self._header_timeout > 0:
            loop = asyncio.get_running_loop()
            self._head_deadline = loop.call_later(self._header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        log.debug("HTTP request head not received in time: closing the connection",
                  extra={"header_timeout": self._header_timeout})  # fmt: skip
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):  # a handler's bug keeps its traceback
            return super().handle_error(request, status, exc, message)
        error = " ".join(str(exc.message).split())[:200]
        log.warning("malformed HTTP request",
                    extra={"peer": request.remote, "status": status,
                           "error": f"{type(exc).__name__}: {error}"})  # fmt: skip
        self._quiet = True  # aiohttp's own log line (with a traceback) is dropped
        try:
            return super().handle_error(request, status, None, message)
        finally:
            self._quiet = False

    def log_exception(self, *args: Any, **kw: Any) -> None:
        if not self._quiet:
            super().log_exception(*args, **kw)


class HttpPort:
    """The listening HTTP port: the port it bound, and close()."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server) -> None:
        self._runner = runner
        self._server = server
        self.port = 0
        for sock in server.sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                self.port = int(name[1])

    async def close(self) -> None:
        """Stop accepting, close the open connections (letting requests finish), clean up."""
        self._server.close()
        await self._runner.cleanup()
        await self._server.wait_closed()


async def start_http(
    app: web.Application,
    listen: str,
    *,
    reuse_port: bool = False,
    limits: HttpLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> HttpPort:
    limits = limits or HttpLimits()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    manager = runner.server
    assert manager is not None  # set by setup()
    loop = asyncio.get_running_loop()
    gate = _Gate(limits.max_connections)

    def connection() -> _Connection:
        return _Connection(
            manager,
            gate=gate,
            header_timeout=limits.header_timeout,
            loop=loop,
            keepalive_timeout=limits.idle_timeout,
            access_log=None,  # as AppRunner(access_log=None) passes it
        )

    server: asyncio.Server
    try:
        if listen.startswith("unix://"):
            server = await loop.create_unix_server(
                connection, listen[len("unix://") :], ssl=ssl_context
            )
        else:
            host, port = split_host_port(listen)
            server = await loop.create_server(
                connection,
                host,
                port,
                backlog=128,
                reuse_port=reuse_port or None,
                ssl=ssl_context,
            )
    except BaseException:
        await runner.cleanup()
        raise
    return HttpPort(runner, server)


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS for the HTTP port (``--http-tls-cert``/``--http-tls-key``): TLS 1.2 or later."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def split_host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
