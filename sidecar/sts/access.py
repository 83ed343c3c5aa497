"""Whether an authenticated caller may call an API action that IAM authorizes with the caller's
own identity-based policies, such as `iam:SimulateCustomPolicy` on `*`.

The policies are the caller's identity side, as AssumeRole sees them (`caller_scope`): a user's
policies and boundary; a role session's role policies, boundary and session policies. A mesh
service principal holds no identity-based policies, so nothing can allow it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.errors import AccessDenied
from sidecar.policy.evaluate import Decision, Evaluation, PolicyType, describe, evaluate
from sidecar.sts.assume import StsEnv, caller_scope
from sidecar.sts.callers import Caller, ServiceCaller, SessionCaller
from sidecar.sts.context import transport_context
from sidecar.sts.session import current_role

_NOTHING_ALLOWS = Evaluation(Decision.IMPLICIT_DENY, (), PolicyType.IDENTITY)


def authorize_call(
    env: StsEnv,
    caller: Caller,
    action: str,
    resource: str = "*",
    transport: Mapping[str, str] | None = None,
) -> Evaluation:
    """The caller's own policies must allow ``action`` on ``resource``; raises AccessDenied with
    AWS's sentence otherwise. ``transport`` holds aws:SourceIp / aws:SecureTransport."""
    principal = caller.principal()
    ev = _NOTHING_ALLOWS
    if not isinstance(caller, ServiceCaller) and _role_is_current(env, caller):
        policies, ctx, _inherited = caller_scope(env, caller)
        transport_context(ctx, transport or {})
        ev = evaluate(principal, action, resource, ctx, policies)
    if not ev.allowed:
        raise AccessDenied(describe(ev, principal.arn, action, resource))
    return ev


def _role_is_current(env: StsEnv, caller: Caller) -> bool:
    """A session whose role is gone (or whose partition the world left) can do nothing."""
    return not isinstance(caller, SessionCaller) or (
        current_role(env.world, caller.session) is not None
    )
