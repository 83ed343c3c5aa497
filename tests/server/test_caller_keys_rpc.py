"""Caller context keys over a real socket: a key the sidecar owns is INVALID_ARGUMENT
(ErrorInfo ValidationError, the key named), for Authorize and for a whole BatchAuthorize;
request keys still decide; SimulateCustomPolicy takes its context as given."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.identity.model import World
from sidecar.policy.model import PolicyKind
from sidecar.server.app import ServeOptions, Sidecar, load_world
from sidecar.sts.keys import KeyRing
from tests.engine.test_caller_keys import ORG_ID, ORG_OBJECT, _with_org_bucket, _with_tag_rule
from tests.fakes import CountingEntropy
from tests.server.conftest import APP_READER, OffsetClock
from tests.server.test_rpc import AUTHZ, assume, authorize_req, call, failure, signed
from tests.sts.world import _compile, allow, doc

ORDER = "arn:aws:orders:::order/1"
ALICE = "arn:aws:iam::111111111111:user/alice"


def _alice_may_simulate(world: World) -> World:
    """alice's own policies also allow iam:SimulateCustomPolicy (AWS requires it)."""
    alice = world.users_by_arn[ALICE]
    extra = _compile(doc(allow("iam:SimulateCustomPolicy")), PolicyKind.IDENTITY, "simulate")
    alice = dataclasses.replace(alice, inline_policies={**alice.inline_policies, "sim": extra})
    acct = world.accounts[alice.account]
    acct = dataclasses.replace(acct, users={**acct.users, alice.name.lower(): alice})
    keys = {k: (alice if u.arn == ALICE else u, key) for k, (u, key) in world.access_keys.items()}
    return dataclasses.replace(
        world,
        accounts={**world.accounts, acct.account_id: acct},
        users_by_arn={**world.users_by_arn, ALICE: alice},
        access_keys=keys,
    )


@pytest.fixture
async def sidecar(clock: OffsetClock) -> AsyncIterator[Sidecar]:
    """The demo world plus a bucket open to one organization, a tagging rule on app-reader
    that reads aws:RequestTag/team, and alice allowed to simulate."""
    opts = ServeOptions(listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    world = _alice_may_simulate(_with_tag_rule(_with_org_bucket(load_world(opts))))
    server = Sidecar(opts, world, KeyRing.generate(CountingEntropy(12)), None, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.drain()


def entry(key: str, *values: str, kind: int = types_pb2.STRING) -> types_pb2.ContextEntry:
    return types_pb2.ContextEntry(key=key, values=values, type=kind)  # type: ignore[arg-type]


async def authorize(
    channel: grpc.aio.Channel, token: str, action: str, resource: str, *context: Any
) -> authorizer_pb2.AuthorizeResponse:
    response: authorizer_pb2.AuthorizeResponse = await call(
        channel,
        AUTHZ + "Authorize",
        authorize_req(token, action, resource, context=list(context)),
        authorizer_pb2.AuthorizeResponse,
    )
    return response


async def test_authorize_refuses_a_sidecar_key(channel: grpc.aio.Channel) -> None:
    """aws:PrincipalOrgID from the caller, in any case, is INVALID_ARGUMENT naming the key;
    without it the org-guarded bucket stays closed."""
    token = (await assume(channel)).credentials.session_token
    for given in ("aws:PrincipalOrgID", "AWS:PRINCIPALORGID"):
        code, reason, message = await failure(
            authorize(channel, token, "s3:GetObject", ORG_OBJECT, entry(given, ORG_ID))
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        assert "The context key aws:PrincipalOrgID is reserved for the sidecar" in message
    plain = await authorize(channel, token, "s3:GetObject", ORG_OBJECT)
    assert plain.decision == types_pb2.IMPLICIT_DENY
    code, reason, message = await failure(
        authorize(channel, token, "s3:GetObject", ORG_OBJECT, entry("saml:sub", "alice"))
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
    assert "saml:sub" in message


async def test_batch_with_one_refused_item_is_refused_whole(channel: grpc.aio.Channel) -> None:
    """One item carrying aws:SourceIp refuses the whole BatchAuthorize: no partial results."""
    token = (await assume(channel)).credentials.session_token
    ok = authorizer_pb2.AuthorizeItem(action="s3:GetObject", resource="arn:aws:s3:::reports/a")
    bad = authorizer_pb2.AuthorizeItem(
        action="s3:GetObject",
        resource="arn:aws:s3:::reports/b",
        context=[entry("aws:SourceIp", "10.0.0.1", kind=types_pb2.IP)],
    )
    for items in ([ok, bad], [bad, ok]):
        batch = authorizer_pb2.BatchAuthorizeRequest(session_token=token, requests=items)
        code, reason, message = await failure(
            call(channel, AUTHZ + "BatchAuthorize", batch, authorizer_pb2.BatchAuthorizeResponse)
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        assert "The context key aws:SourceIp is reserved" in message
    good = authorizer_pb2.BatchAuthorizeRequest(session_token=token, requests=[ok, ok])
    out = await call(channel, AUTHZ + "BatchAuthorize", good, authorizer_pb2.BatchAuthorizeResponse)
    assert [r.decision for r in out.results] == [types_pb2.ALLOWED, types_pb2.ALLOWED]


async def test_request_keys_still_decide(channel: grpc.aio.Channel) -> None:
    """aws:RequestTag/team and aws:TagKeys from the caller meet the session's tags."""
    token = (await assume(channel)).credentials.session_token
    keys = entry("aws:TagKeys", "team", kind=types_pb2.STRING_LIST)
    for team, expected in (("payments", types_pb2.ALLOWED), ("security", types_pb2.IMPLICIT_DENY)):
        out = await authorize(
            channel, token, "orders:TagOrder", ORDER, entry("aws:RequestTag/team", team), keys
        )
        assert out.decision == expected, team
    with_service_key = await authorize(
        channel, token, "s3:GetObject", "arn:aws:s3:::reports/a", entry("s3:prefix", "a")
    )
    assert with_service_key.decision == types_pb2.ALLOWED


async def test_simulate_takes_its_context_as_given(channel: grpc.aio.Channel) -> None:
    """SimulateCustomPolicy is not concerned: aws:PrincipalOrgID in context_entries decides."""
    policy = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::org-shared/*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}},
        },
    }
    answers = []
    for org in (ORG_ID, "o-other"):
        req = authorizer_pb2.SimulateCustomPolicyRequest(
            policy_input_list=[],
            resource_policy=json.dumps(policy),
            caller_arn=APP_READER,
            action_names=["s3:GetObject"],
            resource_arns=[ORG_OBJECT],
            context_entries=[entry("aws:PrincipalOrgID", org)],
        )
        out = await signed(
            channel,
            AUTHZ + "SimulateCustomPolicy",
            req,
            authorizer_pb2.SimulateCustomPolicyResponse,
        )
        answers.append(out.evaluation_results[0].eval_decision)
    assert answers == [types_pb2.ALLOWED, types_pb2.IMPLICIT_DENY]
