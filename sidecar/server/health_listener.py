"""`serve --health-listen`: the plaintext, health-only listener that kubelet probes call
(docs/SERVER.md, "The health listener").

Probes reach the pod IP and cannot present client certificates, so this port has no TLS and
serves nothing but health, two ways on one address:

- gRPC health (`grpc.health.v1.Health`): a connection that opens with the HTTP/2 client preface
  is spliced to a grpc server on an ephemeral loopback port that carries only the health
  service, with the main server's servicer (so the statuses are the same);
- HTTP/1.1 `GET /healthz` and `GET /readyz`, with the HTTP port's meaning, answered here (one
  request per connection, `Connection: close`).

Nothing a peer sends holds the event loop or memory without bound: at most ``max_connections``
connections are open at once (one more is closed as soon as it is accepted); a connection's
first bytes, and for HTTP the whole request head, must arrive within ``header_timeout`` and fit
in ``max_head_bytes``; a spliced gRPC connection is closed by the inner server when idle or old
(``grpc_idle_timeout``, ``grpc_max_age``), and its messages are capped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2_grpc

from sidecar.server.http import split_host_port

log = logging.getLogger("iam_sidecar")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113, 3.4: what every gRPC client sends first
_CHUNK = 64 * 1024
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class HealthLimits:
    header_timeout: float = 5.0
    max_connections: int = 64
    # One address may hold at most this many (None: a quarter of max_connections), so that a
    # peer on the pod network cannot take every connection from kubelet's probes.
    max_connections_per_peer: int | None = None
    max_head_bytes: int = 8192
    grpc_idle_timeout: float = 30.0  # a spliced connection with no call for this long is closed
    grpc_max_age: float = 300.0  # then a Watch stream reconnects


class HealthListener:
    """The listening health port: ``port`` (0 for a unix socket) and close()."""

    LOG_EVERY = 10.0

    def __init__(
        self,
        ready: Callable[[], bool],
        limits: HealthLimits,
        inner: grpc.aio.Server,
        inner_port: int,
    ) -> None:
        self._ready = ready
        self._limits = limits
        self._inner = inner
        self._inner_port = inner_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._per_peer: dict[str, int] = {}
        per_peer = limits.max_connections_per_peer
        self._peer_cap = per_peer if per_peer is not None else max(1, limits.max_connections // 4)
        self._refused = 0
        self._logged_at = float("-inf")
        self.port = 0

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    async def listen(self, address: str, *, reuse_port: bool = False) -> None:
        # The StreamReader's limit bounds what one connection buffers before reading pauses.
        buffer = max(self._limits.max_head_bytes + 1, _CHUNK)
        if address.startswith("unix:"):
            path = address[len("unix://") :] if address.startswith("unix://") else address[5:]
            self._server = await asyncio.start_unix_server(self._connection, path, limit=buffer)
            return
        host, port = split_host_port(address)
        self._server = await asyncio.start_server(
            self._connection,
            None if host == "::" else host,  # "[::]": every interface, IPv4 too (as grpc binds)
            port,
            limit=buffer,
            backlog=128,
            reuse_port=reuse_port or None,
        )
        for sock in self._server.sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                self.port = int(name[1])

    async def close(self) -> None:
        """Stop accepting, drop the open connections, stop the inner grpc server."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await self._inner.stop(0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) else ""  # unix sockets: one local peer
        held = self._per_peer.get(ip, 0)
        if (
            task is None
            or len(self._tasks) >= self._limits.max_connections
            or (ip and held >= self._peer_cap)
        ):
            self._refuse()
            writer.close()
            return
        self._tasks.add(task)
        self._per_peer[ip] = held + 1
        try:
            await self._serve(reader, writer)
        except OSError as err:  # the peer went away
            log.debug("health listener connection failed", extra={"error": repr(err)})
        finally:
            writer.close()
            self._tasks.discard(task)
            left = self._per_peer.pop(ip) - 1
            if left:
                self._per_peer[ip] = left

    def _refuse(self) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= self.LOG_EVERY:
            log.warning(
                "health listener connection limit reached: closing new connections",
                extra={"limit": self._limits.max_connections, "refused": self._refused},
            )
            self._logged_at, self._refused = now, 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._limits.header_timeout):
                head = await self._read_head(reader)
                if head.startswith(PREFACE):
                    upstream = await asyncio.open_connection("127.0.0.1", self._inner_port)
                else:
                    if head:  # nothing at all: a TCP connect check
                        writer.write(self._answer(head, writer))
                        await writer.drain()
                    return
        except TimeoutError:
            log.debug("health listener: request not received in time; closing the connection",
                      extra={"header_timeout": self._limits.header_timeout})  # fmt: skip
            return
        await _splice(reader, writer, head, *upstream)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        """Read until the HTTP/2 preface, the end of an HTTP/1 request head, something that
        cannot begin a request (e.g. a TLS handshake: answered at once), the size cap, or EOF."""
        cap = self._limits.max_head_bytes
        head = bytearray()
        while len(head) <= cap:
            chunk = await reader.read(cap + 1 - len(head))
            if not chunk:
                break
            searched = max(0, len(head) - 3)
            head += chunk
            n = min(len(head), len(PREFACE))
            if head[:n] == PREFACE[:n]:
                if n == len(PREFACE):
                    break
                continue  # still a possible preface
            method = _TOKEN.match(head)
            end = method.end() if method else 0
            if end < len(head) and (end == 0 or head[end] != ord(" ")):
                break  # not a method followed by a space
            if _head_end(head, searched) >= 0:
                break
        return bytes(head)

    def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> bytes:
        end = _head_end(head, 0)
        if end < 0:
            if len(head) > self._limits.max_head_bytes:
                return self._refusal(431, "request head over the size limit", writer)
            return self._refusal(400, "malformed or incomplete request", writer)
        lines = head[:end].split(b"\n")
        request_line = lines[0].rstrip(b"\r").split(b" ")
        if len(request_line) != 3 or not _TOKEN.fullmatch(request_line[0]):
            return self._refusal(400, "bad request line", writer)
        method, target, version = request_line
        if version not in (b"HTTP/1.0", b"HTTP/1.1"):
            return self._refusal(400, "unsupported HTTP version", writer)
        for line in lines[1:]:
            name, colon, _ = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                return self._refusal(400, "bad header line", writer)
        path = _path(target)
        if path is None:
            return self._refusal(400, "bad request target", writer)
        if path not in (b"/healthz", b"/readyz"):
            return _response(404, "not found\n")
        if method not in (b"GET", b"HEAD"):
            return _response(405, "method not allowed\n", allow=True)
        if path == b"/healthz":
            return _response(200, "ok\n", head_only=method == b"HEAD")
        if self._ready():
            return _response(200, "ready\n", head_only=method == b"HEAD")
        return _response(503, "draining\n", head_only=method == b"HEAD")

    def _refusal(self, status: int, error: str, writer: asyncio.StreamWriter) -> bytes:
        log.warning("malformed HTTP request on the health listener",
                    extra={"peer": _peer(writer), "status": status, "error": error})  # fmt: skip
        return _response(status, f"{_REASONS[status].lower()}\n")


