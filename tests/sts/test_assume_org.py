"""AssumeRole under the caller's organization (docs/ORGANIZATIONS.md): SCPs of the caller's
account cap sts:AssumeRole as they cap any other action, the management account is exempt, the
organization keys are in the trust policy's context, and RCPs of the role's account apply."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sidecar.identity.load import build_world
from sidecar.identity.model import World
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import StsEnv, assume_role
from tests.engine.test_authorize import with_role
from tests.sts.test_assume import APP, alice, denied, params
from tests.sts.world import A, _compile, doc, trust_stmt

MGMT = "999999999999"
NO_ASSUME = doc({"Sid": "NoAssume", "Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"})
NOT_FROM_A = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "NotFromA",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sts:AssumeRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": A}},
        }
    ],
}


def org_env(env: StsEnv, *, management: str = MGMT, scps: list[str], rcps: list[str]) -> StsEnv:
    """``env`` with account A in an organization, under the given account-level attachments."""
    doc_: dict[str, Any] = {
        "accounts": [{"id": MGMT}],
        "organization": {
            "id": "o-a1b2c3d4e5",
            "management_account": management,
            "root": {"id": "r-ab12", "accounts": [MGMT]},
            "units": [
                {
                    "id": "ou-ab12-11111111",
                    "name": "workloads",
                    "accounts": [{"id": A, "scps": scps, "rcps": rcps}],
                }
            ],
            "policies": {"NoAssume": NO_ASSUME, "NotFromA": NOT_FROM_A},
        },
    }
    if management == A:  # A is then the management account, placed under the root
        org = doc_["organization"]
        org["root"]["accounts"] = [A]
        org["units"][0]["accounts"] = [{"id": MGMT, "scps": scps}]
    found = build_world(doc_, source="org.yaml", secrets=lambda _k, _r: None).organization
    return dataclasses.replace(env, world=dataclasses.replace(env.world, organization=found))


def test_an_scp_deny_blocks_assume_role(env: StsEnv) -> None:
    assume_role(env, alice(env.world), params())  # allowed without the organization
    env = org_env(env, scps=["FullAWSAccess", "NoAssume"], rcps=[])
    message = denied(env, alice(env.world), params())
    assert message.endswith("with an explicit deny in a service control policy")


def test_no_allowing_scp_blocks_assume_role(env: StsEnv) -> None:
    env = org_env(env, scps=["NoAssume"], rcps=[])  # the list replaces FullAWSAccess
    message = denied(env, alice(env.world), params())
    assert "service control policy" in message


def test_the_management_account_is_exempt(env: StsEnv) -> None:
    env = org_env(env, management=A, scps=["NoAssume"], rcps=[])
    assert assume_role(env, alice(env.world), params()).credentials.session_token


@pytest.mark.parametrize(("in_org", "allowed"), [(True, True), (False, False)])
def test_principal_org_id_in_the_trust_policy(env: StsEnv, in_org: bool, allowed: bool) -> None:
    """A trust policy naming the organization: aws:PrincipalOrgID comes from the world."""
    trust = doc(
        trust_stmt(
            {"AWS": f"arn:aws:iam::{A}:root"},
            Condition={"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
        )
    )
    world: World = with_role(
        env.world, APP, trust_policy=_compile(trust, PolicyKind.TRUST, "trust")
    )
    env = dataclasses.replace(env, world=world)
    if in_org:
        env = org_env(env, scps=["FullAWSAccess"], rcps=[])
    if allowed:
        assert assume_role(env, alice(env.world), params()).credentials.session_token
    else:
        assert "role trust" in denied(env, alice(env.world), params())


def test_an_rcp_on_the_role_account_applies(env: StsEnv) -> None:
    """An RCP of the role's account denying the caller's account blocks AssumeRole."""
    env = org_env(env, scps=["FullAWSAccess"], rcps=["NotFromA"])
    message = denied(env, alice(env.world), params())
    assert message.endswith("with an explicit deny in a resource control policy")
