"""Over the wire, with default channel options: the largest token AssumeRole issues works as a
bearer token and as x-amz-security-token in a SigV4-signed call (gRPC refuses a call whose
metadata passes 8 KiB), and one character of tags more is refused with PackedPolicyTooLarge."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.client.client import SidecarClient
from sidecar.server.app import Sidecar
from sidecar.server.status import error_info
from sidecar.sts.tokens import MAX_TOKEN_CHARS
from tests.server.conftest import APP_READER, DEMO_KEY
from tests.sts.test_token_size import value_tags

SESSION = "s" * 64  # the longest session name: the longest ARN in the SigV4 credential scope


def target(sidecar: Sidecar) -> str:
    return f"127.0.0.1:{sidecar.grpc_port}"


def assume(sidecar: Sidecar, chars: int) -> sts_pb2.AssumeRoleResponse:
    """AssumeRole signed by alice with ``chars`` characters of tag values (SDK client, default
    channel options)."""
    with SidecarClient(
        target(sidecar), access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
    ) as client:
        return client.assume_role(APP_READER, SESSION, tags=dict(value_tags(chars)))


async def issue(sidecar: Sidecar, chars: int) -> sts_pb2.AssumeRoleResponse | None:
    """The response, or None when refused with PackedPolicyTooLarge."""
    try:
        return await asyncio.to_thread(assume, sidecar, chars)
    except grpc.RpcError as err:
        refused = err
    info = error_info(refused)
    assert info is not None
    assert info.reason == "PackedPolicyTooLarge", refused
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    return None


async def largest(sidecar: Sidecar) -> int:
    low, high = 0, 50 * 256
    assert await issue(sidecar, high) is None
    while high - low > 1:
        mid = (low + high) // 2
        if await issue(sidecar, mid) is not None:
            low = mid
        else:
            high = mid
    return low


def caller_arn(sidecar: Sidecar, **credentials: str) -> str:
    with SidecarClient(target(sidecar), **credentials) as client:  # type: ignore[arg-type]
        return client.get_caller_identity().arn


@pytest.mark.timeout(120)
async def test_the_largest_issued_token_travels_in_metadata(sidecar: Sidecar) -> None:
    chars = await largest(sidecar)
    resp = await issue(sidecar, chars)
    assert resp is not None
    token = resp.credentials.session_token
    assert MAX_TOKEN_CHARS - 2 <= len(token) <= MAX_TOKEN_CHARS
    assert resp.packed_policy_size == 100
    arn = f"arn:aws:sts::111111111111:assumed-role/app-reader/{SESSION}"

    # As a bearer token: `authorization: Bearer <token>`.
    assert await asyncio.to_thread(caller_arn, sidecar, session_token=token) == arn
    async with grpc.aio.insecure_channel(target(sidecar)) as channel:
        authorize = channel.unary_unary(
            "/iamsidecar.v1.Authorizer/Authorize",
            request_serializer=authorizer_pb2.AuthorizeRequest.SerializeToString,
            response_deserializer=authorizer_pb2.AuthorizeResponse.FromString,
        )
        answer = await authorize(
            authorizer_pb2.AuthorizeRequest(
                action="s3:GetObject", resource="arn:aws:s3:::reports/q1.csv"
            ),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    assert answer.decision == types_pb2.ALLOWED
    assert answer.principal_arn == arn

    # As x-amz-security-token beside SigV4's authorization and x-amz-date.
    signed = await asyncio.to_thread(
        caller_arn,
        sidecar,
        access_key_id=resp.credentials.access_key_id,
        secret_access_key=resp.credentials.secret_access_key,
        session_token=token,
    )
    assert signed == arn

    # One character of tags more: refused, with AWS's message.
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(assume, sidecar, chars + 1)
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "PackedPolicyTooLarge"
    assert info.value.details() == (
        "Packed policy consumes 101% of allotted space, please use smaller policy for session."
    )
