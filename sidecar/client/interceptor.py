"""Authorization of an application's own gRPC server by the sidecar (docs/SDK.md).

``rules`` maps a full method name to ``(action, resource_template)``; the template names fields
of the request message: ``"arn:aws:shop:::order/{order_id}"``. A server interceptor sees only the
method and metadata, so the method's handler is wrapped to read the request: unary-request
methods (unary and server-streaming) are authorized with the rendered resource before the
handler runs; streaming-request methods only with a template that names no field. Every
failure ends the call, never an allow:

- no ``authorization: Bearer <session token>`` metadata: ``UNAUTHENTICATED``;
- a template field missing from the request: ``INVALID_ARGUMENT``;
- denied: ``PERMISSION_DENIED`` with the AWS-style reason;
- a method with no rule: ``PERMISSION_DENIED`` unless ``allow_unlisted=True``;
- the sidecar's refusals (an expired token...): their gRPC status and AWS message;
- the sidecar unreachable or too slow: ``UNAVAILABLE``.
"""

from __future__ import annotations

import inspect
import string
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
import grpc.aio

from sidecar.client.aio import AsyncClient
from sidecar.client.errors import SidecarError, SidecarTimeout, SidecarUnavailable
from sidecar.client.results import AuthorizeResult
from sidecar.client.sync import Client

MAX_CACHE_TTL = 5.0  # a revoked session or a changed policy is honoured within this
MAX_CACHE_ENTRIES = 10_000


class Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Template:
    """A resource template: literal text and request field names, rendered literally."""

    def __init__(self, text: str) -> None:
        self.parts: list[tuple[str, str | None]] = []
        for literal, field, spec, conversion in string.Formatter().parse(text):
            if field is not None and (spec or conversion or not field.isidentifier()):
                raise ValueError(f"resource template {text!r}: use plain {{field_name}} only")
            self.parts.append((literal, field))
        self.fields = [f for _, f in self.parts if f is not None]

    def render(self, request: Any) -> str:
        out = []
        for literal, field in self.parts:
            out.append(literal)
            if field is not None:
                descriptor = getattr(request, "DESCRIPTOR", None)
                if descriptor is None or field not in descriptor.fields_by_name:
                    raise Refusal(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"the request has no field {field!r} for the resource",
                    )
                out.append(str(getattr(request, field)))
        return "".join(out)


class Policy:
    """What both interceptors share: rules, the token, the decision cache, status mapping."""

    def __init__(
        self,
        rules: Mapping[str, tuple[str, str]],
        *,
        allow_unlisted: bool = False,
        cache_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= cache_ttl <= MAX_CACHE_TTL:
            raise ValueError(f"cache_ttl must be between 0 and {MAX_CACHE_TTL} seconds")
        self.rules = {method: (action, Template(t)) for method, (action, t) in rules.items()}
        self.allow_unlisted = allow_unlisted
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, AuthorizeResult]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def token(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]) -> str:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                token = value[len("Bearer ") :].strip()
                if token:
                    return token
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "no bearer session token in the call")

    def target(self, method: str, request: Any) -> tuple[str, str]:
        action, template = self.rules[method]
        if request is None and template.fields:
            raise Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{method} streams its requests: its resource cannot name request fields",
            )
        return action, template.render(request)

    def cached(self, key: tuple[str, str, str]) -> AuthorizeResult | None:
        if not self.cache_ttl:
            return None
        with self._lock:
            hit = self._cache.get(key)
        return hit[1] if hit is not None and hit[0] > self.clock() else None

    def remember(self, key: tuple[str, str, str], result: AuthorizeResult) -> None:
        if not self.cache_ttl:
            return
        with self._lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (self.clock() + self.cache_ttl, result)

    @staticmethod
    def judge(result: AuthorizeResult) -> None:
        if not result.allowed:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, result.reason)

    @staticmethod
    def refusal(err: SidecarError) -> Refusal:
        if isinstance(err, SidecarUnavailable | SidecarTimeout):
            return Refusal(grpc.StatusCode.UNAVAILABLE, "the authorization sidecar is unavailable")
        status = getattr(grpc.StatusCode, err.grpc_status, grpc.StatusCode.PERMISSION_DENIED)
        if status in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN):
            status = grpc.StatusCode.PERMISSION_DENIED
        return Refusal(status, f"{err.code}: {err.message}")


def _unlisted(policy: Policy, method: str) -> bool:
    """True when the method passes without a rule; a Refusal when it is refused."""
    if method in policy.rules:
        return False
    if policy.allow_unlisted:
        return True
    raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"no authorization rule for {method}")


class AuthorizationInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """For a ``grpc.server(...)``: ``grpc.server(pool, interceptors=[AuthorizationInterceptor(
    client, rules)])`` with a sync ``Client`` of the sidecar."""

    def __init__(self, client: Client, rules: Mapping[str, tuple[str, str]], **options: Any):
        self.client = client
        self.policy = Policy(rules, **options)

    def check(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        try:
            if _unlisted(self.policy, method):
                return
            token = self.policy.token(context)
            action, resource = self.policy.target(method, request)
            key = (token, action, resource)
            result = self.policy.cached(key)
            if result is None:
                try:
                    result = self.client.authorize(action, resource, session_token=token)
                except SidecarError as err:
                    raise self.policy.refusal(err) from None
                self.policy.remember(key, result)
            self.policy.judge(result)
        except Refusal as refusal:
            context.abort(refusal.code, refusal.message)

    def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        check = self.check

        if handler.unary_unary or handler.unary_stream:
            behavior = handler.unary_unary or handler.unary_stream

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                check(method, request, context)
                return behavior(request, context)

            make = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.unary_stream_rpc_method_handler
            )
        else:
            behavior = handler.stream_unary or handler.stream_stream

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                check(method, None, context)  # a request iterator: no fields to read
                return behavior(request, context)

            make = (
                grpc.stream_unary_rpc_method_handler
                if handler.stream_unary
                else grpc.stream_stream_rpc_method_handler
            )
        return make(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class AsyncAuthorizationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """For a ``grpc.aio.server(interceptors=[AsyncAuthorizationInterceptor(client, rules)])``
    with an ``AsyncClient`` of the sidecar."""

    def __init__(
        self, client: AsyncClient, rules: Mapping[str, tuple[str, str]], **options: Any
    ) -> None:
        self.client = client
        self.policy = Policy(rules, **options)

    async def check(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        try:
            if _unlisted(self.policy, method):
                return
            token = self.policy.token(context)
            action, resource = self.policy.target(method, request)
            key = (token, action, resource)
            result = self.policy.cached(key)
            if result is None:
                try:
                    result = await self.client.authorize(action, resource, session_token=token)
                except SidecarError as err:
                    raise self.policy.refusal(err) from None
                self.policy.remember(key, result)
            self.policy.judge(result)
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message)

    async def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        check = self.check
        streaming_in = bool(handler.stream_unary or handler.stream_stream)
        behavior = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        if inspect.isasyncgenfunction(behavior):

            async def generate(request: Any, context: Any) -> AsyncIterator[Any]:
                await check(method, None if streaming_in else request, context)
                async for response in behavior(request, context):
                    yield response

            wrapped: Callable[..., Any] = generate
        else:

            async def call(request: Any, context: Any) -> Any:
                await check(method, None if streaming_in else request, context)
                return await behavior(request, context)

            wrapped = call
        make = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary
            else grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_unary_rpc_method_handler
            if handler.stream_unary
            else grpc.stream_stream_rpc_method_handler
        )
        return make(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
