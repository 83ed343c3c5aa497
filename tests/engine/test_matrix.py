"""docs/SEMANTICS.md §5.3 through real sessions: which resource-policy principal still grants when
the role's boundary or session policy does not."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.identity.model import ResourcePolicy, World
from sidecar.policy.evaluate import Decision
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.world import (
    ALICE,
    A,
    _compile,
    account,
    allow,
    doc,
    make_world,
    managed,
    role,
    trust_stmt,
    user,
)

BUCKET = "arn:aws:s3:::matrix/*"
OBJECT = "arn:aws:s3:::matrix/file.txt"


def world_with(principal: Any) -> World:
    list_only = managed(A, "ListOnly", doc(allow("s3:ListBucket")))
    deny_get = managed(
        A,
        "DenyGet",
        doc(allow("s3:*"), {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}),
    )
    trust = doc(trust_stmt({"AWS": ALICE}))
    roles = [
        role(A, "bounded", trust, boundary=list_only.arn),
        role(A, "plain", trust),
        role(A, "deny-boundary", trust, boundary=deny_get.arn),
    ]
    bucket = _compile(
        doc(
            {
                "Effect": "Allow",
                "Principal": principal,
                "Action": "s3:GetObject",
                "Resource": BUCKET,
            }
        ),
        PolicyKind.RESOURCE,
        BUCKET,
    )
    alice = user(A, "alice", inline={"assume": doc(allow("sts:AssumeRole"))})
    return make_world(
        [account(A, roles, [alice], [list_only, deny_get], (ResourcePolicy(A, BUCKET, bucket),))]
    )


def decide(role_name: str, principal: Any, session_policy: str = "") -> Decision:
    world = world_with(principal)
    clock = FixedClock(1_800_000_000)
    keys = KeyRing.generate(CountingEntropy(3))
    env = StsEnv(world, keys, clock, CountingEntropy(4))
    p = AssumeRoleParams(
        role_arn=f"arn:aws:iam::{A}:role/{role_name}", role_session_name="s1", policy=session_policy
    )
    token = assume_role(env, UserCaller(world.users_by_arn[ALICE]), p).credentials.session_token
    return Authorizer(world, keys, clock).authorize(token, "s3:GetObject", OBJECT).decision


SESSION = {"AWS": f"arn:aws:sts::{A}:assumed-role/bounded/s1"}
ROLE = {"AWS": f"arn:aws:iam::{A}:role/bounded"}
NOTHING = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}}'


@pytest.mark.parametrize(
    ("role_name", "principal", "expected"),
    [
        ("bounded", SESSION, Decision.ALLOWED),
        ("bounded", ROLE, Decision.IMPLICIT_DENY),
        ("bounded", {"AWS": "*"}, Decision.ALLOWED),
        ("bounded", "*", Decision.ALLOWED),
        ("plain", {"AWS": A}, Decision.IMPLICIT_DENY),
        ("plain", {"AWS": f"arn:aws:iam::{A}:root"}, Decision.IMPLICIT_DENY),
        ("plain", {"AWS": f"arn:aws:iam::{A}:role/plain"}, Decision.ALLOWED),
        (
            "deny-boundary",
            {"AWS": f"arn:aws:sts::{A}:assumed-role/deny-boundary/s1"},
            Decision.EXPLICIT_DENY,
        ),
        ("deny-boundary", {"AWS": "*"}, Decision.EXPLICIT_DENY),
    ],
)
def test_boundary_rows(role_name: str, principal: Any, expected: Decision) -> None:
    """Session ARN and `*` grants ignore the boundary; role-ARN grants do not; account grants
    only delegate; an explicit Deny in the boundary always wins."""
    assert decide(role_name, principal) is expected


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": f"arn:aws:sts::{A}:assumed-role/plain/s1"}, Decision.ALLOWED),
        ({"AWS": f"arn:aws:iam::{A}:role/plain"}, Decision.IMPLICIT_DENY),
    ],
)
def test_session_policy_rows(principal: Any, expected: Decision) -> None:
    """A session policy that allows nothing relevant keeps a session-ARN grant but not a
    role-ARN grant."""
    assert decide("plain", principal, NOTHING) is expected
