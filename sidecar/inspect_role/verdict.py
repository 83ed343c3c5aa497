"""May one identity of the world call sts:AssumeRole on a role? Decided by the engine's own
``evaluate``, as AssumeRole decides it (sidecar/sts/trust.py): the trust policy as a resource
policy that must grant, the caller's identity policies, permissions boundary and SCPs, and the
RCPs of the role's account.

A report is made without a request, so some condition keys have no value yet: the time, the
network, MFA, the `sts:` parameters of the call, request tags, a role session's tags. Conditions
on the keys the world alone decides (the principal's ARN, account, type and, for a user, its
tags and name; the organization keys; the role's tags as a resource) are evaluated as the engine
would. A clause that reads any other key is *open*, and the engine is run on variants of the
policies:

- strict: Allow statements with open clauses left out (they may not hold), and Deny statements
  with open clauses left out too (they are reported as `unless`). Allowed here: `allowed`.
- relaxed: the open clauses of Allow statements removed (assumed to hold). Allowed only here:
  `allowed if` the open clauses of the Allow statements that are needed.
- denials: the open clauses of Deny statements removed: the Deny statements that then match
  are the `unless` limits of an allowed verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum

from sidecar.identity.model import Role, User, World
from sidecar.identity.scope import role_policies, user_policies
from sidecar.inspect_role.statements import ConditionView, condition_views, statement_ref
from sidecar.policy.compile import CompiledPolicy
from sidecar.policy.conditions import referenced_keys
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Evaluation, PolicySet, PolicyType, describe, evaluate
from sidecar.policy.model import ConditionClause, Statement
from sidecar.policy.principals import PrincipalType, RequestPrincipal
from sidecar.sts.context import direct_call_context, org_context
from sidecar.sts.trust import role_account_guardrails

ASSUME = "sts:AssumeRole"

# Keys the world decides for any caller (set from the world, or absent for good).
_WORLD_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:PrincipalArn",
        "aws:PrincipalAccount",
        "aws:PrincipalType",
        "aws:PrincipalIsAWSService",
        "aws:ViaAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:ResourceAccount",
        "aws:ResourceOrgID",
        "aws:ResourceOrgPaths",
    )
)
# A user's tags and name are its own; a role session's tags and id depend on the session.
_USER_KEYS = frozenset({"aws:userid", "aws:username"})
_USER_PREFIXES = ("aws:principaltag/",)
_ALL_PREFIXES = ("aws:resourcetag/",)


class Outcome(Enum):
    ALLOWED = "allowed"
    CONDITIONAL = "allowed-if"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class OpenStatement:
    """A statement with open clauses: ``conditions`` are those clauses only."""

    policy_type: str  # PolicyType value: resource (the trust policy), identity, scp, ...
    policy: str
    sid: str
    index: int
    conditions: tuple[ConditionView, ...]

    @property
    def ref(self) -> str:
        return statement_ref(self.policy, self.sid, self.index)

    def as_json(self) -> dict[str, object]:
        return {
            "policy_type": self.policy_type,
            "policy": self.policy,
            "sid": self.sid,
            "index": self.index,
            "conditions": [c.as_json() for c in self.conditions],
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """``conditions``: groups that must all hold, each satisfied by any one of its statements'
    open clauses. ``unless``: Deny statements that deny when their open clauses hold."""

    identity_arn: str
    identity_type: str  # "user" or "role"
    outcome: Outcome
    conditions: tuple[tuple[OpenStatement, ...], ...] = ()
    unless: tuple[OpenStatement, ...] = ()
    reason: str = ""  # for a denial: AWS's sentence, from the most generous variant


Decided = Callable[[str], bool]


def _decides(user: bool) -> Decided:
    def decided(key: str) -> bool:
        return (
            key in _WORLD_KEYS
            or key.startswith(_ALL_PREFIXES)
            or (user and (key in _USER_KEYS or key.startswith(_USER_PREFIXES)))
        )

    return decided


def _open_clauses(st: Statement, variables: bool, decided: Decided) -> tuple[ConditionClause, ...]:
    return tuple(
        c
        for c in st.conditions
        if not all(decided(k) for k in referenced_keys((c,), variables=variables))
    )


class _Mode(Enum):
    STRICT = 1
    RELAXED = 2
    DENIALS = 3


class Variants:
    """Variants of the world's compiled policies, made once per (policy, mode, caller kind)."""

    def __init__(self) -> None:
        self._made: dict[tuple[int, _Mode, bool], CompiledPolicy] = {}
        self._keep: list[CompiledPolicy] = []  # keeps ids stable while the cache lives

    def of(self, policy: CompiledPolicy, mode: _Mode, user: bool) -> CompiledPolicy:
        key = (id(policy), mode, user)
        if key not in self._made:
            self._keep.append(policy)
            self._made[key] = _variant(policy, mode, _decides(user))
        return self._made[key]


