"""The gRPC metrics kept around every method handler (MetricsInterceptor.handlers, not a grpc
interceptor): every unary method of the server is counted, health's included, with the
go-grpc-prometheus names and labels; refusals by their code; unknown methods not at all."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.api.v1 import authorizer_pb2
from sidecar.server.app import Sidecar
from tests.server.test_rpc import AUTHZ, http_get

LABELS = 'grpc_method="{m}",grpc_service="{s}",grpc_type="unary"'


def sample(name: str, method: str, service: str, code: str | None = None) -> str:
    labels = LABELS.format(m=method, s=service)
    if code:
        labels = f'grpc_code="{code}",{labels}'
    return f"{name}{{{labels}}}"


async def test_every_unary_method_is_counted(sidecar: Sidecar, channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(2):
        await health.Check(health_pb2.HealthCheckRequest(service=""))
    raw = {"request_serializer": None, "response_deserializer": None}
    refused = channel.unary_unary(AUTHZ + "Authorize", **raw)
    no_token = authorizer_pb2.AuthorizeRequest(action="s3:GetObject", resource="arn:aws:s3:::r/a")
    with pytest.raises(grpc.aio.AioRpcError) as info:  # no token: counted under its code
        await refused(no_token.SerializeToString(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    unknown = channel.unary_unary("/nope.Service/Method", **raw)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await unknown(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    _, text = await http_get(sidecar.http_port, "/metrics")
    health_labels = ("Check", "grpc.health.v1.Health")
    assert f"{sample('grpc_server_started_total', *health_labels)} 2.0" in text
    assert f"{sample('grpc_server_handled_total', *health_labels, 'OK')} 2.0" in text
    assert f"{sample('grpc_server_handling_seconds_count', *health_labels)} 2.0" in text
    authz = ("Authorize", "iamsidecar.v1.Authorizer")
    assert f"{sample('grpc_server_handled_total', *authz, 'UNAUTHENTICATED')} 1.0" in text
    assert "nope.Service" not in text
