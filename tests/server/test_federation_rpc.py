"""AssumeRoleWithWebIdentity and AssumeRoleWithSAML on the wire: no caller credentials, the
token or assertion authenticates; refusals carry their AWS codes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sidecar.api.v1 import sts_pb2
from sidecar.identity.model import World
from sidecar.server.app import ServeOptions, Sidecar
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.server.conftest import OffsetClock
from tests.server.test_rpc import STS, call, failure
from tests.sts.conftest import START
from tests.sts.federation import oidc_world as oidc
from tests.sts.federation import saml_world as saml


async def serve(world: World) -> Sidecar:
    clock = OffsetClock()
    clock.offset = START - time.time()  # the federation fixtures are minted at START
    opts = ServeOptions(listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    server = Sidecar(opts, world, KeyRing.generate(CountingEntropy(21)), None, clock=clock)
    await server.start()
    return server


@pytest.fixture
async def oidc_channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": oidc.k8s_jwks()}))
    server = await serve(oidc.oidc_world(jwks_file=str(jwks)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            yield ch
    finally:
        await server.drain()


@pytest.fixture(scope="module")
def idp() -> saml.Idp:
    return saml.make_idp()


@pytest.fixture
async def saml_channel(tmp_path: Path, idp: saml.Idp) -> AsyncIterator[grpc.aio.Channel]:
    metadata = saml.write_metadata(tmp_path / "idp.xml", saml.IDP_ENTITY, [idp.cert])
    server = await serve(saml.saml_world(metadata))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            yield ch
    finally:
        await server.drain()


def web_request(token: str) -> sts_pb2.AssumeRoleWithWebIdentityRequest:
    return sts_pb2.AssumeRoleWithWebIdentityRequest(
        role_arn=oidc.ORDERS_ROLE, role_session_name="pod-1", web_identity_token=token
    )


async def test_web_identity_needs_no_caller_credentials(oidc_channel: grpc.aio.Channel) -> None:
    """A Kubernetes service-account token alone gets credentials and the token's facts."""
    resp: Any = await call(
        oidc_channel,
        STS + "AssumeRoleWithWebIdentity",
        web_request(oidc.k8s_token()),
        sts_pb2.AssumeRoleWithWebIdentityResponse,
    )
    assert resp.credentials.access_key_id.startswith("ASIA")
    assert resp.subject_from_web_identity_token == oidc.ORDERS_SA
    assert resp.assumed_role_user.arn.endswith(":assumed-role/orders/pod-1")
    assert resp.provider


async def test_web_identity_refusals(oidc_channel: grpc.aio.Channel) -> None:
    """A tampered token is InvalidIdentityToken; an expired one ExpiredTokenException."""
    token = oidc.k8s_token()
    head, body, sig = token.split(".")
    tampered = ".".join([head, body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1], sig])
    code, reason, _ = await failure(
        call(
            oidc_channel,
            STS + "AssumeRoleWithWebIdentity",
            web_request(tampered),
            sts_pb2.AssumeRoleWithWebIdentityResponse,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "InvalidIdentityToken")
    old = oidc.k8s_token(now=START - 100_000)
    code, reason, _ = await failure(
        call(
            oidc_channel,
            STS + "AssumeRoleWithWebIdentity",
            web_request(old),
            sts_pb2.AssumeRoleWithWebIdentityResponse,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ExpiredTokenException")


def saml_request(b64: str) -> sts_pb2.AssumeRoleWithSAMLRequest:
    return sts_pb2.AssumeRoleWithSAMLRequest(
        role_arn=saml.READER, principal_arn=saml.PROVIDER_ARN, saml_assertion=b64
    )


def listing() -> saml.Claims:
    claims = saml.Claims()
    claims.attributes[saml.ROLE_ATTR] = [f"{saml.READER},{saml.PROVIDER_ARN}"]
    return claims


async def test_saml_assertion_gets_credentials(
    saml_channel: grpc.aio.Channel, idp: saml.Idp
) -> None:
    """A signed assertion listing the role gets credentials and the assertion's facts."""
    resp: Any = await call(
        saml_channel,
        STS + "AssumeRoleWithSAML",
        saml_request(saml.response_b64(listing(), idp)),
        sts_pb2.AssumeRoleWithSAMLResponse,
    )
    assert resp.credentials.session_token
    assert resp.subject == saml.SUBJECT
    assert resp.issuer == saml.IDP_ENTITY
    assert resp.audience == saml.RECIPIENT
    assert resp.name_qualifier


async def test_unsigned_assertion_is_refused(saml_channel: grpc.aio.Channel) -> None:
    """An unsigned assertion is InvalidIdentityToken."""
    code, reason, _ = await failure(
        call(
            saml_channel,
            STS + "AssumeRoleWithSAML",
            saml_request(saml.response_b64(listing(), None)),
            sts_pb2.AssumeRoleWithSAMLResponse,
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "InvalidIdentityToken")
