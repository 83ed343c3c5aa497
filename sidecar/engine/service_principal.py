"""Decide a request made by a mesh service principal (a SPIFFE id that the world's
`service_principals` maps to a name such as `orders.mesh.local`), against one world snapshot.

As at AWS, a service principal has no session and no identity-based policies: only a
resource-based policy that names it (`"Principal": {"Service": "orders.mesh.local"}`, or `"*"`)
can allow it (docs/SEMANTICS.md §2.3). It belongs to no account, so no SCP applies; the RCPs of
the resource owner's account still cap it (§5.8). Its keys are those of the STS path for a
service caller (sidecar/sts/assume.py `caller_scope`): aws:PrincipalServiceName,
aws:PrincipalIsAWSService `true`, the clock; plus the resource owner's keys and the transport's.

The policies in scope come from the snapshot's Authorizer caches (resource policies by
resource, RCPs by owner, trust policies by role), so nothing is compiled per request.
"""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.engine.authorize import Authorizer, AuthzResult
from sidecar.identity.model import ServicePrincipal
from sidecar.policy.context import Context
from sidecar.policy.evaluate import PolicySet
from sidecar.policy.unconditional import unconditional
from sidecar.sts.callers import ServiceCaller
from sidecar.sts.context import service_context, transport_context


def authorize_service(
    authorizer: Authorizer,
    service: ServicePrincipal,
    spiffe_id: str,
    action: str,
    resource: str,
    context: Context | None = None,
    transport: Mapping[str, str] | None = None,
) -> AuthzResult:
    """The decision for ``service`` (authenticated as ``spiffe_id``). Raises ValidationError,
    as Authorize does, for a request over the size limits or carrying a sidecar-owned key."""
    authorizer.check_request(action, resource, context)
    principal = ServiceCaller(service, spiffe_id).principal()
    ctx = authorizer.caller_context(context)
    service_context(ctx, service.name, authorizer.clock.now())
    transport_context(ctx, transport or {})
    free = unconditional(action)  # sts:GetCallerIdentity: no policy can deny it
    if free is not None:
        return AuthzResult(free[0].decision, principal.arn, free[0], free[1])
    # No account: no identity policies, no SCPs; only a resource policy can grant.
    return authorizer.decide(
        principal, None, PolicySet(), None, action, resource, ctx, grant_required=True
    )
