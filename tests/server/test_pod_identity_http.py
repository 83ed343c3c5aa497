"""GET /v1/credentials on a real in-process sidecar (127.0.0.1), with tokens signed by a test
key, and botocore's own container credential provider in a clean subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.server.app import ServeOptions, Sidecar
from sidecar.sts.keys import KeyRing
from sidecar.sts.tokens import verify_token
from tests.fakes import CountingEntropy
from tests.server.conftest import OffsetClock
from tests.server.process.conftest import child_env, make_pki
from tests.server.test_rpc import AUTHZ, authorize_req, call
from tests.sts.federation.oidc_world import k8s_claims, k8s_jwks, rsa_key, sign
from tests.sts.test_pod_identity import EKS_TRUST, pod_world

POD_AUD = "pods.eks.amazonaws.com"
PATH = "/v1/credentials"
ORDERS_OBJECT = "arn:aws:s3:::orders/o-1.json"


def pod_token(**overrides: Any) -> str:
    """A projected token for a pod of shop/orders, minted now (the server runs on real time)."""
    return sign(k8s_claims(time.time(), aud=[POD_AUD], **overrides))


async def start(tmp_path: Path, clock: OffsetClock, **opts: Any) -> Sidecar:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": k8s_jwks()}))
    world = pod_world(EKS_TRUST, jwks_file=str(jwks), duration=opts.pop("duration", 3600))
    options = ServeOptions(
        listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0, **opts
    )
    server = Sidecar(options, world, KeyRing.generate(CountingEntropy(31)), None, clock=clock)
    await server.start()
    return server


@pytest.fixture
async def pods(tmp_path: Path, clock: OffsetClock) -> AsyncIterator[Sidecar]:
    server = await start(tmp_path, clock)
    try:
        yield server
    finally:
        await server.drain()


def _get(url: str, headers: dict[str, str], context: ssl.SSLContext | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def get(server: Sidecar, token: str | None, suffix: str = "") -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": token} if token is not None else {}
    url = f"http://127.0.0.1:{server.http_port}{PATH}{suffix}"
    status, body = await asyncio.to_thread(_get, url, headers)
    return status, body


async def decision(server: Sidecar, token: str, resource: str = ORDERS_OBJECT) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        out = await call(
            ch,
            AUTHZ + "Authorize",
            authorize_req(token, "s3:GetObject", resource),
            authorizer_pb2.AuthorizeResponse,
        )
    return int(out.decision)


def issued(server: Sidecar) -> float:
    return server.metrics.credentials.labels("PodIdentity")._value.get()


# -- the answer ---------------------------------------------------------------------------------


async def test_credentials_in_botocores_shape_and_accepted_by_authorize(pods: Sidecar) -> None:
    status, body = await get(pods, pod_token())
    assert status == 200, body
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}
    assert body["AccessKeyId"].startswith("ASIA")
    assert body["AccountId"] == "111111111111"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["Expiration"])
    # The session's kubernetes-namespace tag is what the role's policy allows on.
    assert await decision(pods, body["Token"]) == types_pb2.ALLOWED
    assert issued(pods) == 1


async def test_cached_per_pod_and_reissued_inside_the_last_15_minutes(
    pods: Sidecar, clock: OffsetClock
) -> None:
    token = pod_token()
    _, first = await get(pods, token)
    _, again = await get(pods, token)
    assert again["AccessKeyId"] == first["AccessKeyId"]
    assert issued(pods) == 1
    # Another pod of the same service account gets its own session.
    other_pod = k8s_claims(time.time(), aud=[POD_AUD])["kubernetes.io"]
    other_pod = {
        **other_pod,
        "pod": {"name": "orders-2", "uid": "11111111-2222-4333-8444-555555555555"},
    }
    _, other = await get(
        pods, sign(k8s_claims(time.time(), aud=[POD_AUD], **{"kubernetes.io": other_pod}))
    )
    assert other["AccessKeyId"] != first["AccessKeyId"]
    # 3600 s sessions: 46 minutes later less than 15 remain, so a new session is issued.
    clock.offset = 46 * 60
    _, later = await get(pods, token)
    assert later["AccessKeyId"] != first["AccessKeyId"]
    assert issued(pods) == 3


async def test_a_refused_token_never_reaches_the_cache(pods: Sidecar) -> None:
    status, _ = await get(pods, pod_token())
    assert status == 200  # this pod's credentials are cached now
    forged = sign(k8s_claims(time.time(), aud=[POD_AUD]), key=rsa_key("attacker"))
    status, body = await get(pods, forged)
    assert status == 401
    assert "AccessKeyId" not in body


@pytest.mark.parametrize(
    ("token", "suffix", "status", "code"),
    [
        (None, "", 401, "InvalidTokenException"),
        ("", "", 401, "InvalidTokenException"),
        ("not-a-jwt", "", 401, "InvalidTokenException"),
        ("forged", "", 401, "InvalidTokenException"),
        ("expired", "", 401, "ExpiredTokenException"),
        ("wrong-audience", "", 401, "InvalidTokenException"),
        ("unmapped", "", 403, "AccessDeniedException"),
        ("good", "?role=admin", 400, "InvalidRequestException"),
    ],
)
async def test_refusals(
    pods: Sidecar, token: str | None, suffix: str, status: int, code: str
) -> None:
    now = time.time()
    tokens = {
        "forged": sign(k8s_claims(now, aud=[POD_AUD]), key=rsa_key("attacker")),
        "expired": pod_token(iat=int(now) - 7200, nbf=None, exp=int(now) - 3600),
        "wrong-audience": sign(k8s_claims(now)),  # sts.amazonaws.com: the provider knows it
        "unmapped": pod_token(
            sub="system:serviceaccount:shop:intruder",
            **{
                "kubernetes.io": {
                    **k8s_claims(now)["kubernetes.io"],
                    "serviceaccount": {"name": "intruder"},
                }
            },
        ),
        "good": pod_token(),
    }
    got, body = await get(pods, tokens.get(token or "", token), suffix)
    assert (got, body["code"]) == (status, code), body
    # Nothing about the association's role or other pods.
    assert "pod-orders" not in body["message"]
    assert "orders-7d9f" not in body["message"]
    assert issued(pods) == 0


# -- botocore's container provider --------------------------------------------------------------

BOTOCORE = """
import json, botocore.session
creds = botocore.session.Session().get_credentials()
if creds is None:
    print(json.dumps(None))
