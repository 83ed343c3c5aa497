"""Envoy's external authorization, `envoy.service.auth.v3.Authorization/Check` (docs/API.md
§1.5, docs/MESH.md).

Per call: only Envoy may ask (ext_authz_principal.envoy_may_call, else PERMISSION_DENIED); the
request parses once with the generated CheckRequest; the world's `ext_authz` routes
(sidecar/mesh, compiled once per world snapshot) map it to an action, resource and context; the
principal is found (ext_authz_principal.request_principal); the decision goes through the same
engine, caches, counters and decision log as Authorize (Services.decide); the answer is built by
ext_authz_responses. Every refusal Envoy passes on to the client carries its AWS code: 400
(InvalidRequest, ValidationError), 401 (MissingAuthenticationToken, InvalidClientTokenId,
ExpiredToken, SignatureDoesNotMatch) or 403 (AccessDenied).

With `dry_run: true` the real outcome is counted (`dry_run_<result>`) and logged, and the
request goes through, with the x-iam-* headers of the principal when one is known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from sidecar.api.envoy.service.auth.v3 import attribute_context_pb2
from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as pb
from sidecar.engine.authorize import AuthzResult
from sidecar.engine.engine import Snapshot
from sidecar.engine.limits import shown
from sidecar.engine.service_principal import authorize_service
from sidecar.engine.user_principal import authorize_user
from sidecar.errors import AccessDenied, SidecarError, TokenError, ValidationError
from sidecar.mesh.refusals import ResourceTooLong, RouteRefused
from sidecar.mesh.routes import RouteTable, Target
from sidecar.policy.evaluate import Decision
from sidecar.server.ext_authz_principal import (
    HttpAttributes,
    ServiceIdentity,
    UserIdentity,
    is_envoy_identity,
    request_headers,
    request_principal,
    unsigned_headers,
)
from sidecar.server.ext_authz_responses import (
    FORGED_SPELLINGS,
    OkResponses,
    denied_response,
    forged_spellings,
    ok_response,
    session_name_of,
)
from sidecar.server.servicers import LazyKeys, Services
from sidecar.server.status import to_status
from sidecar.sts.callers import UserCaller

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
else:
    Ctx = grpc.aio.ServicerContext

log = logging.getLogger("iam_sidecar.ext_authz")

AUTHORIZATION = "envoy.service.auth.v3.Authorization"
NOT_ENVOY = (
    "Check is served only to Envoy: a caller on loopback or a unix socket when the gRPC port "
    "listens only there (sidecar mode), or an mTLS peer whose SPIFFE id is in the world's "
    "ext_authz.envoy_identities."
)
RESULTS = ("allowed", "denied", "unauthenticated", "bad_request")
# Refusals before any request is read: the gRPC call itself fails (Envoy then fails closed).
CALL_RESULTS = ("caller_refused", "error")


class _Refused(Exception):
    """The answer to a request that is not allowed, with whatever is known of its principal
    (a dry run lets the request through with it)."""

    def __init__(
        self,
        result: str,
        status: int,
        code: str,
        message: str,
        principal_arn: str = "",
        session_name: str = "",
        action: str = "",
        resource: str = "",
    ) -> None:
        super().__init__(message)
        self.result = result
        self.status = status
        self.code = code
        self.message = message
        self.principal_arn = principal_arn
        self.session_name = session_name
        self.action = action
        self.resource = resource


class CheckTransportKeys(LazyKeys):
    """aws:SecureTransport from the request's scheme and aws:SourceIp from the downstream
    address Envoy reports, read on first use (a cached decision that reads neither never
    asks)."""

    __slots__ = ("_attrs",)

    def __init__(self, attrs: attribute_context_pb2.AttributeContext) -> None:
        self._keys = None  # LazyKeys.__init__ written out: one call fewer per request
        self._attrs = attrs

    def _compute(self) -> dict[str, str]:
        attrs = self._attrs
        secure = attrs.request.http.scheme == "https"
        keys = {"aws:SecureTransport": "true" if secure else "false"}
        source_ip = attrs.source.address.socket_address.address
        if source_ip:
            keys["aws:SourceIp"] = source_ip
        return keys


class CheckService:
    """``local_callers``: the gRPC port listens on loopback or a unix socket (sidecar mode),
    so every caller is local and may call; else only configured Envoy identities may (see
    ext_authz_principal)."""

    def __init__(self, services: Services, *, local_callers: bool = True) -> None:
        self.services = services
        self.local_callers = local_callers
        self.engine = services.deps.engine
        self.metrics = services.deps.metrics
        checks = self.metrics.ext_authz_checks
        names = (*RESULTS, *(f"dry_run_{r}" for r in RESULTS), *CALL_RESULTS)
        self._counters = {name: checks.labels(name) for name in names}
        self._allowed = self._counters["allowed"]
        self._ok = OkResponses()
        self._table = (-1, RouteTable.build(None))  # (snapshot generation, its routes)

    def routes(self, snap: Snapshot) -> RouteTable:
        """The routes of ``snap``'s world, compiled on first use after each reload."""
        generation, table = self._table
        if generation != snap.generation:
            table = RouteTable.build(snap.world.ext_authz)
            self._table = (snap.generation, table)
        return table

    async def check(self, raw: bytes, context: Ctx) -> bytes:
        try:
            snap = self.engine.snapshot
            generation, table = self._table
            if generation != snap.generation:
                table = self.routes(snap)
            # A local listener (sidecar mode) has only local peers: nothing to ask per call
            # (context.peer() is a measurable part of a call under load). Otherwise only a
            # configured Envoy's mTLS identity counts, never the peer's address.
            if not self.local_callers and not is_envoy_identity(
                context.auth_context() or {}, table.envoy_identities
            ):
                self._counters["caller_refused"].inc()
                log.warning(
                    "Check refused: the caller is not Envoy", extra={"peer": context.peer()}
                )
                raise AccessDenied(NOT_ENVOY)
            try:
                req = pb.CheckRequest.FromString(raw)
            except DecodeError:
                raise ValidationError("The request is not a valid CheckRequest.") from None
            try:
                answer = self._allow(req, table, snap)
            except _Refused as refused:
                return self._refused(refused, req, table)
            if table.dry_run:
                self._counters["dry_run_allowed"].inc()
            else:
                self._allowed.inc()
            return answer
        except Exception as err:
            await self._abort(context, err)

    async def _abort(self, context: Ctx, err: Exception) -> NoReturn:
        """The call fails: the caller is not Envoy, or the request is not a CheckRequest
        (an AWS-coded status), or something unexpected (INTERNAL, logged; never an allow)."""
        if isinstance(err, grpc.aio.AbortError):
            raise err
        if isinstance(err, SidecarError):
            await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]
        self._counters["error"].inc()
        log.error("unexpected failure; the Check is refused", exc_info=err)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable")  # pragma: no cover: abort raises

    def _allow(self, req: pb.CheckRequest, table: RouteTable, snap: Snapshot) -> bytes:
        """The OK answer for an allowed request; raises _Refused for any other."""
        attrs = req.attributes
        http = attrs.request.http
        headers = http.headers or request_headers(http)  # Envoy's map as is, else header_map
        too_long: ResourceTooLong | None = None
        try:
            target = table.resolve_fields(http.method, http.host, http.path, headers)
        except ResourceTooLong as err:  # denied, but 401 comes first
            target, too_long = None, err
        except RouteRefused as err:
            raise _Refused("bad_request", err.status, err.code, err.message) from None
        try:
            who = request_principal(http, headers, attrs, self.engine, snap)
            transport = CheckTransportKeys(attrs)
            if target is None:
                raise self._unmapped(who, snap, http, too_long)
            unsigned = target.headers_read and unsigned_headers(headers, target.headers_read)
            if unsigned:
                raise _Refused(
                    "denied",
                    403,
                    "AccessDenied",
                    "There were headers present in the request which were not signed: "
                    + ", ".join(unsigned),
                    action=target.action,
                    resource=target.resource,
                )
            if isinstance(who, str):  # a session token: Authorize's path (written out: hot)
                action, resource = target.action, target.resource
                result = self.services.decide(who, action, resource, target.context, transport)[0]
            else:
                result = self._decide_identity(who, target, transport, snap)
        except TokenError as err:
            self.metrics.token_failures.labels(err.reason).inc()
            raise _Refused("unauthenticated", 401, err.code, err.message) from None
        except ValidationError as err:
            raise _Refused("bad_request", 400, err.code, err.message) from None
        arn = result.principal_arn
        is_session = isinstance(who, str)
        if result.decision is not Decision.ALLOWED:
            session = session_name_of(arn) if is_session else ""
            raise _Refused(
                "denied",
                403,
                "AccessDenied",
                result.reason,
                arn,
                session,
                target.action,
                target.resource,
            )
        if not FORGED_SPELLINGS.isdisjoint(headers):  # rare: not worth a cache entry
            session = session_name_of(arn) if is_session else ""
            forged = forged_spellings(headers)
            return ok_response(arn, session, target.action, table.strip_credentials, forged)
        return self._ok.get(arn, is_session, target.action, table.strip_credentials)

    def _decide_identity(
        self,
        who: UserIdentity | ServiceIdentity,
        target: Target,
        transport: Mapping[str, str],
        snap: Snapshot,
    ) -> AuthzResult:
        """The decision for a SigV4-signing user or a service principal (not cached: neither
        has a session token to key it)."""
        start = time.perf_counter()
        authz = snap.authorizer
        action, resource, context = target.action, target.resource, target.context
        if isinstance(who, UserIdentity):
            authz.check_request(action, resource, context)  # authorize_service checks its own
            result = authorize_user(authz, who.user, action, resource, context, transport)
        else:
            result = authorize_service(
                authz, who.service, who.spiffe_id, action, resource, context, transport
            )
        self.metrics.evaluation.observe(time.perf_counter() - start)
        self.services.note(result, target.action, target.resource, False)
        return result

    def _unmapped(
        self,
        who: str | UserIdentity | ServiceIdentity,
        snap: Snapshot,
        http: HttpAttributes,
        too_long: ResourceTooLong | None,
    ) -> _Refused:
        """A request no route maps (the default is deny), or whose resource is too long: 403
        once the principal is known (a token is verified here: expired is still 401)."""
        if isinstance(who, ServiceIdentity):
            arn, session = who.service.name, ""
        elif isinstance(who, UserIdentity):
            arn, session = UserCaller(who.user, snap.world.partition).principal().arn, ""
        else:
            found = self.engine.verify(who, snap)
            arn, session = found.principal().arn, found.session_name
        if too_long is not None:
            return _Refused("denied", 403, too_long.code, too_long.message, arn, session)
        message = (
            f"User: {arn} is not authorized to perform: {shown(http.method)} {shown(http.path)} "
            "because no ext_authz route matches the request and the default is deny"
        )
        return _Refused("denied", 403, "AccessDenied", message, arn, session)

    def _refused(self, refused: _Refused, req: pb.CheckRequest, table: RouteTable) -> bytes:
        if not table.dry_run:
            self._counters[refused.result].inc()
            return denied_response(refused.status, refused.code, refused.message)
        self._counters[f"dry_run_{refused.result}"].inc()
        http = req.attributes.request.http
        log.info(
            "ext_authz dry run: the request would be refused, and goes through",
            extra={
                "result": refused.result,
                "status": refused.status,
                "code": refused.code,
                "reason": shown(refused.message) if refused.status == 400 else refused.message,
                "principal": refused.principal_arn,
                "action": refused.action,
                "resource": refused.resource,
                "method": shown(http.method),
                "path": shown(http.path),
            },
        )
        return ok_response(
            refused.principal_arn,
            refused.session_name,
            refused.action,
            table.strip_credentials,
            forged_spellings(request_headers(http)),
        )


def check_handler(service: CheckService) -> grpc.GenericRpcHandler[Any, Any]:
    """Check over raw bytes: the handler parses the request once and answers serialized bytes."""
    return grpc.method_handlers_generic_handler(
        AUTHORIZATION,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                service.check, request_deserializer=None, response_serializer=None
            )
        },
    )


__all__ = ["AUTHORIZATION", "CheckService", "check_handler"]
