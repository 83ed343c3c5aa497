"""`Client` and `AsyncClient` against a real sidecar on loopback: every RPC with plain-Python
results, SigV4 with user keys or temporary keys, and the bearer session token."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sidecar.client import AsyncClient, AuthorizeResult, Client
from sidecar.client.credentials import AsyncRoleCredentials, RoleCredentials
from sidecar.server.app import ServeOptions, Sidecar, load_world
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.server.conftest import APP_READER, DEMO_KEY

SESSION_ARN = "arn:aws:sts::111111111111:assumed-role/app-reader/s1"


def target(sidecar: Sidecar) -> str:
    return f"127.0.0.1:{sidecar.grpc_port}"


def sync_round_trip(addr: str) -> dict[str, object]:
    with Client(addr, access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]) as alice:
        me = alice.get_caller_identity()
        out = alice.assume_role(APP_READER, "s1", duration_seconds=900, tags={"team": "red"})
        allow_all = json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        )  # fmt: skip
        simulated = alice.simulate_custom_policy([allow_all], ["s3:GetObject", "iam:GetUser"])
    c = out.credentials
    with Client(
        addr,
        access_key_id=c.access_key_id,
        secret_access_key=c.secret_access_key,
        session_token=c.session_token,
    ) as temp:
        temp_arn = temp.get_caller_identity().arn
    with Client(addr, session_token=c.session_token) as bearer:
        bearer_arn = bearer.get_caller_identity().arn
        allowed = bearer.authorize("s3:GetObject", "arn:aws:s3:::reports/a.csv")
        denied = bearer.authorize(
            "s3:GetObject", "arn:aws:s3:::reports/secret/x", session_token=c.session_token
        )
        batch = bearer.batch_authorize(
            [("s3:GetObject", "arn:aws:s3:::reports/a"), ("s3:PutObject", "arn:aws:s3:::reports/a", {})]
        )  # fmt: skip
    return locals()


async def test_sync_client_every_signed_and_bearer_call(sidecar: Sidecar) -> None:
    r = await asyncio.to_thread(sync_round_trip, target(sidecar))
    assert r["me"].arn == "arn:aws:iam::111111111111:user/alice"  # type: ignore[attr-defined]
    out = r["out"]
    assert out.assumed_role_user.arn == SESSION_ARN  # type: ignore[attr-defined]
    assert out.credentials.access_key_id.startswith("ASIA")  # type: ignore[attr-defined]
    expires = out.credentials.expiration  # type: ignore[attr-defined]
    assert isinstance(expires, datetime)
    assert expires.tzinfo is UTC
    assert 850 < (expires - datetime.now(UTC)).total_seconds() <= 900
    assert r["temp_arn"] == r["bearer_arn"] == SESSION_ARN
    allowed, denied = r["allowed"], r["denied"]
    assert isinstance(allowed, AuthorizeResult)
    assert isinstance(denied, AuthorizeResult)
    assert (allowed.allowed, allowed.decision) == (True, "ALLOWED")
    assert allowed.principal_arn == SESSION_ARN
    assert allowed.matched_statements[0].sid == "ReadReports"
    assert (denied.allowed, denied.decision) == (False, "EXPLICIT_DENY")
    assert denied.reason
    assert [b.decision for b in r["batch"]] == ["ALLOWED", "IMPLICIT_DENY"]  # type: ignore[attr-defined]
    assert [(e.action, e.decision) for e in r["simulated"]] == [  # type: ignore[attr-defined]
        ("s3:GetObject", "ALLOWED"),
        ("iam:GetUser", "IMPLICIT_DENY"),
    ]


async def test_async_client(sidecar: Sidecar) -> None:
    async with AsyncClient(
        target(sidecar), access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
    ) as alice:
        out = await alice.assume_role(APP_READER, "s1")
        assert (await alice.get_caller_identity()).account == "111111111111"
    token = out.credentials.session_token
    async with AsyncClient(target(sidecar), session_token=token) as app:
        ok = await app.authorize("s3:GetObject", "arn:aws:s3:::reports/a.csv")
        no = await app.authorize("s3:GetObject", "arn:aws:s3:::reports/secret/x")
        batch = await app.batch_authorize([("s3:PutObject", "arn:aws:s3:::reports/a")])
    assert ok.allowed
    assert ok.decision == "ALLOWED"
    assert not no.allowed
    assert no.decision == "EXPLICIT_DENY"
    assert [b.decision for b in batch] == ["IMPLICIT_DENY"]


def test_targets_are_checked() -> None:
    for bad in ("localhost", ":50051", "127.0.0.1:http", "unix:"):
        with pytest.raises(ValueError, match="host:port"):
            Client(bad)
    with pytest.raises(ValueError, match="both"):
        Client("127.0.0.1:1", access_key_id="AKIA")


async def test_refreshing_credentials_exclude_fixed_keys() -> None:
    """A client signs with one identity: refreshing role credentials or fixed keys/token."""
    creds = RoleCredentials(lambda _seconds: pytest.fail("never assumed"))
    acreds = AsyncRoleCredentials(lambda _seconds: pytest.fail("never assumed"))
    for extra in ({"session_token": "t"}, {"access_key_id": "AKIA", "secret_access_key": "s"}):
        with pytest.raises(ValueError, match="not both"):
            Client("127.0.0.1:1", credentials=creds, **extra)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not both"):
            AsyncClient("127.0.0.1:1", credentials=acreds, **extra)  # type: ignore[arg-type]


async def test_unix_socket_target(tmp_path: Path) -> None:
    """``unix:///path``: the sidecar listening on a unix socket."""
    path = tmp_path / "sidecar.sock"
    opts = ServeOptions(
        listen=f"unix://{path}", http_listen="127.0.0.1:0", grace=0.5, drain_delay=0.0
    )
    server = Sidecar(opts, load_world(opts), KeyRing.generate(CountingEntropy(11)), None)
    await server.start()
    try:
        async with AsyncClient(
            f"unix://{path}", access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
        ) as client:
            me = await client.get_caller_identity()
    finally:
        await server.drain()
    assert me.arn == "arn:aws:iam::111111111111:user/alice"
