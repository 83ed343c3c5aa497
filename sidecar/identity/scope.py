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


def role_policies(world: World, role: Role) -> PolicySet:
    return PolicySet(
        identity=_identity(world, role.inline_policies, role.managed_policy_arns),
        boundary=_boundary(world, role.permissions_boundary),
    )


def user_policies(world: World, user: User) -> PolicySet:
    return PolicySet(
        identity=_identity(world, user.inline_policies, user.managed_policy_arns),
        boundary=_boundary(world, user.permissions_boundary),
    )
