"""The cached engine answers exactly as the uncached authorizer, whatever happens between
requests: time moving, expiries, reloads and revocations (Hypothesis)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.errors import TokenError
from sidecar.identity.model import World
from sidecar.policy.context import Context
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.clock import CountingEntropy, FixedClock, iso8601
from sidecar.sts.keys import KeyRing
from sidecar.sts.revoke import REVOKE_POLICY_NAME, revocation_policy
from tests.sts.world import ALICE, A, _compile, allow, demo_world, doc

APP = f"arn:aws:iam::{A}:role/apps/app-reader"
ROLES = [APP, f"arn:aws:iam::{A}:role/bounded", f"arn:aws:iam::{A}:role/long"]
ACTIONS = ["s3:GetObject", "s3:ListBucket", "s3:PutObject", "sqs:SendMessage"]
RESOURCES = ["arn:aws:s3:::reports/q1.csv", "arn:aws:s3:::home/alice/x", "arn:aws:s3:::b", "*"]
CONDITIONAL = doc(
    allow("s3:ListBucket", Condition={"StringLike": {"s3:prefix": "home/*"}}),
    allow("s3:PutObject", "arn:aws:s3:::home/${s3:prefix}"),
    allow(
        "sqs:SendMessage", Condition={"DateLessThan": {"aws:CurrentTime": "2027-01-15T09:00:00Z"}}
    ),
    allow("s3:GetObject", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
)
SESSION_POLICY = (
    '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}'
)


def _with_inline(world: World, role_arn: str, name: str, document: dict[str, Any]) -> World:
    role = world.roles_by_arn[role_arn]
    inline = {**role.inline_policies, name: _compile(document, PolicyKind.IDENTITY, name)}
    new_role = dataclasses.replace(role, inline_policies=inline)
    acct = world.accounts[role.account]
    acct = dataclasses.replace(acct, roles={**acct.roles, role.name.lower(): new_role})
    return dataclasses.replace(
        world,
        accounts={**world.accounts, role.account: acct},
        roles_by_arn={**world.roles_by_arn, role_arn: new_role},
    )


def _outcome(call: Any, *args: Any) -> tuple[Any, ...]:
    try:
        result = call(*args)
    except TokenError as err:
        return ("error", err.code, err.reason)
    if isinstance(result, tuple):
        result = result[0]
    return (result.decision, result.evaluation.matched, result.reason)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("assume"), st.sampled_from(ROLES), st.booleans(), st.integers(900, 3600)),
        st.tuples(
            st.just("authorize"),
            st.integers(0, 20),
            st.sampled_from(ACTIONS),
            st.sampled_from(RESOURCES),
            st.sampled_from(["home/alice", "etc/", None]),
            st.sampled_from(["10.1.2.3", "192.0.2.4", None]),
        ),
        st.tuples(st.just("advance"), st.integers(0, 2400)),
        st.tuples(st.just("reload"), st.sampled_from(["revoke", "conditional", "same"])),
    ),
    min_size=5,
    max_size=40,
)


@settings(max_examples=100)
@given(steps)
def test_cached_and_uncached_agree(ops: list[tuple[Any, ...]]) -> None:
    """Every authorize answer (decision, deciding statements, reason, or refusal) is the same
    through the engine's caches as through a fresh uncached authorizer."""
    clock = FixedClock(1_800_000_000)
    keys = KeyRing.generate(CountingEntropy(5))
    world = demo_world()
    engine = Engine(world, keys, clock, decision_cache_size=64, token_cache_size=8)
    env = StsEnv(world, keys, clock, CountingEntropy(6))
    tokens: list[str] = []
    for op in ops:
        if op[0] == "assume":
            _, role_arn, with_policy, duration = op
            p = AssumeRoleParams(
                role_arn=role_arn,
                role_session_name="s1",
                duration_seconds=duration,
                policy=SESSION_POLICY if with_policy else "",
            )
            env = dataclasses.replace(env, world=engine.snapshot.world)
            caller = UserCaller(env.world.users_by_arn[ALICE])
            tokens.append(assume_role(env, caller, p).credentials.session_token)
        elif op[0] == "authorize" and tokens:
            _, n, action, resource, prefix, ip = op
            token = tokens[n % len(tokens)]
            ctx = Context({"s3:prefix": (prefix,)} if prefix else {})
            transport = {"aws:SourceIp": ip} if ip else {}
            fresh = Authorizer(engine.snapshot.world, keys, clock)
            args = (token, action, resource, ctx, transport)
            cached = _outcome(engine.authorize, *args)
            again = _outcome(engine.authorize, *args)
            uncached = _outcome(fresh.authorize, *args)
            assert cached == uncached
            assert again == uncached
            event(f"decision {uncached[0]}")
        elif op[0] == "advance":
            clock.advance(op[1])
        elif op[0] == "reload":
            current = engine.snapshot.world
            if op[1] == "revoke":
                policy = revocation_policy(iso8601(clock.now()))
                current = _with_inline(current, APP, REVOKE_POLICY_NAME, policy)
            elif op[1] == "conditional":
                current = _with_inline(current, APP, "conditional", CONDITIONAL)
            engine.swap(current, keys)
