"""SimulateCustomPolicy's limits in the core (the same for the RPC and `iam-sidecar simulate`):
AWS's quotas, the caps on pairs and policy text, and the work estimate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.errors import ValidationError
from sidecar.policy.context import Context
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.simulate import SimulationRequest, simulate
from sidecar.policy.simulate_limits import MAX_WORK, check_limits, estimate_work


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def refusal(**kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        check_limits(SimulationRequest(**kw))
    return info.value.message


def test_every_quota_violation_is_listed_before_anything_is_parsed() -> None:
    """Four broken parameters, one of them an unparsable policy: four violations, no
    MalformedPolicyDocument."""
    message = refusal(
        actions=["s3:GetObject", "x"],
        resources=[""],
        policies=["{", "{" * 131073],
        caller_arn="a" * 2049,
    )
    assert message.startswith("4 validation errors detected: Value at 'actionNames' ")
    assert "Value at 'resourceArns' " in message
    assert "Value at 'policyInputList' " in message
    assert message.endswith(
        "Value at 'callerArn' failed to satisfy constraint: Member must have length less than "
        "or equal to 2048"
    )


def test_missing_actions_keep_awss_message() -> None:
    assert refusal(actions=[]) == (
        "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_the_work_estimate() -> None:
    """pairs (1 + ARN length // 256 each) x statements and entries, plus wildcard actions tried
    per distinct action: `s3:Get*` only for s3 actions, `*:List*` and NotAction for all."""
    doc = policy(
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:*"], "Resource": ["arn:aws:s3:::a/*", "arn:aws:s3:::b"]},
        {"Effect": "Allow", "Action": "*:List*", "Resource": "*",
         "Condition": {"StringEquals": {"s3:prefix": ["x", "y"]}}},
        {"Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "Resource": "*"},
    )  # fmt: skip
    parsed = parse_policy(doc, PolicyKind.IDENTITY)
    ctx = Context()
    ctx.set_multi("s3:prefix", ["p1", "p2", "p3"])
    work = estimate_work(
        ["s3:GetObject", "S3:getobject", "ec2:RunInstances"],
        ["arn:aws:s3:::a/k", "arn:aws:s3:::" + "k" * 300],
        ctx,
        [parsed],
    )
    assert work.pair_size == 3 * (1 + 2)
    # 1 + 2 resources; 1 + 1 resource + 2 values x 3 request values; 1 + 1 resource
    assert work.policy_size == 3 + 8 + 2
    # s3:getobject: s3:Get* + *:List* + 2 NotAction entries; ec2:runinstances: 3
    assert work.patterns == 4 + 3
    assert work.units == 9 * 13 + 7


def test_simulate_refuses_work_over_the_cap_before_evaluating() -> None:
    statements = [
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::b{i}"} for i in range(500)
    ]
    request = SimulationRequest(
        actions=[f"s3:Get{i}" for i in range(MAX_WORK // 1000 + 1)], policies=[policy(*statements)]
    )
    with pytest.raises(ValidationError, match="units of work per call"):
        simulate(request)


def test_check_is_called_between_pairs() -> None:
    """simulate calls ``check`` before each pair (and each policy); an error from it stops."""
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise ValidationError("stop")

    request = SimulationRequest(
        actions=["s3:A1", "s3:A2", "s3:A3", "s3:A4"],
        policies=[policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})],
    )
    with pytest.raises(ValidationError, match="stop"):
        simulate(request, check)
    assert calls == 4  # one policy, then the pairs until the fourth call refused
    assert len(simulate(request)) == 4
