"""The health-only listener (`serve --health-listen`, sidecar/server/health_listener.py): gRPC
health and HTTP/1.1 /healthz and /readyz on one plaintext address, and its bounds against
whatever a prober or an attacker sends. Everything goes over real sockets on 127.0.0.1 or a unix
socket; each wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sidecar.api.v1 import sts_pb2, sts_pb2_grpc
from sidecar.server.app import ServeOptions, Sidecar, load_world
from sidecar.server.health_listener import (
    PREFACE,
    HealthLimits,
    HealthListener,
    start_health_listener,
)
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GUARD = 10.0  # seconds: a generous bound on every wait, so that no test can hang


class Probe:
    """A listener over a fresh health servicer, with a readiness the test sets."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.ready = True
        self.listener: HealthListener | None = None

    async def start(self, address: str = "127.0.0.1:0", **limits: Any) -> HealthListener:
        self.listener = await start_health_listener(
            self.servicer, address, lambda: self.ready, limits=HealthLimits(**limits)
        )
        return self.listener

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.port


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    p = Probe()
    try:
        yield p
    finally:
        if p.listener is not None:
            await asyncio.wait_for(p.listener.close(), GUARD)


async def grpc_status(target: str, service: str = "") -> int:
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(response.status)


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def exchange(port: int, data: bytes, *, opener: Opener | None = None) -> bytes:
    """Send raw bytes on a new connection and read until the listener closes it."""
    reader, writer = await (opener or (lambda: asyncio.open_connection("127.0.0.1", port)))()
    try:
        writer.write(data)
        await writer.drain()
        return await read_until_closed(reader)
    finally:
        await close(writer)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What arrives before the listener closes the connection (a reset counts as closed)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(4096), GUARD):
            data += chunk
    return data


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()


