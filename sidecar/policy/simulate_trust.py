"""Simulating a role's trust policy in SimulateCustomPolicy (docs/SEMANTICS.md §9.1).

When a resource policy is given, every action is one a trust policy decides
(`sts:AssumeRole*`, `sts:TagSession`, `sts:SetSourceIdentity`) and every resource is a role
ARN, ``resource_policy`` is that role's trust policy: trust grammar (no `Resource`) and trust
semantics (it must grant, even in the role's own account, as in the assume calls). The caller
may then also be a service principal (`lambda.amazonaws.com`) or a federated one: an OIDC or
SAML provider ARN, or a built-in web identity provider name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sidecar.errors import ValidationError
from sidecar.policy.principals import BUILT_IN_PROVIDERS, PrincipalType, RequestPrincipal

# The actions a trust policy decides (STS API: AssumeRole, AssumeRoleWithWebIdentity,
# AssumeRoleWithSAML; UG: Pass session tags in AWS STS; UG: Monitor and control actions taken
# with assumed roles, for sts:SetSourceIdentity). Lowercased: actions compare ignoring case.
TRUST_ACTIONS = frozenset(
    {
        "sts:assumerole",
        "sts:assumerolewithwebidentity",
        "sts:assumerolewithsaml",
        "sts:tagsession",
        "sts:setsourceidentity",
    }
)
_ROLE = re.compile(r"^arn:[^:]+:iam::(\d{12}):role/(?:[^/]+/)*[^/]+\Z")
_PROVIDER = re.compile(r"^arn:([^:]+):iam::(\d{12}):(oidc|saml)-provider/.+\Z")

NOT_TRUST_CALLER = (
    "Invalid CallerArn '{caller}': a service or federated principal can be the caller only when "
    "simulating a role's trust policy (sts:AssumeRole*, sts:TagSession or sts:SetSourceIdentity "
    "on role ARNs)"
)
MIXED = (
    "A ResourcePolicy is the role's trust policy when simulating sts:AssumeRole*, "
    "sts:TagSession or sts:SetSourceIdentity on a role ARN, and a resource-based policy "
    "otherwise: simulate these two kinds of action and resource pairs in separate calls"
)


def role_account(resource: str) -> str | None:
    """The account of a role ARN (path allowed), or None when ``resource`` is not one."""
    m = _ROLE.match(resource)
    return m.group(1) if m else None


def is_trust_pair(action: str, resource: str) -> bool:
    return action.lower() in TRUST_ACTIONS and role_account(resource) is not None


def trust_mode(actions: Sequence[str], resources: Sequence[str], resource_policy: str) -> bool:
    """Is ``resource_policy`` a role's trust policy? Only when one is given (without it the
    identity side alone is simulated, as in IAM), and every pair is a trust pair: the one
    policy cannot be both kinds, so mixed pairs are a ValidationError."""
    if not resource_policy:
        return False
    pairs = [is_trust_pair(a, r) for a in actions for r in resources]
    if all(pairs):
        return True
    if any(pairs):
        raise ValidationError(MIXED)
    return False


def trust_caller(caller: str) -> RequestPrincipal | None:
    """A service or federated caller, or None when ``caller`` is an ARN of another kind."""
    m = _PROVIDER.match(caller)
    if m is not None:
        partition, account, kind = m.groups()
        if kind == "saml":
            return RequestPrincipal(
                PrincipalType.SAML, caller, account, partition, federated_provider=caller
            )
        return RequestPrincipal(
            PrincipalType.WEB_IDENTITY, caller, partition=partition, federated_provider=caller
        )
    if caller.startswith("arn:"):
        return None
    if caller in BUILT_IN_PROVIDERS:
        return RequestPrincipal(PrincipalType.WEB_IDENTITY, caller, federated_provider=caller)
    return RequestPrincipal(PrincipalType.SERVICE, caller, name=caller)
