"""A hostile review of Envoy's Check (docs/MESH.md, docs/API.md §1.5), over the wire: requests
that an upstream would read as something other than what Check authorized, and forged identity
headers. Each test names the upstream reading it guards against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2

from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as pb
from sidecar.server.app import Sidecar
from tests.server.check_world import (
    ORDERS_SPIFFE,
    ROUTES,
    bearer,
    check,
    check_request,
    connected,
    error_of,
    serving,
    sign,
)
from tests.server.conftest import OffsetClock
from tests.server.test_check_rpc import session

IAM_HEADERS = ("x-iam-principal-arn", "x-iam-session-name", "x-iam-action")


@pytest.fixture
async def server(clock: OffsetClock) -> AsyncIterator[Sidecar]:
    async with serving(clock) as s:
        yield s


@pytest.fixture
async def channel(server: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch


def forwarded(response: pb.CheckResponse) -> bool:
    return response.status.code == code_pb2.OK


class TestForgedIdentityHeaders:
    async def test_underscore_spellings_of_the_iam_headers_never_reach_the_upstream(
        self, channel: grpc.aio.Channel
    ) -> None:
        """Envoy forwards `x_iam_session_name` (headers_with_underscores_action: ALLOW is its
        default), and CGI-style upstreams (WSGI servers, Rack, PHP) read it as
        HTTP_X_IAM_SESSION_NAME, the very variable `x-iam-session-name` becomes. For a service
        principal Check removes x-iam-session-name, so the forged one would be all the upstream
        sees. Check must refuse the request or remove every such spelling."""
        forged = {
            "x_iam_session_name": "admin",
            "x_iam_principal_arn": "arn:aws:iam::111111111111:user/admin",
            "x-iam_action": "orders:DeleteOrder",
        }
        response = await check(
            channel, check_request("/orders/42", forged, spiffe_id=ORDERS_SPIFFE)
        )
        if forwarded(response):
            removed = set(response.ok_response.headers_to_remove)
            assert set(forged) <= removed, f"forwarded with {set(forged) - removed}"
        else:
            assert error_of(response)[0] == 400

    async def test_a_dry_run_lets_no_underscore_spelling_through(self, clock: OffsetClock) -> None:
        """In dry-run a refused request goes through too: without its credentials (401), the
        x-iam-* headers are removed, and so must be their other spellings."""
        forged = {"x_iam_principal_arn": "arn:aws:iam::111111111111:user/admin"}
        async with connected(clock, dry_run=True) as (_server, channel):
            response = await check(channel, check_request("/orders/42", forged))
            assert forwarded(response)
            assert "x_iam_principal_arn" in response.ok_response.headers_to_remove


class TestPathParameters:
    @pytest.mark.parametrize(
        "path",
        [
            "/reports/secret;v=1/plan.txt",  # Tomcat, Jetty, Spring: path parameters are dropped
            "/reports/public/..;/secret/plan.txt",  # Tomcat: '..;' is '..'
        ],
    )
    async def test_a_path_parameter_does_not_move_a_request_past_a_deny(
        self, channel: grpc.aio.Channel, path: str
    ) -> None:
        """app-reader may read reports/* but never reports/secret/* (an explicit Deny). Servlet
        containers strip `;...` from each segment before routing, so all of these paths fetch
        reports/secret/plan.txt there: Check must not allow them as another resource."""
        token = (await session(channel)).session_token
        response = await check(channel, check_request(path, bearer(token)))
        assert not forwarded(response), f"{path} was allowed"
        assert error_of(response)[0] in (400, 403)

    async def test_an_encoded_semicolon_is_data(self, channel: grpc.aio.Channel) -> None:
        """Guarantee (passes): `%3B` is not a path parameter for any server, so it stays
        allowed as the resource it names."""
        token = (await session(channel)).session_token
        response = await check(channel, check_request("/reports/a%3Bb.csv", bearer(token)))
        assert forwarded(response)


# DELETE has its own route; every other method reads.
METHOD_ROUTES: dict[str, Any] = {
    "routes": [
        {
            "method": "DELETE",
            "path": "/orders/{id}",
            "action": "orders:DeleteOrder",
            "resource": "arn:aws:orders:::order/{id}",
        },
        {
            "path": "/orders/{id}",
            "action": "orders:GetOrder",
            "resource": "arn:aws:orders:::order/{id}",
        },
    ],
}


class TestMethodAndHost:
    async def test_a_lower_case_method_takes_the_route_of_its_upper_case_form(
        self, clock: OffsetClock
    ) -> None:
        """orders.mesh.local may GetOrder but not DeleteOrder. Django and Flask/Werkzeug
        upper-case REQUEST_METHOD, so `delete /orders/42` (HTTP/2 carries any token as :method)
        deletes there: Check must decide it as DeleteOrder, not fall to the read route."""
        async with connected(clock, **METHOD_ROUTES) as (_server, channel):
            upper = await check(
                channel, check_request("/orders/42", method="DELETE", spiffe_id=ORDERS_SPIFFE)
            )
            assert error_of(upper)[:2] == (403, "AccessDenied")  # as designed
            lower = await check(
                channel, check_request("/orders/42", method="delete", spiffe_id=ORDERS_SPIFFE)
            )
            assert not forwarded(lower), "delete /orders/42 was allowed as orders:GetOrder"

    async def test_a_trailing_dot_host_takes_its_host_route(self, clock: OffsetClock) -> None:
        """`orders.example.` is the fully qualified spelling of `orders.example` (RFC 1034):
        an upstream routing on Host serves it as that host, so it must not skip the host's
        route for a later, more permissive one."""
        host_route = {
            "host": "orders.example",
            "path": "/reports/{key+}",
            "action": "s3:GetObject",
            "resource": "arn:aws:s3:::reports/secret/{key}",  # denied to app-reader
        }
        routes = {**ROUTES, "routes": [host_route, *ROUTES["routes"]]}
        async with connected(clock, **routes) as (_server, channel):
            token = (await session(channel)).session_token
            plain = await check(
                channel, check_request("/reports/q3.csv", bearer(token), host="Orders.Example:8443")
            )
            assert error_of(plain)[:2] == (403, "AccessDenied")  # as designed
            dotted = await check(
                channel, check_request("/reports/q3.csv", bearer(token), host="orders.example.")
            )
            assert not forwarded(dotted), "orders.example. skipped its host route"


class TestCredentialsDoNotFallThrough:
    """Guarantees (pass): a credential that fails is a 401 even when the mTLS peer's SPIFFE id
    maps to a service principal that the resource policy would allow."""

    async def test_a_bad_bearer_token_is_401_not_the_service(
        self, channel: grpc.aio.Channel
    ) -> None:
        response = await check(
            channel, check_request("/orders/42", bearer("garbage"), spiffe_id=ORDERS_SPIFFE)
        )
        assert error_of(response)[:2] == (401, "InvalidClientTokenId")

    async def test_a_bad_signature_is_401_not_the_service(self, channel: grpc.aio.Channel) -> None:
        creds = await session(channel)
        headers = sign(creds, "GET", "https://orders.example/orders/42")
        headers["authorization"] = headers["authorization"][:-1] + (
            "0" if headers["authorization"][-1] != "0" else "1"
        )
        response = await check(
            channel, check_request("/orders/42", headers, spiffe_id=ORDERS_SPIFFE)
        )
        assert error_of(response)[:2] == (401, "SignatureDoesNotMatch")

    async def test_a_token_of_another_key_is_401(self, channel: grpc.aio.Channel) -> None:
        """SigV4 by one session's key with another session's token."""
        first, second = await session(channel), await session(channel)
        creds = type(first)(
            access_key_id=first.access_key_id,
            secret_access_key=first.secret_access_key,
            session_token=second.session_token,
        )
        headers = sign(creds, "GET", "https://orders.example/reports/q3.csv")
        response = await check(
            channel, check_request("/reports/q3.csv", headers, spiffe_id=ORDERS_SPIFFE)
        )
        assert error_of(response)[:2] == (401, "InvalidClientTokenId")


class TestSignedContextHeaders:
    """A header a route takes condition keys from must be signed when SigV4 is the
    principal: otherwise a replay within the signature's five minutes could change it."""

    URL = "https://orders.example/orders/42"

    async def test_a_context_header_added_after_signing_is_refused(
        self, channel: grpc.aio.Channel
    ) -> None:
        creds = await session(channel)
        headers = {**sign(creds, "GET", self.URL), "x-tenant": "acme"}
        response = await check(channel, check_request("/orders/42", headers))
        status, code, message = error_of(response)
        assert (status, code) == (403, "AccessDenied")
        assert message.endswith("headers present in the request which were not signed: x-tenant")

    async def test_a_signed_context_header_is_decided_by_policy(
        self, channel: grpc.aio.Channel
    ) -> None:
        creds = await session(channel)
        headers = sign(creds, "GET", self.URL, headers={"x-tenant": "acme"})
        response = await check(channel, check_request("/orders/42", headers))
        status, code, message = error_of(response)
        assert (status, code) == (403, "AccessDenied")
        assert "is not authorized to perform: orders:GetOrder" in message

    async def test_a_sigv4_look_alike_never_falls_through_to_the_spiffe_id(
        self, channel: grpc.aio.Channel
    ) -> None:
        """`aws4-…` in lower case is a (bad) signature, refused: not a header to ignore in
        favour of the service principal that the orders resource policy grants."""
        creds = await session(channel)
        headers = sign(creds, "GET", self.URL)
        headers["authorization"] = headers["authorization"].lower()
        request = check_request("/orders/42", headers, spiffe_id=ORDERS_SPIFFE)
        assert (await check(channel, request)).status.code != code_pb2.OK
        assert error_of(await check(channel, request))[:2] == (401, "SignatureDoesNotMatch")