else:
    f = creds.get_frozen_credentials()
    print(json.dumps([f.access_key, f.secret_key, f.token]))
"""


def run_botocore(port: int, token_file: Path, scheme: str = "http", **env: str) -> Any:
    return subprocess.run(
        [sys.executable, "-c", BOTOCORE],
        env=child_env(
            AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{scheme}://127.0.0.1:{port}{PATH}",
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/nonexistent",
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_botocore_container_provider_gets_working_credentials(
    pods: Sidecar, tmp_path: Path
) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(pod_token())
    out = await asyncio.to_thread(run_botocore, pods.http_port, token_file)
    assert out.returncode == 0, out.stderr
    access_key, secret, token = json.loads(out.stdout)
    assert access_key.startswith("ASIA")
    assert secret
    assert token
    assert await decision(pods, token) == types_pb2.ALLOWED


BOTOCORE_REFRESH = """
import json, os, botocore.session
creds = botocore.session.Session().get_credentials()
first = creds.get_frozen_credentials()
os.replace(os.environ["NEXT_TOKEN"], os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
second = creds.get_frozen_credentials()  # 900 s sessions: inside the 15-minute window
print(json.dumps([[c.access_key, c.token] for c in (first, second)]))
"""


async def test_botocore_refreshes_with_the_rewritten_token_file(
    tmp_path: Path, clock: OffsetClock
) -> None:
    server = await start(tmp_path, clock, duration=900)
    try:
        token_file = tmp_path / "eks-pod-identity-token"
        token_file.write_text(pod_token())
        next_token = tmp_path / "next"
        k8s = k8s_claims(time.time())["kubernetes.io"]
        k8s = {**k8s, "pod": {"name": "orders-new", "uid": "77777777-2222-4333-8444-555555555555"}}
        next_token.write_text(pod_token(**{"kubernetes.io": k8s}))
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", BOTOCORE_REFRESH],
            env=child_env(
                AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{server.http_port}{PATH}",
                AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
                NEXT_TOKEN=str(next_token),
                AWS_CONFIG_FILE="/nonexistent",
                AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        (key1, token1), (key2, token2) = json.loads(out.stdout)
        assert key1 != key2
        keys = server.engine.snapshot.keys
        pods = [
            dict(verify_token(t, keys, time.time())[0].tags)["kubernetes-pod-name"]
            for t in (token1, token2)
        ]
        assert pods == ["orders-7d9f8c6b5-x2x7q", "orders-new"]  # the file was read again
        assert await decision(server, token2) == types_pb2.ALLOWED
    finally:
        await server.drain()


@pytest.mark.slow  # botocore retries a refusal 3 times, a second apart
async def test_botocore_gets_no_credentials_for_a_forged_token(
    pods: Sidecar, tmp_path: Path
) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(sign(k8s_claims(time.time(), aud=[POD_AUD]), key=rsa_key("attacker")))
    out = await asyncio.to_thread(run_botocore, pods.http_port, token_file)
    assert out.returncode != 0
    assert "Received non 200 response 401" in out.stderr
    assert issued(pods) == 0


# -- https --------------------------------------------------------------------------------------


async def test_https_port_with_a_test_ca(tmp_path: Path, clock: OffsetClock) -> None:
    pki = make_pki(tmp_path, {})
    server = await start(
        tmp_path,
        clock,
        http_tls_cert=str(pki.server_cert),
        http_tls_key=str(pki.server_key),
    )
    try:
        url = f"https://127.0.0.1:{server.http_port}{PATH}"
        ctx = ssl.create_default_context(cafile=str(pki.ca_path))
        status, body = await asyncio.to_thread(_get, url, {"Authorization": pod_token()}, ctx)
        assert status == 200, body
        assert await decision(server, body["Token"]) == types_pb2.ALLOWED
        # Plain http on the TLS port gets no answer.
        with pytest.raises(Exception):  # noqa: B017,PT011
            await asyncio.to_thread(_get, url.replace("https", "http"), {})
        # botocore's fetcher over https, trusting the test CA.
        token_file = tmp_path / "token"
        token_file.write_text(pod_token())
        out = await asyncio.to_thread(run_botocore_https, server.http_port, token_file, pki.ca_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0].startswith("ASIA")
    finally:
        await server.drain()


# botocore's container fetcher verifies https with certifi's bundle, not AWS_CA_BUNDLE
# (docs/KUBERNETES.md): the test CA is given to the same fetcher through its session.
BOTOCORE_HTTPS = """
import json, os, botocore.session, botocore.httpsession
from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher
fetcher = ContainerMetadataFetcher(
    session=botocore.httpsession.URLLib3Session(timeout=2, verify=os.environ["TEST_CA"])
)
creds = ContainerProvider(fetcher=fetcher).load()
f = creds.get_frozen_credentials()
print(json.dumps([f.access_key, f.secret_key, f.token]))
"""


def run_botocore_https(port: int, token_file: Path, ca: Path) -> Any:
    return subprocess.run(
        [sys.executable, "-c", BOTOCORE_HTTPS],
        env=child_env(
            AWS_CONTAINER_CREDENTIALS_FULL_URI=f"https://127.0.0.1:{port}{PATH}",
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
            TEST_CA=str(ca),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
