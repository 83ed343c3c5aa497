"""AWS error codes → gRPC statuses (docs/API.md §3).

Every failure leaves as a gRPC status whose details carry a google.rpc.ErrorInfo with
reason = the AWS error code and domain = "iamsidecar", and whose message is the AWS message.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidecar.errors import SidecarError

DOMAIN = "iamsidecar"
# A status travels in trailers twice (grpc-message, and the Status inside
# grpc-status-details-bin), and a client refuses trailers over 8 KiB by default: a message that
# echoes a huge input (a 120,000-character Resource) would reach it as "Stream removed", with no
# AWS code at all. Messages are kept to this many UTF-8 bytes, the middle elided.
MAX_MESSAGE_BYTES = 1024

CODES: dict[str, grpc.StatusCode] = {
    "ValidationError": grpc.StatusCode.INVALID_ARGUMENT,
    "MalformedPolicyDocument": grpc.StatusCode.INVALID_ARGUMENT,
    "PackedPolicyTooLarge": grpc.StatusCode.INVALID_ARGUMENT,
    "LimitExceeded": grpc.StatusCode.INVALID_ARGUMENT,
    "AccessDenied": grpc.StatusCode.PERMISSION_DENIED,
    "ExpiredToken": grpc.StatusCode.UNAUTHENTICATED,
    "InvalidClientTokenId": grpc.StatusCode.UNAUTHENTICATED,
    "SignatureDoesNotMatch": grpc.StatusCode.UNAUTHENTICATED,
    "MissingAuthenticationToken": grpc.StatusCode.UNAUTHENTICATED,
    "InvalidIdentityToken": grpc.StatusCode.INVALID_ARGUMENT,
    "ExpiredTokenException": grpc.StatusCode.INVALID_ARGUMENT,
    "IDPRejectedClaim": grpc.StatusCode.PERMISSION_DENIED,
    "IDPCommunicationError": grpc.StatusCode.UNAVAILABLE,
    "NoSuchEntity": grpc.StatusCode.NOT_FOUND,
    "ThrottlingException": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "RequestTimeoutException": grpc.StatusCode.DEADLINE_EXCEEDED,
    "InternalFailure": grpc.StatusCode.INTERNAL,
}


def grpc_code(err: SidecarError) -> grpc.StatusCode:
    return CODES.get(err.code, grpc.StatusCode.INVALID_ARGUMENT)


def bounded_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``message`` itself when it fits in ``limit`` UTF-8 bytes; otherwise its start and end
    with the number of characters left out between them."""
    if len(message.encode()) <= limit:
        return message
    head = message[: limit * 5 // 8]
    tail = message[-(limit // 4) :]
    while len(head.encode()) + len(tail.encode()) + 40 > limit:  # non-ASCII text: shrink
        head, tail = head[: len(head) * 3 // 4], tail[len(tail) // 4 :]
    left_out = len(message) - len(head) - len(tail)
    return f"{head}...({left_out} characters left out)...{tail}"


def to_status(err: SidecarError) -> grpc.Status:
    code = grpc_code(err)
    info = error_details_pb2.ErrorInfo(reason=err.code, domain=DOMAIN)
    if err.location:
        info.metadata["location"] = err.location
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=bounded_message(err.message), details=[detail]
    )
    return rpc_status.to_status(status)


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo of a failed call (for clients and tests)."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
