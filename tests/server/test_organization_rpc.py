"""Authorize over the wire under an SCP Deny (docs/ORGANIZATIONS.md): the demo world's account
placed in an organization whose account-level SCP denies one object."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.identity.load import build_world
from sidecar.server.app import ServeOptions, Sidecar, load_world
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.server.conftest import OffsetClock
from tests.server.test_rpc import AUTHZ, assume, authorize_req, call

DENY_Q3 = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "NoQ3",
            "Effect": "Deny",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::reports/q3.csv",
        }
    ],
}
ORG_ONLY = {
    "accounts": [{"id": "999999999999"}],
    "organization": {
        "id": "o-a1b2c3d4e5",
        "management_account": "999999999999",
        "root": {"id": "r-ab12", "accounts": ["999999999999"]},
        "units": [
            {
                "id": "ou-ab12-11111111",
                "name": "workloads",
                "accounts": [{"id": "111111111111", "scps": ["FullAWSAccess", "DenyQ3"]}],
            }
        ],
        "policies": {"DenyQ3": DENY_Q3},
    },
}


@pytest.fixture
async def org_channel(clock: OffsetClock) -> AsyncIterator[grpc.aio.Channel]:
    opts = ServeOptions(listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    org = build_world(ORG_ONLY, source="org.yaml", secrets=lambda _k, _r: None).organization
    world = dataclasses.replace(load_world(opts), organization=org)
    server = Sidecar(opts, world, KeyRing.generate(CountingEntropy(11)), None, clock=clock)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            yield ch
    finally:
        await server.drain()


async def test_authorize_under_an_scp_deny(org_channel: grpc.aio.Channel) -> None:
    token = (await assume(org_channel)).credentials.session_token
    denied = await call(
        org_channel,
        AUTHZ + "Authorize",
        authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/q3.csv"),
        authorizer_pb2.AuthorizeResponse,
    )
    assert denied.decision == types_pb2.EXPLICIT_DENY
    assert denied.reason.endswith("with an explicit deny in a service control policy")
    assert [(s.policy_id, s.sid) for s in denied.matched_statements] == [("DenyQ3", "NoQ3")]
    allowed = await call(
        org_channel,
        AUTHZ + "Authorize",
        authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/q1.csv"),
        authorizer_pb2.AuthorizeResponse,
    )
    assert allowed.decision == types_pb2.ALLOWED
