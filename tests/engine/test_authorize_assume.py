"""Authorize of sts:AssumeRole on a world role answers as the STS call does: the role's trust
policy must grant, together with the caller's own policies (and its organization's SCPs), so
one engine gives one answer (docs/SEMANTICS.md §5.2, §7.5)."""

from __future__ import annotations

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.errors import AccessDenied
from sidecar.policy.evaluate import Decision
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import SessionCaller
from sidecar.sts.tokens import encode_token
from tests.engine.test_org_corpus import session_for
from tests.sts.world import A, B

CALLERS = [f"arn:aws:iam::{A}:role/apps/app-reader", f"arn:aws:iam::{A}:role/chain-b"]
TARGETS = [
    f"arn:aws:iam::{A}:role/apps/app-reader",
    f"arn:aws:iam::{A}:role/account-trust",
    f"arn:aws:iam::{A}:role/chain-b",
    f"arn:aws:iam::{A}:role/chain-c",
    f"arn:aws:iam::{A}:role/long",
    f"arn:aws:iam::{B}:role/cross",
]


def sts_allows(env: StsEnv, caller: str, target: str) -> bool:
    session = session_for(env.world, caller)
    try:
        assume_role(env, SessionCaller(session), AssumeRoleParams(target, "s2"))
    except AccessDenied:
        return False
    return True


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("target", TARGETS)
def test_authorize_agrees_with_assume_role(env: StsEnv, caller: str, target: str) -> None:
    result = Authorizer(env.world, env.keys, env.clock).authorize_session(
        session_for(env.world, caller), "sts:AssumeRole", target
    )
    assert (result.decision is Decision.ALLOWED) == sts_allows(env, caller, target), result.reason


def test_the_cases_differ(env: StsEnv) -> None:
    """Both answers occur, so the agreement above is not vacuous; a trust policy that does not
    name the caller is an implicit deny in the role trust policy, as STS words it."""
    answers = {sts_allows(env, c, t) for c in CALLERS for t in TARGETS}
    assert answers == {True, False}
    result = Authorizer(env.world, env.keys, env.clock).authorize_session(
        session_for(env.world, CALLERS[0]), "sts:AssumeRole", f"arn:aws:iam::{A}:role/chain-c"
    )
    assert result.decision is Decision.IMPLICIT_DENY
    assert result.reason.endswith("because no role trust policy allows the sts:AssumeRole action")


def test_cached_answers_agree(env: StsEnv) -> None:
    session = session_for(env.world, CALLERS[1])
    token = encode_token(session, env.keys)
    engine = Engine(env.world, env.keys, env.clock)
    for target in TARGETS * 2:
        got, _hit = engine.authorize(token, "sts:AssumeRole", target)
        assert (got.decision is Decision.ALLOWED) == sts_allows(env, CALLERS[1], target)
