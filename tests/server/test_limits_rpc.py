"""Over the wire: oversized Authorize requests are refused (INVALID_ARGUMENT, ValidationError in
AWS's wording) and leave nothing in the caches; a non-canonical token is refused as malformed."""

from __future__ import annotations

import grpc

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.server.app import Sidecar
from tests.server.test_rpc import AUTHZ, assume, authorize_req, call, failure


async def authorize(channel: grpc.aio.Channel, req: authorizer_pb2.AuthorizeRequest) -> object:
    return await call(channel, AUTHZ + "Authorize", req, authorizer_pb2.AuthorizeResponse)


async def test_oversized_requests_are_refused_and_not_cached(
    sidecar: Sidecar, channel: grpc.aio.Channel
) -> None:
    token = (await assume(channel)).credentials.session_token
    engine = sidecar.engine
    entry = types_pb2.ContextEntry(key="ex:k", values=["v" * 2049], type=types_pb2.STRING)
    oversized = [
        authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/" + "x" * 2028),
        authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/" + "x" * (1 << 20)),
        authorize_req(token, "s3:" + "a" * 126, "arn:aws:s3:::reports/q1.csv"),
        authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/q1.csv", context=[entry]),
    ]
    fields = ["resource", "resource", "action", "context.1.member.values.1.member"]
    for req, field in zip(oversized, fields, strict=True):
        code, reason, message = await failure(authorize(channel, req))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        assert message.startswith("1 validation error detected: Value '")
        assert f"' at '{field}' failed to satisfy constraint: Member must have length" in message
        assert len(message) < 400
    assert len(engine.decisions) == 0
    assert engine.decisions.stats.misses == 0
    ok = authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/" + "x" * 2027)
    answer = await authorize(channel, ok)
    assert answer.decision == types_pb2.ALLOWED  # type: ignore[attr-defined]
    assert len(engine.decisions) == 1


async def test_a_token_with_characters_added_is_refused(channel: grpc.aio.Channel) -> None:
    """`token + "!!!!"` was accepted as the same session (another cache key each time)."""
    token = (await assume(channel)).credentials.session_token
    for changed in (token + "!!!!", token + "=", token[:-1] + "\n" + token[-1]):
        code, reason, message = await failure(
            authorize(channel, authorize_req(changed, "s3:GetObject", "arn:aws:s3:::reports/a"))
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "InvalidClientTokenId")
        assert message == "The security token included in the request is invalid."
