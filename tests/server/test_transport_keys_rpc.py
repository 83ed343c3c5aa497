"""aws:SourceIp and aws:SecureTransport over a real socket: Authorize reads them from the
connection only when a decision asks (servicers.LazyTransportKeys), so the answers must be
those of the connection, cached or not, in Authorize and BatchAuthorize."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import yaml

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.demo import WORLD_FILE
from sidecar.server.app import ServeOptions, Sidecar
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.server.check_world import make_world
from tests.server.conftest import APP_READER, OffsetClock
from tests.server.test_rpc import AUTHZ, STS, call, signed

# Reads allowed from loopback only; writes only over TLS (never, on this plaintext port);
# listing only from 10.0.0.0/8 (never, from 127.0.0.1).
TRANSPORT_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::net/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::net/*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::net",
         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::net/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "::1/128"}}},
    ],
}  # fmt: skip


@contextlib.asynccontextmanager
async def serving(host: str = "127.0.0.1") -> AsyncIterator[grpc.aio.Channel]:
    doc: dict[str, Any] = yaml.safe_load(WORLD_FILE.read_text())
    reader = next(r for r in doc["accounts"][0]["roles"] if r["name"] == "app-reader")
    reader["inline_policies"]["Transport"] = TRANSPORT_POLICY
    opts = ServeOptions(listen=f"{host}:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    server = Sidecar(
        opts, make_world(doc), KeyRing.generate(CountingEntropy(11)), None, clock=OffsetClock()
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"{host}:{server.grpc_port}") as channel:
            yield channel
    finally:
        await server.drain()


CASES = [
    ("s3:GetObject", "arn:aws:s3:::net/a", types_pb2.ALLOWED),
    ("s3:PutObject", "arn:aws:s3:::net/a", types_pb2.IMPLICIT_DENY),
    ("s3:ListBucket", "arn:aws:s3:::net", types_pb2.IMPLICIT_DENY),
    ("s3:DeleteObject", "arn:aws:s3:::net/a", types_pb2.IMPLICIT_DENY),  # not from ::1
    ("s3:GetObject", "arn:aws:s3:::reports/q1.csv", types_pb2.ALLOWED),  # reads neither key
]


async def test_decisions_see_the_connections_transport_keys_cached_or_not() -> None:
    async with serving() as channel:
        req = sts_pb2.AssumeRoleRequest(role_arn=APP_READER, role_session_name="net")
        token = (
            await signed(channel, STS + "AssumeRole", req, sts_pb2.AssumeRoleResponse)
        ).credentials.session_token
        for attempt in ("first", "cached"):
            for action, resource, want in CASES:
                got = await call(
                    channel,
                    AUTHZ + "Authorize",
                    authorizer_pb2.AuthorizeRequest(
                        session_token=token, action=action, resource=resource
                    ),
                    authorizer_pb2.AuthorizeResponse,
                )
                assert got.decision == want, (attempt, action, resource)
        batch = await call(
            channel,
            AUTHZ + "BatchAuthorize",
            authorizer_pb2.BatchAuthorizeRequest(
                session_token=token,
                requests=[authorizer_pb2.AuthorizeItem(action=a, resource=r) for a, r, _ in CASES],
            ),
            authorizer_pb2.BatchAuthorizeResponse,
        )
        assert [r.decision for r in batch.results] == [want for _, _, want in CASES]


async def test_an_ipv6_peer_is_its_address() -> None:
    """grpc reports an IPv6 peer as ``ipv6:%5B::1%5D:port``: aws:SourceIp is ``::1``."""
    async with serving("[::1]") as channel:
        req = sts_pb2.AssumeRoleRequest(role_arn=APP_READER, role_session_name="v6")
        token = (
            await signed(channel, STS + "AssumeRole", req, sts_pb2.AssumeRoleResponse)
        ).credentials.session_token
        decisions = []
        for action in ("s3:DeleteObject", "s3:GetObject"):
            got = await call(
                channel,
                AUTHZ + "Authorize",
                authorizer_pb2.AuthorizeRequest(
                    session_token=token, action=action, resource="arn:aws:s3:::net/a"
                ),
                authorizer_pb2.AuthorizeResponse,
            )
            decisions.append(got.decision)
    assert decisions == [types_pb2.ALLOWED, types_pb2.IMPLICIT_DENY]
