"""envoy.service.auth.v3.Authorization/Check over the wire (docs/API.md §1.5): the principal
from a bearer token, a SigV4 signature or the source's SPIFFE id, decided by the engine, and
Envoy's answer: OK with x-iam-* headers, or 400/401/403 with the AWS error as JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace

import grpc
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.api.envoy.config.core.v3 import base_pb2
from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as pb
from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET
from sidecar.server.app import Sidecar
from sidecar.server.ext_authz_responses import header_value
from sidecar.server.status import error_info
from tests.server.check_world import (
    ORDERS_SPIFFE,
    SESSION_ARN,
    bearer,
    check,
    check_request,
    checks,
    connected,
    decisions,
    error_of,
    make_world,
    serving,
    set_headers,
    sign,
    world_doc,
)
from tests.server.conftest import OffsetClock
from tests.server.test_rpc import assume

OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
IAM_HEADERS = {"x-iam-principal-arn", "x-iam-session-name", "x-iam-action"}


@pytest.fixture
async def server(clock: OffsetClock) -> AsyncIterator[Sidecar]:
    async with serving(clock) as s:
        yield s


@pytest.fixture
async def channel(server: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch


async def session(channel: grpc.aio.Channel) -> SimpleNamespace:
    creds = (await assume(channel)).credentials
    return SimpleNamespace(
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
    )


class TestBearer:
    async def test_allowed_sets_the_iam_headers_over_the_clients(
        self, server: Sidecar, channel: grpc.aio.Channel
    ) -> None:
        """OK overwrites x-iam-* whatever the client sent; the decision is counted as
        Authorize's are."""
        token = (await session(channel)).session_token
        forged = {"x-iam-principal-arn": "arn:aws:iam::111111111111:user/admin"}
        response = await check(
            channel, check_request("/reports/q3.csv", {**bearer(token), **forged})
        )
        assert response.status.code == code_pb2.OK
        assert set_headers(response) == {
            "x-iam-principal-arn": (SESSION_ARN, OVERWRITE),
            "x-iam-session-name": ("s1", OVERWRITE),
            "x-iam-action": ("s3:GetObject", OVERWRITE),
        }
        assert list(response.ok_response.headers_to_remove) == []
        assert checks(server, "allowed") == 1
        assert decisions(server, "ALLOWED") == 1

    async def test_denied_is_403_with_aws_message(
        self, server: Sidecar, channel: grpc.aio.Channel
    ) -> None:
        token = (await session(channel)).session_token
        response = await check(channel, check_request("/reports/secret/plan.txt", bearer(token)))
        assert response.status.code == code_pb2.PERMISSION_DENIED
        assert error_of(response) == (
            403,
            "AccessDenied",
            f"User: {SESSION_ARN} is not authorized to perform: s3:GetObject on resource: "
            "arn:aws:s3:::reports/secret/plan.txt with an explicit deny in an identity-based "
            "policy",
        )
        assert checks(server, "denied") == 1
        assert decisions(server, "EXPLICIT_DENY") == 1

    async def test_a_request_no_route_maps_is_denied(self, channel: grpc.aio.Channel) -> None:
        token = (await session(channel)).session_token
        response = await check(channel, check_request("/admin", bearer(token), method="DELETE"))
        status, code, message = error_of(response)
        assert (status, code) == (403, "AccessDenied")
        assert message == (
            f"User: {SESSION_ARN} is not authorized to perform: DELETE /admin because no "
            "ext_authz route matches the request and the default is deny"
        )

    async def test_missing_bad_and_expired_credentials_are_401(
        self, server: Sidecar, channel: grpc.aio.Channel, clock: OffsetClock
    ) -> None:
        """401 comes before any 403: an unmapped request without credentials is 401 too."""
        token = (await session(channel)).session_token
        for path in ("/reports/q3.csv", "/admin"):
            response = await check(channel, check_request(path))
            assert response.status.code == code_pb2.UNAUTHENTICATED
            assert error_of(response)[:2] == (401, "MissingAuthenticationToken")
        response = await check(channel, check_request("/reports/q3.csv", bearer("garbage")))
        assert error_of(response)[:2] == (401, "InvalidClientTokenId")
        clock.offset += 3 * 3600  # past the session's hour
        for path in ("/reports/q3.csv", "/admin"):
            response = await check(channel, check_request(path, bearer(token)))
            assert error_of(response) == (
                401,
                "ExpiredToken",
                "The security token included in the request is expired",
            )
        assert checks(server, "unauthenticated") == 5
        assert (
            server.metrics.registry.get_sample_value(
                "iam_sidecar_token_validation_failures_total", {"reason": "expired"}
            )
            == 2
        )

    async def test_header_map_is_read_like_the_headers_map(self, channel: grpc.aio.Channel) -> None:
        """Envoy's encode_raw_headers sends header_map (raw bytes) instead of headers."""
        token = (await session(channel)).session_token
        req = check_request("/reports/q3.csv")
        req.attributes.request.http.ClearField("headers")
        header = req.attributes.request.http.header_map.headers.add()
        header.key, header.raw_value = "authorization", f"Bearer {token}".encode()
        response = await check(channel, req)
        assert response.status.code == code_pb2.OK

    async def test_source_ip_and_secure_transport_reach_the_conditions(
        self, clock: OffsetClock
    ) -> None:
        """aws:SourceIp is the downstream address Envoy reports, aws:SecureTransport the
        request's scheme."""
        doc = world_doc()
        role = doc["accounts"][0]["roles"][0]
        role["inline_policies"]["OnlyFromTheMeshOverTls"] = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*",
                 "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
                {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*",
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            ],
        }  # fmt: skip
        async with serving(clock) as server:
            server.engine.swap(make_world(doc), server.engine.snapshot.keys)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
                token = (await session(ch)).session_token
                ok = await check(ch, check_request("/reports/q3.csv", bearer(token)))
                assert ok.status.code == code_pb2.OK
                for kw in ({"source_ip": "192.0.2.1"}, {"scheme": "http"}):
                    response = await check(
                        ch,
                        check_request("/reports/q3.csv", bearer(token), **kw),  # type: ignore[arg-type]
                    )
                    assert error_of(response)[:2] == (403, "AccessDenied")


