"""IAM's evaluation logic for one request (docs/SEMANTICS.md §5).

1. An explicit Deny in any applicable policy (SCP, RCP, resource, identity, boundary, session)
   wins.
2. SCPs, when given, must allow at every level from the organization root down to the account.
   RCPs only ever deny (RCPFullAWSAccess is always attached), and only for the services that
   support them (``RCP_SERVICES``).
3. A resource-policy grant that names the principal directly (session ARN, user ARN, `*`, a
   service or federated provider) allows at once in the same account; one naming the role counts
   as an identity grant (boundary and session policies still cap it); one naming the account
   only delegates to identity policies.
4. Otherwise identity policies must allow, then the boundary (if any), then the session policies
   (if any).
Cross-account requests need both sides: a resource-policy grant at any level, and the identity
side in full. Conditions that cannot be evaluated never grant: an unknown condition does not
match an Allow and does match a Deny.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from sidecar.policy.compile import CompiledPolicy, CompiledStatement, StatementRef
from sidecar.policy.conditions import FALSE, TRUE
from sidecar.policy.context import Context
from sidecar.policy.principals import (
    Match,
    RequestPrincipal,
    in_not_principal,
    match_principal,
)


class Decision(IntEnum):
    """Numbered as the wire's ``iamsidecar.v1.Decision``."""

    ALLOWED = 1
    EXPLICIT_DENY = 2
    IMPLICIT_DENY = 3


class PolicyType(StrEnum):
    SCP = "scp"
    RCP = "rcp"
    RESOURCE = "resource"
    IDENTITY = "identity"
    BOUNDARY = "permissions-boundary"
    SESSION = "session"


# How access-denied messages name each type (§5.5).
TYPE_LABELS = {
    PolicyType.SCP: "service control",
    PolicyType.RCP: "resource control",
    PolicyType.RESOURCE: "resource-based",
    PolicyType.IDENTITY: "identity-based",
    PolicyType.BOUNDARY: "permissions boundary",
    PolicyType.SESSION: "session",
}


# Services whose resources RCPs cap (Organizations UG, "Resource control policies (RCPs)":
# the list of AWS services that support RCPs). Other prefixes, custom ones included, are not.
RCP_SERVICES = frozenset({"s3", "sts", "kms", "sqs", "secretsmanager"})


def rcp_applies(action: str) -> bool:
    """Whether RCPs cap ``action`` (lowercased): only for the services that support them."""
    return action.partition(":")[0] in RCP_SERVICES


