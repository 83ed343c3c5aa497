"""Authorize a request made with a role session (uncached; caching comes with the server).

Verify the token, gather the policies in scope *as they are now* in the world (the role's
identity policies and boundary, the session's policies, the resource policies attached to the
resource, the revocation policy if any, which is an ordinary inline policy), fill the keys that
describe the principal, and evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.identity.model import World
from sidecar.identity.scope import role_policies
from sidecar.policy.arn import compile_resource
from sidecar.policy.compile import CompiledPolicy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, Evaluation, PolicySet, PolicyType, describe, evaluate
from sidecar.sts.assume import compile_session_policies
from sidecar.sts.clock import Clock
from sidecar.sts.context import is_reserved, session_context, transport_context
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from sidecar.sts.tokens import verify_token


@dataclass(frozen=True, slots=True)
class AuthzResult:
    decision: Decision
    principal_arn: str
    evaluation: Evaluation
    reason: str


def resource_policies_for(
    world: World, resource: str
) -> tuple[str | None, tuple[CompiledPolicy, ...]]:
    """The resource policies attached to ``resource`` and the account that owns it."""
    parts = resource.split(":", 5)
    found: list[CompiledPolicy] = []
    owner: str | None = None
    for account in world.accounts.values():
        for rp in account.resource_policies:
            if compile_resource(rp.resource, variables=False)(resource, parts, Context()):
                found.append(rp.document)
                owner = account.account_id
    if owner is None and len(parts) == 6 and len(parts[4]) == 12 and parts[4].isdigit():
        owner = parts[4]
    return owner, tuple(found)


def federated_prefixes(world: World) -> tuple[str, ...]:
    prefixes = ["accounts.google.com:", "cognito-identity.amazonaws.com:", "graph.facebook.com:",
                "www.amazon.com:"]  # fmt: skip
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
    ) -> None:
        self.world = world
        self.keys = keys
        self.clock = clock
        self.not_before_leeway = not_before_leeway
        self._reserved_prefixes = federated_prefixes(world)

    def session(self, token: str) -> Session:
        """Verify a token (raises TokenError subclasses)."""
        session, _key = verify_token(
            token, self.keys, self.clock.now(), not_before_leeway=self.not_before_leeway
        )
        return session

    def authorize(
        self,
        token: str,
        action: str,
        resource: str,
        context: Context | None = None,
        transport: Mapping[str, str] | None = None,
    ) -> AuthzResult:
        session = self.session(token)
        return self.authorize_session(session, action, resource, context, transport)

    def authorize_session(
        self,
        session: Session,
        action: str,
        resource: str,
        context: Context | None = None,
        transport: Mapping[str, str] | None = None,
    ) -> AuthzResult:
        now = self.clock.now()
        ctx = Context()
        if context is not None:
            for key, values in context.values.items():
                if is_reserved(key, self._reserved_prefixes):
                    continue  # callers may not speak for the sidecar
                if context.is_multi(key):
                    ctx.set_multi(key, values)
                else:
                    ctx.set(key, values[0])
        role = self.world.role_by_name(session.account, session.role_name)
        session_context(ctx, session, role, now)
        transport_context(ctx, transport or {})
        principal = session.principal()
        if role is None or role.role_id != session.role_id:
            # The role is gone (or was replaced): its sessions can do nothing.
            ev = Evaluation(Decision.IMPLICIT_DENY, (), PolicyType.IDENTITY)
            return AuthzResult(
                ev.decision, principal.arn, ev, "the session's role no longer exists"
            )
        base = role_policies(self.world, role)
        policies = PolicySet(
            identity=base.identity,
            boundary=base.boundary,
            session=compile_session_policies(session.session_policies)
            if session.session_policies
            else None,
        )
        owner, attached = resource_policies_for(self.world, resource)
        ev = evaluate(
            principal,
            action,
            resource,
            ctx,
            policies,
            resource_policies=attached,
            resource_account=owner,
        )
        return AuthzResult(
            ev.decision, principal.arn, ev, describe(ev, principal.arn, action, resource)
        )
