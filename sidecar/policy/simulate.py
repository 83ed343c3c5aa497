"""SimulateCustomPolicy (PRODUCT.md §3.2): evaluate policy documents for every (action,
resource) pair, with no session. The context is exactly what the caller gives, plus the
principal keys derived from ``caller_arn`` where they are not given; nothing else is added.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.errors import ValidationError
from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Evaluation, PolicySet, describe, evaluate, principal_level
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import Match, PrincipalType, RequestPrincipal, principal_from_arn
from sidecar.policy.variables import Var, parse_template

_ACCOUNT = re.compile(r"^\d{12}\Z")
_ROOT = re.compile(r"^arn:[^:]+:iam::(\d{12}):root\Z")
MAX_PAIRS = 10_000


@dataclass(frozen=True, slots=True)
class SimulationRequest:
    actions: Sequence[str]
    resources: Sequence[str] = ()
    policies: Sequence[str] = ()
    boundaries: Sequence[str] = ()
    session_policies: Sequence[str] = ()
    scps: Sequence[str] = ()
    resource_policy: str = ""
    resource_owner: str = ""
    caller_arn: str = ""
    context: Context = field(default_factory=Context)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    action: str
    resource: str
    evaluation: Evaluation
    missing_context_values: tuple[str, ...]
    reason: str


def _compile_list(
    texts: Sequence[str], kind: PolicyKind, prefix: str, field_name: str
) -> tuple[CompiledPolicy, ...]:
    return tuple(
        compile_policy(
            parse_policy(
                text,
                kind,
                policy_id=f"{prefix}.{n}",
                field=f"{field_name}.{n}",
                enforce_quota=False,
            )
        )
        for n, text in enumerate(texts, start=1)
    )


def _owner_account(owner: str) -> str | None:
    if not owner:
        return None
    if _ACCOUNT.match(owner):
        return owner
    m = _ROOT.match(owner)
    if m is None:
        raise ValidationError(
            f"Invalid ResourceOwner '{owner}': give an account id or arn:aws:iam::ACCOUNT:root"
        )
    return m.group(1)


def _principal(caller_arn: str, owner: str | None) -> RequestPrincipal:
    if not caller_arn:
        # No caller: a principal with no name in the resource owner's account.
        return RequestPrincipal(PrincipalType.USER, arn="", account=owner or "")
    p = principal_from_arn(caller_arn)
    if p is None:
        raise ValidationError(
            f"Invalid CallerArn '{caller_arn}': give a user, role or assumed-role session ARN"
        )
    return p


def _add_principal_keys(ctx: Context, p: RequestPrincipal) -> None:
    if not p.arn:
        return
    ctx.setdefault("aws:PrincipalArn", p.identity_arn)
    ctx.setdefault("aws:PrincipalAccount", p.account)
    ptype = PrincipalType.ASSUMED_ROLE if p.type is PrincipalType.ROLE else p.type
    ctx.setdefault("aws:PrincipalType", ptype.value)
    if p.type is PrincipalType.USER:
        ctx.setdefault("aws:username", p.name)


def _missing_keys(
    slots: Sequence[tuple[Sequence[CompiledPolicy], RequestPrincipal | None]],
    action: str,
    resource: str,
    ctx: Context,
) -> tuple[str, ...]:
    """Condition keys read by statements that apply to the request but absent from it."""
    act = action.lower()
    parts = resource.split(":", 5)
    missing: dict[str, str] = {}
    for policies, principal in slots:
        for policy in policies:
            for st in policy.candidates(act):
                if st.resource is not None and not st.resource(resource, parts, ctx):
                    continue
                if principal is not None and principal_level(st, principal) is Match.NONE:
                    continue
                variables = policy.policy.variables_enabled
                for clause in st.source.conditions:
                    names = [clause.key]
                    if variables:
                        for v in clause.values:
                            names += [p.key for p in parse_template(v) if isinstance(p, Var)]
                    for name in names:
                        if name.lower() not in ctx.values:
                            missing.setdefault(name.lower(), name)
    return tuple(sorted(missing.values(), key=str.lower))


def simulate(req: SimulationRequest) -> list[SimulationResult]:
    """Evaluate every (action, resource) pair; raises on invalid input, before any result."""
    if not req.actions:
        raise ValidationError(
            "1 validation error detected: Value null at 'actionNames' failed to satisfy "
            "constraint: Member must not be null"
        )
    if req.resource_policy and not req.caller_arn:
        raise ValidationError("CallerArn is required if you include a ResourcePolicy")
    resources = list(req.resources) or ["*"]
    if len(req.actions) * len(resources) > MAX_PAIRS:
        raise ValidationError(f"At most {MAX_PAIRS} action and resource pairs per simulation")
    identity = _compile_list(
        req.policies, PolicyKind.IDENTITY, "PolicyInputList", "policyInputList"
    )
    boundary = _compile_list(
        req.boundaries,
        PolicyKind.BOUNDARY,
        "PermissionsBoundaryPolicyInputList",
        "permissionsBoundaryPolicyInputList",
    )
    session = _compile_list(
        req.session_policies, PolicyKind.SESSION, "SessionPolicyInputList", "sessionPolicyInputList"
    )
    scps = _compile_list(
        req.scps,
        PolicyKind.SCP,
        "ServiceControlPolicyInputList",
        "serviceControlPolicyInputList",
    )
    resource_policy = None
    if req.resource_policy:
        resource_policy = compile_policy(
            parse_policy(
                req.resource_policy,
                PolicyKind.RESOURCE,
                policy_id="ResourcePolicy",
                field="resourcePolicy",
                enforce_quota=False,
            )
        )
    owner = _owner_account(req.resource_owner)
    principal = _principal(req.caller_arn, owner)
    ctx = req.context
    _add_principal_keys(ctx, principal)
    policy_set = PolicySet(
        identity=identity,
        boundary=boundary or None,
        session=session or None,
        scps=scps or None,
    )
    slots: list[tuple[Sequence[CompiledPolicy], RequestPrincipal | None]] = [
        (identity, None),
        (boundary, None),
        (session, None),
        (scps, None),
    ]
    if resource_policy is not None:
        slots.append(((resource_policy,), principal))
    results = []
    for action in req.actions:
        for resource in resources:
            ctx.memo.clear()
            ev = evaluate(
                principal,
                action,
                resource,
                ctx,
                policy_set,
                resource_policy=resource_policy,
                resource_account=owner,
            )
            results.append(
                SimulationResult(
                    action=action,
                    resource=resource,
                    evaluation=ev,
                    missing_context_values=_missing_keys(slots, action, resource, ctx),
                    reason=describe(ev, principal.arn, action, resource),
                )
            )
    return results
