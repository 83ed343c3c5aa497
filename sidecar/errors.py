"""The error tree. Every error carries a stable ``code``: the AWS error code where one exists.

    SidecarError
    ├── ValidationError            a parameter breaks a shape rule (AWS ValidationError)
    ├── MalformedPolicyDocument    a policy document is not valid for its kind
    ├── LimitExceeded              a policy is over its size quota
    └── PackedPolicyTooLarge       session policies and tags are over the packed limit

Only the server maps codes to gRPC statuses and metric labels. This module is pure (stdlib only)
so that every layer may raise these errors.
"""

from __future__ import annotations


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


def validation_message(value: str, field: str, constraint: str) -> str:
    """AWS's standard shape-violation message (one violation)."""
    return (
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: {constraint}"
    )
