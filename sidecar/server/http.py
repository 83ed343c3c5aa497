"""The HTTP port (default 127.0.0.1:9901): /metrics, /healthz and /readyz."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar.server.metrics import Metrics


def build_http_app(metrics: Metrics, ready: Callable[[], bool]) -> web.Application:
    async def metrics_page(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="draining\n")

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http(
    app: web.Application, listen: str, *, reuse_port: bool = False
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site: web.BaseSite
    if listen.startswith("unix://"):
        site = web.UnixSite(runner, listen[len("unix://") :])
    else:
        host, port = split_host_port(listen)
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    return runner


def split_host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
