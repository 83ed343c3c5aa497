"""SCP levels and RCPs in the pure evaluator (docs/SEMANTICS.md §5.8): every level root→account
must allow, a Deny at any level wins, RCPs only deny and only for the services that support
them, and both show in the matched statements with their policy type."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.policy.compile import CompiledPolicy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import (
    RCP_SERVICES,
    Decision,
    PolicySet,
    PolicyType,
    describe,
    evaluate,
)
from sidecar.policy.model import PolicyKind
from sidecar.policy.principals import principal_from_arn
from tests.test_evaluate import compiled

_SESSION = principal_from_arn("arn:aws:sts::111111111111:assumed-role/caller/s1")
assert _SESSION is not None
SESSION = _SESSION

ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
FULL = compiled(PolicyKind.SCP, ALL, pid="FullAWSAccess")
ONLY_S3 = compiled(
    PolicyKind.SCP, {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, pid="OnlyS3"
)
DENY_EC2 = compiled(
    PolicyKind.SCP, {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}, pid="DenyEc2"
)
IDENTITY = (compiled(PolicyKind.IDENTITY, ALL, pid="all"),)


def rcp(action: str) -> CompiledPolicy:
    st: dict[str, Any] = {"Effect": "Deny", "Principal": "*", "Action": action, "Resource": "*"}
    return compiled(PolicyKind.RCP, st, pid="Rcp")


def run(action: str, ps: PolicySet, resource: str = "*") -> Any:
    return evaluate(SESSION, action, resource, Context(), ps)


def test_allowed_when_every_level_allows() -> None:
    ev = run("s3:GetObject", PolicySet(IDENTITY, scp_levels=((FULL,), (FULL,), (ONLY_S3,))))
    assert ev.decision is Decision.ALLOWED
    assert {m.policy_type for m in ev.matched} == {PolicyType.SCP, PolicyType.IDENTITY}


def test_a_level_without_an_allow_is_an_implicit_scp_deny() -> None:
    ev = run("sqs:SendMessage", PolicySet(IDENTITY, scp_levels=((FULL,), (FULL,), (ONLY_S3,))))
    assert (ev.decision, ev.decided_by) == (Decision.IMPLICIT_DENY, PolicyType.SCP)
    assert describe(ev, SESSION.arn, "sqs:SendMessage", "*").endswith(
        "because no service control policy allows the sqs:SendMessage action"
    )


@pytest.mark.parametrize("level", [0, 1, 2])
def test_a_deny_at_any_level_wins(level: int) -> None:
    levels: list[tuple[CompiledPolicy, ...]] = [(FULL,), (FULL,), (FULL,)]
    levels[level] = (FULL, DENY_EC2)
    ev = run("ec2:RunInstances", PolicySet(IDENTITY, scp_levels=tuple(levels)))
    assert (ev.decision, ev.decided_by) == (Decision.EXPLICIT_DENY, PolicyType.SCP)
    assert [m.ref.policy_id for m in ev.matched] == ["DenyEc2"]


def test_no_levels_means_no_scps() -> None:
    assert run("ec2:RunInstances", PolicySet(IDENTITY)).decision is Decision.ALLOWED


def test_an_rcp_deny_on_a_supported_service() -> None:
    ev = run("s3:GetObject", PolicySet(IDENTITY, rcps=(rcp("*"),)))
    assert (ev.decision, ev.decided_by) == (Decision.EXPLICIT_DENY, PolicyType.RCP)
    assert describe(ev, SESSION.arn, "s3:GetObject", "*").endswith(
        "with an explicit deny in a resource control policy"
    )


@pytest.mark.parametrize("action", ["orders:GetOrder", "ec2:RunInstances", "dynamodb:GetItem"])
def test_rcps_do_not_cap_other_services(action: str) -> None:
    assert run(action, PolicySet(IDENTITY, rcps=(rcp("*"),))).decision is Decision.ALLOWED


def test_the_rcp_services_are_one_list() -> None:
    assert {"s3", "sts", "kms", "sqs", "secretsmanager"} == RCP_SERVICES
    for service in RCP_SERVICES:
        ev = run(f"{service.upper()}:Anything", PolicySet(IDENTITY, rcps=(rcp("*"),)))
        assert ev.decision is Decision.EXPLICIT_DENY, service


def test_rcps_grant_nothing() -> None:
    """An RCP never allows: without an identity grant the answer is still an implicit deny."""
    ev = run("s3:GetObject", PolicySet((), rcps=(rcp("s3:DeleteObject"),)))
    assert (ev.decision, ev.decided_by) == (Decision.IMPLICIT_DENY, PolicyType.IDENTITY)
