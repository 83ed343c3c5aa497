"""`NotResource: "*"` excludes every resource, so its statement matches none: an Allow with it
allows nothing and a Deny with it denies nothing (IAM User Guide, "IAM JSON policy elements:
NotResource")."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.policy.compile import compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, PolicySet, evaluate
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import RequestPrincipal, principal_from_arn

_SESSION = principal_from_arn("arn:aws:sts::111111111111:assumed-role/app/s1")
assert _SESSION is not None
PRINCIPAL: RequestPrincipal = _SESSION
RESOURCES = [
    "arn:aws:s3:::reports/q1.csv",
    "arn:aws:sqs:us-east-1:111111111111:jobs",
    "*",
    "not-an-arn",
]
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def _decide(resource: str, *statements: dict[str, Any]) -> tuple[Decision, list[int]]:
    doc = {"Version": "2012-10-17", "Statement": list(statements)}
    policy = compile_policy(parse_policy(doc, PolicyKind.IDENTITY, policy_id="p"))
    ev = evaluate(PRINCIPAL, "s3:GetObject", resource, Context(), PolicySet(identity=(policy,)))
    return ev.decision, [m.ref.index for m in ev.matched]


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("not_resource", ["*", ["*"], ["arn:aws:s3:::other/*", "*"]])
def test_an_allow_with_notresource_star_allows_nothing(
    resource: str, not_resource: str | list[str]
) -> None:
    """The Allow matches no resource: an implicit deny, and no statement is named."""
    stmt = {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": not_resource}
    assert _decide(resource, stmt) == (Decision.IMPLICIT_DENY, [])


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("not_resource", ["*", ["arn:aws:s3:::other/*", "*"]])
def test_a_deny_with_notresource_star_denies_nothing(
    resource: str, not_resource: str | list[str]
) -> None:
    """Next to an Allow on everything, the Deny never matches: the answer stays allowed, by
    the Allow alone."""
    deny = {"Effect": "Deny", "Action": "*", "NotResource": not_resource}
    assert _decide(resource, ALLOW_ALL, deny) == (Decision.ALLOWED, [0])


def test_notresource_other_than_star_still_excludes_only_its_list() -> None:
    """The control: a NotResource list without `*` matches what it does not name."""
    stmt = {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}
    assert _decide("arn:aws:s3:::reports/q1.csv", stmt) == (Decision.ALLOWED, [0])
    assert _decide("arn:aws:s3:::secret/x", stmt) == (Decision.IMPLICIT_DENY, [])
