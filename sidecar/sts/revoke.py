"""Revoking sessions is policy (IAM-SEMANTICS §5.7): an inline Deny on everything for sessions
issued before a moment, evaluated by the ordinary engine."""

from __future__ import annotations

from typing import Any

REVOKE_POLICY_NAME = "AWSRevokeOlderSessions"


def revocation_policy(before_iso: str) -> dict[str, Any]:
    """The policy AWS attaches: deny `*` on `*` when aws:TokenIssueTime < ``before_iso``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": ["*"],
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": before_iso}},
            }
        ],
    }
