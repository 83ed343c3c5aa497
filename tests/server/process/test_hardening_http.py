"""The HTTP port's limits over the wire (docs/SERVER.md, "The HTTP port"): a request's head is
due within --http-header-timeout, an idle kept-alive connection closes after
--http-idle-timeout, at most --http-max-connections are open (one more is closed at once), and
a malformed request is one log line, never a traceback. The deadlines are shortened here (1 s
and 2.5 s) so the tests take seconds."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from .conftest import SidecarFactory, SidecarProcess, http_get, wait_until

HEADER_TIMEOUT = 1.0
IDLE_TIMEOUT = 2.5
MAX_CONNECTIONS = 8
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n"


@pytest.fixture(scope="module")
def limited(module_sidecars: SidecarFactory) -> SidecarProcess:
    return module_sidecars.start(
        "--http-header-timeout", str(HEADER_TIMEOUT),
        "--http-idle-timeout", str(IDLE_TIMEOUT),
        "--http-max-connections", str(MAX_CONNECTIONS),
        name="limited",
    )  # fmt: skip


@pytest.fixture(scope="module")
def plain(module_sidecars: SidecarFactory) -> SidecarProcess:
    """A sidecar with the default limits and log level."""
    return module_sidecars.start(name="plain")


def connect(sidecar: SidecarProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", sidecar.http_port), timeout=5)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for s in opened:
        s.close()


def read_response(s: socket.socket) -> bytes:
    """One whole /healthz response (its body is "ok\\n")."""
    data = b""
    while not data.endswith(b"ok\n"):
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    return data


def is_closed(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (EOF or reset), without waiting."""
    if not select.select([s], [], [], 0)[0]:
        return False
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def closed_after(
    socks: list[socket.socket], limit: float, trickle: socket.socket | None = None
) -> list[float]:
    """Seconds until the server closed each socket (inf if not within ``limit``); ``trickle``
    gets one more header byte every 0.2 s meanwhile."""
    start = time.monotonic()
    closed: dict[int, float] = {}
    next_byte = start
    while len(closed) < len(socks) and time.monotonic() - start < limit:
        now = time.monotonic()
        if trickle is not None and id(trickle) not in closed and now >= next_byte:
            with contextlib.suppress(OSError):  # reset: closed, as is_closed() will see
                trickle.sendall(b"x")
            next_byte = now + 0.2
        for s in socks:
            if id(s) not in closed and is_closed(s):
                closed[id(s)] = time.monotonic() - start
        time.sleep(0.02)
    return [closed.get(id(s), float("inf")) for s in socks]


def test_half_sent_heads_are_closed_at_the_header_deadline(
    limited: SidecarProcess, sockets: list[socket.socket]
) -> None:
    """Nothing sent, half a request line, and headers trickled a byte at a time: each is
    closed about HEADER_TIMEOUT after it opened (trickling does not extend the deadline)."""
    silent, half_line, trickled = (connect(limited) for _ in range(3))
    sockets += [silent, half_line, trickled]
    half_line.sendall(b"GET /metr")
    trickled.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
    times = closed_after(sockets, limit=6 * HEADER_TIMEOUT, trickle=trickled)
    assert all(0.7 * HEADER_TIMEOUT < t < 3 * HEADER_TIMEOUT for t in times), times
    assert http_get(limited.http_port, "/healthz") == (200, "ok\n")


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(
    limited: SidecarProcess, sockets: list[socket.socket]
) -> None:
    s = connect(limited)
    sockets.append(s)
    s.sendall(REQUEST)
    assert read_response(s).startswith(b"HTTP/1.1 200 OK")
    s.sendall(REQUEST)  # a second request on the connection works
    assert read_response(s).startswith(b"HTTP/1.1 200 OK")
    s.sendall(b"GET /healthz HT")
    (t,) = closed_after([s], limit=3 * IDLE_TIMEOUT)
    assert 0.7 * HEADER_TIMEOUT < t < 0.8 * IDLE_TIMEOUT, t  # the deadline, not the idle timeout


def test_an_idle_kept_alive_connection_closes_after_the_idle_timeout(
    limited: SidecarProcess, sockets: list[socket.socket]
) -> None:
    """Idle after a response, the connection outlives the header deadline and is closed at
    the idle timeout."""
    s = connect(limited)
    sockets.append(s)
    s.sendall(REQUEST)
    assert read_response(s).startswith(b"HTTP/1.1 200 OK")
    (t,) = closed_after([s], limit=3 * IDLE_TIMEOUT)
    assert 1.5 * HEADER_TIMEOUT < 0.8 * IDLE_TIMEOUT < t < IDLE_TIMEOUT + 3, t


def test_connections_over_the_cap_are_closed_at_once(
    limited: SidecarProcess, sockets: list[socket.socket]
) -> None:
    """MAX_CONNECTIONS kept-alive connections are served; one more is closed as soon as it is
    accepted (and logged, once); when one of the first closes, a new one is served."""
    for _ in range(MAX_CONNECTIONS):
        s = connect(limited)
        sockets.append(s)
        s.sendall(REQUEST)
        assert read_response(s).startswith(b"HTTP/1.1 200 OK")
    over = [connect(limited) for _ in range(3)]
    sockets += over
    times = closed_after(over, limit=2.0)
    assert all(t < 0.8 * HEADER_TIMEOUT for t in times), times  # not the header deadline
    assert not _healthz_ok(limited)
    assert all(not is_closed(s) for s in sockets[:MAX_CONNECTIONS])

    sockets[0].close()
    assert wait_until(lambda: _healthz_ok(limited), 2)
    warned = [r for r in limited.log() if r["msg"].startswith("HTTP connection limit reached")]
    assert len(warned) == 1, warned
    assert warned[0]["level"] == "warning"
    assert warned[0]["limit"] == MAX_CONNECTIONS


def _healthz_ok(sidecar: SidecarProcess) -> bool:
    try:
        return http_get(sidecar.http_port, "/healthz", timeout=1) == (200, "ok\n")
    except OSError:
        return False


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"GARBAGE\r\n\r\n", "BadHttpMethod"),
        (b"GET / HTTP/7.5\r\nHost: x\r\n\r\n", "BadStatusLine"),
        (
            b"GET /healthz HTTP/1.1\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(500))
            + b"\r\n",
            "BadHttpMessage: Too many headers",
        ),
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", "LineTooLong"),
    ],
)
def test_a_malformed_request_is_one_log_line(
    plain: SidecarProcess, request_bytes: bytes, error: str
) -> None:
    """Answered 400, logged as exactly one warning naming the problem, with no traceback (at
    the default log level, as served)."""
    sidecar = plain
    before = sidecar.log_text().splitlines()
    with connect(sidecar) as s:
        s.sendall(request_bytes)
        reply = s.recv(4096)
    assert reply.startswith((b"HTTP/1.0 400 Bad Request", b"HTTP/1.1 400")), reply
    assert wait_until(lambda: len(sidecar.log_text().splitlines()) > len(before), 3)
    time.sleep(0.2)  # anything else it would log comes with the same request
    new = sidecar.log_text().splitlines()[len(before) :]
    assert len(new) == 1, new
    record = json.loads(new[0])
    assert record["msg"] == "malformed HTTP request", record
    assert record["level"] == "warning"
    assert record["peer"] == "127.0.0.1"
    assert str(record["error"]).startswith(error), record
    assert "exception" not in record
    assert "Traceback" not in sidecar.log_text()
    assert _healthz_ok(sidecar)
