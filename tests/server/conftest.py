"""An in-process sidecar on 127.0.0.1 (ephemeral ports) with the demo world, on uvloop as
`serve` runs by default (sidecar/server/event_loop.py); tests/server/process/ runs the real
process, with `--event-loop asyncio` too."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import uvloop

from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET
from sidecar.server.app import ServeOptions, Sidecar, load_world
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The server's tests run on the loop the server runs on."""
    return {"uvloop": uvloop.new_event_loop}


class OffsetClock:
    """Real time plus an offset the test can move (for expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
async def sidecar(clock: OffsetClock) -> AsyncIterator[Sidecar]:
    opts = ServeOptions(listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    world = load_world(opts)
    server = Sidecar(opts, world, KeyRing.generate(CountingEntropy(11)), None, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.drain()


@pytest.fixture
async def channel(sidecar: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as ch:
        yield ch


DEMO_KEY = (DEMO_ACCESS_KEY_ID, DEMO_SECRET)
APP_READER = "arn:aws:iam::111111111111:role/apps/app-reader"
