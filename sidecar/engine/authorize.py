"""Authorize a request made with a role session, against one world snapshot.

Verify the token, gather the policies in scope *as they are now* in the world (the role's
identity policies and boundary, the session's policies, the resource policies attached to the
resource, the SCPs of the role's account and the RCPs of the resource's; revocation is an
ordinary inline policy), fill the keys that describe the principal and its organization, and
evaluate. For `sts:AssumeRole*` (and TagSession, SetSourceIdentity) on a world role, the
resource policy is that role's trust policy, which must grant, as in the STS call. Compiled
policy sets are kept per snapshot (a reload builds a new Authorizer), so a request never
compiles what an earlier one already did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sidecar.engine.cache import BoundedCache
from sidecar.engine.limits import MAX_ACTION_CHARS, MAX_RESOURCE_CHARS
from sidecar.engine.limits import check_request as check_sizes
from sidecar.engine.weights import ENTRY, policies_bytes, scope_bytes, text_bytes
from sidecar.identity.model import Role, World
from sidecar.identity.scope import rcps, role_policies
from sidecar.policy.arn import compile_resource
from sidecar.policy.compile import CompiledPolicy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import (
    Decision,
    Evaluation,
    PolicySet,
    PolicyType,
    describe,
    evaluate,
)
from sidecar.policy.principals import BUILT_IN_PROVIDERS, RequestPrincipal
from sidecar.policy.simulate_trust import TRUST_ACTIONS
from sidecar.policy.unconditional import unconditional
from sidecar.sts.assume import compile_session_policies
from sidecar.sts.clock import Clock
from sidecar.sts.context import CallerKeys, org_context, session_context, transport_context
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session, current_role
from sidecar.sts.tokens import verify_token

SESSION_SCOPE_BYTES = 64 << 20  # compiled session policies (their action memos counted full)
RESOURCE_SCOPE_BYTES = 32 << 20  # resource -> attached resource policies
# Keys whose value moves with the clock: decisions reading them are not cached.
TIME_KEYS = frozenset({"aws:currenttime", "aws:epochtime", "aws:multifactorauthage"})
# Condition-key prefixes of the built-in web identity providers (only their sessions carry them).
BUILT_IN_PREFIXES = tuple(p + ":" for p in BUILT_IN_PROVIDERS)


@dataclass(frozen=True, slots=True)
class AuthzResult:
    decision: Decision
    principal_arn: str
    evaluation: Evaluation
    reason: str


@dataclass(frozen=True, slots=True)
class Scope:
    """Compiled policies with the condition keys they read (for decision-cache keys)."""

    policies: tuple[CompiledPolicy, ...]
    keys: frozenset[str]
    weight: int = 0  # estimated bytes held by its cache entry (beyond shared world policies)


def _scope(policies: Sequence[CompiledPolicy], weight: int = 0) -> Scope:
    keys: set[str] = set()
    for p in policies:
        for st in p.statements:
            keys |= st.condition_keys
    return Scope(tuple(policies), frozenset(keys), weight + scope_bytes(len(policies), len(keys)))


@dataclass(frozen=True, slots=True)
class RoleScope:
    policy_set: PolicySet
    keys: frozenset[str]


def federated_prefixes(world: World) -> tuple[str, ...]:
    prefixes = list(BUILT_IN_PREFIXES)
    for account in world.accounts.values():
        prefixes += [p.key_prefix.lower() + ":" for p in account.oidc_providers.values()]
    return tuple(prefixes)


class Authorizer:
    """Decides requests for session tokens against one world snapshot."""

    def __init__(
        self,
        world: World,
        keys: KeyRing,
        clock: Clock,
        *,
        not_before_leeway: float = 30.0,
        scope_cache_size: int = 10_000,
        session_scope_bytes: int = SESSION_SCOPE_BYTES,
        resource_scope_bytes: int = RESOURCE_SCOPE_BYTES,
    ) -> None:
        self.world = world
        self.keys = keys
        self.clock = clock
        self.not_before_leeway = not_before_leeway
        self._caller_keys = CallerKeys(federated_prefixes(world))
        self._roles: dict[str, RoleScope] = {}
        self._rcps: dict[str | None, Scope] = {}  # resource owner -> the RCPs capping it
        self._trusts: dict[str, Scope] = {}  # role ARN -> its trust policy (world roles only)
        # Bounded in entries and estimated bytes (docs/SERVER.md, "Memory bounds").
        self._sessions: BoundedCache[Scope] = BoundedCache(
            scope_cache_size, session_scope_bytes, lambda scope: scope.weight
        )
        self._resources: BoundedCache[tuple[str | None, Scope]] = BoundedCache(
            scope_cache_size, resource_scope_bytes, lambda found: found[1].weight
        )
        self._matchers = [
            (account.account_id, rp.document, compile_resource(rp.resource, variables=False))
            for account in world.accounts.values()
            for rp in account.resource_policies
        ]

    # -- policies in scope ------------------------------------------------------------------

    def role_scope(self, role: Role) -> RoleScope:
        found = self._roles.get(role.arn)
        if found is None:
            ps = role_policies(self.world, role)
            scps = [p for level in ps.scp_levels for p in level]
            scope = _scope((*ps.identity, *(ps.boundary or ()), *scps))
            found = self._roles[role.arn] = RoleScope(ps, scope.keys)
        return found

    def session_scope(self, session: Session) -> Scope | None:
        if not session.session_policies:
            return None
        found = self._sessions.get(session.session_policies)
        if found is None:
            texts = session.session_policies
            compiled = compile_session_policies(texts)
            found = _scope(compiled, policies_bytes(texts, compiled))
            self._sessions.put(texts, found)
        return found

    def resource_scope(self, resource: str) -> tuple[str | None, Scope]:
        """The resource policies attached to ``resource`` and the account that owns it."""
        found = self._resources.get(resource)
        if found is None:
            parts = resource.split(":", 5)
            owner: str | None = None
            attached = []
            empty = Context()
            for account_id, document, match in self._matchers:
                if match(resource, parts, empty):
                    attached.append(document)
                    owner = account_id
            if owner is None and len(parts) == 6 and len(parts[4]) == 12 and parts[4].isdigit():
                owner = parts[4]
            found = (owner, _scope(attached, ENTRY + text_bytes(resource)))
            self._resources.put(resource, found)
        return found

    def rcp_scope(self, owner: str | None) -> Scope:
        """The RCPs of the resource owner's account: one entry per member account, and one
        (empty) for every other owner, so callers' ARNs cannot grow it."""
        org = self.world.organization
        key = owner if org is not None and org.guarded(owner) is not None else None
        found = self._rcps.get(key)
        if found is None:
            found = self._rcps[key] = _scope(rcps(self.world, key))
        return found

    def warm(self) -> None:
        """Compile the policies of every role now (a reload does this off the event loop)."""
        for account in self.world.accounts.values():
            for role in account.roles.values():
                self.role_scope(role)

    # -- requests -----------------------------------------------------------------------------

    def check_request(self, action: str, resource: str, context: Context | None) -> None:
        """Refuse, before any cache is consulted, a request the sidecar never decides: sizes
        beyond AWS's limits, or context keys only the sidecar may set (ValidationError)."""
        # The common request (no context, sizes within limits) costs three comparisons here.
        if (
            (context is None or not context.values)
            and len(action) <= MAX_ACTION_CHARS
            and len(resource) <= MAX_RESOURCE_CHARS
        ):
            return
        check_sizes(action, resource, context)  # first: nothing oversized is remembered below
        if context is not None:
            self._caller_keys.check(context)

    def session(self, token: str) -> Session:
        """Verify a token (raises TokenError subclasses)."""
        session, _key = verify_token(
            token, self.keys, self.clock.now(), not_before_leeway=self.not_before_leeway
        )
        return session

    def caller_context(self, context: Context | None) -> Context:
        """A copy of the caller's keys, which check_request has already checked; the sidecar's
        keys are set on it afterwards and override."""
        ctx = Context()
        if context is not None:
            ctx.values = dict(context.values)
            ctx.multi = context.multi  # a frozenset: Context.set replaces it, never mutates
        return ctx

    def authorize(
        self,
        token: str,
        action: str,
        resource: str,
        context: Context | None = None,
        transport: Mapping[str, str] | None = None,
    ) -> AuthzResult:
        self.check_request(action, resource, context)
        return self.authorize_session(self.session(token), action, resource, context, transport)

    def authorize_session(
        self,
        session: Session,
        action: str,
        resource: str,
        context: Context | None = None,
        transport: Mapping[str, str] | None = None,
    ) -> AuthzResult:
        """Decide for a verified session; ``context`` has passed check_request."""
        ctx = self.caller_context(context)
        role = current_role(self.world, session)
        session_context(ctx, session, role, self.clock.now())
        transport_context(ctx, transport or {})
        principal = session.principal()
        if role is None:  # gone, or the world's partition changed
            ev = Evaluation(Decision.IMPLICIT_DENY, (), PolicyType.IDENTITY)
            return AuthzResult(
                ev.decision, principal.arn, ev, "the session's role no longer exists"
            )
        free = unconditional(action)  # sts:GetCallerIdentity: no policy can deny it
        if free is not None:
            return AuthzResult(free[0].decision, principal.arn, free[0], free[1])
        session_scope = self.session_scope(session)
        return self.decide(
            principal,
            role.account,
            self.role_scope(role).policy_set,
            session_scope.policies if session_scope is not None else None,
            action,
            resource,
            ctx,
        )

    def decide(
        self,
        principal: RequestPrincipal,
        account: str | None,
        base: PolicySet,
        session: tuple[CompiledPolicy, ...] | None,
        action: str,
        resource: str,
        ctx: Context,
        *,
        grant_required: bool = False,
    ) -> AuthzResult:
        """The decision for a principal of ``account`` with its own policies (``base``: identity,
        boundary, SCPs; ``session``: its session policies): the policies attached to the
        resource, or for the AssumeRole family on a world role that role's trust policy (which
        must grant, as the STS call decides), the organization's keys and the resource owner's
        RCPs. ``ctx`` holds the request's and the principal's keys. ``account`` is None for a
        principal of no account; ``grant_required``: only a resource policy can allow it."""
        owner, attached = self.resource_scope(resource)
        target = self.trust_target(action, resource)
        if target is not None:
            owner, attached = target.account, self.trust_scope(target)
        org_context(ctx, self.world.organization, account, owner)
        policies = PolicySet(
            identity=base.identity,
            boundary=base.boundary,
            session=session,
            scp_levels=base.scp_levels,
            rcps=self.rcp_scope(owner).policies,
        )
        ev = evaluate(
            principal,
            action,
            resource,
            ctx,
            policies,
            resource_policies=attached.policies,
            resource_account=owner,
            resource_grant_required=grant_required or target is not None,
        )
        label = "role trust" if target is not None else "resource-based"
        reason = describe(ev, principal.arn, action, resource, resource_label=label)
        return AuthzResult(ev.decision, principal.arn, ev, reason)

    def trust_target(self, action: str, resource: str) -> Role | None:
        """The world role whose trust policy decides ``action`` on ``resource``: an action of
        the AssumeRole family (or TagSession, SetSourceIdentity) on that role's ARN."""
        if action.lower() not in TRUST_ACTIONS:
            return None
        return self.world.role(resource)

    def trust_scope(self, role: Role) -> Scope:
        found = self._trusts.get(role.arn)
        if found is None:
            found = self._trusts[role.arn] = _scope((role.trust_policy,))
        return found

    def referenced_keys(self, session: Session, resource: str) -> frozenset[str] | None:
        """Condition keys the policies in scope for this request read; None when the role is
        gone (nothing to cache then)."""
        role = current_role(self.world, session)
        if role is None:
            return None
        owner, attached = self.resource_scope(resource)
        keys = self.role_scope(role).keys | attached.keys | self.rcp_scope(owner).keys
        target = self.world.role(resource)  # any action: the cache key holds it already
        if target is not None:
            keys |= self.trust_scope(target).keys | self.rcp_scope(target.account).keys
        session_scope = self.session_scope(session)
        if session_scope is not None:
            keys |= session_scope.keys
        return keys
