"""SimulateCustomPolicy with a role's trust policy (docs/SEMANTICS.md §9.1): the reason names
the role trust policy, the callers a trust simulation accepts, and the mixed-pairs refusal."""

from __future__ import annotations

import json

import pytest

from sidecar.errors import ValidationError
from sidecar.policy.principals import PrincipalType
from sidecar.policy.simulate import SimulationRequest, simulate
from sidecar.policy.simulate_trust import MIXED, trust_caller

ROLE = "arn:aws:iam::111111111111:role/app-reader"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111111111111:user/bob"},
            "Action": "sts:AssumeRole",
        },
    }
)


def test_reason_names_the_role_trust_policy() -> None:
    [result] = simulate(
        SimulationRequest(
            actions=["sts:AssumeRole"],
            resources=[ROLE],
            resource_policy=TRUST,
            caller_arn="arn:aws:iam::111111111111:user/alice",
        )
    )
    assert result.reason == (
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: "
        f"sts:AssumeRole on resource: {ROLE} because no role trust policy allows the "
        "sts:AssumeRole action"
    )


def test_mixed_pairs_are_refused_with_a_sentence() -> None:
    with pytest.raises(ValidationError) as info:
        simulate(
            SimulationRequest(
                actions=["sts:AssumeRole"],
                resources=[ROLE, "arn:aws:s3:::reports"],
                resource_policy=TRUST,
                caller_arn="arn:aws:iam::111111111111:user/alice",
            )
        )
    assert info.value.message == MIXED


@pytest.mark.parametrize(
    ("caller", "ptype", "provider"),
    [
        ("lambda.amazonaws.com", PrincipalType.SERVICE, ""),
        ("orders.mesh.local", PrincipalType.SERVICE, ""),
        ("accounts.google.com", PrincipalType.WEB_IDENTITY, "accounts.google.com"),
        ("graph.facebook.com", PrincipalType.WEB_IDENTITY, "graph.facebook.com"),
        ("www.amazon.com", PrincipalType.WEB_IDENTITY, "www.amazon.com"),
        (
            "arn:aws:iam::111111111111:oidc-provider/example.com",
            PrincipalType.WEB_IDENTITY,
            "arn:aws:iam::111111111111:oidc-provider/example.com",
        ),
        (
            "arn:aws-cn:iam::111111111111:saml-provider/idp",
            PrincipalType.SAML,
            "arn:aws-cn:iam::111111111111:saml-provider/idp",
        ),
    ],
)
def test_trust_callers(caller: str, ptype: PrincipalType, provider: str) -> None:
    p = trust_caller(caller)
    assert p is not None
    assert (p.type, p.federated_provider, p.has_identity_policies) == (ptype, provider, False)


def test_other_arns_are_not_trust_callers() -> None:
    assert trust_caller("arn:aws:s3:::bucket") is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"caller_arn": "arn:aws:s3:::bucket"},
            "Invalid CallerArn 'arn:aws:s3:::bucket': give a user, role or assumed-role "
            "session ARN",
        ),
        (
            {"resource_owner": "bob"},
            "Invalid ResourceOwner 'bob': give an account id or arn:aws:iam::ACCOUNT:root",
        ),
        (
            {"resource_owner": "arn:aws:iam::222222222222:root"},
            f"Invalid ResourceOwner '222222222222': the role {ROLE} belongs to account "
            "111111111111",
        ),
        ({"caller_arn": ""}, "CallerArn is required if you include a ResourcePolicy"),
    ],
)
def test_refusals(changes: dict[str, str], message: str) -> None:
    req = SimulationRequest(
        actions=["sts:AssumeRole"],
        resources=[ROLE],
        resource_policy=TRUST,
        caller_arn=changes.get("caller_arn", "arn:aws:iam::111111111111:user/alice"),
        resource_owner=changes.get("resource_owner", ""),
    )
    with pytest.raises(ValidationError) as info:
        simulate(req)
    assert info.value.message == message
