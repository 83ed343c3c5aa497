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
from sidecar.policy.evaluate import (
    Evaluation,
    PolicySet,
    describe,
    evaluate,
    principal_level,
    rcp_applies,
)
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import Match, PrincipalType, RequestPrincipal, principal_from_arn
from sidecar.policy.simulate_limits import (
    RCP_LEVEL_NAMES,
    SCP_LEVEL_NAMES,
    check_limits,
    check_work,
    estimate_work,
)
from sidecar.policy.simulate_trust import NOT_TRUST_CALLER, role_account, trust_caller, trust_mode
from sidecar.policy.unconditional import unconditional
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
    scps: Sequence[str] = ()  # the flat list: one level
    scp_levels: Sequence[Sequence[str]] = ()  # root first, the account last
    rcp_levels: Sequence[Sequence[str]] = ()
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


def _compile_levels(
    levels: Sequence[Sequence[str]], kind: PolicyKind, names: tuple[str, str, str], check: Check
) -> tuple[tuple[CompiledPolicy, ...], ...]:
    """Organization policies by level; ids and error locations say level L, policy N."""
    prefix, field_name, inner = names
    return tuple(
        _compile_list(texts, kind, f"{prefix}.{n}", f"{field_name}.{n}.{inner}", check)
        for n, texts in enumerate(levels, start=1)
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


def _principal(caller_arn: str, owner: str | None, trust: bool) -> RequestPrincipal:
    if not caller_arn:
        # No caller: a principal with no name in the resource owner's account.
        return RequestPrincipal(PrincipalType.USER, arn="", account=owner or "")
    p = principal_from_arn(caller_arn)
    if p is not None:
        return p
    other = trust_caller(caller_arn)
    if other is None:
        raise ValidationError(
            f"Invalid CallerArn '{caller_arn}': give a user, role or assumed-role session ARN"
        )
    if not trust:
        raise ValidationError(NOT_TRUST_CALLER.format(caller=caller_arn))
    return other


def _trust_owner(role_arn: str, owner: str | None) -> str:
    """A role is owned by the account in its ARN; a ResourceOwner saying otherwise is wrong."""
    account = role_account(role_arn) or ""
    if owner is not None and owner != account:
        raise ValidationError(
            f"Invalid ResourceOwner '{owner}': the role {role_arn} belongs to account {account}"
        )
    return account


def _add_principal_keys(ctx: Context, p: RequestPrincipal) -> None:
    if not p.arn:
        return
    if p.type is PrincipalType.SERVICE:
        ctx.setdefault("aws:PrincipalServiceName", p.name)
        return
    if p.federated_provider:
        ctx.setdefault("aws:FederatedProvider", p.federated_provider)
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
                if policy.policy.kind is PolicyKind.RCP and not rcp_applies(act):
                    continue  # RCPs cap only the services that support them
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
    scp_levels: tuple[tuple[CompiledPolicy, ...], ...] = (scps,) if scps else ()  # one level
    if req.scp_levels:
        scp_levels = _compile_levels(req.scp_levels, PolicyKind.SCP, SCP_LEVEL_NAMES, check)
    rcp_levels = _compile_levels(req.rcp_levels, PolicyKind.RCP, RCP_LEVEL_NAMES, check)
    rcps = tuple(p for level in rcp_levels for p in level)
    trust = trust_mode(req.actions, resources, req.resource_policy)
    resource_policies: tuple[CompiledPolicy, ...] = ()
    if req.resource_policy:
        check()
        parsed = parse_policy(
            req.resource_policy,
            PolicyKind.TRUST if trust else PolicyKind.RESOURCE,
            policy_id="ResourcePolicy",
            field="resourcePolicy",
            enforce_quota=False,
        )
        resource_policies = (compile_policy(parsed),)
    scp_all = [p for level in scp_levels for p in level]
    every = [*identity, *boundary, *session, *scp_all, *rcps, *resource_policies]
    check_work(estimate_work(req.actions, resources, req.context, (p.policy for p in every)))
    owner = _owner_account(req.resource_owner)
    principal = _principal(req.caller_arn, owner, trust)
    ctx = req.context
    _add_principal_keys(ctx, principal)
    policy_set = PolicySet(
        identity=identity,
        boundary=boundary or None,
        session=session or None,
        scp_levels=scp_levels,
        rcps=rcps,
    )
    if not principal.has_identity_policies:
        # A service or federated caller has no identity, boundary, session or SCP side: the
        # trust policy decides, as in the assume calls (RCPs on the role still cap it).
        policy_set = PolicySet(rcps=rcps)
    slots: list[tuple[Sequence[CompiledPolicy], RequestPrincipal | None]] = [(rcps, principal)]
    if principal.has_identity_policies:
        slots += [(identity, None), (boundary, None), (session, None), (scp_all, None)]
    if resource_policies:
        slots.append((resource_policies, principal))
    missing_keys = _MissingKeys(slots)
    results = []
    for action in req.actions:
        for resource in resources:
            check()
            free = unconditional(action)
            if free is not None:  # sts:GetCallerIdentity: no policy can deny it
                results.append(SimulationResult(action, resource, free[0], (), free[1]))
                continue
            ctx.memo.clear()
            ev = evaluate(
                principal,
                action,
                resource,
                ctx,
                policy_set,
                resource_policies=resource_policies,
                resource_account=_trust_owner(resource, owner) if trust else owner,
                resource_grant_required=trust,
            )
            label = "role trust" if trust else "resource-based"
            results.append(
                SimulationResult(
                    action=action,
                    resource=resource,
                    evaluation=ev,
                    missing_context_values=missing_keys(action, resource, ctx),
                    reason=describe(ev, principal.arn, action, resource, resource_label=label),
                )
            )
    return results
