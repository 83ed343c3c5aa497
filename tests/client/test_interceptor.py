"""The authorization interceptors on an application's own gRPC server (a tiny "shop" service on
127.0.0.1), deciding real calls through a real sidecar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from sidecar.api.v1 import types_pb2
from sidecar.client import AsyncClient, Client, RetryPolicy
from sidecar.client.interceptor import AsyncAuthorizationInterceptor, AuthorizationInterceptor
from sidecar.server.app import Sidecar
from tests.client.test_errors import free_port
from tests.server.conftest import APP_READER, DEMO_KEY

# The shop's messages are borrowed from the sidecar's protos: a Tag is {key, value}.
Req = types_pb2.Tag
RULES = {
    "/shop.Orders/GetOrder": ("s3:GetObject", "arn:aws:s3:::reports/{key}"),
    "/shop.Orders/Watch": ("s3:GetObject", "arn:aws:s3:::reports/{key}"),
    "/shop.Orders/Broken": ("s3:GetObject", "arn:aws:s3:::reports/{order_id}"),
}


def shop_handlers(served: list[str], aio: bool) -> grpc.GenericRpcHandler:
    def get_order(request: Any, _context: Any) -> Any:
        served.append(request.key)
        return Req(key=request.key, value="order")

    def watch(request: Any, _context: Any) -> Iterator[Any]:
        served.append(request.key)
        yield Req(key=request.key, value="1")
        yield Req(key=request.key, value="2")

    async def aget_order(request: Any, context: Any) -> Any:
        return get_order(request, context)

    async def awatch(request: Any, context: Any) -> AsyncIterator[Any]:
        for item in watch(request, context):
            yield item

    kw: dict[str, Any] = {
        "request_deserializer": Req.FromString,
        "response_serializer": Req.SerializeToString,
    }
    unary = aget_order if aio else get_order
    handlers = {
        "GetOrder": grpc.unary_unary_rpc_method_handler(unary, **kw),
        "Broken": grpc.unary_unary_rpc_method_handler(unary, **kw),
        "Other": grpc.unary_unary_rpc_method_handler(unary, **kw),
        "Watch": grpc.unary_stream_rpc_method_handler(awatch if aio else watch, **kw),
    }
    return grpc.method_handlers_generic_handler("shop.Orders", handlers)


def shop_call(
    port: int, method: str, key: str, token: str | None, stream: bool = False
) -> tuple[grpc.StatusCode, str, list[str]]:
    """(status, message, response values) of one call to the shop."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        make = channel.unary_stream if stream else channel.unary_unary
        rpc = make(
            f"/shop.Orders/{method}",
            request_serializer=Req.SerializeToString,
            response_deserializer=Req.FromString,
        )
        try:
            out: Any = rpc(Req(key=key), metadata=metadata, timeout=10)
            values = [r.value for r in out] if stream else [out.value]
            return grpc.StatusCode.OK, "", values
        except grpc.RpcError as err:
            return err.code(), err.details() or "", []


def session_token(addr: str) -> str:
    with Client(addr, access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]) as alice:
        return alice.assume_role(APP_READER, "shopper").credentials.session_token


