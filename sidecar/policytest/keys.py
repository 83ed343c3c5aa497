"""Which condition keys a test's `context` may set.

A test stands in for the whole request, so it may set any key a real request could carry: what
the caller states and what the connection tells (aws:SourceIp, aws:SecureTransport, VPC keys).
Keys that describe the principal or its session come from `principal` and `session`; the clock
from `at`; the resource owner and the organization from the world; the sts: keys from the assume
parameters. Setting one of those in `context` would test a request the sidecar never sees, so it
is an error (docs/POLICY-TESTS.md; the keys' sources: docs/CONDITION-KEYS.md).
"""

from __future__ import annotations

from sidecar.policy.key_owners import SESSION_SERVICE_KEYS, spelling

# fmt: off
_FROM_PRINCIPAL = (
    "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalOrgPaths", "aws:PrincipalOrgID",
    "aws:PrincipalIsAWSService", "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList",
    "aws:PrincipalType", "aws:userid", "aws:username", "aws:ViaAWSService",
    "aws:AssumedRoot", "aws:FederatedProvider", "aws:TokenIssueTime", "aws:SignInSessionArn",
    "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:ChatbotSourceArn",
    "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4", "aws:SourceIdentity",
    *SESSION_SERVICE_KEYS,
)
# fmt: on
_CLOCK = ("aws:CurrentTime", "aws:EpochTime")
_WORLD = ("aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths")

_PRINCIPAL_WHY = "comes from the principal and its session ('principal', 'session')"
_RULES: dict[str, str] = {
    **{k.lower(): _PRINCIPAL_WHY for k in _FROM_PRINCIPAL},
    **{k.lower(): "comes from the case's time: set 'at' instead" for k in _CLOCK},
    **{k.lower(): "comes from the world (the resource's owner and organization)" for k in _WORLD},
}
_PREFIXES = (
    ("aws:principaltag/", "comes from the tags of the principal and 'session.tags'"),
    ("sts:", "comes from the assume parameters of an assume case"),
    ("saml:", "comes from a SAML session, which a test cannot make"),
)


def refused_key(key: str) -> str | None:
    """Why ``key`` cannot be set in `context`, or None when it can."""
    k = key.lower()
    reason = _RULES.get(k)
    if reason is None:
        reason = next((why for prefix, why in _PREFIXES if k.startswith(prefix)), None)
    return None if reason is None else f"the key {spelling(key)} {reason}, never from 'context'"
