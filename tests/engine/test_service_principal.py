"""A mesh service principal's decisions (sidecar/engine/service_principal.py): only a resource
policy naming the service grants; RCPs of the resource's account cap it, SCPs do not apply;
its keys are the service caller's (docs/SEMANTICS.md §2.3, §5.8)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sidecar.demo import WORLD_FILE
from sidecar.engine.authorize import Authorizer
from sidecar.engine.service_principal import authorize_service
from sidecar.errors import ValidationError
from sidecar.identity.load import build_world
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, PolicyType
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy, FixedClock

SPIFFE = "spiffe://cluster.local/ns/orders/sa/orders"
ORDER = "arn:aws:orders:::order/42"
REPORT = "arn:aws:s3:::reports/q3.csv"
SECRET = "arn:aws:s3:::reports/secret/plan.txt"


def statement(**kw: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"Service": "orders.mesh.local"}, **kw}


def world_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORLD_FILE.read_text())
    del doc["accounts"][0]["users"]  # no secrets needed here
    doc["accounts"][0]["roles"][0]["trust_policy"]["Statement"][0]["Principal"] = {
        "Service": "orders.mesh.local"
    }
    doc["accounts"][0]["resource_policies"] = [
        {
            "resource": "arn:aws:orders:::order/*",
            "document": {
                "Version": "2012-10-17",
                "Statement": [
                    statement(
                        Sid="OnlyAsTheService", Action="orders:GetOrder", Resource="*",
                        Condition={
                            "StringEquals": {"aws:PrincipalServiceName": "orders.mesh.local"},
                            "Bool": {"aws:PrincipalIsAWSService": "true"},
                        },
                    )
                ],
            },
        },
        {
            "resource": "arn:aws:s3:::reports/*",
            "document": {
                "Version": "2012-10-17",
                "Statement": [statement(Sid="ReadReports", Action="s3:GetObject", Resource="*")],
            },
        },
    ]  # fmt: skip
    deny_all = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
    }
    no_secrets = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "NoSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::reports/secret/*"}],
    }  # fmt: skip
    doc["organization"] = {
        "id": "o-a1b2c3d4e5",
        "management_account": "999999999999",
        "root": {"id": "r-ab12", "accounts": ["999999999999"]},
        "units": [
            {
                "id": "ou-ab12-11111111",
                "name": "workloads",
                "accounts": [
                    {
                        "id": "111111111111",
                        "scps": ["FullAWSAccess", "DenyAll"],
                        "rcps": ["NoSecrets"],
                    }
                ],
            }
        ],
        "policies": {"DenyAll": deny_all, "NoSecrets": no_secrets},
    }
    doc["accounts"].append({"id": "999999999999"})
    return doc


@pytest.fixture
def authorizer() -> Authorizer:
    world = build_world(world_doc(), source="svc.yaml", secrets=lambda _k, _r: None)
    return Authorizer(world, KeyRing.generate(CountingEntropy(3)), FixedClock(1_700_000_000))


def decide(authorizer: Authorizer, action: str, resource: str, **kw: Any) -> Any:
    service = authorizer.world.services_by_spiffe[SPIFFE]
    return authorize_service(authorizer, service, SPIFFE, action, resource, **kw)


def test_a_resource_policy_naming_the_service_grants_with_its_keys(
    authorizer: Authorizer,
) -> None:
    """Allowed through a statement that reads aws:PrincipalServiceName and
    aws:PrincipalIsAWSService; the SCP denying everything in its account does not apply."""
    result = decide(authorizer, "orders:GetOrder", ORDER)
    assert result.decision is Decision.ALLOWED
    assert result.principal_arn == "orders.mesh.local"
    assert [m.ref.sid for m in result.evaluation.matched] == ["OnlyAsTheService"]


def test_nothing_else_grants_it(authorizer: Authorizer) -> None:
    result = decide(authorizer, "orders:DeleteOrder", ORDER)
    assert result.decision is Decision.IMPLICIT_DENY
    assert result.reason == (
        "User: orders.mesh.local is not authorized to perform: orders:DeleteOrder on resource: "
        f"{ORDER} because no resource-based policy allows the orders:DeleteOrder action"
    )


def test_rcps_of_the_resource_account_cap_it(authorizer: Authorizer) -> None:
    assert decide(authorizer, "s3:GetObject", REPORT).decision is Decision.ALLOWED
    denied = decide(authorizer, "s3:GetObject", SECRET)
    assert denied.decision is Decision.EXPLICIT_DENY
    assert denied.evaluation.decided_by is PolicyType.RCP
    assert denied.reason.endswith("with an explicit deny in a resource control policy")


def test_assume_role_is_decided_by_the_trust_policy(authorizer: Authorizer) -> None:
    trusted = decide(authorizer, "sts:AssumeRole", "arn:aws:iam::111111111111:role/apps/app-reader")
    assert trusted.decision is Decision.ALLOWED
    untrusted = decide(
        authorizer, "sts:AssumeRole", "arn:aws:iam::111111111111:role/apps/orders-writer"
    )
    assert untrusted.decision is Decision.IMPLICIT_DENY
    assert untrusted.reason.endswith(
        "because no role trust policy allows the sts:AssumeRole action"
    )


def test_get_caller_identity_needs_no_permission(authorizer: Authorizer) -> None:
    result = decide(authorizer, "sts:GetCallerIdentity", "*")
    assert result.decision is Decision.ALLOWED
    assert result.evaluation.matched == ()


def test_caller_context_cannot_set_sidecar_keys(authorizer: Authorizer) -> None:
    """As Authorize: a route's context may not carry a key the sidecar owns."""
    ctx = Context()
    ctx.set("aws:PrincipalServiceName", "orders.mesh.local")
    with pytest.raises(ValidationError):
        decide(authorizer, "orders:GetOrder", ORDER, context=ctx)
    given = Context()
    given.set("aws:RequestTag/team", "payments")
    assert decide(authorizer, "orders:GetOrder", ORDER, context=given).decision is Decision.ALLOWED


def test_transport_keys_reach_the_conditions(authorizer: Authorizer) -> None:
    """aws:SourceIp from the transport; a condition on it is evaluated, not ignored."""
    world_doc_ = world_doc()
    doc_policy = world_doc_["accounts"][0]["resource_policies"][1]["document"]
    doc_policy["Statement"][0]["Condition"] = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    world = build_world(world_doc_, source="svc.yaml", secrets=lambda _k, _r: None)
    narrowed = Authorizer(world, authorizer.keys, authorizer.clock)
    inside = decide(narrowed, "s3:GetObject", REPORT, transport={"aws:SourceIp": "10.1.2.3"})
    outside = decide(narrowed, "s3:GetObject", REPORT, transport={"aws:SourceIp": "192.0.2.1"})
    assert (inside.decision, outside.decision) == (Decision.ALLOWED, Decision.IMPLICIT_DENY)
