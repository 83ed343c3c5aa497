"""helm/iam-sidecar rendered by the real Helm engine and validated against Kubernetes' schemas."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.helm.conftest import CHART, CI_VALUES, by_kind, load_values, render

# The chart claims kubeVersion >=1.29: validate against the oldest and the newest schemas known.
KUBE_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _sidecar(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = [
        c for c in _containers(deployment["spec"]["template"]["spec"]) if c["name"] == "iam-sidecar"
    ]
    return container


def test_ci_values_files_exist() -> None:
    names = {p.name for p in CI_VALUES}
    assert {
        "central-values.yaml",
        "sidecar-values.yaml",
        "native-sidecar-values.yaml",
        "verify-only-values.yaml",
        "everything-values.yaml",
    } <= names


def test_version_and_app_version_follow_the_project() -> None:
    project = tomllib.loads((CHART.parents[1] / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == project["version"]
    assert chart["appVersion"] == project["version"]
    assert chart["kubeVersion"] == ">=1.29.0-0"


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults"
)
def test_lint_is_clean(values_file: Path | None) -> None:
    values = load_values(values_file) if values_file else None
    report = helm_python.lint(CHART, values, strict=True, kube_version="v1.29.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems
    assert not report["errors"]


def test_every_object_is_valid_kubernetes(ci_values: dict[str, Any]) -> None:
    objects = render(ci_values)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # no schema in kubernetes-validate: checked field by field below
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_central_mode_deployment_and_service() -> None:
    objects = render(load_values(CHART / "ci" / "central-values.yaml"))
    (service,) = by_kind(objects, "Service")
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {
        ("grpc", 50051),
        ("http", 9901),
    }
    container = _sidecar(objects)
    assert container["image"] == "iam-sidecar:0.1.0"
    assert "--listen=0.0.0.0:50051" in container["args"]
    assert "--http-listen=0.0.0.0:9901" in container["args"]
    # Probes: gRPC health on the plaintext health-only listener (no client certificate).
    assert "--health-listen=0.0.0.0:9902" in container["args"]
    assert container["readinessProbe"]["grpc"] == {"port": 9902}
    assert container["livenessProbe"]["grpc"] == {"port": 9902}


def test_world_configmap_is_mounted_as_a_directory_never_subpath() -> None:
    objects = render(load_values(CHART / "ci" / "central-values.yaml"))
    (world,) = [
        c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-world")
    ]
    assert "app-reader" in world["data"]["world.yaml"]
    container = _sidecar(objects)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["iam-sidecar-world"]["mountPath"] == "/etc/iam-sidecar/world"
    assert all("subPath" not in m for m in container["volumeMounts"])
    assert "--config=/etc/iam-sidecar/world/world.yaml" in container["args"]
    (deployment,) = by_kind(objects, "Deployment")
    assert (
        "annotations" not in deployment["spec"]["template"]["metadata"]
    )  # checksum off by default


def test_hardened_security_context() -> None:
    objects = render(load_values(CHART / "ci" / "central-values.yaml"))
    sc = _sidecar(objects)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_keys_from_an_existing_secret_for_verify_only_replicas() -> None:
    objects = render(load_values(CHART / "ci" / "verify-only-values.yaml"))
    assert not by_kind(objects, "Secret")
    assert not by_kind(objects, "ConfigMap")
    container = _sidecar(objects)
    assert "--keys=/etc/iam-sidecar/keys/public.json" in container["args"]
    (deployment,) = by_kind(objects, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["iam-sidecar-keys"]["secret"]["secretName"] == "iam-sidecar-verify-keys"
    assert volumes["iam-sidecar-world"]["configMap"]["name"] == "iam-sidecar-world"


def test_sidecar_mode_stays_on_loopback_and_gives_the_app_its_environment() -> None:
    objects = render(load_values(CHART / "ci" / "sidecar-values.yaml"))
    assert not by_kind(objects, "Service")
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    container = _sidecar(objects)
    assert "--listen=127.0.0.1:50051" in container["args"]
    assert "--http-listen=127.0.0.1:9901" in container["args"]
    # Only the health-only listener is on the pod IP, for kubelet probes.
    assert [p["containerPort"] for p in container["ports"]] == [9902]
    assert "--health-listen=0.0.0.0:9902" in container["args"]
    assert container["readinessProbe"]["grpc"] == {"port": 9902}
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    env = {e["name"]: e["value"] for e in app["env"]}
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:9901/v1/credentials"
    token_file = Path(env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
    (mount,) = app["volumeMounts"]
    assert mount["mountPath"] == str(token_file.parent)
    volumes = {v["name"]: v for v in pod["volumes"]}
    (source,) = volumes[mount["name"]]["projected"]["sources"]
    assert source["serviceAccountToken"]["path"] == token_file.name
    assert source["serviceAccountToken"]["audience"] == "pods.eks.amazonaws.com"
    assert volumes["iam-sidecar-jwks"]["configMap"]["name"] == "rel-iam-sidecar-jwks"


def test_native_sidecar_is_an_init_container_that_restarts_always() -> None:
    objects = render(load_values(CHART / "ci" / "native-sidecar-values.yaml"))
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == "iam-sidecar"
    assert init["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["app"]


def test_everything_enabled() -> None:
    objects = render(load_values(CHART / "ci" / "everything-values.yaml"))
    kinds = {o["kind"] for o in objects}
    assert {
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
        "Secret",
    } <= kinds
    (deployment,) = by_kind(objects, "Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    assert "checksum/world" in deployment["spec"]["template"]["metadata"]["annotations"]
    container = _sidecar(objects)
    assert "--workers=2" in container["args"]
    assert f"--metrics-dir={METRICS_DIR}" in container["args"]
    assert "--http-tls-cert=/etc/iam-sidecar/tls/tls.crt" in container["args"]
    # The ServiceMonitor (a custom resource kubernetes-validate has no schema for), by hand.
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    assert (
        monitor["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "http",
        "path": "/metrics",
        "interval": "30s",
        "scheme": "https",
        "tlsConfig": {"insecureSkipVerify": True},
    }


METRICS_DIR = "/var/run/iam-sidecar/metrics"


@pytest.mark.parametrize(
    ("metrics_dir", "empty_dir"),
    [
        (None, {"medium": "Memory", "sizeLimit": "64Mi"}),
        ({"medium": "", "sizeLimit": ""}, {}),
        ({"sizeLimit": "1Gi"}, {"medium": "Memory", "sizeLimit": "1Gi"}),
    ],
    ids=["defaults", "disk-unlimited", "bigger"],
)
def test_workers_share_metrics_through_an_empty_dir(
    metrics_dir: dict[str, str] | None, empty_dir: dict[str, str]
) -> None:
    """workers > 1: --metrics-dir on a writable emptyDir (the root filesystem is read-only)."""
    values: dict[str, Any] = {"workers": 3}
    if metrics_dir is not None:
        values["metricsDir"] = metrics_dir
    objects = render(values)
    container = _sidecar(objects)
    assert f"--metrics-dir={METRICS_DIR}" in container["args"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == METRICS_DIR]
    assert not mount.get("readOnly")
    (deployment,) = by_kind(objects, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]] == {"name": mount["name"], "emptyDir": empty_dir}
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)


def test_env_and_extra_volumes_reach_the_sidecar() -> None:
    """env (e.g. a world's secret_env from a Secret) and extra volumes/mounts (e.g. its
    secret_file) are rendered as given, into a valid Deployment."""
    env = [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "alice", "key": "secret"}}}]
    volume = {"name": "alice", "secret": {"secretName": "alice"}}
    mount = {"name": "alice", "mountPath": "/etc/alice", "readOnly": True}
    objects = render({"env": env, "extraVolumes": [volume], "extraVolumeMounts": [mount]})
    container = _sidecar(objects)
    assert container["env"] == env
    assert mount in container["volumeMounts"]
    (deployment,) = by_kind(objects, "Deployment")
    assert volume in deployment["spec"]["template"]["spec"]["volumes"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    assert "env" not in _sidecar(render())


def test_one_worker_has_no_metrics_dir() -> None:
    container = _sidecar(render())
    assert not [a for a in container["args"] if a.startswith("--metrics-dir")]
    assert METRICS_DIR not in {m["mountPath"] for m in container["volumeMounts"]}


def test_off_by_default() -> None:
    kinds = {o["kind"] for o in render()}
    assert kinds == {"Deployment", "Service", "ServiceAccount", "Pod"}  # Pod: the helm test


def test_helm_test_pod_checks_health() -> None:
    (pod,) = by_kind(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["command"][-1] == "http://rel-iam-sidecar:9901/readyz"


@pytest.mark.parametrize(
    "bad",
    [
        {"workers": "two"},
        {"replicaCount": -1},
        {"mode": "daemonset"},
        {"unknownKey": True},
        {"world": {"contents": "typo"}},
        {"sidecar": {"native": "yes"}},
        {"metricsDir": {"medium": "Disk"}},
        {"metricsDir": {"sizeLimit": "lots"}},
        {"env": [{"value": "no name"}]},
        {"extraVolumeMounts": [{"name": "no-path"}]},
    ],
    ids=repr,
)
def test_schema_rejects_bad_values(bad: dict[str, Any]) -> None:
    chart = helm_python.Chart.load(CHART)
    with pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(chart.merge_values(bad))
    with pytest.raises(helm_python.HelmError):
        chart.render(bad, name="rel", namespace="ns")


def test_schema_accepts_every_ci_values_file(ci_values: dict[str, Any]) -> None:
    chart = helm_python.Chart.load(CHART)
    chart.validate_schema(chart.merge_values(ci_values))
