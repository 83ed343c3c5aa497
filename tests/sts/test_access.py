"""authorize_call: an API action that the caller's own identity-side policies must allow
(iam:SimulateCustomPolicy on "*"), with AWS's access-denied sentences."""

from __future__ import annotations

import pytest

from sidecar.errors import AccessDenied
from sidecar.identity.model import World
from sidecar.sts.access import authorize_call
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import Caller, ServiceCaller, SessionCaller, UserCaller
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.world import (
    ALICE,
    ORDERS,
    A,
    account,
    allow,
    doc,
    make_world,
    managed,
    role,
    trust_stmt,
    user,
)

ACTION = "iam:SimulateCustomPolicy"
SIMULATE = doc(allow(ACTION))


def world(*, with_role: bool = True) -> World:
    boundary = managed(A, "S3Only", doc(allow("s3:*")))
    users = [
        user(A, "alice", inline={"assume": doc(allow("sts:AssumeRole")), "simulate": SIMULATE}),
        user(A, "bob"),
        user(
            A,
            "carol",
            inline={
                "simulate": SIMULATE,
                "not-from-the-lab": doc(
                    {
                        "Effect": "Deny",
                        "Action": "iam:*",
                        "Resource": "*",
                        "Condition": {"IpAddress": {"aws:SourceIp": "10.9.0.0/16"}},
                    }
                ),
            },
        ),
        user(A, "dave", inline={"simulate": SIMULATE}, boundary=boundary.arn),
    ]
    roles = [role(A, "simulator", doc(trust_stmt({"AWS": ALICE})), inline={"simulate": SIMULATE})]
    return make_world([account(A, roles if with_role else [], users, [boundary])], (ORDERS,))


@pytest.fixture
def env(keys: KeyRing, clock: FixedClock) -> StsEnv:
    return StsEnv(world(), keys, clock, CountingEntropy(100))


def caller(env: StsEnv, name: str) -> UserCaller:
    return UserCaller(env.world.users_by_arn[f"arn:aws:iam::{A}:user/{name}"])


def refusal(env: StsEnv, who: Caller, transport: dict[str, str] | None = None) -> str:
    with pytest.raises(AccessDenied) as info:
        authorize_call(env, who, ACTION, "*", transport)
    return info.value.message


def head(arn: str) -> str:
    return f"User: {arn} is not authorized to perform: {ACTION} on resource: *"


def test_users(env: StsEnv) -> None:
    """Allowed by an identity policy; refused with no policy, an explicit deny (which reads the
    transport's aws:SourceIp) or a boundary that does not allow it."""
    assert authorize_call(env, caller(env, "alice"), ACTION).allowed
    bob = f"arn:aws:iam::{A}:user/bob"
    assert refusal(env, caller(env, "bob")) == (
        f"{head(bob)} because no identity-based policy allows the {ACTION} action"
    )
    carol = caller(env, "carol")
    assert authorize_call(env, carol, ACTION, "*", {"aws:SourceIp": "192.0.2.1"}).allowed
    assert refusal(env, carol, {"aws:SourceIp": "10.9.1.1"}) == (
        f"{head(carol.user.arn)} with an explicit deny in an identity-based policy"
    )
    dave = caller(env, "dave")
    assert refusal(env, dave) == (
        f"{head(dave.user.arn)} because no permissions boundary policy allows the {ACTION} action"
    )


def test_role_sessions(env: StsEnv) -> None:
    """A session of a role that allows it may; its session policy can narrow it; once the
    role is deleted, its sessions may not."""
    arn = f"arn:aws:iam::{A}:role/simulator"
    alice = caller(env, "alice")
    session = assume_role(env, alice, AssumeRoleParams(arn, "s1")).session
    assert authorize_call(env, SessionCaller(session), ACTION).allowed
    narrow = assume_role(
        env, alice, AssumeRoleParams(arn, "s2", policy='{"Version": "2012-10-17", '
        '"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}')
    ).session  # fmt: skip
    assert refusal(env, SessionCaller(narrow)) == (
        f"{head(narrow.arn)} because no session policy allows the {ACTION} action"
    )
    gone = StsEnv(world(with_role=False), env.keys, env.clock, env.entropy)
    assert refusal(gone, SessionCaller(session)) == (
        f"{head(session.arn)} because no identity-based policy allows the {ACTION} action"
    )


def test_a_service_principal_has_no_identity_policies(env: StsEnv) -> None:
    assert refusal(env, ServiceCaller(ORDERS, ORDERS.spiffe_ids[0])) == (
        f"{head(ORDERS.name)} because no identity-based policy allows the {ACTION} action"
    )
