"""SigV4 refusals over the wire: a running sidecar (127.0.0.1, ephemeral port) refuses a
signature with one digit changed and an empty session-token header, with the AWS code and
message in the status (docs/SERVER.md)."""

from __future__ import annotations

import grpc

from sidecar.api.v1 import sts_pb2
from sidecar.client.sigv4 import sign_call
from sidecar.server.sigv4 import MISMATCH
from tests.server.conftest import DEMO_KEY
from tests.server.test_rpc import STS, call, failure
from tests.server.test_sigv4 import Metadata, botocore_metadata, flip_last_signature_digit

PATH = STS + "GetCallerIdentity"
BODY = sts_pb2.GetCallerIdentityRequest().SerializeToString()


async def test_a_signature_with_its_last_digit_changed_is_refused(
    channel: grpc.aio.Channel,
) -> None:
    """The genuine call is answered; the same call with the signature's last hex digit
    changed is UNAUTHENTICATED / SignatureDoesNotMatch with AWS's message."""
    signed = sign_call(PATH, BODY, access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1])
    metadata: Metadata = list(signed)
    ok = await call(channel, PATH, BODY, sts_pb2.GetCallerIdentityResponse, list(signed))
    assert ok.arn == "arn:aws:iam::111111111111:user/alice"
    bad = flip_last_signature_digit(metadata)
    code, reason, message = await failure(
        call(channel, PATH, BODY, sts_pb2.GetCallerIdentityResponse, bad)  # type: ignore[arg-type]
    )
    assert (code, reason, message) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SignatureDoesNotMatch",
        MISMATCH,
    )


async def test_an_empty_security_token_is_refused(channel: grpc.aio.Channel) -> None:
    """A call signed with alice's long-term key and a signed, empty x-amz-security-token is
    refused as malformed before any key or token is looked up."""
    metadata = botocore_metadata(
        {"host": "iam-sidecar", "x-amz-security-token": ""},
        key_id=DEMO_KEY[0],
        secret=DEMO_KEY[1],
        path=PATH,
        body=BODY,
    )
    assert ("x-amz-security-token", "") in metadata
    code, reason, message = await failure(
        call(channel, PATH, BODY, sts_pb2.GetCallerIdentityResponse, metadata)  # type: ignore[arg-type]
    )
    assert (code, reason, message) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SignatureDoesNotMatch",
        "The 'x-amz-security-token' header is empty.",
    )