def sync_shop(sidecar_addr: str, rules_client: Client) -> dict[str, Any]:
    token = session_token(sidecar_addr)
    served: list[str] = []
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4),
        interceptors=[AuthorizationInterceptor(rules_client, RULES)],
    )
    server.add_generic_rpc_handlers((shop_handlers(served, aio=False),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        return {
            "allowed": shop_call(port, "GetOrder", "q1.csv", token),
            "stream": shop_call(port, "Watch", "q1.csv", token, stream=True),
            "denied": shop_call(port, "GetOrder", "secret/plans", token),
            "stream_denied": shop_call(port, "Watch", "secret/plans", token, stream=True),
            "no_token": shop_call(port, "GetOrder", "q1.csv", None),
            "bad_token": shop_call(port, "GetOrder", "q1.csv", "garbage"),
            "missing_field": shop_call(port, "Broken", "q1.csv", token),
            "no_rule": shop_call(port, "Other", "q1.csv", token),
            "served": served,
        }
    finally:
        server.stop(None)


async def test_sync_interceptor_allows_and_refuses_real_calls(sidecar: Sidecar) -> None:
    addr = f"127.0.0.1:{sidecar.grpc_port}"
    with Client(addr) as client:
        r = await asyncio.to_thread(sync_shop, addr, client)
    assert r["allowed"] == (grpc.StatusCode.OK, "", ["order"])
    assert r["stream"] == (grpc.StatusCode.OK, "", ["1", "2"])
    code, message, _ = r["denied"]
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert message == (
        "User: arn:aws:sts::111111111111:assumed-role/app-reader/shopper is not authorized to "
        "perform: s3:GetObject on resource: arn:aws:s3:::reports/secret/plans with an explicit "
        "deny in an identity-based policy"
    )
    assert r["stream_denied"][0] == grpc.StatusCode.PERMISSION_DENIED
    assert r["no_token"][0] == grpc.StatusCode.UNAUTHENTICATED
    assert r["bad_token"][0] == grpc.StatusCode.UNAUTHENTICATED
    assert r["bad_token"][1].startswith("InvalidClientTokenId: ")
    assert r["missing_field"][0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "order_id" in r["missing_field"][1]
    assert r["no_rule"] == (
        grpc.StatusCode.PERMISSION_DENIED,
        "no authorization rule for /shop.Orders/Other",
        [],
    )
    assert r["served"] == ["q1.csv", "q1.csv"]  # the handler ran only for the allowed calls


def unreachable(token: str) -> tuple[grpc.StatusCode, str, list[str]]:
    gone = Client(f"127.0.0.1:{free_port()}", timeout=0.5, retries=RetryPolicy(max_attempts=2))
    served: list[str] = []
    server = grpc.server(
        ThreadPoolExecutor(max_workers=2), interceptors=[AuthorizationInterceptor(gone, RULES)]
    )
    server.add_generic_rpc_handlers((shop_handlers(served, aio=False),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        out = shop_call(port, "GetOrder", "q1.csv", token)
    finally:
        server.stop(None)
        gone.close()
    assert served == []
    return out


def test_an_unreachable_sidecar_is_unavailable_never_an_allow() -> None:
    code, _, values = unreachable("some-token")
    assert (code, values) == (grpc.StatusCode.UNAVAILABLE, [])


async def test_async_interceptor_with_cache(sidecar: Sidecar) -> None:
    addr = f"127.0.0.1:{sidecar.grpc_port}"
    token = await asyncio.to_thread(session_token, addr)
    served: list[str] = []
    async with AsyncClient(addr) as client:
        asked: list[str] = []
        authorize = client.authorize

        async def spy(action: str, resource: str, **kw: Any) -> Any:
            asked.append(resource)
            return await authorize(action, resource, **kw)

        client.authorize = spy  # type: ignore[method-assign]
        server = grpc.aio.server(
            interceptors=[AsyncAuthorizationInterceptor(client, RULES, cache_ttl=5.0)]
        )
        server.add_generic_rpc_handlers((shop_handlers(served, aio=True),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            calls = [
                ("GetOrder", "q1.csv", token, False),
                ("GetOrder", "q1.csv", token, False),  # from the cache
                ("Watch", "q2.csv", token, True),
                ("GetOrder", "secret/x", token, False),
                ("GetOrder", "q1.csv", None, False),
            ]
            got = [await asyncio.to_thread(shop_call, port, *c) for c in calls]
        finally:
            await server.stop(None)
    assert [g[0] for g in got] == [
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    ]
    assert got[2][2] == ["1", "2"]
    assert served == ["q1.csv", "q1.csv", "q2.csv"]
    assert asked == [
        "arn:aws:s3:::reports/q1.csv",
        "arn:aws:s3:::reports/q2.csv",
        "arn:aws:s3:::reports/secret/x",
    ]


def test_cache_ttl_is_bounded() -> None:
    with Client("127.0.0.1:1") as client, pytest.raises(ValueError, match="cache_ttl"):
        AuthorizationInterceptor(client, RULES, cache_ttl=60)