def _variant(policy: CompiledPolicy, mode: _Mode, decided: Decided) -> CompiledPolicy:
    kept: list[Statement] = []
    changed = False
    for st in policy.policy.statements:
        open_ = _open_clauses(st, policy.policy.variables_enabled, decided)
        if not open_:
            kept.append(st)
            continue
        changed = True
        closed = replace(st, conditions=tuple(c for c in st.conditions if c not in open_))
        if (st.effect == "Allow" and mode is _Mode.RELAXED) or (
            st.effect == "Deny" and mode is _Mode.DENIALS
        ):
            kept.append(closed)
    if not changed:
        return policy
    return CompiledPolicy(replace(policy.policy, statements=tuple(kept)))


@dataclass(frozen=True, slots=True)
class _Caller:
    arn: str
    kind: str  # "user" or "role"
    principal: RequestPrincipal
    policies: PolicySet
    context: Context


def _user_caller(world: World, user: User) -> _Caller:
    ctx = Context()
    ctx.set("aws:PrincipalArn", user.arn)
    ctx.set("aws:PrincipalAccount", user.account)
    ctx.set("aws:userid", user.user_id)
    ctx.set("aws:username", user.name)
    ctx.set("aws:PrincipalType", "User")
    for key, value in user.tags.items():
        ctx.set(f"aws:PrincipalTag/{key}", value)
    principal = RequestPrincipal(
        PrincipalType.USER,
        user.arn,
        user.account,
        world.partition,
        name=user.name,
        unique_id=user.user_id,
        identity_arn=user.arn,
    )
    return _Caller(user.arn, "user", principal, user_policies(world, user), ctx)


def _role_caller(world: World, role: Role) -> _Caller:
    """A session of ``role``, any session: named by its role (as SimulateCustomPolicy names a
    role caller), without session policies, which could only narrow."""
    ctx = Context()
    ctx.set("aws:PrincipalArn", role.arn)
    ctx.set("aws:PrincipalAccount", role.account)
    ctx.set("aws:PrincipalType", "AssumedRole")
    principal = RequestPrincipal(
        PrincipalType.ROLE,
        role.arn,
        role.account,
        world.partition,
        name=role.name,
        unique_id=role.role_id,
        identity_arn=role.arn,
    )
    return _Caller(role.arn, "role", principal, role_policies(world, role), ctx)


