"""A hostile review of the health listener (`serve --health-listen`): it listens on the pod IP
with no authentication, so any workload that reaches the pod can talk to it, and kubelet's
probes (from the node's address) must still be answered."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.server.test_health_listener import GUARD, Probe, close, probe, read_until_closed

__all__ = ["probe"]  # the fixture, re-exported for pytest

PROBE = b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n"


async def test_one_peer_cannot_take_every_connection_from_the_probes(probe: Probe) -> None:
    """A peer at 127.0.0.1 opens as many connections as the listener admits and sends nothing
    (each is held until header_timeout, 5 s, and it reconnects at once); kubelet's probe from
    another address (127.0.0.2 here, the node IP in a cluster) is then closed unanswered, and
    liveness failures restart the container. The cap must leave room for other peers."""
    listener = await probe.start(max_connections=4)
    held = [await asyncio.open_connection("127.0.0.1", probe.port) for _ in range(4)]
    try:
        deadline = time.monotonic() + GUARD
        while listener.open_connections < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", probe.port, local_addr=("127.0.0.2", 0)
        )
        try:
            writer.write(PROBE)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                await writer.drain()
            answer = await read_until_closed(reader)
        finally:
            await close(writer)
        assert answer.startswith(b"HTTP/1.1 200 "), f"the probe got {answer!r}"
    finally:
        for _, w in held:
            await close(w)
