"""sts:GetCallerIdentity needs no permission and cannot be denied (STS API: GetCallerIdentity;
docs/SEMANTICS.md §5.2): Authorize answers ALLOWED for it whatever the policies say, on the
first call and from the decision cache alike."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.policy.evaluate import Decision
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import StsEnv
from tests.engine.test_authorize import APP, token_for, with_role
from tests.sts.world import _compile, doc

DENY_ALL = doc({"Effect": "Deny", "Action": "*", "Resource": "*"})


def _denied_world(env: StsEnv) -> StsEnv:
    role = env.world.roles_by_arn[APP]
    deny = _compile(DENY_ALL, PolicyKind.IDENTITY, "DenyAll")
    world = with_role(env.world, APP, inline_policies={**role.inline_policies, "DenyAll": deny})
    return dataclasses.replace(env, world=world)


@pytest.mark.parametrize("action", ["sts:GetCallerIdentity", "STS:getcalleridentity"])
def test_allowed_though_no_policy_allows_it(env: StsEnv, action: str) -> None:
    authz = Authorizer(env.world, env.keys, env.clock)
    token = token_for(env)
    # The role's policies allow only S3 reads: any other STS action is implicitly denied.
    assert authz.authorize(token, "sts:GetSessionToken", "*").decision is Decision.IMPLICIT_DENY
    result = authz.authorize(token, action, "*")
    assert result.decision is Decision.ALLOWED
    assert result.evaluation.matched == ()
    assert result.reason == "sts:GetCallerIdentity needs no permission"


def test_allowed_under_an_explicit_deny_of_everything(env: StsEnv) -> None:
    env = _denied_world(env)
    authz = Authorizer(env.world, env.keys, env.clock)
    token = token_for(env)
    assert authz.authorize(token, "s3:GetObject", "*").decision is Decision.EXPLICIT_DENY
    assert authz.authorize(token, "sts:GetCallerIdentity", "*").decision is Decision.ALLOWED


def test_the_cached_answer_is_the_same(env: StsEnv) -> None:
    env = _denied_world(env)
    engine = Engine(env.world, env.keys, env.clock)
    token = token_for(env)
    first, cached_first = engine.authorize(token, "sts:GetCallerIdentity", "*")
    second, cached_second = engine.authorize(token, "sts:GetCallerIdentity", "*")
    assert (cached_first, cached_second) == (False, True)
    assert first.decision is second.decision is Decision.ALLOWED
    assert second.reason == first.reason
