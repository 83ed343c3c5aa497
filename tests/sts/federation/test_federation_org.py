"""RCPs of the role's account cap AssumeRoleWithWebIdentity as they cap AssumeRole (STS supports
resource control policies; docs/ORGANIZATIONS.md): an RCP Deny on the call refuses it, and the
role account's organization keys are in the trust policy's context."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sidecar.errors import AccessDenied
from sidecar.identity.load import build_world
from sidecar.sts.assume import StsEnv
from tests.sts.federation.oidc_world import WEB_ACTION, oidc_world
from tests.sts.federation.test_web_identity import assume, params
from tests.sts.world import A

MGMT = "999999999999"


@pytest.fixture
def world() -> Any:
    return oidc_world()


def rcp(**condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "NoWebIdentity",
        "Effect": "Deny",
        "Principal": "*",
        "Action": WEB_ACTION,
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def in_organization(env: StsEnv, member: str, document: dict[str, Any]) -> StsEnv:
    """``env`` with ``member`` in an organization whose account-level RCP is ``document``."""
    org_doc: dict[str, Any] = {
        "accounts": [{"id": MGMT}],
        "organization": {
            "id": "o-a1b2c3d4e5",
            "management_account": MGMT,
            "root": {"id": "r-ab12", "accounts": [MGMT]},
            "units": [
                {
                    "id": "ou-ab12-11111111",
                    "name": "workloads",
                    "accounts": [{"id": member, "rcps": ["NoWebIdentity"]}],
                }
            ],
            "policies": {"NoWebIdentity": document},
        },
    }
    org = build_world(org_doc, source="org.yaml", secrets=lambda _k, _r: None).organization
    return dataclasses.replace(env, world=dataclasses.replace(env.world, organization=org))


def test_an_rcp_deny_refuses_web_identity(env: StsEnv) -> None:
    assert assume(env, params()).result.credentials.session_token  # allowed without the RCP
    env = in_organization(env, A, rcp())
    with pytest.raises(AccessDenied):
        assume(env, params())


def test_the_rcp_sees_the_role_accounts_organization_keys(env: StsEnv) -> None:
    """aws:ResourceOrgID is the role account's organization: a Deny for another org is silent."""
    other = rcp(StringNotEquals={"aws:ResourceOrgID": "o-a1b2c3d4e5"})
    assert assume(in_organization(env, A, other), params()).result.credentials.session_token
    same = rcp(StringEquals={"aws:ResourceOrgID": "o-a1b2c3d4e5"})
    with pytest.raises(AccessDenied):
        assume(in_organization(env, A, same), params())
