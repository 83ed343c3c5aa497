"""mesh.istio: the ServiceEntry and AuthorizationPolicy that send a workload's requests to the
sidecar's Check through Istio (docs/MESH.md). Istio's kinds have no schema in
kubernetes-validate: their fields are checked here by hand."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.helm.conftest import CHART, by_kind, render

MESH = {
    "mode": "sidecar",
    "mesh": {"istio": {"enabled": True, "selector": {"app": "orders"}}},
}


def _sidecar_args(objects: list[dict[str, Any]]) -> list[str]:
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [
        c
        for c in [*pod.get("initContainers", []), *pod["containers"]]
        if c["name"] == "iam-sidecar"
    ]
    args: list[str] = container["args"]
    return args


def test_service_entry_names_the_sidecars_grpc_port_on_loopback() -> None:
    """The provider's service resolves to 127.0.0.1 and the port the sidecar listens on."""
    objects = render({**MESH, "ports": {"grpc": 50061, "http": 9901, "health": 9902}})
    (entry,) = by_kind(objects, "ServiceEntry")
    assert entry["apiVersion"] == "networking.istio.io/v1"
    assert entry["spec"] == {
        "hosts": ["iam-sidecar.local"],
        "exportTo": ["."],
        "resolution": "STATIC",
        "endpoints": [{"address": "127.0.0.1"}],
        "ports": [{"name": "grpc", "number": 50061, "protocol": "GRPC"}],
    }
    assert "--listen=127.0.0.1:50061" in _sidecar_args(objects)


def test_authorization_policy_is_custom_with_the_provider_and_selector() -> None:
    rules = [{"to": [{"operation": {"notPaths": ["/healthz"]}}]}]
    values = {
        "mode": "sidecar",
        "mesh": {"istio": {"enabled": True, "selector": {"app": "orders"}, "provider": "iam",
                           "rules": rules}},
    }  # fmt: skip
    (policy,) = by_kind(render(values), "AuthorizationPolicy")
    assert policy["apiVersion"] == "security.istio.io/v1"
    assert policy["spec"] == {
        "selector": {"matchLabels": {"app": "orders"}},
        "action": "CUSTOM",
        "provider": {"name": "iam"},
        "rules": rules,
    }


def test_default_rules_send_every_request() -> None:
    (policy,) = by_kind(render(MESH), "AuthorizationPolicy")
    assert policy["spec"]["rules"] == [{}]


def test_lint_is_clean_with_mesh_values() -> None:
    report = helm_python.lint(CHART, MESH, strict=True, kube_version="v1.29.0")
    assert not [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"mesh": {"istio": {"enabled": True, "selector": {"app": "orders"}}}},
            "needs mode: sidecar",
        ),
        ({"mode": "sidecar", "mesh": {"istio": {"enabled": True}}}, "mesh.istio.selector"),
    ],
    ids=["central-mode", "no-selector"],
)
def test_refused_configurations_say_why(values: dict[str, Any], message: str) -> None:
    """Central mode (Check answers remote Envoys only over mTLS) and an empty selector (the
    whole namespace) fail the render with a sentence naming the value."""
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


@pytest.mark.parametrize(
    "bad",
    [
        {"mesh": {"istio": {"enabled": "yes"}}},
        {"mesh": {"istio": {"selector": {"app": 1}}}},
        {"mesh": {"istio": {"provider": ""}}},
        {"mesh": {"envoy": {}}},
    ],
    ids=repr,
)
def test_schema_rejects_bad_mesh_values(bad: dict[str, Any]) -> None:
    chart = helm_python.Chart.load(CHART)
    with pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(chart.merge_values(bad))
