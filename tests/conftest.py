"""Shared test settings."""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from sidecar.server import grpc_listener

# The servers these tests start in process run on the TCP listener `serve` chooses; grpc reads
# the choice when first imported, which no module has done yet.
grpc_listener.choose(os.environ)

# CI runs on 2 cores: keep the default profile modest and the runs reproducible there.
settings.register_profile(
    "default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def measure() -> Iterator[Callable[[], int]]:
    """Bytes allocated (and still held) since the fixture started (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]

    def held() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - start

    yield held
    tracemalloc.stop()
