"""`serve --health-listen`: health alone (gRPC health, HTTP /healthz and /readyz), in plaintext,
for kubelet probes (which cannot present client certificates), following the main server's
status through a drain. The listener's bounds are tested in tests/server/test_health_listener.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.api.v1 import sts_pb2, sts_pb2_grpc
from tests.helm.conftest import by_kind, render
from tests.server.process.conftest import (
    SidecarFactory,
    free_port,
    http_get,
    local_channel,
    wait_until,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[SidecarFactory]:
    factory = SidecarFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


def _sidecar_container(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rendered iam-sidecar container and its pod spec (central or the sidecar demo)."""
    (deployment,) = by_kind(render(values), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"] + pod.get("initContainers", [])
    (container,) = [c for c in containers if c["name"] == "iam-sidecar"]
    return container, pod


@pytest.mark.parametrize(
    "values",
    [{"mode": "central"}, {"mode": "sidecar"}, {"mode": "sidecar", "sidecar": {"native": True}}],
    ids=["central", "sidecar", "native-sidecar"],
)
def test_the_chart_probes_only_the_health_listener(values: dict[str, Any]) -> None:
    container, pod = _sidecar_container(values)
    assert "--health-listen=0.0.0.0:9902" in container["args"]
    assert container["livenessProbe"]["grpc"] == {"port": 9902}
    assert container["readinessProbe"]["grpc"] == {"port": 9902}
    # Startup: GET /readyz, 200 only once both ports listen. A native sidecar's startup probe
    # also holds the application containers until then.
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 9902}
    if values.get("sidecar", {}).get("native"):
        assert container in pod["initContainers"]
        assert container["restartPolicy"] == "Always"


def _status(target: str) -> int:
    with local_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status)


def test_health_listener_serves_health_only_and_follows_the_drain(
    sidecars: SidecarFactory,
) -> None:
    port = free_port()
    health = f"127.0.0.1:{port}"
    sidecar = sidecars.start(f"--health-listen={health}", "--grace=5", "--drain-delay=3")
    assert _status(health) == SERVING
    # The same address answers HTTP/1.1 probes (kubelet httpGet), as the HTTP port does.
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ready\n")
    assert http_get(port, "/metrics")[0] == 404  # health only
    startup, _ = _sidecar_container({"mode": "central"})
    assert http_get(port, startup["startupProbe"]["httpGet"]["path"]) == (200, "ready\n")
    # Only health: the STS service is not on this port.
    with local_channel(health) as channel, pytest.raises(grpc.RpcError) as err:
        sts_pb2_grpc.SecurityTokenServiceStub(channel).GetCallerIdentity(
            sts_pb2.GetCallerIdentityRequest(), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    sidecar.signal(signal.SIGTERM)  # drain: health turns NOT_SERVING on both ports
    assert wait_until(lambda: _status(health) == NOT_SERVING, timeout=2.0)
    assert http_get(port, "/readyz") == (503, "draining\n")
    assert http_get(port, "/healthz") == (200, "ok\n")  # alive until it stops
    assert sidecar.proc.wait(timeout=15) == 0
