"""The HTTP port's head deadline on a kept-alive connection, in process with a transport that
records what is written (sidecar/server/http.py): the next request's first bytes may arrive as
soon as the previous response is written, before aiohttp's handler task has gone back to
waiting for a request. They must start the deadline all the same (the process-level tests in
tests/server/process/test_hardening_http.py hit this ordering only now and then)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sidecar.server.http import _Connection, _Gate

HEADER_TIMEOUT = 0.05
IDLE_TIMEOUT = 30.0
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Collects writes; ``after_response`` runs (via call_soon) once a response is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = asyncio.get_running_loop().create_future()
        self.after_response: Any = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)
        if self.after_response is not None and self.written.endswith(b"ok"):
            callback, self.after_response = self.after_response, None
            # Queued now, so it runs right after the step that wrote the response: before
            # aiohttp's connection task resumes and waits for the next request.
            asyncio.get_running_loop().call_soon(callback)

    def close(self) -> None:
        if not self.closed.done():
            self.closed.set_result(asyncio.get_running_loop().time())

    def is_closing(self) -> bool:
        return self.closed.done()

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1234), "sockname": ("127.0.0.1", 9901)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def test_next_head_right_after_a_response_gets_the_deadline() -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    conn = _Connection(
        runner.server,
        gate=_Gate(8),
        header_timeout=HEADER_TIMEOUT,
        loop=loop,
        keepalive_timeout=IDLE_TIMEOUT,
        access_log=None,
    )
    transport = RecordingTransport()
    try:
        conn.connection_made(transport)
        conn.data_received(REQUEST)  # the first request: answered, the connection kept alive
        for _ in range(200):
            if transport.written.endswith(b"ok"):
                break
            await asyncio.sleep(0)
        assert transport.written.startswith(b"HTTP/1.1 200 OK"), transport.written

        transport.after_response = lambda: conn.data_received(b"GET /healthz HT")
        conn.data_received(REQUEST)  # the second; the third's first bytes follow its answer
        started = loop.time()
        closed_at = await asyncio.wait_for(transport.closed, timeout=5.0)
        assert transport.written.count(b"HTTP/1.1 200 OK") == 2
        assert closed_at - started < 20 * HEADER_TIMEOUT  # the head deadline, not the idle one
    finally:
        conn.connection_lost(None)
        await runner.cleanup()