class TestSigV4:
    URL = "https://orders.example/reports/q3.csv?version=2"

    def request(
        self, headers: dict[str, str], body: bytes, method: str = "POST"
    ) -> pb.CheckRequest:
        return check_request("/reports/q3.csv?version=2", headers, method=method, body=body)

    async def test_signed_with_temporary_credentials_is_that_session(
        self, channel: grpc.aio.Channel
    ) -> None:
        creds = await session(channel)
        body = b'{"order": 42}'
        headers = sign(creds, "POST", self.URL, body)
        response = await check(channel, self.request(headers, body))
        assert response.status.code == code_pb2.OK
        assert set_headers(response)["x-iam-principal-arn"] == (SESSION_ARN, OVERWRITE)

    async def test_one_byte_of_the_signature_changed(self, channel: grpc.aio.Channel) -> None:
        creds = await session(channel)
        headers = sign(creds, "GET", self.URL)
        value = headers["authorization"]
        last = "0" if value[-1] != "0" else "1"
        headers["authorization"] = value[:-1] + last
        response = await check(channel, self.request(headers, b"", "GET"))
        assert error_of(response)[:2] == (401, "SignatureDoesNotMatch")

    async def test_body_changed_after_signing(self, channel: grpc.aio.Channel) -> None:
        """Whether the body's hash is signed in the canonical request or in a signed
        x-amz-content-sha256, the body Envoy forwards must be the one signed."""
        creds = await session(channel)
        body = b'{"qty": 1}'
        plain = sign(creds, "POST", self.URL, body)
        digest = hashlib.sha256(body).hexdigest()
        with_hash = sign(creds, "POST", self.URL, body, {"x-amz-content-sha256": digest})
        assert "x-amz-content-sha256" in with_hash["authorization"]
        for headers in (plain, with_hash):
            response = await check(channel, self.request(headers, body))
            assert response.status.code == code_pb2.OK  # as signed
            response = await check(channel, self.request(headers, b'{"qty": 9}'))
            assert error_of(response)[:2] == (401, "SignatureDoesNotMatch")

    async def test_unsigned_payload_only_as_a_signed_header(
        self, channel: grpc.aio.Channel
    ) -> None:
        """UNSIGNED-PAYLOAD in a signed x-amz-content-sha256 leaves the body unsigned (as S3
        allows); the same signature without that header is over the body's hash."""
        creds = await session(channel)
        headers = sign(creds, "PUT", self.URL, b"", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        assert "x-amz-content-sha256" in headers["authorization"]
        response = await check(channel, self.request(headers, b"any body at all", "PUT"))
        assert response.status.code == code_pb2.OK
        del headers["x-amz-content-sha256"]
        response = await check(channel, self.request(headers, b"any body at all", "PUT"))
        assert error_of(response)[:2] == (401, "SignatureDoesNotMatch")

    async def test_expired_session_and_clock_skew(
        self, channel: grpc.aio.Channel, clock: OffsetClock
    ) -> None:
        """A signature older than 5 minutes is SignatureDoesNotMatch; a fresh signature with
        the credentials of an expired session is ExpiredToken."""
        creds = await session(channel)
        old = sign(creds, "GET", self.URL, at=clock.now() - 600)
        response = await check(channel, self.request(old, b"", "GET"))
        status, code, message = error_of(response)
        assert (status, code) == (401, "SignatureDoesNotMatch")
        assert message.startswith("Signature expired")
        clock.offset += 3 * 3600  # past the session's hour
        fresh = sign(creds, "GET", self.URL, at=clock.now())
        response = await check(channel, self.request(fresh, b"", "GET"))
        assert error_of(response)[:2] == (401, "ExpiredToken")

    async def test_a_long_term_key_makes_the_request_the_users(
        self, channel: grpc.aio.Channel
    ) -> None:
        """Signed with an IAM user's own key, as at AWS: the user's policies decide, and the
        answer names the user (no session)."""
        alice = SimpleNamespace(
            access_key_id=DEMO_ACCESS_KEY_ID, secret_access_key=DEMO_SECRET, session_token=None
        )
        response = await check(channel, self.request(sign(alice, "GET", self.URL), b"", "GET"))
        status, code, message = error_of(response)
        assert (status, code) == (403, "AccessDenied")
        assert message.startswith("User: arn:aws:iam::111111111111:user/alice is not authorized")


class TestServicePrincipal:
    async def test_only_a_resource_policy_grants_a_service(
        self, server: Sidecar, channel: grpc.aio.Channel
    ) -> None:
        """The SPIFFE id Envoy reports maps to orders.mesh.local: the orders resource policy
        names it; nothing grants it the reports bucket (it has no identity policies)."""
        ok = await check(channel, check_request("/orders/42", spiffe_id=ORDERS_SPIFFE))
        assert ok.status.code == code_pb2.OK
        assert set_headers(ok) == {
            "x-iam-principal-arn": ("orders.mesh.local", OVERWRITE),
            "x-iam-action": ("orders:GetOrder", OVERWRITE),
        }
        # it has no session: a client's x-iam-session-name must not reach the upstream
        assert list(ok.ok_response.headers_to_remove) == ["x-iam-session-name"]
        denied = await check(channel, check_request("/reports/q3.csv", spiffe_id=ORDERS_SPIFFE))
        assert error_of(denied) == (
            403,
            "AccessDenied",
            "User: orders.mesh.local is not authorized to perform: s3:GetObject on resource: "
            "arn:aws:s3:::reports/q3.csv because no resource-based policy allows the "
            "s3:GetObject action",
        )
        assert decisions(server, "ALLOWED") == 1
        assert decisions(server, "IMPLICIT_DENY") == 1

    async def test_an_unknown_spiffe_id_is_401(self, channel: grpc.aio.Channel) -> None:
        response = await check(
            channel, check_request("/orders/42", spiffe_id="spiffe://evil/ns/x/sa/y")
        )
        assert error_of(response)[:2] == (401, "MissingAuthenticationToken")

    async def test_a_credential_comes_before_the_spiffe_id(self, channel: grpc.aio.Channel) -> None:
        """A bearer token decides, not the peer's identity: app-reader may not read orders."""
        token = (await session(channel)).session_token
        response = await check(
            channel, check_request("/orders/42", bearer(token), spiffe_id=ORDERS_SPIFFE)
        )
        status, code, message = error_of(response)
        assert (status, code) == (403, "AccessDenied")
        assert message.startswith(f"User: {SESSION_ARN} is not authorized")


class TestHostileInput:
    async def test_bad_paths_are_400_before_authentication(
        self, server: Sidecar, channel: grpc.aio.Channel
    ) -> None:
        for path in ("/reports/a%2Fb", "/reports/../../etc/passwd", "/reports/%zz"):
            response = await check(channel, check_request(path))
            assert response.status.code == code_pb2.INVALID_ARGUMENT
            assert error_of(response)[:2] == (400, "InvalidRequest")
        assert checks(server, "bad_request") == 3

    async def test_oversized_credentials_path_and_context(self, channel: grpc.aio.Channel) -> None:
        token = (await session(channel)).session_token
        huge_token = await check(channel, check_request("/reports/q3.csv", bearer("x" * 100_000)))
        assert error_of(huge_token)[:2] == (401, "InvalidClientTokenId")
        huge_sigv4 = {
            "authorization": "AWS4-HMAC-SHA256 " + "a" * 100_000,
            "x-amz-security-token": token,
        }
        response = await check(channel, check_request("/reports/q3.csv", huge_sigv4))
        assert error_of(response)[:2] == (401, "SignatureDoesNotMatch")
        long_path = "/reports/" + "k" * 5000
        response = await check(channel, check_request(long_path, bearer(token)))
        status, code, message = error_of(response)
        assert (status, code) == (403, "AccessDenied")
        assert len(message) < 300  # the resource is not echoed
        # a route-declared header too long for a condition value
        response = await check(
            channel, check_request("/orders/1", {**bearer(token), "x-tenant": "t" * 3000})
        )
        status, code, message = error_of(response)
        assert (status, code) == (400, "InvalidRequest")
        assert len(message) < 500
        # an action over IAM's 128 characters is Authorize's ValidationError
        response = await check(channel, check_request("/do/" + "V" * 200, bearer(token)))
        status, code, message = error_of(response)
        assert (status, code) == (400, "ValidationError")
        assert len(message) < 500
        # unrelated large headers change nothing
        response = await check(
            channel, check_request("/reports/q3.csv", {**bearer(token), "x-junk": "j" * 200_000})
        )
        assert response.status.code == code_pb2.OK

    async def test_a_message_over_the_grpc_limit_is_refused(
        self, channel: grpc.aio.Channel
    ) -> None:
        """Envoy never sends a body over max_request_bytes; a CheckRequest over the server's
        message limit (4 MiB) fails as a call, which Envoy answers with an error."""
        req = check_request("/reports/q3.csv", body=b"b" * (5 << 20))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(channel, req)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    async def test_not_a_check_request_is_invalid_argument(self, channel: grpc.aio.Channel) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(channel, b"\xff\xff\xff")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        detail = error_info(info.value)
        assert detail is not None
        assert detail.reason == "ValidationError"

    async def test_header_values_cannot_carry_control_characters(self, clock: OffsetClock) -> None:
        """A decoded path segment that lands in x-iam-action is percent-encoded when it is not
        printable ASCII: no header injection towards the upstream (dry run, so that the
        answers are OK)."""
        async with connected(clock, dry_run=True) as (_server, ch):
            token = (await session(ch)).session_token
            response = await check(ch, check_request("/do/G%C3%A9t", bearer(token)))
            crlf = await check(ch, check_request("/do/a%0D%0Ax-evil%201", bearer(token)))
        assert response.status.code == code_pb2.OK
        assert set_headers(response)["x-iam-action"] == ("orders:G%C3%A9t", OVERWRITE)
        assert crlf.status.code == code_pb2.OK
        assert set_headers(crlf)["x-iam-action"] == ("orders:a%0D%0Ax-evil 1", OVERWRITE)
        assert header_value("arn:aws:sts::1:assumed-role/r/s") == "arn:aws:sts::1:assumed-role/r/s"


class TestModes:
    async def test_dry_run_counts_the_real_decision_and_lets_it_through(
        self, clock: OffsetClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="iam_sidecar.ext_authz")
        async with connected(clock, dry_run=True) as (server, ch):
            token = (await session(ch)).session_token
            forged = {"x-iam-principal-arn": "arn:aws:iam::111111111111:user/admin"}
            denied = await check(
                ch, check_request("/reports/secret/plan.txt", {**bearer(token), **forged})
            )
            assert denied.status.code == code_pb2.OK
            assert set_headers(denied)["x-iam-principal-arn"] == (SESSION_ARN, OVERWRITE)
            anonymous = await check(ch, check_request("/reports/q3.csv", forged))
            assert anonymous.status.code == code_pb2.OK
            # no principal is known: every x-iam-* header the client sent is removed
            assert set_headers(anonymous) == {}
            assert set(anonymous.ok_response.headers_to_remove) == IAM_HEADERS
            allowed = await check(ch, check_request("/reports/q3.csv", bearer(token)))
            assert allowed.status.code == code_pb2.OK
        assert checks(server, "dry_run_denied") == 1
        assert checks(server, "dry_run_unauthenticated") == 1
        assert checks(server, "dry_run_allowed") == 1
        assert checks(server, "denied") == checks(server, "allowed") == 0
        assert decisions(server, "EXPLICIT_DENY") == 1
        logged = [r for r in caplog.records if r.name == "iam_sidecar.ext_authz"]
        assert [(r.result, r.status) for r in logged] == [("denied", 403), ("unauthenticated", 401)]  # type: ignore[attr-defined]

    async def test_strip_credentials_removes_them(self, clock: OffsetClock) -> None:
        async with connected(clock, strip_credentials=True) as (_server, ch):
            token = (await session(ch)).session_token
            response = await check(ch, check_request("/reports/q3.csv", bearer(token)))
        assert response.status.code == code_pb2.OK
        assert set(response.ok_response.headers_to_remove) == {
            "authorization", "x-amz-security-token", "x-amz-date", "x-amz-content-sha256",
        }  # fmt: skip

    async def test_routes_follow_a_reload(self, server: Sidecar, channel: grpc.aio.Channel) -> None:
        """The routes are compiled per world snapshot: a reload that maps /admin takes effect."""
        token = (await session(channel)).session_token
        before = await check(channel, check_request("/admin", bearer(token)))
        assert error_of(before)[0] == 403
        doc = world_doc()
        doc["ext_authz"]["routes"].append(
            {"path": "/admin", "action": "s3:GetObject", "resource": "arn:aws:s3:::reports/x"}
        )
        server.engine.swap(make_world(doc), server.engine.snapshot.keys)
        after = await check(channel, check_request("/admin", bearer(token)))
        assert after.status.code == code_pb2.OK

    async def test_served_with_health_and_reflection(self, channel: grpc.aio.Channel) -> None:
        name = "envoy.service.auth.v3.Authorization"
        health = health_pb2_grpc.HealthStub(channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        calls = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in calls for s in r.list_services_response.service]
        assert name in names


def test_world_doc_is_valid() -> None:
    """The helpers' world loads (a guard for the fixtures above)."""
    world = make_world(world_doc())
    assert world.ext_authz is not None
    assert dataclasses.is_dataclass(world)
