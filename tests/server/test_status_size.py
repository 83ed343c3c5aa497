"""A refusal always reaches the client with its AWS code, however much of the input its message
echoes: a client refuses trailers over 8 KiB, so messages are bounded (server/status.py)."""

from __future__ import annotations

import json

import grpc
import pytest

from sidecar.api.v1 import authorizer_pb2
from sidecar.server.status import MAX_MESSAGE_BYTES, bounded_message, error_info
from tests.server.test_simulate_rpc import simulate


def test_short_messages_are_kept_whole() -> None:
    assert bounded_message("Rate exceeded") == "Rate exceeded"
    exact = "x" * MAX_MESSAGE_BYTES
    assert bounded_message(exact) == exact


@pytest.mark.parametrize("char", ["a", "é", "€", "𝄞"])
def test_long_messages_keep_start_and_end_within_the_limit(char: str) -> None:
    message = "Resource " + char * 50_000 + ' must be in ARN format or "*".'
    bounded = bounded_message(message)
    assert len(bounded.encode()) <= MAX_MESSAGE_BYTES
    assert bounded.startswith("Resource " + char)
    assert bounded.endswith('must be in ARN format or "*".')
    assert "characters left out" in bounded


async def test_huge_malformed_policy_is_refused_with_its_code(channel: grpc.aio.Channel) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "x" * 120_000}],
    }
    request = authorizer_pb2.SimulateCustomPolicyRequest(
        policy_input_list=[json.dumps(document)],
        action_names=["s3:GetObject"],
        resource_arns=["arn:aws:s3:::reports/a"],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await simulate(channel, request)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # not "Stream removed"
    info = error_info(err)
    assert info is not None
    assert info.reason == "MalformedPolicyDocument"
    details = err.details() or ""
    assert details.startswith("Resource xxx")
    assert details.endswith('must be in ARN format or "*".')
    assert len(details.encode()) <= MAX_MESSAGE_BYTES
