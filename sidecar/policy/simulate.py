"""SimulateCustomPolicy: evaluate policy documents for every (action, resource) pair, with no
session. The context is exactly what the caller gives, plus the principal keys derived from
``caller_arn`` where they are not given; nothing else is added.

The request's size is checked before any policy is parsed, and its estimated work after
(simulate_limits.py). ``simulate`` calls ``check`` between policies and between pairs: the
server passes one that raises when the call's time is up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sidecar.errors import ValidationError
from sidecar.policy.compile import CompiledPolicy, CompiledStatement, compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Evaluation, PolicySet, describe, evaluate, principal_level
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import Match, PrincipalType, RequestPrincipal, principal_from_arn
from sidecar.policy.simulate_limits import check_limits, check_work, estimate_work
from sidecar.policy.variables import Var, parse_template

_ACCOUNT = re.compile(r"^\d{12}\Z")
_ROOT = re.compile(r"^arn:[^:]+:iam::(\d{12}):root\Z")

Check = Callable[[], None]


def _no_check() -> None:
    return None


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
    texts: Sequence[str], kind: PolicyKind, prefix: str, field_name: str, check: Check
) -> tuple[CompiledPolicy, ...]:
    out = []
    for n, text in enumerate(texts, start=1):
        check()
        policy = parse_policy(
            text, kind, policy_id=f"{prefix}.{n}", field=f"{field_name}.{n}", enforce_quota=False
        )
        out.append(compile_policy(policy))
    return tuple(out)


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


def _condition_keys(st: CompiledStatement, variables: bool) -> tuple[str, ...]:
    """The context keys a statement's conditions read, as written (variables lowercased)."""
    names = []
    for clause in st.source.conditions:
        names.append(clause.key)
        if variables:
            for v in clause.values:
                names += [p.key for p in parse_template(v) if isinstance(p, Var)]
    return tuple(names)


class _MissingKeys:
    """Condition keys read by statements that apply to a request but absent from it. The
    keys of each statement are gathered once per simulation, not once per pair."""

    def __init__(
        self, slots: Sequence[tuple[Sequence[CompiledPolicy], RequestPrincipal | None]]
    ) -> None:
        self.slots = slots
        self._keys: dict[int, tuple[str, ...]] = {}

    def __call__(self, action: str, resource: str, ctx: Context) -> tuple[str, ...]:
        act = action.lower()
        parts = resource.split(":", 5)
        missing: dict[str, str] = {}
        for policies, principal in self.slots:
            for policy in policies:
                for st in policy.candidates(act):
                    if not st.source.conditions:  # reads no keys: skip its resource match
                        continue
                    if st.resource is not None and not st.resource(resource, parts, ctx):
                        continue
                    if principal is not None and principal_level(st, principal) is Match.NONE:
                        continue
                    keys = self._keys.get(id(st))
                    if keys is None:
                        keys = _condition_keys(st, policy.policy.variables_enabled)
                        self._keys[id(st)] = keys
                    for name in keys:
                        if name.lower() not in ctx.values:
                            missing.setdefault(name.lower(), name)
        return tuple(sorted(missing.values(), key=str.lower))


def simulate(req: SimulationRequest, check: Check | None = None) -> list[SimulationResult]:
    """Evaluate every (action, resource) pair; raises on invalid input, before any result.
    ``check`` is called between policies and between pairs and may raise to stop the work."""
    check = check or _no_check
    check_limits(req)
    if req.resource_policy and not req.caller_arn:
        raise ValidationError("CallerArn is required if you include a ResourcePolicy")
    resources = list(req.resources) or ["*"]
    identity = _compile_list(
        req.policies, PolicyKind.IDENTITY, "PolicyInputList", "policyInputList", check
    )
    boundary = _compile_list(
        req.boundaries,
        PolicyKind.BOUNDARY,
        "PermissionsBoundaryPolicyInputList",
        "permissionsBoundaryPolicyInputList",
        check,
    )
    session = _compile_list(
        req.session_policies,
        PolicyKind.SESSION,
        "SessionPolicyInputList",
        "sessionPolicyInputList",
        check,
    )
    scps = _compile_list(
        req.scps,
        PolicyKind.SCP,
        "ServiceControlPolicyInputList",
        "serviceControlPolicyInputList",
        check,
    )
    resource_policies: tuple[CompiledPolicy, ...] = ()
    if req.resource_policy:
        check()
        parsed = parse_policy(
            req.resource_policy,
            PolicyKind.RESOURCE,
            policy_id="ResourcePolicy",
            field="resourcePolicy",
            enforce_quota=False,
        )
        resource_policies = (compile_policy(parsed),)
    every = [*identity, *boundary, *session, *scps, *resource_policies]
    check_work(estimate_work(req.actions, resources, req.context, (p.policy for p in every)))
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
    if resource_policies:
        slots.append((resource_policies, principal))
    missing_keys = _MissingKeys(slots)
    results = []
    for action in req.actions:
        for resource in resources:
            check()
            ctx.memo.clear()
            ev = evaluate(
                principal,
                action,
                resource,
                ctx,
                policy_set,
                resource_policies=resource_policies,
                resource_account=owner,
            )
            results.append(
                SimulationResult(
                    action=action,
                    resource=resource,
                    evaluation=ev,
                    missing_context_values=missing_keys(action, resource, ctx),
                    reason=describe(ev, principal.arn, action, resource),
                )
            )
    return results
