"""SimulateCustomPolicy with SCPs and RCPs by organization level (docs/SEMANTICS.md §9.1): the
reasons name the organization policy type, the levels' texts count toward the call's caps, and
`iam-sidecar simulate` takes the same JSON."""

from __future__ import annotations

import json

import pytest

from sidecar.errors import ValidationError
from sidecar.policy.context import Context
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.simulate import SimulationRequest, simulate
from sidecar.policy.simulate_limits import MAX_POLICY_TEXT, estimate_work, policy_lists
from tests.test_cli import run

ALICE = "arn:aws:iam::111111111111:user/alice"
ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
)
ALLOW_EC2 = json.dumps(
    {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}}
)
RCP_DENY_S3 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"},
    }
)


def test_a_level_without_an_allow_is_an_scp_implicit_deny() -> None:
    [result] = simulate(
        SimulationRequest(
            actions=["s3:GetObject"],
            policies=[ALLOW_ALL],
            scp_levels=[[ALLOW_ALL], [ALLOW_EC2]],
            caller_arn=ALICE,
        )
    )
    assert result.reason == (
        f"User: {ALICE} is not authorized to perform: s3:GetObject on resource: * because no "
        "service control policy allows the s3:GetObject action"
    )


def test_an_rcp_deny_is_named() -> None:
    [result] = simulate(
        SimulationRequest(
            actions=["s3:GetObject"],
            policies=[ALLOW_ALL],
            rcp_levels=[[], [RCP_DENY_S3]],
            caller_arn=ALICE,
        )
    )
    assert result.reason.endswith("with an explicit deny in a resource control policy")
    [m] = result.evaluation.matched
    assert (m.policy_type.value, m.ref.policy_id) == (
        "rcp",
        "OrderedResourceControlPolicyInputList.2.1",
    )


def test_level_texts_count_toward_the_caps() -> None:
    req = SimulationRequest(
        actions=["s3:GetObject"], scp_levels=[[ALLOW_ALL]], rcp_levels=[[], [RCP_DENY_S3]]
    )
    names = [name for _, name in policy_lists(req)]
    assert "orderedOrganizationPolicyInputList.1.serviceControlPolicyInputList" in names
    assert "orderedResourceControlPolicyInputList.2.resourceControlPolicyInputList" in names
    big = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Sid": "x" * 120_000},
        }
    )
    with pytest.raises(ValidationError) as info:
        simulate(SimulationRequest(actions=["s3:GetObject"], scp_levels=[[big]] * 5))
    assert f"at most {MAX_POLICY_TEXT:,} characters" in info.value.message


def test_work_counts_every_level() -> None:
    one = parse_policy(ALLOW_ALL, PolicyKind.SCP, enforce_quota=False)
    single = estimate_work(["s3:GetObject"], ["*"], Context(), [one])
    double = estimate_work(["s3:GetObject"], ["*"], Context(), [one, one])
    assert double.policy_size == 2 * single.policy_size


def test_cli_takes_the_levels() -> None:
    request = {
        "policyInputList": [ALLOW_ALL],
        "orderedOrganizationPolicyInputList": [
            {"serviceControlPolicyInputList": [ALLOW_ALL]},
            {"serviceControlPolicyInputList": [ALLOW_EC2]},
        ],
        "orderedResourceControlPolicyInputList": [
            {"resourceControlPolicyInputList": [RCP_DENY_S3]}
        ],
        "callerArn": ALICE,
        "actionNames": ["ec2:RunInstances", "s3:GetObject", "iam:GetUser"],
    }
    out = run("simulate", stdin=json.dumps(request))
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["evaluationResults"]
    assert [r["evalDecision"] for r in results] == ["ALLOWED", "EXPLICIT_DENY", "IMPLICIT_DENY"]
    assert results[1]["matchedStatements"][0]["policyId"] == (
        "OrderedResourceControlPolicyInputList.1.1"
    )
    both = {**request, "serviceControlPolicyInputList": [ALLOW_ALL]}
    refused = run("simulate", stdin=json.dumps(both))
    assert refused.returncode == 1
    assert json.loads(refused.stderr)["code"] == "ValidationError"
