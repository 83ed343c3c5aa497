"""The error tree. Every error carries a stable ``code``: the AWS error code where one exists.

    SidecarError
    ├── ValidationError            a parameter breaks a shape rule (AWS ValidationError)
    ├── MalformedPolicyDocument    a policy document is not valid for its kind
    ├── LimitExceeded              a policy is over its size quota
    ├── PackedPolicyTooLarge       session policies and tags are over the packed limit
    ├── AccessDenied               not authorized (trust, identity policies, MFA, ...)
    ├── NoSuchEntity               a named role, user or policy does not exist
    ├── ThrottlingException        too many calls of an expensive kind at once
    ├── RequestTimeoutException    a call ran out of time (its deadline or a server cap)
    ├── TokenError                 a session token or credential is refused
    │   ├── ExpiredToken
    │   ├── InvalidClientTokenId
    │   ├── SignatureDoesNotMatch
    │   └── MissingAuthenticationToken
    ├── FederationError            a web identity token or SAML assertion is refused
    │   ├── InvalidIdentityToken
    │   ├── ExpiredTokenException
    │   ├── IDPRejectedClaim
    │   └── IDPCommunicationError
    ├── WorldError                 the world file is invalid (every problem listed)
    └── KeySetError                a session-token key set is invalid or cannot be read

Only the server maps codes to gRPC statuses and metric labels. This module is pure (stdlib only)
so that every layer may raise these errors.
"""

from __future__ import annotations

from collections.abc import Sequence


class SidecarError(Exception):
    """Base of every error the sidecar reports to a caller."""

    code = "InternalFailure"

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        # Where in the input the problem is (e.g. "Statement[1].Condition"); empty if unknown.
        self.location = location

    def __str__(self) -> str:
        if self.location:
            return f"{self.code}: {self.message} (at {self.location})"
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.location:
            out["location"] = self.location
        return out


class ValidationError(SidecarError):
    code = "ValidationError"


class MalformedPolicyDocument(SidecarError):
    code = "MalformedPolicyDocument"


class LimitExceeded(SidecarError):
    code = "LimitExceeded"


class PackedPolicyTooLarge(SidecarError):
    code = "PackedPolicyTooLarge"


class AccessDenied(SidecarError):
    code = "AccessDenied"


class NoSuchEntity(SidecarError):
    code = "NoSuchEntity"


class ThrottlingException(SidecarError):
    code = "ThrottlingException"


class RequestTimeoutException(SidecarError):
    code = "RequestTimeoutException"


class TokenError(SidecarError):
    """A refused credential. ``reason`` is a short stable label for metrics and logs
    (tampered, wrong_key, unknown_key, expired, not_yet_valid, malformed, ...)."""

    code = "InvalidClientTokenId"

    def __init__(self, message: str, *, reason: str, location: str = "") -> None:
        super().__init__(message, location=location)
        self.reason = reason


class ExpiredToken(TokenError):
    code = "ExpiredToken"


class InvalidClientTokenId(TokenError):
    code = "InvalidClientTokenId"


class SignatureDoesNotMatch(TokenError):
    code = "SignatureDoesNotMatch"


class MissingAuthenticationToken(TokenError):
    code = "MissingAuthenticationToken"


class FederationError(SidecarError):
    """A refused web identity token or SAML assertion. ``reason`` is a short stable label for
    metrics and logs (bad_signature, expired, wrong_audience, ...)."""

    code = "InvalidIdentityToken"

    def __init__(self, message: str, *, reason: str, location: str = "") -> None:
        super().__init__(message, location=location)
        self.reason = reason


class InvalidIdentityToken(FederationError):
    code = "InvalidIdentityToken"


class ExpiredTokenException(FederationError):
    code = "ExpiredTokenException"


class IDPRejectedClaim(FederationError):
    code = "IDPRejectedClaim"


class IDPCommunicationError(FederationError):
    code = "IDPCommunicationError"


class WorldError(SidecarError):
    """Every problem found in a world file, each as (path inside the file, message)."""

    code = "InvalidWorld"

    def __init__(self, source: str, issues: list[tuple[str, str]]) -> None:
        self.source = source
        self.issues = issues
        lines = [
            f"{source}: {path}: {message}" if path else f"{source}: {message}"
            for path, message in issues
        ]
        super().__init__("\n".join(lines) or f"{source}: invalid world")


class KeySetError(SidecarError):
    code = "InvalidKeySet"


class _LeftOut:
    """A value a ValidationError message does not show (a credential, a whole document)."""

    def __repr__(self) -> str:
        return "LEFT_OUT"


LEFT_OUT = _LeftOut()


def violation(field: str, constraint: str, value: object = LEFT_OUT) -> str:
    """One shape violation as AWS words it: "Value 'v' at 'field' failed to satisfy constraint:
    …". ``None`` shows as `null`; a value LEFT_OUT is not shown ("Value at 'field' …")."""
    if value is LEFT_OUT:
        shown = "Value"
    elif value is None:
        shown = "Value null"
    else:
        shown = f"Value '{value}'"
    return f"{shown} at '{field}' failed to satisfy constraint: {constraint}"


def validation_errors(violations: Sequence[str]) -> ValidationError:
    """AWS's shape-violation error listing every violation (each from ``violation``):
    "2 validation errors detected: Value … at '…' failed to satisfy constraint: …; Value …"."""
    n = len(violations)
    noun = "error" if n == 1 else "errors"
    return ValidationError(f"{n} validation {noun} detected: " + "; ".join(violations))
