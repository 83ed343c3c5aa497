"""Another chart that depends on iam-sidecar and includes its named templates, as docs/HELM.md
shows: the pod it renders is valid and mounts what the dependency renders."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

from tests.helm.conftest import CHART, by_kind

PARENT_DEPLOYMENT = """\
{{- $iam := dict "values" (index .Values "iam-sidecar") "root" $ }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      initContainers:
        {{- include "iam-sidecar.container" $iam | nindent 8 }}
      containers:
        - name: app
          image: shop:1.0
          env:
            {{- include "iam-sidecar.clientEnv" $iam | nindent 12 }}
          volumeMounts:
            {{- include "iam-sidecar.clientVolumeMounts" $iam | nindent 12 }}
      volumes:
        {{- include "iam-sidecar.volumes" $iam | nindent 8 }}
"""


def _parent(tmp_path: Path) -> Path:
    parent = tmp_path / "shop"
    (parent / "templates").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "iam-sidecar")
    chart = {
        "apiVersion": "v2",
        "name": "shop",
        "version": "1.0.0",
        "dependencies": [{"name": "iam-sidecar", "version": "0.1.0"}],
    }
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart))
    values = {
        "iam-sidecar": {
            "mode": "sidecar",
            "sidecar": {"native": True, "demo": {"enabled": False}},
            "world": {"content": "accounts: []\n"},
            "signing": {"existingSecret": "shop-keys"},
        }
    }
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    (parent / "templates" / "deployment.yaml").write_text(PARENT_DEPLOYMENT)
    return parent


def test_a_parent_chart_includes_the_sidecar(tmp_path: Path) -> None:
    parent = _parent(tmp_path)
    rendered = helm_python.Chart.load(parent).render({}, name="shop", namespace="ns")
    objects: list[dict[str, Any]] = [
        doc
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.29.0", strict=True)
    (deployment,) = by_kind(objects, "Deployment")  # the dependency's demo is off
    pod = deployment["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "iam-sidecar:0.1.0"  # the dependency's appVersion, not shop's
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The ConfigMap the sidecar mounts is the one the dependency rendered.
    (world,) = by_kind(objects, "ConfigMap")
    assert volumes["iam-sidecar-world"]["configMap"]["name"] == world["metadata"]["name"]
    assert volumes["iam-sidecar-keys"]["secret"]["secretName"] == "shop-keys"
    (app,) = pod["containers"]
    assert {e["name"] for e in app["env"]} == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    }
    assert app["volumeMounts"][0]["name"] in volumes
