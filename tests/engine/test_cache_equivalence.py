"""The cached engine answers exactly as the uncached authorizer, whatever happens between
requests: time moving, expiries, reloads and revocations (Hypothesis).

Each conditional policy goes to its own role, so that a decision reading only aws:SourceIp (or
only s3:prefix) is cached and must still follow the value; one that reads aws:CurrentTime is
never cached. Put together in one policy, every decision would read the clock and the cached
path would never be taken.
"""

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
from sidecar.sts.keys import KeyRing
from sidecar.sts.revoke import REVOKE_POLICY_NAME, revocation_policy, revocation_time
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.world import ALICE, A, _compile, allow, demo_world, doc

APP = f"arn:aws:iam::{A}:role/apps/app-reader"
LONG = f"arn:aws:iam::{A}:role/long"  # no policies of its own
ACCOUNT_TRUST = f"arn:aws:iam::{A}:role/account-trust"  # reads reports/*
ROLES = [APP, f"arn:aws:iam::{A}:role/bounded", LONG, ACCOUNT_TRUST]
ACTIONS = ["s3:GetObject", "s3:ListBucket", "s3:PutObject", "sqs:SendMessage"]
RESOURCES = ["arn:aws:s3:::reports/q1.csv", "arn:aws:s3:::home/alice/x", "arn:aws:s3:::b", "*"]
# reload name -> (role, policy): each condition family on a role of its own.
CONDITIONAL = {
    "ip": (
        LONG,
        doc(allow("s3:*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    ),
    "prefix": (
        ACCOUNT_TRUST,
        doc(
            allow("s3:ListBucket", Condition={"StringLike": {"s3:prefix": "home/*"}}),
            allow("s3:PutObject", "arn:aws:s3:::home/${s3:prefix}"),
        ),
    ),
    "time": (
        APP,
        doc(
            allow(
                ["s3:ListBucket", "s3:PutObject", "sqs:SendMessage"],
                Condition={"DateLessThan": {"aws:CurrentTime": "2027-01-15T08:40:00Z"}},
            )
        ),
    ),
}
SESSION_POLICY = (
    '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}'
)


def _with_inline(world: World, role_arn: str, name: str, document: dict[str, Any] | None) -> World:
    """``world`` with the role's inline policy ``name`` set to ``document`` (None: removed)."""
    role = world.roles_by_arn[role_arn]
    inline = {k: v for k, v in role.inline_policies.items() if k != name}
    if document is not None:
        inline[name] = _compile(document, PolicyKind.IDENTITY, name)
    new_role = dataclasses.replace(role, inline_policies=inline)
    acct = world.accounts[role.account]
    acct = dataclasses.replace(acct, roles={**acct.roles, role.name.lower(): new_role})
    return dataclasses.replace(
        world,
        accounts={**world.accounts, role.account: acct},
        roles_by_arn={**world.roles_by_arn, role_arn: new_role},
    )


def _conditional_world() -> World:
    world = demo_world()
    for name, (role_arn, document) in CONDITIONAL.items():
        world = _with_inline(world, role_arn, name, document)
    return world


def _outcome(call: Any, *args: Any) -> tuple[Any, ...]:
    try:
        result = call(*args)
    except TokenError as err:
        return ("error", err.code, err.reason)
    if isinstance(result, tuple):  # Engine.authorize: (result, from the cache)
        result, hit = result
        return (result.decision, result.evaluation.matched, result.reason, hit)
    return (result.decision, result.evaluation.matched, result.reason)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("assume"), st.sampled_from(ROLES), st.booleans(), st.integers(900, 3600)),
        st.tuples(
            st.just("authorize"),
            st.integers(0, 20),
            st.sampled_from(ACTIONS),
            st.sampled_from(RESOURCES),
            # the same request asked one to four times: (s3:prefix, aws:SourceIp, seconds the
            # clock moves first), so the cache meets other values and later times
            st.lists(
                st.tuples(
                    st.sampled_from(["home/alice", "etc/", None]),
                    st.sampled_from(["10.1.2.3", "192.0.2.4", None]),
                    st.sampled_from([0, 0, 700]),
                ),
                min_size=1,
                max_size=4,
            ),
        ),
        st.tuples(st.just("advance"), st.integers(0, 2400)),
        # revoke, toggle one conditional policy, or reload the same world
        st.tuples(st.just("reload"), st.sampled_from(["revoke", *CONDITIONAL, "same"])),
    ),
    min_size=5,
    max_size=40,
)


@settings(max_examples=300)
@given(steps)
def test_cached_and_uncached_agree(ops: list[tuple[Any, ...]]) -> None:
    """Every authorize answer (decision, deciding statements, reason, or refusal) is the same
    through the engine's caches as through a fresh uncached authorizer."""
    clock = FixedClock(1_800_000_000)
    keys = KeyRing.generate(CountingEntropy(5))
    world = _conditional_world()
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
            _, n, action, resource, variants = op
            token = tokens[n % len(tokens)]
            fresh = Authorizer(engine.snapshot.world, keys, clock)
            for prefix, ip, step in variants:
                clock.advance(step)
                ctx = Context({"s3:prefix": (prefix,)} if prefix else {})
                transport = {"aws:SourceIp": ip} if ip else {}
                args = (token, action, resource, ctx, transport)
                cached = _outcome(engine.authorize, *args)
                again = _outcome(engine.authorize, *args)
                uncached = _outcome(fresh.authorize, *args)
                assert cached[:3] == uncached
                assert again[:3] == uncached
                event(f"decision {uncached[0]}")
                event(f"second asking from the cache: {again[3] if len(again) > 3 else '-'}")
        elif op[0] == "advance":
            clock.advance(op[1])
        elif op[0] == "reload":
            current = engine.snapshot.world
            if op[1] == "revoke":
                policy = revocation_policy(revocation_time(clock.now()))
                current = _with_inline(current, APP, REVOKE_POLICY_NAME, policy)
            elif op[1] in CONDITIONAL:
                role_arn, document = CONDITIONAL[op[1]]
                present = op[1] in current.roles_by_arn[role_arn].inline_policies
                current = _with_inline(current, role_arn, op[1], None if present else document)
            engine.swap(current, keys)
