"""Every RPC over a real socket: callers' authentication, error mapping with ErrorInfo,
health, reflection and metrics."""

from __future__ import annotations

import asyncio
import gc
import json
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.client.sigv4 import sign_call
from sidecar.server.app import Sidecar, keep_out_of_collections
from sidecar.server.status import error_info
from tests.server.conftest import APP_READER, DEMO_KEY, OffsetClock

STS = "/iamsidecar.v1.SecurityTokenService/"
AUTHZ = "/iamsidecar.v1.Authorizer/"


async def http_get(port: int, path: str) -> tuple[int, str]:
    """GET on the sidecar's HTTP port from a thread (the server runs on this event loop)."""

    def fetch() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    return await asyncio.to_thread(fetch)


async def call(
    channel: grpc.aio.Channel,
    path: str,
    request: Message | bytes,
    response: type[Message],
    metadata: list[tuple[str, str]] | None = None,
) -> Any:
    body = request if isinstance(request, bytes) else request.SerializeToString()
    method = channel.unary_unary(
        path, request_serializer=None, response_deserializer=response.FromString
    )
    return await method(body, metadata=tuple(metadata or ()), timeout=10)


async def signed(
    channel: grpc.aio.Channel,
    path: str,
    request: Message,
    response: type[Message],
    key: tuple[str, str] = DEMO_KEY,
    token: str | None = None,
) -> Any:
    body = request.SerializeToString()
    md = sign_call(path, body, access_key_id=key[0], secret_access_key=key[1], session_token=token)
    return await call(channel, path, body, response, md)