class AssumeChecker:
    """Verdicts for the identities that may call sts:AssumeRole on one role, remembered."""

    def __init__(self, world: World, role: Role) -> None:
        self.world = world
        self.role = role
        self._variants = Variants()
        self._verdicts: dict[str, Verdict] = {}

    def verdict(self, identity: User | Role) -> Verdict:
        if identity.arn not in self._verdicts:
            caller = (
                _user_caller(self.world, identity)
                if isinstance(identity, User)
                else _role_caller(self.world, identity)
            )
            self._verdicts[identity.arn] = self._decide(caller)
        return self._verdicts[identity.arn]

    def _context(self, caller: _Caller) -> Context:
        ctx = Context(caller.context.values, caller.context.multi)
        direct_call_context(ctx)
        org_context(ctx, self.world.organization, caller.principal.account, self.role.account)
        for key, value in self.role.tags.items():
            ctx.set(f"aws:ResourceTag/{key}", value)
        return ctx

    def _run(
        self, caller: _Caller, mode: _Mode, skip: frozenset[tuple[str, str]] = frozenset()
    ) -> Evaluation:
        """``skip``: (policy type, policy id) whose open Allow statements stay out even when
        relaxed."""
        user = caller.kind == "user"
        ctx = self._context(caller)
        guarded = role_account_guardrails(self.world, self.role, ctx, caller.policies)

        def vary(
            ptype: PolicyType, policies: Iterable[CompiledPolicy]
        ) -> tuple[CompiledPolicy, ...]:
            return tuple(
                self._variants.of(
                    p, _Mode.STRICT if (str(ptype), p.policy_id) in skip else mode, user
                )
                for p in policies
            )

        policies = PolicySet(
            identity=vary(PolicyType.IDENTITY, guarded.identity),
            boundary=None
            if guarded.boundary is None
            else vary(PolicyType.BOUNDARY, guarded.boundary),
            session=None,
            scp_levels=tuple(vary(PolicyType.SCP, level) for level in guarded.scp_levels),
            rcps=vary(PolicyType.RCP, guarded.rcps),
        )
        return evaluate(
            caller.principal,
            ASSUME,
            self.role.arn,
            ctx,
            policies,
            resource_policies=vary(PolicyType.RESOURCE, (self.role.trust_policy,)),
            resource_account=self.role.account,
            resource_grant_required=True,
        )

    def _decide(self, caller: _Caller) -> Verdict:
        strict = self._run(caller, _Mode.STRICT)
        if strict.allowed:
            return Verdict(caller.arn, caller.kind, Outcome.ALLOWED, unless=self._unless(caller))
        relaxed = self._run(caller, _Mode.RELAXED)
        if not relaxed.allowed:
            reason = describe(
                relaxed, caller.arn, ASSUME, self.role.arn, resource_label="role trust"
            )
            return Verdict(caller.arn, caller.kind, Outcome.DENIED, reason=reason)
        groups = self._needed_groups(caller, relaxed)
        return Verdict(
            caller.arn, caller.kind, Outcome.CONDITIONAL, groups, unless=self._unless(caller)
        )

    def _open_matches(self, caller: _Caller, ev: Evaluation, effect: str) -> list[OpenStatement]:
        """The matched statements of ``ev`` that have open clauses, with those clauses."""
        decided = _decides(caller.kind == "user")
        by_id = self._originals(caller)
        out = []
        for m in ev.matched:
            if m.ref.effect != effect:
                continue
            policy = by_id.get((m.policy_type, m.ref.policy_id))
            if policy is None:
                continue
            st = policy.policy.statements[m.ref.index]
            open_ = _open_clauses(st, policy.policy.variables_enabled, decided)
            if open_:
                out.append(
                    OpenStatement(
                        str(m.policy_type),
                        m.ref.policy_id,
                        st.sid,
                        st.index,
                        condition_views(open_),
                    )
                )
        return out

    def _originals(self, caller: _Caller) -> dict[tuple[PolicyType, str], CompiledPolicy]:
        guarded = role_account_guardrails(self.world, self.role, Context(), caller.policies)
        found: dict[tuple[PolicyType, str], CompiledPolicy] = {
            (PolicyType.RESOURCE, self.role.trust_policy.policy_id): self.role.trust_policy
        }
        for ptype, policies in (
            (PolicyType.IDENTITY, guarded.identity),
            (PolicyType.BOUNDARY, guarded.boundary or ()),
            (PolicyType.SCP, [p for level in guarded.scp_levels for p in level]),
            (PolicyType.RCP, guarded.rcps),
        ):
            for p in policies:
                found[(ptype, p.policy_id)] = p
        return found

    def _needed_groups(
        self, caller: _Caller, relaxed: Evaluation
    ) -> tuple[tuple[OpenStatement, ...], ...]:
        """Open Allow statements grouped by policy type (SCPs by policy); a group whose open
        statements can be left out while the relaxed answer stays allowed is not needed."""
        groups: dict[tuple[str, str], list[OpenStatement]] = {}
        for st in self._open_matches(caller, relaxed, "Allow"):
            key = (st.policy_type, st.policy if st.policy_type == PolicyType.SCP else "")
            groups.setdefault(key, []).append(st)
        needed = []
        for members in groups.values():
            skip = frozenset((s.policy_type, s.policy) for s in members)
            if not self._run(caller, _Mode.RELAXED, skip).allowed:
                needed.append(tuple(members))
        # Each group alone may be replaceable while not all of them are: then keep them all.
        return tuple(needed) if needed else tuple(tuple(g) for g in groups.values())

    def _unless(self, caller: _Caller) -> tuple[OpenStatement, ...]:
        denials = self._run(caller, _Mode.DENIALS)
        return tuple(self._open_matches(caller, denials, "Deny"))