@dataclass(frozen=True, slots=True)
class Matched:
    policy_type: PolicyType
    ref: StatementRef


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policies that apply to one request. None means that kind is absent (no boundary,
    no session policies); an empty tuple of session policies allows nothing.

    ``scp_levels``: the SCPs of the principal's account, one tuple per level from the
    organization root down to the account; empty when no SCPs apply (no organization, or the
    management account). ``rcps``: the RCPs of the resource owner's account at every level,
    without RCPFullAWSAccess (it allows everything, so only their Denys decide)."""

    identity: tuple[CompiledPolicy, ...] = ()
    boundary: tuple[CompiledPolicy, ...] | None = None
    session: tuple[CompiledPolicy, ...] | None = None
    scp_levels: tuple[tuple[CompiledPolicy, ...], ...] = ()
    rcps: tuple[CompiledPolicy, ...] = ()


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    matched: tuple[Matched, ...]  # the Deny statements, or the Allow statements that matched
    decided_by: PolicyType | None  # the type that denied (explicitly or by not allowing)
    errors: tuple[str, ...] = ()  # conditions that could not be evaluated

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


class _Scan:
    """Matching statements of one request, gathered across all policy types."""

    __slots__ = ("allows", "denies", "errors", "resource_level")

    def __init__(self) -> None:
        self.allows: list[Matched] = []
        self.denies: list[Matched] = []
        self.errors: list[str] = []
        self.resource_level = Match.NONE

    def run(
        self,
        ptype: PolicyType,
        policies: Sequence[CompiledPolicy],
        action: str,
        resource: str,
        parts: list[str],
        ctx: Context,
        principal: RequestPrincipal | None,
        boundary_attached: bool = False,
    ) -> bool:
        """Scan ``policies``; True if any Allow statement matched."""
        allowed = False
        for policy in policies:
            for st in policy.candidates(action):
                if st.resource is not None and not st.resource(resource, parts, ctx):
                    continue
                level = Match.DIRECT
                if principal is not None:
                    level = principal_level(st, principal, boundary_attached)
                    if level is Match.NONE:
                        continue
                outcome = TRUE if st.condition is None else st.condition(ctx)
                if outcome != TRUE and outcome != FALSE:
                    self.errors.append(_unknown(st))
                if st.deny:
                    if outcome != FALSE:  # unknown matches a Deny: fail closed
                        self.denies.append(Matched(ptype, st.ref))
                elif outcome == TRUE:
                    self.allows.append(Matched(ptype, st.ref))
                    allowed = True
                    if level > self.resource_level and principal is not None:
                        self.resource_level = level
        return allowed


def principal_level(
    st: CompiledStatement, principal: RequestPrincipal, boundary_attached: bool = False
) -> Match:
    if st.principal is None:
        return Match.NONE
    if st.not_principal:
        if st.deny and boundary_attached:
            # AWS: a NotPrincipal Deny always denies a principal that has a permissions
            # boundary, whatever the list says (UG access_policies_boundaries).
            return Match.DIRECT
        return Match.NONE if in_not_principal(st.principal, principal) else Match.DIRECT
    return match_principal(st.principal, principal)


def _unknown(st: CompiledStatement) -> str:
    ref = st.ref
    name = ref.sid or f"#{ref.index}"
    return f"{ref.policy_id} {name}: a condition value could not be converted"


def evaluate(
    principal: RequestPrincipal,
    action: str,
    resource: str,
    ctx: Context,
    policies: PolicySet,
    *,
    resource_policies: Sequence[CompiledPolicy] = (),
    resource_account: str | None = None,
    resource_grant_required: bool = False,
) -> Evaluation:
    """Decide one request. ``resource_account`` defaults to the principal's own account.

    ``resource_policies`` are the resource-based policies attached to the resource (the target
    role's trust policy for the AssumeRole family).

    ``resource_grant_required`` is for role trust policies, which must always name the caller
    (§5.2 exceptions): without a resource-policy grant the answer is an implicit deny.
    """
    act = action.lower()
    parts = resource.split(":", 5)
    scan = _Scan()
    scp_ok = True
    for attached in policies.scp_levels:  # every level must allow; run all for their Denys
        if not scan.run(PolicyType.SCP, attached, act, resource, parts, ctx, None):
            scp_ok = False
    if policies.rcps and rcp_applies(act):
        scan.run(PolicyType.RCP, policies.rcps, act, resource, parts, ctx, principal)
    if resource_policies:
        scan.run(
            PolicyType.RESOURCE,
            resource_policies,
            act,
            resource,
            parts,
            ctx,
            principal,
            boundary_attached=policies.boundary is not None,
        )
    identity_ok = scan.run(PolicyType.IDENTITY, policies.identity, act, resource, parts, ctx, None)
    boundary_ok = (
        scan.run(PolicyType.BOUNDARY, policies.boundary, act, resource, parts, ctx, None)
        if policies.boundary is not None
        else True
    )
    session_ok = (
        scan.run(PolicyType.SESSION, policies.session, act, resource, parts, ctx, None)
        if policies.session is not None
        else True
    )
    errors = tuple(scan.errors)

    if scan.denies:
        return Evaluation(
            Decision.EXPLICIT_DENY, tuple(scan.denies), scan.denies[0].policy_type, errors
        )

    def deny(ptype: PolicyType) -> Evaluation:
        return Evaluation(Decision.IMPLICIT_DENY, (), ptype, errors)

    if not scp_ok:
        return deny(PolicyType.SCP)
    level = scan.resource_level
    if not principal.has_identity_policies:
        # Only a resource policy naming them can let these principals in.
        if level is Match.DIRECT:
            return Evaluation(Decision.ALLOWED, tuple(scan.allows), None, errors)
        return deny(PolicyType.RESOURCE)
    if resource_grant_required and level is Match.NONE:
        return deny(PolicyType.RESOURCE)
    same_account = resource_account is None or resource_account == principal.account
    if same_account:
        if level is Match.DIRECT:
            return Evaluation(Decision.ALLOWED, tuple(scan.allows), None, errors)
        if not (identity_ok or level is Match.ROLE):
            return deny(PolicyType.IDENTITY)
    else:
        if level is Match.NONE:
            return deny(PolicyType.RESOURCE)
        if not identity_ok:
            return deny(PolicyType.IDENTITY)
    if not boundary_ok:
        return deny(PolicyType.BOUNDARY)
    if not session_ok:
        return deny(PolicyType.SESSION)
    return Evaluation(Decision.ALLOWED, tuple(scan.allows), None, errors)


def describe(
    evaluation: Evaluation,
    principal_arn: str,
    action: str,
    resource: str,
    *,
    resource_label: str = "resource-based",
) -> str:
    """An AWS-style sentence for the decision (§5.5)."""
    if evaluation.decision is Decision.ALLOWED:
        kinds = sorted({TYPE_LABELS[m.policy_type] for m in evaluation.matched})
        return f"Allowed by {', '.join(kinds) or 'policy'} policy"
    who = principal_arn or "anonymous"
    head = f"User: {who} is not authorized to perform: {action} on resource: {resource}"
    ptype = evaluation.decided_by or PolicyType.IDENTITY
    label = resource_label if ptype is PolicyType.RESOURCE else TYPE_LABELS[ptype]
    if evaluation.decision is Decision.EXPLICIT_DENY:
        article = "an" if label[0] in "aeiou" else "a"
        return f"{head} with an explicit deny in {article} {label} policy"
    return f"{head} because no {label} policy allows the {action} action"