def _head_end(head: bytes | bytearray, start: int) -> int:
    """Where the blank line ending a request head starts (CRLF or bare LF lines), or -1."""
    ends = [i for i in (head.find(b"\r\n\r\n", start), head.find(b"\n\n", start)) if i >= 0]
    return min(ends) if ends else -1


def _path(target: bytes) -> bytes | None:
    """The path of an origin-form or absolute-form request target (the query is ignored)."""
    if target.startswith(b"/"):
        return target.split(b"?", 1)[0]
    if target.startswith((b"http://", b"https://")):
        return urlsplit(target).path or b"/"
    return None


def _response(status: int, body: str, *, head_only: bool = False, allow: bool = False) -> bytes:
    payload = body.encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(["Allow: GET, HEAD"] if allow else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else payload)


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: bytes,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side closes (memory bounded by the streams' flow control)."""
    try:
        up_writer.write(head)
        pumps = [
            asyncio.create_task(_pump(reader, up_writer)),
            asyncio.create_task(_pump(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
    finally:
        up_writer.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while chunk := await src.read(_CHUNK):
        dst.write(chunk)
        await dst.drain()


async def start_health_listener(
    servicer: health_pb2_grpc.HealthServicer,
    address: str,
    ready: Callable[[], bool],
    *,
    reuse_port: bool = False,
    limits: HealthLimits | None = None,
) -> HealthListener:
    """Listen on ``address`` (host:port, ``unix:///path``, ``unix:path``); ``servicer`` is the
    main server's, ``ready`` what /readyz reports (the HTTP port's readiness)."""
    limits = limits or HealthLimits()
    inner = grpc.aio.server(
        options=[
            ("grpc.max_connection_idle_ms", int(limits.grpc_idle_timeout * 1000)),
            ("grpc.max_connection_age_ms", int(limits.grpc_max_age * 1000)),
            ("grpc.max_connection_age_grace_ms", 10_000),
            ("grpc.max_concurrent_streams", 16),
            ("grpc.max_receive_message_length", 4096),  # a HealthCheckRequest is a service name
            ("grpc.so_reuseport", 0),
        ]
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, inner)
    inner_port = inner.add_insecure_port("127.0.0.1:0")
    if inner_port == 0:
        raise OSError("cannot listen on 127.0.0.1:0 for the health listener's gRPC server")
    await inner.start()
    listener = HealthListener(ready, limits, inner, inner_port)
    try:
        await listener.listen(address, reuse_port=reuse_port)
    except BaseException:
        await inner.stop(0)
        raise
    return listener
