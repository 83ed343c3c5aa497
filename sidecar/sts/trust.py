"""What the three assume calls share: the request keys a trust policy sees (docs/SEMANTICS.md §6.2),
the actions it must allow (§7.5), and the trust evaluation itself, in which
the role's trust policy is a resource policy that must always grant (§5.2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from sidecar.identity.model import Role, World
from sidecar.identity.scope import rcps
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, Evaluation, PolicySet, evaluate
from sidecar.policy.principals import RequestPrincipal
from sidecar.sts.context import merge_tags, org_context


def session_request_context(
    ctx: Context,
    role: Role,
    *,
    session_name: str,
    tags: Sequence[tuple[str, str]] = (),
    transitive_tag_keys: Sequence[str] = (),
    source_identity: str = "",
    external_id: str = "",
    inherited: Mapping[str, str] | None = None,
) -> Context:
    """The sts:/aws:Request…/aws:ResourceTag keys of an assume call."""
    ctx.set("sts:RoleSessionName", session_name)
    if external_id:
        ctx.set("sts:ExternalId", external_id)
    if source_identity:
        ctx.set("sts:SourceIdentity", source_identity)
    if transitive_tag_keys:
        ctx.set_multi("sts:TransitiveTagKeys", transitive_tag_keys)
    if tags:
        for key, value in tags:
            ctx.set(f"aws:RequestTag/{key}", value)
        ctx.set_multi("aws:TagKeys", [k for k, _ in tags])
    # The role's tags as a resource; a transitive tag of the caller replaces one with its key.
    for key, value in merge_tags(role.tags.items(), (inherited or {}).items()).items():
        ctx.set(f"aws:ResourceTag/{key}", value)
    return ctx


def required_actions(
    action: str,
    *,
    tags: Iterable[object],
    transitive_tag_keys: Iterable[object],
    source_identity: str,
) -> list[str]:
    """The assume action, plus sts:TagSession when tags are passed and sts:SetSourceIdentity
    when a source identity is."""
    actions = [action]
    if any(True for _ in tags) or any(True for _ in transitive_tag_keys):
        actions.append("sts:TagSession")
    if source_identity:
        actions.append("sts:SetSourceIdentity")
    return actions


def role_account_guardrails(
    world: World, role: Role, ctx: Context, policies: PolicySet | None = None
) -> PolicySet:
    """The caller's ``policies`` with the RCPs of the role's account, which cap every assume
    call (STS supports RCPs), and the role account's organization keys set in ``ctx``."""
    org_context(ctx, world.organization, None, role.account)
    return replace(policies or PolicySet(), rcps=rcps(world, role.account))


def first_refusal(
    principal: RequestPrincipal,
    role: Role,
    actions: Sequence[str],
    ctx: Context,
    policies: PolicySet | None = None,
) -> tuple[str, Evaluation] | None:
    """Evaluate each action against the role's trust policy (and the caller's own policies);
    the first action not allowed, with its evaluation, or None when all are allowed."""
    for action in actions:
        ctx.memo.clear()
        ev = evaluate(
            principal,
            action,
            role.arn,
            ctx,
            policies or PolicySet(),
            resource_policies=(role.trust_policy,),
            resource_account=role.account,
            resource_grant_required=True,
        )
        if ev.decision is not Decision.ALLOWED:
            return action, ev
    return None
