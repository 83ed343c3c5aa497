"""RCPs of the role's account cap AssumeRoleWithSAML too (docs/ORGANIZATIONS.md)."""

from __future__ import annotations

import pytest

from sidecar.errors import AccessDenied
from sidecar.server.saml_metadata import MetadataSource
from sidecar.sts.assume import StsEnv
from tests.sts.federation.saml_world import Claims, Idp, response_b64
from tests.sts.federation.test_federation_org import in_organization, rcp
from tests.sts.federation.test_saml_assume import (  # noqa: F401 (fixtures)
    assume,
    evil,
    idp,
    metadata_files,
    source,
    world,
)
from tests.sts.world import A


def test_an_rcp_deny_refuses_saml(env: StsEnv, source: MetadataSource, idp: Idp) -> None:  # noqa: F811
    assert assume(env, source, response_b64(Claims(), idp)).result.credentials.session_token
    document = rcp()
    document["Statement"][0]["Action"] = "sts:AssumeRoleWithSAML"
    with pytest.raises(AccessDenied):
        assume(in_organization(env, A, document), source, response_b64(Claims(), idp))
