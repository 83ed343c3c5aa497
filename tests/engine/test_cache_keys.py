"""The decision cache never changes an answer: decisions that read the clock move with it, and
decisions that read the connection's keys (aws:SourceIp, aws:SecureTransport) are kept per
value, all through Engine.authorize (the cached path)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine.engine import Engine
from sidecar.policy.evaluate import Decision
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.mfa import totp
from tests.engine.test_authorize import APP, with_role
from tests.fakes import FixedClock
from tests.sts.conftest import START
from tests.sts.world import ALICE, MFA_SEED, MFA_SERIAL, _compile, allow, doc

ACTION, RESOURCE = "sqs:SendMessage", "arn:aws:sqs:us-east-1:111111111111:jobs"


def _engine_with(env: StsEnv, statement: dict[str, Any]) -> Engine:
    """An engine whose world gives app-reader one more inline policy: ``statement``."""
    role = env.world.roles_by_arn[APP]
    extra = _compile(doc(statement), PolicyKind.IDENTITY, "extra")
    world = with_role(env.world, APP, inline_policies={**role.inline_policies, "extra": extra})
    return Engine(world, env.keys, env.clock)


def _token(env: StsEnv, engine: Engine, **params: Any) -> str:
    caller = UserCaller(engine.snapshot.world.users_by_arn[ALICE])
    p = AssumeRoleParams(APP, "s1", **params)
    creds = assume_role(StsEnv(engine.snapshot.world, env.keys, env.clock, env.entropy), caller, p)
    return creds.credentials.session_token


CLOCK_POLICIES = [
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2027-01-15T08:10:00Z"}}, {}, id="aws:CurrentTime"
    ),
    pytest.param(  # keys are case-insensitive; the cache must see this one as the clock too
        {"DateLessThan": {"AWS:currentTIME": "2027-01-15T08:10:00Z"}}, {}, id="AWS:currentTIME"
    ),
    pytest.param({"NumericLessThan": {"aws:EpochTime": str(START + 600)}}, {}, id="aws:EpochTime"),
    pytest.param(
        {"NumericLessThan": {"aws:MultiFactorAuthAge": "600"}},
        {"serial_number": MFA_SERIAL, "token_code": totp(MFA_SEED, START)},
        id="aws:MultiFactorAuthAge",
    ),
]


@pytest.mark.parametrize(("condition", "assume_params"), CLOCK_POLICIES)
def test_a_decision_that_reads_the_clock_flips_when_the_clock_passes_its_bound(
    env: StsEnv, condition: dict[str, Any], assume_params: dict[str, str]
) -> None:
    """Allowed (twice, so a cache would hold it) before the bound; the same token, action and
    resource are refused once the clock has moved past it."""
    engine = _engine_with(env, allow(ACTION, Condition=condition))
    token = _token(env, engine, **assume_params)
    for _ in range(2):
        result, cached = engine.authorize(token, ACTION, RESOURCE)
        assert result.decision is Decision.ALLOWED
        assert not cached
    assert isinstance(env.clock, FixedClock)
    env.clock.advance(600)
    result, cached = engine.authorize(token, ACTION, RESOURCE)
    assert result.decision is Decision.IMPLICIT_DENY
    assert not cached


@pytest.mark.parametrize(
    ("condition", "transport_key", "good", "bad"),
    [
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, "aws:SourceIp", "10.1.2.3", "192.0.2.4"),
        ({"Bool": {"aws:SecureTransport": "true"}}, "aws:SecureTransport", "true", "false"),
    ],
)
def test_cached_decisions_vary_with_the_connection(
    env: StsEnv, condition: dict[str, Any], transport_key: str, good: str, bad: str
) -> None:
    """The same token, action and resource from two connections: two answers, each taken from
    the cache on the second asking (so the cached path is the one answering)."""
    engine = _engine_with(env, allow(ACTION, Condition=condition))
    token = _token(env, engine)
    expected = {good: Decision.ALLOWED, bad: Decision.IMPLICIT_DENY}
    for value in (good, bad, good, bad):
        result, _cached = engine.authorize(token, ACTION, RESOURCE, None, {transport_key: value})
        assert result.decision is expected[value], value
    for value in (good, bad):
        result, cached = engine.authorize(token, ACTION, RESOURCE, None, {transport_key: value})
        assert cached, "IP-only decisions must be served from the cache"
        assert result.decision is expected[value], value