async def failure(coro: Any) -> tuple[grpc.StatusCode, str, str]:
    """(status, ErrorInfo reason, message) of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    err = info.value
    detail = error_info(err)
    assert detail is not None, err
    assert detail.domain == "iamsidecar"
    return err.code(), detail.reason, err.details() or ""


async def assume(
    channel: grpc.aio.Channel, name: str = "s1", **kw: Any
) -> sts_pb2.AssumeRoleResponse:
    req = sts_pb2.AssumeRoleRequest(role_arn=APP_READER, role_session_name=name, **kw)
    result: sts_pb2.AssumeRoleResponse = await signed(
        channel, STS + "AssumeRole", req, sts_pb2.AssumeRoleResponse
    )
    return result


def authorize_req(
    token: str, action: str, resource: str, **kw: Any
) -> authorizer_pb2.AuthorizeRequest:
    return authorizer_pb2.AuthorizeRequest(
        session_token=token, action=action, resource=resource, **kw
    )


class TestSts:
    async def test_assume_role_signed_with_a_long_term_key(self, channel: grpc.aio.Channel) -> None:
        """alice's SigV4-signed AssumeRole returns ASIA credentials for the session."""
        resp = await assume(channel)
        assert resp.credentials.access_key_id.startswith("ASIA")
        assert resp.assumed_role_user.arn == "arn:aws:sts::111111111111:assumed-role/app-reader/s1"
        assert resp.credentials.expiration.seconds > 0

    async def test_get_caller_identity_for_each_credential(self, channel: grpc.aio.Channel) -> None:
        """GetCallerIdentity answers for a long-term key, temporary keys and a bearer token."""
        req = sts_pb2.GetCallerIdentityRequest()
        user = await signed(
            channel, STS + "GetCallerIdentity", req, sts_pb2.GetCallerIdentityResponse
        )
        assert user.arn == "arn:aws:iam::111111111111:user/alice"
        creds = (await assume(channel)).credentials
        temp = await signed(
            channel, STS + "GetCallerIdentity", req, sts_pb2.GetCallerIdentityResponse,
            key=(creds.access_key_id, creds.secret_access_key), token=creds.session_token,
        )  # fmt: skip
        assert temp.arn.endswith("assumed-role/app-reader/s1")
        bearer = await call(
            channel, STS + "GetCallerIdentity", req, sts_pb2.GetCallerIdentityResponse,
            [("authorization", f"Bearer {creds.session_token}")],
        )  # fmt: skip
        assert bearer.user_id.endswith(":s1")

    async def test_anonymous_is_refused(self, channel: grpc.aio.Channel) -> None:
        """No credentials: UNAUTHENTICATED / MissingAuthenticationToken."""
        code, reason, _ = await failure(
            call(
                channel,
                STS + "GetCallerIdentity",
                sts_pb2.GetCallerIdentityRequest(),
                sts_pb2.GetCallerIdentityResponse,
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "MissingAuthenticationToken")

    async def test_bad_signature_and_unknown_key(self, channel: grpc.aio.Channel) -> None:
        """A wrong secret is SignatureDoesNotMatch; an unknown key InvalidClientTokenId."""
        req = sts_pb2.GetCallerIdentityRequest()
        code, reason, _ = await failure(
            signed(
                channel,
                STS + "GetCallerIdentity",
                req,
                sts_pb2.GetCallerIdentityResponse,
                key=(DEMO_KEY[0], "wrong"),
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "SignatureDoesNotMatch")
        code, reason, _ = await failure(
            signed(
                channel,
                STS + "GetCallerIdentity",
                req,
                sts_pb2.GetCallerIdentityResponse,
                key=("AKIAUNKNOWN000000000", "x"),
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "InvalidClientTokenId")

    async def test_error_codes_and_messages(self, channel: grpc.aio.Channel) -> None:
        """ValidationError, MalformedPolicyDocument and AccessDenied map as docs/API.md §3 says."""
        code, reason, message = await failure(assume(channel, name="a"))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        assert message.startswith("1 validation error detected: Value 'a' at 'roleSessionName'")
        code, reason, _ = await failure(assume(channel, policy='{"Statement": []}'))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MalformedPolicyDocument")
        req = sts_pb2.AssumeRoleRequest(
            role_arn="arn:aws:iam::111111111111:role/nope", role_session_name="s1"
        )
        code, reason, message = await failure(
            signed(channel, STS + "AssumeRole", req, sts_pb2.AssumeRoleResponse)
        )
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AccessDenied")
        assert "is not authorized to perform: sts:AssumeRole" in message

    async def test_role_sessions_call_with_their_temporary_keys(
        self, channel: grpc.aio.Channel
    ) -> None:
        """A session signing with its temporary keys is that session: the demo role does not
        trust itself, so chaining into it is AccessDenied naming the session."""
        creds = (await assume(channel)).credentials
        req = sts_pb2.AssumeRoleRequest(role_arn=APP_READER, role_session_name="again")
        code, reason, message = await failure(
            signed(
                channel,
                STS + "AssumeRole",
                req,
                sts_pb2.AssumeRoleResponse,
                key=(creds.access_key_id, creds.secret_access_key),
                token=creds.session_token,
            )
        )
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AccessDenied")
        assert message.startswith("User: arn:aws:sts::111111111111:assumed-role/app-reader/s1 ")


class TestAuthorizer:
    async def test_allowed_denied_and_batch(self, channel: grpc.aio.Channel) -> None:
        """Decisions come back with the deciding statements; a batch answers in order."""
        token = (await assume(channel)).credentials.session_token
        ok = await call(
            channel,
            AUTHZ + "Authorize",
            authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/a.csv"),
            authorizer_pb2.AuthorizeResponse,
        )
        assert ok.decision == types_pb2.ALLOWED
        assert ok.matched_statements[0].sid == "ReadReports"
        deny = await call(
            channel,
            AUTHZ + "Authorize",
            authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/secret/x"),
            authorizer_pb2.AuthorizeResponse,
        )
        assert deny.decision == types_pb2.EXPLICIT_DENY
        batch = authorizer_pb2.BatchAuthorizeRequest(
            session_token=token,
            requests=[
                authorizer_pb2.AuthorizeItem(
                    action="s3:GetObject", resource="arn:aws:s3:::reports/a"
                ),
                authorizer_pb2.AuthorizeItem(
                    action="s3:PutObject", resource="arn:aws:s3:::reports/a"
                ),
            ],
        )
        out = await call(
            channel, AUTHZ + "BatchAuthorize", batch, authorizer_pb2.BatchAuthorizeResponse
        )
        assert [r.decision for r in out.results] == [types_pb2.ALLOWED, types_pb2.IMPLICIT_DENY]

    async def test_token_from_metadata(self, channel: grpc.aio.Channel) -> None:
        """With no session_token in the request, the bearer metadata is used."""
        token = (await assume(channel)).credentials.session_token
        out = await call(
            channel, AUTHZ + "Authorize", authorize_req("", "s3:GetObject", "arn:aws:s3:::reports/a"),
            authorizer_pb2.AuthorizeResponse, [("authorization", f"Bearer {token}")],
        )  # fmt: skip
        assert out.decision == types_pb2.ALLOWED

    async def test_bad_and_expired_tokens(
        self, channel: grpc.aio.Channel, clock: OffsetClock
    ) -> None:
        """A garbage token is InvalidClientTokenId; an expired one ExpiredToken (both UNAUTHENTICATED)."""
        code, reason, _ = await failure(
            call(
                channel,
                AUTHZ + "Authorize",
                authorize_req("garbage", "s3:GetObject", "*"),
                authorizer_pb2.AuthorizeResponse,
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "InvalidClientTokenId")
        token = (await assume(channel, duration_seconds=900)).credentials.session_token
        clock.offset = 901
        code, reason, _ = await failure(
            call(
                channel,
                AUTHZ + "Authorize",
                authorize_req(token, "s3:GetObject", "*"),
                authorizer_pb2.AuthorizeResponse,
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "ExpiredToken")

    async def test_missing_token_and_bad_input(self, channel: grpc.aio.Channel) -> None:
        """No token, undecodable bytes and a mistyped context value are refused cleanly."""
        code, reason, _ = await failure(
            call(
                channel,
                AUTHZ + "Authorize",
                authorize_req("", "s3:GetObject", "*"),
                authorizer_pb2.AuthorizeResponse,
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "MissingAuthenticationToken")
        code, reason, _ = await failure(
            call(channel, AUTHZ + "Authorize", b"\xff\xff\xff", authorizer_pb2.AuthorizeResponse)
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        token = (await assume(channel)).credentials.session_token
        bad_ip = types_pb2.ContextEntry(key="aws:SourceIp", values=["nope"], type=types_pb2.IP)
        code, reason, _ = await failure(
            call(
                channel,
                AUTHZ + "Authorize",
                authorize_req(token, "s3:GetObject", "*", context=[bad_ip]),
                authorizer_pb2.AuthorizeResponse,
            )
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")

    async def test_simulate_custom_policy(self, channel: grpc.aio.Channel) -> None:
        """SimulateCustomPolicy over the wire (signed by alice, whom the demo world allows)
        gives the same answer as the CLI path."""
        policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            }
        )
        req = authorizer_pb2.SimulateCustomPolicyRequest(
            policy_input_list=[policy], action_names=["s3:GetObject", "iam:GetUser"]
        )
        out = await signed(
            channel,
            AUTHZ + "SimulateCustomPolicy",
            req,
            authorizer_pb2.SimulateCustomPolicyResponse,
        )
        assert [r.eval_decision for r in out.evaluation_results] == [
            types_pb2.ALLOWED,
            types_pb2.IMPLICIT_DENY,
        ]
        bad = authorizer_pb2.SimulateCustomPolicyRequest(
            policy_input_list=["{"], action_names=["a:b"]
        )
        code, reason, _ = await failure(
            signed(
                channel,
                AUTHZ + "SimulateCustomPolicy",
                bad,
                authorizer_pb2.SimulateCustomPolicyResponse,
            )
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MalformedPolicyDocument")


class TestOperations:
    async def test_health_and_reflection(self, channel: grpc.aio.Channel) -> None:
        """grpc.health.v1 reports SERVING; reflection lists our services."""
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "iamsidecar.v1.Authorizer"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        names: list[str] = []
        async for resp in stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        ):
            names += [s.name for s in resp.list_services_response.service]
        assert {"iamsidecar.v1.SecurityTokenService", "iamsidecar.v1.Authorizer"} <= set(names)

    async def test_metrics_move(self, sidecar: Sidecar, channel: grpc.aio.Channel) -> None:
        """/metrics counts RPCs, decisions and cache hits; no secret appears in it."""
        token = (await assume(channel)).credentials.session_token
        for _ in range(3):
            await call(
                channel,
                AUTHZ + "Authorize",
                authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/a"),
                authorizer_pb2.AuthorizeResponse,
            )
        _, text = await http_get(sidecar.http_port, "/metrics")
        assert (
            'grpc_server_handled_total{grpc_code="OK",grpc_method="Authorize",grpc_service="iamsidecar.v1.Authorizer",grpc_type="unary"} 3.0'
            in text
        )
        assert 'iam_sidecar_decisions_total{decision="ALLOWED"} 3.0' in text
        assert 'iam_sidecar_cache_events_total{cache="decision",event="hit"} 2.0' in text
        assert 'iam_sidecar_credentials_issued_total{api="AssumeRole"} 1.0' in text
        assert token not in text
        assert DEMO_KEY[1] not in text
        assert (await http_get(sidecar.http_port, "/readyz"))[0] == 200

    async def test_a_reload_keeps_the_heap_frozen(self, sidecar: Sidecar) -> None:
        """A serving process freezes its heap after start (keep_out_of_collections); a reload
        gives the old world back to the collector and freezes the new one, so collections keep
        skipping the world after a reload too."""
        keep_out_of_collections()
        try:
            assert await sidecar.reload("test")
            assert gc.get_freeze_count() > 0
        finally:
            gc.unfreeze()

    async def test_reload_swaps_and_a_bad_world_keeps_serving(
        self, sidecar: Sidecar, tmp_path: Any
    ) -> None:
        """A good reload bumps the generation; a broken file is refused and counted."""
        assert await sidecar.reload("test")
        assert sidecar.engine.snapshot.generation == 2
        broken = tmp_path / "world.yaml"
        broken.write_text("accounts: [")
        sidecar.opts.config = str(broken)
        assert not await sidecar.reload("test")
        assert sidecar.engine.snapshot.generation == 2
        _, text = await http_get(sidecar.http_port, "/metrics")
        assert 'iam_sidecar_reloads_total{result="failure"} 1.0' in text
