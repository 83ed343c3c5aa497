"""The configuration the chart renders runs: the world ConfigMap, the key-set Secret and the
container's arguments, laid out as the pod sees them, start a sidecar that serves health,
AssumeRole and Authorize."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.api.v1 import types_pb2
from tests.helm.conftest import CHART, by_kind, load_values, render
from tests.server.process.conftest import (
    SidecarFactory,
    child_env,
    free_port,
    http_get,
    local_channel,
    metric_value,
    run_cli,
)

ALICE_KEY = "AKIACHARTALICE000001"
ALICE_SECRET = "ChartTestSecretForAliceNotForProduction0"
APP_READER = "arn:aws:iam::111111111111:role/apps/app-reader"


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[SidecarFactory]:
    factory = SidecarFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


def _container_env(objects: list[dict[str, Any]], secrets: dict[tuple[str, str], str]) -> dict:
    """The container's environment as the kubelet sets it: literal values, and secretKeyRef
    values from ``secrets`` ((secret name, key) -> value), the Secrets the operator created."""
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def _lay_out_pod_files(objects: list[dict[str, Any]], pod_root: Path) -> list[str]:
    """Write each mounted ConfigMap/Secret under pod_root as the kubelet would (one file per
    key in the mount's directory); return the container's args with paths under pod_root."""
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sources = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("ConfigMap", "Secret")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert "subPath" not in mount
        volume = volumes[mount["name"]]
        directory = pod_root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            for key, text in sources[volume["configMap"]["name"]]["data"].items():
                (directory / key).write_text(text)
        elif "secret" in volume:
            for key, b64 in sources[volume["secret"]["secretName"]]["data"].items():
                (directory / key).write_bytes(base64.b64decode(b64))
    # The emptyDirs (/tmp, the workers' metrics) are directories of the pod too.
    return [
        arg.replace("=/etc/", f"={pod_root}/etc/").replace("=/var/run/", f"={pod_root}/var/run/")
        for arg in container["args"]
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_rendered_central_configuration_serves(
    sidecars: SidecarFactory, tmp_path: Path, workers: int
) -> None:
    """With workers: 2 the rendered --metrics-dir is used too (its emptyDir laid out)."""
    generated = run_cli("keys", "generate")
    assert generated.returncode == 0, generated.stderr
    values = load_values(CHART / "ci" / "central-values.yaml")
    values["signing"] = {"keySet": generated.stdout}
    values["workers"] = workers
    objects = render(values)
    args = _lay_out_pod_files(objects, tmp_path / "pod")

    assert args[0] == "serve"
    # The rendered listen addresses are the pod IP's (0.0.0.0); tests listen on loopback only,
    # so those three are replaced and everything else is passed as rendered.
    listeners = ("--listen=", "--http-listen=", "--health-listen=")
    assert {a.split("=")[0] + "=" for a in args if a.startswith(listeners)} == set(listeners)
    health = f"127.0.0.1:{free_port()}"
    rest = [a for a in args[1:] if not a.startswith(listeners)] + [f"--health-listen={health}"]
    assert f"--config={tmp_path}/pod/etc/iam-sidecar/world/world.yaml" in rest
    assert f"--keys={tmp_path}/pod/etc/iam-sidecar/keys/keys.json" in rest
    metrics_dir = tmp_path / "pod/var/run/iam-sidecar/metrics"
    assert (f"--metrics-dir={metrics_dir}" in rest) is (workers > 1)
    metrics_dir.mkdir(parents=True, exist_ok=True)  # the kubelet makes the emptyDir
    # alice's secret reaches the process only as the rendered env declares it.
    env = _container_env(objects, {("iam-sidecar-alice", "secret"): ALICE_SECRET})
    assert env == {"IAM_SIDECAR_ALICE_SECRET": ALICE_SECRET}
    sidecar = sidecars.start(*rest, env=child_env(**env))

    assert http_get(sidecar.http_port, "/healthz")[0] == 200
    assert http_get(sidecar.http_port, "/readyz")[0] == 200
    with local_channel(health) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    assert "NO SIGNING KEYS CONFIGURED" not in sidecar.log_text()
    with sidecar.client(access_key_id=ALICE_KEY, secret_access_key=ALICE_SECRET) as client:
        creds = client.assume_role(APP_READER, "from-the-chart").credentials
    with sidecar.client(session_token=creds.session_token) as client:
        allowed = client.authorize("s3:GetObject", "arn:aws:s3:::reports/q3.csv")
        denied = client.authorize("s3:PutObject", "arn:aws:s3:::reports/q3.csv")
    assert allowed.decision == types_pb2.ALLOWED
    assert denied.decision == types_pb2.IMPLICIT_DENY
    if workers > 1:  # the scrape sums both workers' files, whichever worker answers
        assert any(metrics_dir.glob("counter_*.db"))
        text = http_get(sidecar.http_port, "/metrics")[1]
        assert metric_value(text, "iam_sidecar_decisions_total", decision="ALLOWED") == 1.0
