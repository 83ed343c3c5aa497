"""A sidecar on 127.0.0.1 serving the demo world with ext_authz routes, and helpers to send
Envoy's Check over the wire (the Envoy side of docs/MESH.md, written by hand)."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import grpc
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as pb
from sidecar.demo import DEMO_SECRET, DEMO_SECRET_ENV, WORLD_FILE
from sidecar.identity.load import build_world
from sidecar.identity.model import World
from sidecar.server.app import ServeOptions, Sidecar
from sidecar.server.world_file import secret_source
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.server.conftest import OffsetClock

CHECK = "/envoy.service.auth.v3.Authorization/Check"
ORDERS_SPIFFE = "spiffe://cluster.local/ns/orders/sa/orders"
SESSION_ARN = "arn:aws:sts::111111111111:assumed-role/app-reader/s1"
SOURCE_IP = "10.1.2.3"

# orders.mesh.local may read orders: the resource policy names the service (as at AWS, the only
# way a service principal is granted anything).
ORDERS_POLICY = {
    "resource": "arn:aws:orders:::order/*",
    "document": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OrdersServiceReads",
                "Effect": "Allow",
                "Principal": {"Service": "orders.mesh.local"},
                "Action": "orders:GetOrder",
                "Resource": "arn:aws:orders:::order/*",
            }
        ],
    },
}
ROUTES: dict[str, Any] = {
    "routes": [
        {
            "method": "GET",
            "path": "/orders/{id}",
            "action": "orders:GetOrder",
            "resource": "arn:aws:orders:::order/{id}",
            "context": [{"from": "header", "name": "x-tenant", "key": "aws:RequestTag/tenant"}],
        },
        {
            "path": "/reports/{key+}",
            "action": "s3:GetObject",
            "resource": "arn:aws:s3:::reports/{key}",
        },
        {"path": "/do/{verb}", "action": "orders:{verb}", "resource": "*"},
    ],
    "default": "deny",
}


def world_doc(**ext_authz: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORLD_FILE.read_text())
    doc["accounts"][0]["resource_policies"] = [copy.deepcopy(ORDERS_POLICY)]
    doc["ext_authz"] = {**copy.deepcopy(ROUTES), **ext_authz}
    return doc


def make_world(doc: Mapping[str, Any], generation: int = 0) -> World:
    secrets = secret_source({DEMO_SECRET_ENV: DEMO_SECRET})
    return build_world(doc, source="check.yaml", secrets=secrets, generation=generation)


@contextlib.asynccontextmanager
async def serving(clock: OffsetClock, **ext_authz: Any) -> AsyncIterator[Sidecar]:
    opts = ServeOptions(listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace=1.0, drain_delay=0.0)
    world = make_world(world_doc(**ext_authz))
    server = Sidecar(opts, world, KeyRing.generate(CountingEntropy(11)), None, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.drain()


@contextlib.asynccontextmanager
async def connected(
    clock: OffsetClock, **ext_authz: Any
) -> AsyncIterator[tuple[Sidecar, grpc.aio.Channel]]:
    """``serving`` with a channel to it."""
    async with (
        serving(clock, **ext_authz) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
    ):
        yield server, channel


def check_request(
    path: str,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    host: str = "orders.example",
    scheme: str = "https",
    body: bytes = b"",
    spiffe_id: str = "",
    source_ip: str = SOURCE_IP,
) -> pb.CheckRequest:
    req = pb.CheckRequest()
    source = req.attributes.source
    source.address.socket_address.address = source_ip
    source.address.socket_address.port_value = 40000
    source.principal = spiffe_id
    http = req.attributes.request.http
    http.method, http.host, http.path, http.scheme, http.raw_body = method, host, path, scheme, body
    http.headers.update({":authority": host, ":method": method, ":path": path, **(headers or {})})
    return req


async def check(channel: grpc.aio.Channel, request: pb.CheckRequest | bytes) -> pb.CheckResponse:
    raw = request if isinstance(request, bytes) else request.SerializeToString()
    method = channel.unary_unary(
        CHECK, request_serializer=None, response_deserializer=pb.CheckResponse.FromString
    )
    response: pb.CheckResponse = await method(raw, timeout=10)
    return response


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def set_headers(response: pb.CheckResponse) -> dict[str, tuple[str, int]]:
    """The headers an OK answer sets: name -> (value, append_action)."""
    return {o.header.key: (o.header.value, o.append_action) for o in response.ok_response.headers}


def error_of(response: pb.CheckResponse) -> tuple[int, str, str]:
    """(HTTP status, AWS code, message) of a refusal Envoy answers itself."""
    denied = response.denied_response
    assert response.WhichOneof("http_response") == "denied_response"
    content_types = [o.header.value for o in denied.headers if o.header.key == "content-type"]
    assert content_types == ["application/json"]
    error = json.loads(denied.body)["Error"]
    return denied.status.code, error["Code"], error["Message"]


def sign(
    creds: Any,
    method: str,
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    at: float | None = None,
) -> dict[str, str]:
    """botocore's SigV4 headers (lower-case names) for a request made with ``creds``
    (access_key_id, secret_access_key, session_token or None), signed now or ``at``."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    credentials = Credentials(
        creds.access_key_id, creds.secret_access_key, creds.session_token or None
    )
    signer = SigV4Auth(credentials, "execute-api", "us-east-1")
    if at is None:
        signer.add_auth(request)
    else:
        when = datetime.fromtimestamp(at, UTC).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


def checks(server: Sidecar, result: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "iam_sidecar_ext_authz_checks_total", {"result": result}
    )
    return value or 0.0


def decisions(server: Sidecar, decision: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "iam_sidecar_decisions_total", {"decision": decision}
    )
    return value or 0.0
