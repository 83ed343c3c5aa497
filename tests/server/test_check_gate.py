"""Who may call Check (docs/API.md §1.5): Envoy only. A CheckRequest states the downstream's
SPIFFE id and headers, so any other caller could claim to be any service.

Servers in tests listen on loopback only, so a non-loopback peer is tested by calling the
servicer with a context that reports one; the loopback case runs over the wire in
test_check_rpc.py (and below, with a forged SPIFFE id)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2

from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as pb
from sidecar.server.app import Sidecar
from sidecar.server.authn import peer_ip
from sidecar.server.ext_authz import CheckService
from sidecar.server.ext_authz_principal import envoy_may_call, is_local_listener, is_local_peer
from sidecar.server.servicers import ServerDeps, Services
from sidecar.server.status import error_info
from tests.server.check_world import (
    ORDERS_SPIFFE,
    check,
    check_request,
    checks,
    make_world,
    serving,
    world_doc,
)
from tests.server.conftest import OffsetClock

ENVOY = "spiffe://cluster.local/ns/istio-system/sa/envoy"


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.200.1.9:5000", True),
        ("ipv6:%5B::1%5D:5000", True),  # how grpc reports IPv6 peers
        ("ipv6:[::1]:5000", True),
        ("ipv6:%5B::ffff:127.0.0.1%5D:5000", True),
        ("unix:", True),
        ("unix:/run/iam-sidecar.sock", True),
        ("unix-abstract:iam-sidecar", True),
        ("ipv4:10.0.0.5:5000", False),
        ("ipv4:128.0.0.1:5000", False),
        ("ipv6:%5B2001:db8::1%5D:5000", False),
        ("ipv6:%5B::ffff:10.0.0.1%5D:5000", False),
        ("ipv4:not-an-ip:5000", False),
        ("", False),
        ("vsock:3:5000", False),
    ],
)
def test_local_peers(peer: str, local: bool) -> None:
    assert is_local_peer(peer) is local


def test_peer_ip() -> None:
    assert peer_ip("ipv4:10.0.0.5:5000") == "10.0.0.5"
    assert peer_ip("ipv6:%5B2001:db8::1%5D:5000") == "2001:db8::1"
    assert peer_ip("unix:/x") is None


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:50051", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("unix:///run/iam-sidecar.sock", True),
        ("unix-abstract:iam", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.1.2.3:50051", False),
        ("iam-sidecar.iam.svc:50051", False),
    ],
)
def test_sidecar_mode_is_a_listener_only_this_host_reaches(address: str, local: bool) -> None:
    assert is_local_listener(address) is local


def test_a_central_sidecar_believes_no_loopback_peer() -> None:
    """With the gRPC port on the pod's address, a loopback peer may be a proxy in the pod
    relaying anyone (Istio's inbound from 127.0.0.6): only a configured mTLS Envoy may call."""
    svid = {"peer_spiffe_id": [ENVOY.encode()]}
    for peer in ("ipv4:127.0.0.6:5000", "unix:"):
        assert envoy_may_call(peer, {}, frozenset(), local_callers=True)
        assert not envoy_may_call(peer, {}, frozenset({ENVOY}), local_callers=False)
        assert envoy_may_call(peer, svid, frozenset({ENVOY}), local_callers=False)


def test_remote_callers_need_a_configured_envoy_identity() -> None:
    remote = "ipv4:10.0.0.5:5000"
    svid = {"peer_spiffe_id": [ENVOY.encode()]}
    assert envoy_may_call(remote, svid, frozenset({ENVOY}))
    assert not envoy_may_call(remote, svid, frozenset())  # none configured: loopback only
    assert not envoy_may_call(remote, svid, frozenset({"spiffe://other/envoy"}))
    assert not envoy_may_call(remote, {}, frozenset({ENVOY}))  # no client certificate
    # an SVID has exactly one URI SAN: two ids are no identity (sidecar/server/authn.py)
    two = {"peer_spiffe_id": [ENVOY.encode(), b"spiffe://x/y"]}
    assert not envoy_may_call(remote, two, frozenset({ENVOY}))


class RemoteContext:
    """A servicer context whose peer is a remote, non-mTLS caller."""

    def __init__(self, peer: str, auth: dict[str, list[bytes]] | None = None) -> None:
        self._peer = peer
        self._auth = auth or {}
        self.status: Any = None

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    async def abort_with_status(self, status: Any) -> None:
        self.status = status
        raise grpc.aio.AbortError()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:  # pragma: no cover
        raise AssertionError(f"unexpected abort {code} {details}")


@pytest.fixture
async def server(clock: OffsetClock) -> AsyncIterator[Sidecar]:
    async with serving(clock) as s:
        yield s


def service_of(server: Sidecar, *, local_callers: bool = True) -> CheckService:
    deps = ServerDeps(
        engine=server.engine, clock=server.clock, entropy=None,  # type: ignore[arg-type]
        metrics=server.metrics,
    )  # fmt: skip
    return CheckService(Services(deps), local_callers=local_callers)


async def test_a_central_sidecar_refuses_a_relayed_loopback_caller(server: Sidecar) -> None:
    """Central mode: an in-pod proxy's loopback connection is PERMISSION_DENIED."""
    service = service_of(server, local_callers=False)
    raw = check_request("/orders/42", spiffe_id=ORDERS_SPIFFE).SerializeToString()
    context = RemoteContext("ipv4:127.0.0.6:40000")
    with pytest.raises(grpc.aio.AbortError):
        await service.check(raw, context)  # type: ignore[arg-type]
    assert context.status.code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_remote_caller_with_a_forged_spiffe_id_is_refused(server: Sidecar) -> None:
    """PERMISSION_DENIED / AccessDenied, before the request is even read."""
    service = service_of(server, local_callers=False)  # a remote peer: the port is not local
    raw = check_request("/orders/42", spiffe_id=ORDERS_SPIFFE).SerializeToString()
    context = RemoteContext("ipv4:10.0.0.5:40000")
    with pytest.raises(grpc.aio.AbortError):
        await service.check(raw, context)  # type: ignore[arg-type]
    assert context.status.code == grpc.StatusCode.PERMISSION_DENIED
    assert "Check is served only to Envoy" in context.status.details
    assert checks(server, "caller_refused") == 1


async def test_a_remote_envoy_over_mtls_is_served(server: Sidecar) -> None:
    """A world listing the Envoy's SPIFFE id lets that mTLS peer call from anywhere."""
    doc = world_doc(envoy_identities=[ENVOY])
    server.engine.swap(make_world(doc), server.engine.snapshot.keys)
    service = service_of(server, local_callers=False)
    raw = check_request("/orders/42", spiffe_id=ORDERS_SPIFFE).SerializeToString()
    context = RemoteContext("ipv4:10.0.0.5:40000", {"peer_spiffe_id": [ENVOY.encode()]})
    answer = await service.check(raw, context)  # type: ignore[arg-type]
    assert pb.CheckResponse.FromString(answer).status.code == code_pb2.OK
    refused = RemoteContext("ipv4:10.0.0.5:40000", {"peer_spiffe_id": [b"spiffe://x/other"]})
    with pytest.raises(grpc.aio.AbortError):
        await service.check(raw, refused)  # type: ignore[arg-type]
    assert refused.status.code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_loopback_caller_is_served_over_the_wire(server: Sidecar) -> None:
    """The sidecar-mode case: Envoy beside the sidecar, on loopback, is believed."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        response = await check(ch, check_request("/orders/42", spiffe_id=ORDERS_SPIFFE))
    assert response.status.code == code_pb2.OK


async def test_error_info_of_a_refused_call_over_the_wire(server: Sidecar) -> None:
    """A call that is not a CheckRequest fails with the AWS code in ErrorInfo."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(ch, b"\x0a\x05\x0a")
    detail = error_info(info.value)
    assert detail is not None
    assert (detail.reason, detail.domain) == ("ValidationError", "iamsidecar")
