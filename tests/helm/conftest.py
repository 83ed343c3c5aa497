"""Rendering helm/iam-sidecar with the real Helm engine (helm-python-sdk, Helm 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "iam-sidecar"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return values


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with `values` (NOTES.txt left out)."""
    import helm_python

    chart = helm_python.Chart.load(CHART)
    manifests = chart.render(values or {}, name="rel", namespace="ns", is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


@pytest.fixture(params=CI_VALUES, ids=lambda p: p.name)
def ci_values(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_values(request.param)
