"""Signing gRPC calls to the sidecar with AWS Signature Version 4 (the caller's side).

The protocol (``sidecar.server.sigv4`` verifies it):

- The signed request is ``POST https://iam-sidecar{method_path}``: the method is POST, the path
  is the gRPC method path (``/iamsidecar.v1.SecurityTokenService/AssumeRole``), there is no
  query string, and the payload is the serialized protobuf request message (not the gRPC
  length-prefixed frame).
- The signed headers are ``content-type: application/grpc``, ``host: iam-sidecar`` (fixed: a gRPC
  server does not see ``:authority`` in its metadata, so neither side uses the real one),
  ``x-amz-date`` and, for temporary credentials, ``x-amz-security-token``.
- The credential scope names the service (``sts`` by default) and the region (``us-east-1`` by
  default); the server accepts whatever service and region the scope states.
- The call carries, as gRPC metadata with lower-case keys: ``authorization`` (the whole
  ``AWS4-HMAC-SHA256 Credential=AKIA.../20270115/us-east-1/sts/aws4_request,
  SignedHeaders=content-type;host;x-amz-date, Signature=<64 hex>``), ``x-amz-date``
  (``20270115T080000Z``) and, with temporary credentials, ``x-amz-security-token``.

The signature is computed by botocore's ``SigV4Auth`` (canonical request, string to sign,
signing key), as the server does. ``SigV4Auth.add_auth`` always signs with the current time
(``botocore.auth.get_current_datetime()``) and overwrites any ``X-Amz-Date`` already on the
request, so it cannot sign at a chosen instant. ``sign_call`` therefore runs the same steps as
``add_auth`` with its own timestamp: it sets ``x-amz-date`` (and the security token) on the
request and ``request.context["timestamp"]``, then calls the signer's public
``canonical_request``, ``string_to_sign``, ``signature`` and ``scope``. At equal instants the
result is identical to ``add_auth``'s (the tests check it). Nothing here logs; botocore's own
debug logging of the signature happens only in ``add_auth``, which is not called.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
HOST = "iam-sidecar"
CONTENT_TYPE = "application/grpc"
DEFAULT_REGION = "us-east-1"
DEFAULT_SERVICE = "sts"

# /package.Service/Method: two segments, no query, no dot segments (the path is signed as is).
_METHOD_PATH = re.compile(r"/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SCOPE_PART = re.compile(r"[a-z0-9-]{1,64}")


def is_method_path(method_path: str) -> bool:
    """Whether ``method_path`` is a gRPC method path this protocol can sign."""
    return bool(_METHOD_PATH.fullmatch(method_path)) and not any(
        part in (".", "..") for part in method_path.split("/")
    )


def signing_request(method_path: str, body: bytes, headers: dict[str, str]) -> AWSRequest:
    """The HTTP request that stands for a gRPC call in the signature."""
    return AWSRequest(
        method="POST", url=f"https://{HOST}{method_path}", data=bytes(body), headers=headers
    )


def sign_call(
    method_path: str,
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str = DEFAULT_REGION,
    service: str = DEFAULT_SERVICE,
    now: datetime | None = None,
) -> list[tuple[str, str]]:
    """The metadata that signs a gRPC call: ``authorization``, ``x-amz-date`` and, when
    ``session_token`` is given (non-empty), ``x-amz-security-token``.

    ``body`` is the serialized request message. ``now`` (timezone-aware; default: the current
    time) is the signing instant; a naive datetime is refused, since it is ambiguous.
    """
    if not is_method_path(method_path):
        raise ValueError(f"not a gRPC method path: {method_path!r}")
    if not _SCOPE_PART.fullmatch(region):
        raise ValueError(f"not a region name: {region!r}")
    if not _SCOPE_PART.fullmatch(service):
        raise ValueError(f"not a service name: {service!r}")
    if not access_key_id or not secret_access_key:
        raise ValueError("an access key id and its secret are required")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    timestamp: str = now.astimezone(UTC).strftime(SIGV4_TIMESTAMP)

    headers = {"content-type": CONTENT_TYPE, "host": HOST, "x-amz-date": timestamp}
    if session_token:
        headers["x-amz-security-token"] = session_token
    request = signing_request(method_path, body, headers)
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(
        Credentials(access_key_id, secret_access_key, session_token or None), service, region
    )
    canonical = signer.canonical_request(request)
    signature: str = signer.signature(signer.string_to_sign(request, canonical), request)
    signed_headers: str = signer.signed_headers(signer.headers_to_sign(request))
    scope: str = signer.scope(request)
    authorization = (
        f"{ALGORITHM} Credential={scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    metadata = [("authorization", authorization), ("x-amz-date", timestamp)]
    if session_token:
        metadata.append(("x-amz-security-token", session_token))
    return metadata