async def test_grpc_health_is_served_through_the_listener(probe: Probe) -> None:
    await probe.start()
    target = f"127.0.0.1:{probe.port}"
    assert await grpc_status(target) == SERVING
    # The servicer is the main server's: a status set there is what the probe sees.
    await probe.servicer.set("", NOT_SERVING)
    assert await grpc_status(target) == NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_status(target, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Watch streams through the splice too, and sees the change.
    async with grpc.aio.insecure_channel(target) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert (await stream.read()).status == NOT_SERVING
        await probe.servicer.set("", SERVING)
        assert (await stream.read()).status == SERVING
        stream.cancel()
    # Health only: nothing else is served here.
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sts_pb2_grpc.SecurityTokenServiceStub(channel).GetCallerIdentity(
                sts_pb2.GetCallerIdentityRequest(), timeout=5
            )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_healthz_and_readyz_answer_http_1_1_as_the_http_port_does(probe: Probe) -> None:
    await probe.start()
    assert await http_get(probe.port, "/healthz") == (200, "ok\n")
    assert await http_get(probe.port, "/readyz") == (200, "ready\n")
    assert await http_get(probe.port, "/readyz?verbose=1") == (200, "ready\n")
    probe.ready = False  # draining: not ready, still alive
    assert await http_get(probe.port, "/readyz") == (503, "draining\n")
    assert await http_get(probe.port, "/healthz") == (200, "ok\n")


async def test_one_request_per_connection_and_the_status_of_each_kind(probe: Probe) -> None:
    await probe.start()
    ok = await exchange(probe.port, b"GET /healthz HTTP/1.1\r\nHost: pod\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in ok
    assert ok.endswith(b"\r\n\r\nok\n")
    head = await exchange(probe.port, b"HEAD /readyz HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert (await exchange(probe.port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 404 "
    )
    post = await exchange(probe.port, b"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET, HEAD\r\n" in post
    # A connection that ends without a byte (a TCP connect check) is closed without an answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", probe.port)
    writer.write_eof()
    assert await read_until_closed(reader) == b""
    await close(writer)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"\x00\x01\x02\x03\xff\xfe",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz HTTP/2.0\r\n\r\n",
        b"GET  /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET healthz HTTP/1.1\r\n\r\n",
        PREFACE[:16] + b"XX\r\n\r\n",  # begins like the HTTP/2 preface, then is not
    ],
)
async def test_garbage_is_answered_400_at_once(probe: Probe, garbage: bytes) -> None:
    # A long deadline: the answer comes from the bytes themselves, not from a timeout.
    await probe.start(header_timeout=60.0)
    answer = await exchange(probe.port, garbage)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert await http_get(probe.port, "/healthz") == (200, "ok\n")


async def test_oversize_request_heads_are_refused(probe: Probe) -> None:
    await probe.start(header_timeout=60.0, max_head_bytes=1024)
    unfinished = b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"a" * 2000
    assert (await exchange(probe.port, unfinished)).startswith(b"HTTP/1.1 431 ")
    finished = unfinished + b"\r\n\r\n"
    assert (await exchange(probe.port, finished)).startswith(b"HTTP/1.1 431 ")
    near = b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"a" * 900 + b"\r\n\r\n"
    assert (await exchange(probe.port, near)).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("first_byte", [b"G", b"P"])  # an HTTP method, or the HTTP/2 preface
async def test_a_slowloris_is_closed_at_the_deadline_while_probes_answer(
    probe: Probe, first_byte: bytes
) -> None:
    await probe.start(header_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", probe.port)
    try:
        opened = time.monotonic()
        writer.write(first_byte)  # then nothing more
        await writer.drain()
        # Meanwhile the other probes are answered.
        assert await grpc_status(f"127.0.0.1:{probe.port}") == SERVING
        assert await http_get(probe.port, "/readyz") == (200, "ready\n")
        assert await read_until_closed(reader) == b""  # closed without an answer
        assert time.monotonic() - opened >= 0.9  # ... at the deadline, not before
    finally:
        await close(writer)


async def test_a_grpc_connection_that_stalls_after_the_preface_is_closed(probe: Probe) -> None:
    await probe.start(grpc_idle_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", probe.port)
    try:
        writer.write(PREFACE)  # then nothing: no SETTINGS, no call
        await writer.drain()
        received = await read_until_closed(reader)
        # The grpc server answered (its SETTINGS), then went away when the connection idled.
        assert received[3:4] == b"\x04"  # the first frame's type: SETTINGS
    finally:
        await close(writer)
    assert probe.listener is not None
    assert probe.listener.open_connections == 0


async def test_open_connections_are_capped(probe: Probe, caplog: pytest.LogCaptureFixture) -> None:
    listener = await probe.start(max_connections=3, max_connections_per_peer=3, header_timeout=60.0)
    idle = [await asyncio.open_connection("127.0.0.1", probe.port) for _ in range(3)]
    try:
        deadline = time.monotonic() + GUARD
        while listener.open_connections < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert listener.open_connections == 3
        with caplog.at_level(logging.WARNING, logger="iam_sidecar"):
            # One more is closed as soon as it is accepted (long before the 60 s deadline).
            assert await exchange(probe.port, b"GET /healthz HTTP/1.1\r\n\r\n") == b""
        assert "health listener connection limit reached" in caplog.text
        assert listener.open_connections == 3
        _reader, writer = idle.pop()
        await close(writer)
        deadline = time.monotonic() + GUARD
        while listener.open_connections > 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await http_get(probe.port, "/healthz") == (200, "ok\n")
    finally:
        for _, writer in idle:
            await close(writer)


async def test_close_drops_open_connections(probe: Probe) -> None:
    listener = await probe.start(header_timeout=60.0)
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", probe.port)
    grpc_reader, grpc_writer = await asyncio.open_connection("127.0.0.1", probe.port)
    try:
        slow_writer.write(b"GET /he")
        grpc_writer.write(PREFACE)
        await asyncio.gather(slow_writer.drain(), grpc_writer.drain())
        deadline = time.monotonic() + GUARD
        while listener.open_connections < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(listener.close(), GUARD)
        probe.listener = None
        assert await read_until_closed(slow_reader) == b""
        await read_until_closed(grpc_reader)  # the grpc server's SETTINGS, then closed
    finally:
        for writer in (slow_writer, grpc_writer):
            await close(writer)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", listener.port)


async def test_a_unix_socket_address_serves_both(probe: Probe, tmp_path: Path) -> None:
    path = tmp_path / "health.sock"
    await probe.start(f"unix://{path}")
    assert await grpc_status(f"unix://{path}") == SERVING
    answer = await exchange(
        0,
        b"GET /readyz HTTP/1.1\r\n\r\n",
        opener=lambda: asyncio.open_unix_connection(str(path)),
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"ready\n")


async def test_the_sidecar_drain_turns_both_readiness_checks_off_and_healthz_stays(
    tmp_path: Path,
) -> None:
    opts = ServeOptions(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        grace=2.0,
        drain_delay=1.0,
    )
    sidecar = Sidecar(opts, load_world(opts), KeyRing.generate(CountingEntropy(11)), None)
    await sidecar.start()
    target = f"127.0.0.1:{sidecar.health_port}"
    drain: asyncio.Task[None] | None = None
    try:
        assert await grpc_status(target) == SERVING
        assert await http_get(sidecar.health_port, "/readyz") == (200, "ready\n")
        drain = asyncio.create_task(sidecar.drain())
        await asyncio.sleep(0.2)  # within the 1 s drain delay: still answering
        assert not drain.done()
        assert await grpc_status(target) == NOT_SERVING
        assert await http_get(sidecar.health_port, "/readyz") == (503, "draining\n")
        assert await http_get(sidecar.health_port, "/healthz") == (200, "ok\n")
        await asyncio.wait_for(drain, GUARD)
    finally:
        if drain is None:
            await sidecar.drain()
    with pytest.raises(ConnectionRefusedError):  # stopped with the process's servers
        await asyncio.open_connection("127.0.0.1", sidecar.health_port)
