"""The case's principal in the world, and the role session it stands for.

A role principal is evaluated through a session of it, minted as AssumeRole mints one: the
same parameter checks, the same session policies, the same Session (sidecar/sts/assume.py). No
trust check is made: the test says the session exists; `assume` cases test whether it could.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.errors import SidecarError, ValidationError
from sidecar.identity.model import Role, ServicePrincipal, User, World
from sidecar.policytest.model import DEFAULT_SESSION_NAME, SessionSpec
from sidecar.sts.assume import (
    AssumeRoleParams,
    StsEnv,
    check_shape,  # AssumeRole's own checks, so a test's session is one STS would issue
    check_tag_rules,
    create_session,
    session_policies_for,
)
from sidecar.sts.context import merge_tags
from sidecar.sts.session import Session


@dataclass(frozen=True, slots=True)
class Principal:
    """Exactly one of: a role (with the session name), a user, a mesh service."""

    arn: str
    role: Role | None = None
    session_name: str = ""  # from a session ARN; "" for a role ARN
    user: User | None = None
    service: ServicePrincipal | None = None


def find_principal(world: World, text: str) -> Principal | str:
    """The principal named by ``text``, or why there is none."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        service = next((s for s in world.service_principals if s.name == text), None)
        if service is not None:
            return Principal(text, service=service)
        return (
            f"{text!r} is neither an ARN (role, user or assumed-role session) nor a service "
            "principal of the world"
        )
    if parts[1] != world.partition:
        return f"the world's partition is {world.partition!r}, not {parts[1]!r}"
    account, resource = parts[4], parts[5]
    if parts[2] == "sts" and resource.startswith("assumed-role/"):
        role_name, _, session_name = resource.removeprefix("assumed-role/").partition("/")
        role = world.role_by_name(account, role_name)
        if role is None or not session_name or "/" in session_name:
            return f"no role {role_name!r} in account {account} for the session {text}"
        return Principal(text, role=role, session_name=session_name)
    if parts[2] == "iam" and resource.startswith("role/"):
        role = world.role(text)
        if role is not None:
            return Principal(text, role=role)
        named = world.role_by_name(account, resource.rsplit("/", 1)[-1])
        hint = f" (the world has {named.arn})" if named is not None else ""
        return f"no role {text} in the world{hint}"
    if parts[2] == "iam" and resource.startswith("user/"):
        user = world.users_by_arn.get(text)
        if user is not None:
            return Principal(text, user=user)
        return f"no user {text} in the world"
    return f"{text} is not a role, user or assumed-role session ARN"


def role_session(
    env: StsEnv, role: Role, spec: SessionSpec, session_name: str, now: float
) -> Session:
    """A session of ``role`` made at ``spec.issued_at`` (default ``now``) as AssumeRole would
    make it; raises the SidecarError AssumeRole would (ValidationError, MalformedPolicyDocument,
    PackedPolicyTooLarge). It lasts as long as the role allows, and must still be valid at
    ``now``."""
    issued = now if spec.issued_at is None else spec.issued_at
    params = AssumeRoleParams(
        role_arn=role.arn,
        role_session_name=session_name or spec.name or DEFAULT_SESSION_NAME,
        policy=spec.policy,
        policy_arns=spec.policy_arns,
        tags=spec.tags,
        transitive_tag_keys=spec.transitive_tag_keys,
        source_identity=spec.source_identity,
    )
    check_shape(params)
    check_tag_rules(params, {})
    policies = session_policies_for(env.world, role, params.policy, params.policy_arns)
    if issued > now:
        raise ValidationError("the session is issued after the case's time ('at')")
    if now - issued > role.max_session_duration:
        raise ValidationError(
            f"the session would have expired by the case's time: the role's sessions last at "
            f"most {role.max_session_duration} seconds"
        )
    minted = create_session(
        StsEnv(env.world, env.keys, _At(issued), env.entropy),
        role,
        session_name=params.role_session_name,
        duration=role.max_session_duration,
        session_policies=policies,
        tags=merge_tags(params.tags),
        transitive_tag_keys=params.transitive_tag_keys,
        source_identity=params.source_identity,
        mfa_authenticated_at=int(issued) if spec.mfa else None,
    )
    return minted.session


@dataclass(frozen=True, slots=True)
class _At:
    """A clock stopped at one time."""

    t: float

    def now(self) -> float:
        return self.t


def session_problem(err: SidecarError) -> str:
    return f"STS would not issue this session: {err.code}: {err.message}"
