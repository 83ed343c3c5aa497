"""The decision cache under an organization: a condition in an SCP or an RCP that reads a
caller's key puts that key in the cache key, so a cached answer never outlives its value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.identity.load import build_world
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.sts.keys import KeyRing
from sidecar.sts.tokens import encode_token
from tests.engine.test_org_corpus import session_for
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.conftest import START

A = "111111111111"
ROLE = f"arn:aws:iam::{A}:role/app"
ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "orders.mesh.local"},
            "Action": "sts:AssumeRole",
        }
    ],
}
# Both deny unless the request is tagged env=prod: one as an SCP, one as an RCP.
TAGGED = {"StringNotEqualsIfExists": {"aws:RequestTag/env": "prod"}}
SCP = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*", "Condition": TAGGED}
    ],
}
RCP = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": "*",
            "Condition": TAGGED,
        }
    ],
}


def world_doc() -> dict[str, Any]:
    return copy.deepcopy(
        {
            "accounts": [
                {"id": "999999999999"},
                {
                    "id": A,
                    "roles": [
                        {"name": "app", "trust_policy": TRUST, "inline_policies": {"all": ALL}}
                    ],
                },
            ],
            "service_principals": [
                {"name": "orders.mesh.local", "spiffe_ids": ["spiffe://cluster.local/ns/o/sa/o"]}
            ],
            "organization": {
                "id": "o-a1b2c3d4e5",
                "management_account": "999999999999",
                "root": {"id": "r-ab12", "accounts": ["999999999999"]},
                "units": [
                    {
                        "id": "ou-ab12-11111111",
                        "name": "workloads",
                        "scps": ["FullAWSAccess", "Tagged"],
                        "rcps": ["TaggedRcp"],
                        "accounts": [A],
                    }
                ],
                "policies": {"Tagged": SCP, "TaggedRcp": RCP},
            },
        }
    )


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:PutObject", "arn:aws:s3:::b/k"),
        ("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{A}:q"),
    ],
)
def test_cached_answers_follow_the_keys_org_policies_read(action: str, resource: str) -> None:
    world = build_world(world_doc(), source="w.yaml", secrets=lambda _k, _r: None)
    keys = KeyRing.generate(CountingEntropy(1), "k1")
    clock = FixedClock(START)
    session = session_for(world, ROLE)
    token = encode_token(session, keys)
    engine = Engine(world, keys, clock)
    bare = Authorizer(world, keys, clock)
    prod = Context({"aws:RequestTag/env": ("prod",)})
    dev = Context({"aws:RequestTag/env": ("dev",)})
    seen = []
    for ctx in (prod, dev, prod, dev):
        got, _hit = engine.authorize(token, action, resource, ctx)
        assert got.decision is bare.authorize_session(session, action, resource, ctx).decision
        seen.append(got.decision)
    assert seen == [Decision.ALLOWED, Decision.EXPLICIT_DENY] * 2
