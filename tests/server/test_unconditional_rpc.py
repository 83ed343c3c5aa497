"""Over the wire: sts:GetCallerIdentity is ALLOWED whatever the policies say (STS API:
GetCallerIdentity; docs/SEMANTICS.md §5.2) in Authorize, BatchAuthorize and
SimulateCustomPolicy; and SimulateCustomPolicy's SCP levels (§9.1)."""

from __future__ import annotations

import json

import grpc

from sidecar.api.v1 import authorizer_pb2, types_pb2
from tests.server.test_rpc import AUTHZ, assume, authorize_req, call, failure, signed

REASON = "sts:GetCallerIdentity needs no permission"


async def test_authorize_and_batch(channel: grpc.aio.Channel) -> None:
    """app-reader's policies allow S3 reads only, yet GetCallerIdentity is allowed."""
    token = (await assume(channel)).credentials.session_token
    out = await call(
        channel,
        AUTHZ + "Authorize",
        authorize_req(token, "sts:GetCallerIdentity", "*"),
        authorizer_pb2.AuthorizeResponse,
    )
    assert (out.decision, out.reason, len(out.matched_statements)) == (
        types_pb2.ALLOWED,
        REASON,
        0,
    )
    batch = authorizer_pb2.BatchAuthorizeRequest(
        session_token=token,
        requests=[
            authorizer_pb2.AuthorizeItem(action="sts:GetSessionToken", resource="*"),
            authorizer_pb2.AuthorizeItem(action="sts:getcalleridentity", resource="*"),
        ],
    )
    got = await call(
        channel, AUTHZ + "BatchAuthorize", batch, authorizer_pb2.BatchAuthorizeResponse
    )
    assert [r.decision for r in got.results] == [types_pb2.IMPLICIT_DENY, types_pb2.ALLOWED]


async def test_simulate_under_an_explicit_deny(channel: grpc.aio.Channel) -> None:
    deny = json.dumps(
        {"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}
    )
    req = authorizer_pb2.SimulateCustomPolicyRequest(
        policy_input_list=[deny], action_names=["sts:GetCallerIdentity", "s3:GetObject"]
    )
    out = await signed(
        channel, AUTHZ + "SimulateCustomPolicy", req, authorizer_pb2.SimulateCustomPolicyResponse
    )
    first, second = out.evaluation_results
    assert (first.eval_decision, first.reason, len(first.matched_statements)) == (
        types_pb2.ALLOWED,
        REASON,
        0,
    )
    assert second.eval_decision == types_pb2.EXPLICIT_DENY


async def test_simulate_with_scp_levels(channel: grpc.aio.Channel) -> None:
    """SCPs by level over the wire: the account level allows only EC2, so S3 is denied there;
    both SCP forms together are INVALID_ARGUMENT."""
    allow = json.dumps(
        {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
    )
    ec2 = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        }
    )
    levels = [
        authorizer_pb2.OrderedOrganizationPolicy(service_control_policy_input_list=[allow]),
        authorizer_pb2.OrderedOrganizationPolicy(service_control_policy_input_list=[ec2]),
    ]
    req = authorizer_pb2.SimulateCustomPolicyRequest(
        policy_input_list=[allow],
        ordered_organization_policy_input_list=levels,
        action_names=["ec2:RunInstances", "s3:GetObject"],
    )
    out = await signed(
        channel, AUTHZ + "SimulateCustomPolicy", req, authorizer_pb2.SimulateCustomPolicyResponse
    )
    assert [r.eval_decision for r in out.evaluation_results] == [
        types_pb2.ALLOWED,
        types_pb2.IMPLICIT_DENY,
    ]
    assert [m.policy_id for m in out.evaluation_results[0].matched_statements] == [
        "OrderedOrganizationPolicyInputList.1.1",
        "OrderedOrganizationPolicyInputList.2.1",
        "PolicyInputList.1",
    ]
    req.service_control_policy_input_list.append(allow)
    code, reason, _ = await failure(
        signed(
            channel,
            AUTHZ + "SimulateCustomPolicy",
            req,
            authorizer_pb2.SimulateCustomPolicyResponse,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
