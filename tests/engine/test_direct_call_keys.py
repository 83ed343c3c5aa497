"""aws:PrincipalIsAWSService and aws:ViaAWSService are on every signed request, as at AWS: a
role session calls directly, and is not an AWS service, so `Bool false` conditions on them match
and `Null` says they are present (see docs/CONDITION-KEYS.md)."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import StsEnv
from sidecar.sts.context import service_context, user_context
from tests.engine.test_authorize import APP, REPORT, token_for, with_role
from tests.sts.world import ALICE, _compile, allow, doc


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"Bool": {"aws:PrincipalIsAWSService": "false"}}, Decision.ALLOWED),
        ({"Bool": {"aws:PrincipalIsAWSService": "true"}}, Decision.IMPLICIT_DENY),
        ({"Bool": {"aws:ViaAWSService": "false"}}, Decision.ALLOWED),
        ({"Null": {"aws:PrincipalIsAWSService": "true"}}, Decision.IMPLICIT_DENY),
        ({"Null": {"aws:ViaAWSService": "false"}}, Decision.ALLOWED),
    ],
)
def test_role_session_requests_carry_the_keys(
    env: StsEnv, condition: dict[str, dict[str, str]], expected: Decision
) -> None:
    policy = doc(allow("s3:GetObject", Condition=condition))
    world = with_role(
        env.world,
        APP,
        inline_policies={"p": _compile(policy, PolicyKind.IDENTITY, "p")},
        managed_policy_arns=(),
    )
    env = dataclasses.replace(env, world=world)
    authz = Authorizer(world, env.keys, env.clock)
    assert authz.authorize(token_for(env), "s3:GetObject", REPORT).decision is expected


def test_users_and_services(env: StsEnv) -> None:
    user = user_context(Context(), env.world.users_by_arn[ALICE], 0.0)
    assert user.get("aws:principalisawsservice") == ("false",)
    assert user.get("aws:viaawsservice") == ("false",)
    service = service_context(Context(), "orders.mesh.local", 0.0)
    assert service.get("aws:principalisawsservice") == ("true",)
