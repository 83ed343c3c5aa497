"""Which policies apply to a user or a role, as they are now in the world."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.identity.model import Role, User, World
from sidecar.policy.compile import CompiledPolicy
from sidecar.policy.evaluate import PolicySet


def _identity(
    world: World, inline: Mapping[str, CompiledPolicy], managed: tuple[str, ...]
) -> tuple[CompiledPolicy, ...]:
    out = list(inline.values())
    for arn in managed:
        mp = world.managed_policy(arn)
        if mp is not None:  # the loader guarantees it exists
            out.append(mp.document)
    return tuple(out)


def _boundary(world: World, arn: str | None) -> tuple[CompiledPolicy, ...] | None:
    if arn is None:
        return None
    mp = world.managed_policy(arn)
    # A boundary that cannot be found allows nothing: fail closed.
    return (mp.document,) if mp is not None else ()


def scp_levels(world: World, account: str) -> tuple[tuple[CompiledPolicy, ...], ...]:
    """The SCPs that cap ``account``'s principals, root level first; none outside an
    organization or for its management account (docs/ORGANIZATIONS.md)."""
    org = world.organization
    member = org.guarded(account) if org is not None else None
    return member.scp_levels if member is not None else ()


def rcps(world: World, account: str | None) -> tuple[CompiledPolicy, ...]:
    """The RCPs that cap ``account``'s resources (none for the management account)."""
    org = world.organization
    member = org.guarded(account) if org is not None else None
    return member.rcps if member is not None else ()


def role_policies(world: World, role: Role) -> PolicySet:
    return PolicySet(
        identity=_identity(world, role.inline_policies, role.managed_policy_arns),
        boundary=_boundary(world, role.permissions_boundary),
        scp_levels=scp_levels(world, role.account),
    )


def user_policies(world: World, user: User) -> PolicySet:
    return PolicySet(
        identity=_identity(world, user.inline_policies, user.managed_policy_arns),
        boundary=_boundary(world, user.permissions_boundary),
        scp_levels=scp_levels(world, user.account),
    )
