"""Typed errors of the SDK: one exception class per AWS error code the sidecar returns.

The sidecar puts the AWS code in the status's ``google.rpc.ErrorInfo`` (reason) and the AWS
message in the status message (docs/API.md). A status without ErrorInfo did not come from the
sidecar's logic: ``UNAVAILABLE`` (nothing listening, a restart) raises ``SidecarUnavailable`` and
``DEADLINE_EXCEEDED`` raises ``SidecarTimeout``, with the status name as ``.code``.
"""

from __future__ import annotations

import grpc

from sidecar.server.status import CODES, error_info


class SidecarError(Exception):
    """A failed call: ``.code`` (the AWS code), ``.message``, ``.grpc_status``."""

    code: str = "SidecarError"

    def __init__(self, message: str, *, code: str | None = None, grpc_status: str = "") -> None:
        super().__init__(f"{code or self.code}: {message}")
        if code is not None:
            self.code = code
        self.message = message
        self.grpc_status = grpc_status


class SidecarUnavailable(SidecarError):
    code = "UNAVAILABLE"


class SidecarTimeout(SidecarError):
    code = "DEADLINE_EXCEEDED"


def _subclass(code: str) -> type[SidecarError]:
    return type(code, (SidecarError,), {"code": code, "__module__": __name__})


# One class per code in the sidecar's table, named after the code (AccessDenied, ExpiredToken, ...).
BY_CODE: dict[str, type[SidecarError]] = {code: _subclass(code) for code in CODES}
globals().update(BY_CODE)

AccessDenied = BY_CODE["AccessDenied"]
ExpiredToken = BY_CODE["ExpiredToken"]
ExpiredTokenException = BY_CODE["ExpiredTokenException"]
InvalidClientTokenId = BY_CODE["InvalidClientTokenId"]
SignatureDoesNotMatch = BY_CODE["SignatureDoesNotMatch"]
MissingAuthenticationToken = BY_CODE["MissingAuthenticationToken"]
ValidationError = BY_CODE["ValidationError"]
MalformedPolicyDocument = BY_CODE["MalformedPolicyDocument"]
PackedPolicyTooLarge = BY_CODE["PackedPolicyTooLarge"]
LimitExceeded = BY_CODE["LimitExceeded"]
InvalidIdentityToken = BY_CODE["InvalidIdentityToken"]
IDPRejectedClaim = BY_CODE["IDPRejectedClaim"]
IDPCommunicationError = BY_CODE["IDPCommunicationError"]
NoSuchEntity = BY_CODE["NoSuchEntity"]
ThrottlingException = BY_CODE["ThrottlingException"]
RequestTimeoutException = BY_CODE["RequestTimeoutException"]
InternalFailure = BY_CODE["InternalFailure"]


def is_transient(err: grpc.RpcError) -> bool:
    """UNAVAILABLE without an AWS code: the sidecar was not reached (a refusal is never retried)."""
    return err.code() == grpc.StatusCode.UNAVAILABLE and error_info(err) is None


def from_rpc_error(err: grpc.RpcError) -> SidecarError:
    status = err.code()
    message = err.details() or ""
    info = error_info(err)
    if info is not None and info.reason:
        cls = BY_CODE.get(info.reason, SidecarError)
        return cls(message, code=info.reason, grpc_status=status.name)
    if status == grpc.StatusCode.UNAVAILABLE:
        return SidecarUnavailable(message, grpc_status=status.name)
    if status == grpc.StatusCode.DEADLINE_EXCEEDED:
        return SidecarTimeout(message, grpc_status=status.name)
    return SidecarError(message, code=status.name, grpc_status=status.name)
