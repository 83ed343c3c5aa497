"""The STS Query API driven by the real AWS SDK (boto3/botocore), no mocks: an in-process sidecar
on 127.0.0.1 serving the demo world plus a role that needs an ExternalId and an OIDC provider;
the web-identity credential provider runs in a subprocess with a clean environment."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.auth
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET, WORLD_FILE
from sidecar.server.app import ServeOptions, Sidecar
from sidecar.server.world_file import load_world_file
from sidecar.sts.keys import KeyRing
from sidecar.sts.mfa import totp
from tests.fakes import CountingEntropy
from tests.server.conftest import OffsetClock
from tests.sts.federation import oidc_world as oidc

ACCOUNT = "111111111111"
PARTNER = f"arn:aws:iam::{ACCOUNT}:role/partner"
APP_READER = f"arn:aws:iam::{ACCOUNT}:role/apps/app-reader"
PODS = f"arn:aws:iam::{ACCOUNT}:role/k8s/orders"
EXTERNAL_ID = "partner-7f3a"
MFA_SEED = "JBSWY3DPEHPK3PXP"
MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
K8S_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{oidc.K8S_PREFIX}"


def world_yaml(jwks_file: Path) -> dict[str, Any]:
    """The demo world, plus a role alice may assume only with the ExternalId, and a role for
    the Kubernetes service account shop/orders (IRSA)."""
    world: dict[str, Any] = yaml.safe_load(WORLD_FILE.read_text())
    account = world["accounts"][0]
    account["roles"].append(
        {
            "name": "partner",
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"},
                        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
                    }
                ],
            },
        }
    )
    alice = next(u for u in account["users"] if u["name"] == "alice")
    alice["mfa_devices"] = [{"name": "alice-phone", "seed_env": "TEST_MFA_SEED"}]
    account["oidc_providers"] = [
        {"url": oidc.K8S_ISSUER, "client_ids": [oidc.K8S_AUD], "jwks_file": str(jwks_file)}
    ]
    account["roles"].append(
        {
            "name": "orders",
            "path": "/k8s/",
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": K8S_PROVIDER},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {"StringEquals": {f"{oidc.K8S_PREFIX}:sub": oidc.ORDERS_SA}},
                    }
                ],
            },
        }
    )
    return world


@pytest.fixture
async def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: OffsetClock
) -> AsyncIterator[Sidecar]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": oidc.k8s_jwks()}))
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world_yaml(jwks)))
    monkeypatch.setenv("IAM_SIDECAR_DEMO_SECRET", DEMO_SECRET)
    monkeypatch.setenv("TEST_MFA_SEED", MFA_SEED)
    world = load_world_file(str(path))
    opts = ServeOptions(listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    sidecar = Sidecar(opts, world, KeyRing.generate(CountingEntropy(31)), None, clock=clock)
    await sidecar.start()
    try:
        yield sidecar
    finally:
        await sidecar.drain()


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads no configuration of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def sts(server: Sidecar, key: str = DEMO_ACCESS_KEY_ID, secret: str = DEMO_SECRET,
        token: str | None = None) -> Any:  # fmt: skip
    session = boto3.session.Session(
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name="us-east-1",
    )
    return session.client(
        "sts",
        endpoint_url=f"http://127.0.0.1:{server.http_port}",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


async def run(call: Callable[[], Any]) -> Any:
    """A blocking SDK call, off the loop the server runs on."""
    return await asyncio.to_thread(call)


async def error_of(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        await run(call)
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


async def test_get_caller_identity_with_alices_keys(server: Sidecar) -> None:
    """A user's signed GetCallerIdentity answers the user's ARN, id and account."""
    ident = await run(sts(server).get_caller_identity)
    assert ident["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert ident["Account"] == ACCOUNT
    assert ident["UserId"].startswith("AIDA")
    assert ident["ResponseMetadata"]["RequestId"]


async def test_assume_role_with_tags_policy_and_external_id(server: Sidecar) -> None:
    """assume_role with tags, a session policy and the ExternalId the trust policy asks for
    gets credentials; signed with them, GetCallerIdentity answers the assumed-role ARN."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    out = await run(
        lambda: sts(server).assume_role(
            RoleArn=PARTNER,
            RoleSessionName="nightly",
            ExternalId=EXTERNAL_ID,
            Policy=json.dumps(policy),
            Tags=[{"Key": "project", "Value": "atlas"}, {"Key": "cost", "Value": "r+d = 1/2"}],
            TransitiveTagKeys=["project"],
            DurationSeconds=900,
            SourceIdentity="alice-laptop",
        )
    )
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/partner/nightly"
    assert 0 < out["PackedPolicySize"] <= 100
    assert out["SourceIdentity"] == "alice-laptop"
    left = creds["Expiration"].timestamp() - time.time()
    assert 890 <= left <= 905
    session = sts(server, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    ident = await run(session.get_caller_identity)
    assert ident["Arn"] == out["AssumedRoleUser"]["Arn"]
    assert ident["UserId"] == out["AssumedRoleUser"]["AssumedRoleId"]


async def test_refusals_surface_as_client_errors(server: Sidecar) -> None:
    """AWS's codes and statuses: no ExternalId → AccessDenied; a bad session name →
    ValidationError; a wrong secret → SignatureDoesNotMatch; an unknown key →
    InvalidClientTokenId."""
    client = sts(server)
    code, status, message = await error_of(
        lambda: client.assume_role(RoleArn=PARTNER, RoleSessionName="nightly")
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "is not authorized to perform: sts:AssumeRole" in message
    code, status, _ = await error_of(
        lambda: client.assume_role(RoleArn=APP_READER, RoleSessionName="bad name!")
    )
    assert (code, status) == ("ValidationError", 400)
    code, status, _ = await error_of(sts(server, secret="x" * 40).get_caller_identity)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    code, status, _ = await error_of(sts(server, key="AKIAUNKNOWN000000000").get_caller_identity)
    assert (code, status) == ("InvalidClientTokenId", 403)


async def test_web_identity_errors(server: Sidecar) -> None:
    """A tampered token is InvalidIdentityToken, an expired one ExpiredTokenException (400)."""
    client = sts(server)
    token = oidc.k8s_token(now=time.time())
    head, body, sig = token.split(".")
    forged = ".".join([head, body, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])

    def assume(web_token: str) -> Callable[[], Any]:
        return lambda: client.assume_role_with_web_identity(
            RoleArn=PODS, RoleSessionName="pod", WebIdentityToken=web_token
        )

    code, status, _ = await error_of(assume(forged))
    assert (code, status) == ("InvalidIdentityToken", 400)
    code, status, _ = await error_of(assume(oidc.k8s_token(now=time.time() - 100_000)))
    assert (code, status) == ("ExpiredTokenException", 400)


WEB_IDENTITY_SCRIPT = """
import boto3
import botocore
import botocore.auth
session = boto3.session.Session(region_name="us-east-1")
creds = session.get_credentials().get_frozen_credentials()
print(creds.access_key)
print(session.client("sts").get_caller_identity()["Arn"])
"""


async def test_web_identity_provider_of_the_sdk(server: Sidecar, tmp_path: Path) -> None:
    """boto3's own web-identity provider (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
    AWS_ENDPOINT_URL_STS), in a clean environment, gets credentials from the sidecar; signed
    with them, GetCallerIdentity answers the assumed-role ARN."""
    token_file = tmp_path / "token"
    token_file.write_text(oidc.k8s_token(now=time.time()))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ROLE_ARN": PODS,
        "AWS_ROLE_SESSION_NAME": "orders-pod",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{server.http_port}",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WEB_IDENTITY_SCRIPT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    key, arn = out.decode().split()
    assert key.startswith("ASIA")
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/orders/orders-pod"


async def test_assume_role_with_web_identity_unsigned(server: Sidecar) -> None:
    """The token alone (the client has no keys: botocore sends the call unsigned) gets
    credentials and AWS's web-identity members."""
    session = boto3.session.Session(region_name="us-east-1")
    client = session.client(
        "sts",
        endpoint_url=f"http://127.0.0.1:{server.http_port}",
        config=Config(signature_version=botocore.UNSIGNED),
    )
    out = await run(
        lambda: client.assume_role_with_web_identity(
            RoleArn=PODS, RoleSessionName="pod-1", WebIdentityToken=oidc.k8s_token(now=time.time())
        )
    )
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert out["SubjectFromWebIdentityToken"] == oidc.ORDERS_SA
    assert out["Audience"] == oidc.K8S_AUD
    assert out["Provider"]
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/orders/pod-1"


async def test_expired_session_credentials(
    server: Sidecar, clock: OffsetClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary credentials past their expiration, signed at the server's (moved) time:
    ExpiredToken, 403."""
    out = await run(
        lambda: sts(server).assume_role(
            RoleArn=APP_READER, RoleSessionName="short", DurationSeconds=900
        )
    )
    creds = out["Credentials"]
    session = sts(server, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    clock.offset = 1000
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1000)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: later)
    code, status, _ = await error_of(session.get_caller_identity)
    assert (code, status) == ("ExpiredToken", 403)


async def test_assume_role_with_mfa(server: Sidecar) -> None:
    """SerialNumber and TokenCode reach the core: the device's current code is accepted, another
    code is AccessDenied."""
    code = totp(base64.b32decode(MFA_SEED), time.time())
    wrong = f"{(int(code) + 500_000) % 1_000_000:06d}"
    client = sts(server)

    def assume(token_code: str) -> Callable[[], Any]:
        return lambda: client.assume_role(
            RoleArn=APP_READER, RoleSessionName="mfa", SerialNumber=MFA_SERIAL, TokenCode=token_code
        )

    out = await run(assume(code))
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    got, status, _ = await error_of(assume(wrong))
    assert (got, status) == ("AccessDenied", 403)
