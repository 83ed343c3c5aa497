"""`serve --health-listen`: gRPC health alone, in plaintext, for kubelet probes (which cannot
present client certificates), following the main server's status through a drain."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.api.v1 import sts_pb2, sts_pb2_grpc
from tests.server.process.conftest import SidecarFactory, free_port, local_channel, wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[SidecarFactory]:
    factory = SidecarFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


def _status(target: str) -> int:
    with local_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status)


def test_health_listener_serves_health_only_and_follows_the_drain(
    sidecars: SidecarFactory,
) -> None:
    health = f"127.0.0.1:{free_port()}"
    sidecar = sidecars.start(f"--health-listen={health}", "--grace=5", "--drain-delay=2")
    assert _status(health) == SERVING
    # Only health: the STS service is not on this port.
    with local_channel(health) as channel, pytest.raises(grpc.RpcError) as err:
        sts_pb2_grpc.SecurityTokenServiceStub(channel).GetCallerIdentity(
            sts_pb2.GetCallerIdentityRequest(), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    sidecar.signal(signal.SIGTERM)  # drain: health turns NOT_SERVING on both ports
    assert wait_until(lambda: _status(health) == NOT_SERVING, timeout=2.0)
    assert sidecar.proc.wait(timeout=15) == 0
