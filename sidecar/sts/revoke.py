"""Revoking sessions is policy: an inline Deny on everything for sessions issued before a
moment, evaluated by the ordinary engine (docs/STS.md, "Revoking sessions")."""

from __future__ import annotations

import math
from typing import Any

from sidecar.sts.clock import iso8601

REVOKE_POLICY_NAME = "AWSRevokeOlderSessions"


def revocation_time(now: float) -> str:
    """The ``DateLessThan`` bound that revokes every session issued up to ``now``.

    Issue times are whole seconds (``aws:TokenIssueTime``), so the current second itself must
    be revoked: the bound is the next whole second, ``floor(now) + 1``. A session issued later
    within that same second is revoked too (fail-safe); one issued from the next second on is
    not.
    """
    return iso8601(math.floor(now) + 1)


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
