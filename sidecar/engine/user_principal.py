"""Decide a request made by an IAM user with its long-term key, against one world snapshot.

The policies are those IAM's SimulatePrincipalPolicy gathers for a user: its identity
policies and permissions boundary, the resource policies attached to the resource, and the
organization's SCPs (of the user's account) and RCPs (of the resource owner's account). The
keys are those of a request signed with the user's key (sidecar/sts/context.py user_context).
It mirrors Authorizer.authorize_session and shares its per-snapshot caches: for an action of
the AssumeRole family on a world role, the role's trust policy is the resource policy and must
grant, as in the STS call.
"""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.engine.authorize import Authorizer, AuthzResult
from sidecar.identity.model import User
from sidecar.identity.scope import user_policies
from sidecar.policy.context import Context
from sidecar.policy.unconditional import unconditional
from sidecar.sts.callers import UserCaller
from sidecar.sts.context import transport_context, user_context


def authorize_user(
    authz: Authorizer,
    user: User,
    action: str,
    resource: str,
    context: Context | None = None,
    transport: Mapping[str, str] | None = None,
) -> AuthzResult:
    """Decide for ``user``; ``context`` holds the request's keys (the user's are set over it)."""
    world = authz.world
    ctx = authz.caller_context(context)
    user_context(ctx, user, authz.clock.now())
    transport_context(ctx, transport or {})
    principal = UserCaller(user, world.partition).principal()
    free = unconditional(action)  # sts:GetCallerIdentity: no policy can deny it
    if free is not None:
        return AuthzResult(free[0].decision, principal.arn, free[0], free[1])
    base = user_policies(world, user)
    return authz.decide(principal, user.account, base, None, action, resource, ctx)
