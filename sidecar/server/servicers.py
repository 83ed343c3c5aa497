"""The gRPC services: iamsidecar.v1.SecurityTokenService and iamsidecar.v1.Authorizer.

STS methods receive the raw request bytes (SigV4 signs the serialized request exactly as the
client sent it) and parse them here. Errors leave as AWS-coded statuses (status.py); a denied
Authorize is a normal response. Anything unexpected is logged and answered INTERNAL: it never
grants.

Nothing here holds the event loop for long: SimulateCustomPolicy runs in worker processes
(offload.py) and BatchAuthorize yields to the loop every few milliseconds of work, so health
checks and Authorize calls are answered meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.engine.authorize import AuthzResult
from sidecar.engine.cache import LRU
from sidecar.engine.engine import Engine
from sidecar.engine.weights import STR, response_bytes
from sidecar.errors import (
    FederationError,
    MissingAuthenticationToken,
    SidecarError,
    TokenError,
    ValidationError,
)
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.policy.simulate_limits import check_limits
from sidecar.server.authn import Authenticator, Metadata, bearer_token, peer_ip
from sidecar.server.convert import context_from_pb, simulation_request, statement_ref_pb
from sidecar.server.jwks import JwksCache
from sidecar.server.metrics import Metrics
from sidecar.server.offload import SimulationPool
from sidecar.server.saml_metadata import MetadataSource
from sidecar.server.status import to_status
from sidecar.sts.access import authorize_call
from sidecar.sts.assume import (
    AssumeRoleParams,
    AssumeRoleResult,
    StsEnv,
    assume_role,
    get_caller_identity,
)
from sidecar.sts.clock import Clock, Entropy
from sidecar.sts.federation.saml_assume import SamlParams, assume_role_with_saml
from sidecar.sts.federation.web_identity import WebIdentityParams, assume_role_with_web_identity

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]
else:
    Ctx = grpc.aio.ServicerContext

log = logging.getLogger("iam_sidecar.server")
# The log line of each STS action that issues credentials.
ISSUED = {
    "AssumeRole": "assumed role",
    "AssumeRoleWithWebIdentity": "assumed role with web identity",
    "AssumeRoleWithSAML": "assumed role with SAML",
}
decision_log = logging.getLogger("iam_sidecar.decisions")

STS = "iamsidecar.v1.SecurityTokenService"
AUTHORIZER = "iamsidecar.v1.Authorizer"
MAX_BATCH = 1000
RESPONSE_CACHE_BYTES = 64 << 20
# BatchAuthorize pauses after each SLICE_SECONDS of work for PAUSE_SECONDS. A zero sleep would
# run what the loop already has, but new calls reach the loop through grpc's poller thread,
# which needs the GIL: a short real sleep parks the loop in select() and lets it in
# (docs/BENCHMARKS.md, "Responsiveness under heavy calls").
SLICE_SECONDS = 0.002
PAUSE_SECONDS = 0.0002
M = TypeVar("M", bound=Message)


@dataclass
class ServerDeps:
    engine: Engine
    clock: Clock
    entropy: Entropy
    metrics: Metrics
    decision_log_rate: float = 0.0  # share of decisions logged (0: none, 1: all)
    secure: bool = False  # the server listens with TLS
    # Long-lived per process: OIDC keys and SAML metadata outlive reloads (keyed by source).
    jwks: JwksCache = field(default_factory=JwksCache)
    saml_metadata: MetadataSource = field(default_factory=MetadataSource)
    # SimulateCustomPolicy's worker processes (started by the first simulation).
    simulations: SimulationPool = field(default_factory=SimulationPool)


def transport_keys(context: Ctx, secure: bool) -> dict[str, str]:
    """aws:SourceIp and aws:SecureTransport as this server saw the connection (a server
    listens either with TLS or without, so the latter is known in advance)."""
    out = {"aws:SecureTransport": "true" if secure else "false"}
    ip = peer_ip(context.peer() or "")
    if ip is not None:
        out["aws:SourceIp"] = ip
    return out


class LazyKeys(Mapping[str, str]):
    """Request keys computed (``_compute``) on first use: a cached decision that depends on
    none of them never asks, and reading them (a connection's peer and its parsing, or a
    CheckRequest's nested messages) was a measurable part of a cached decision in a loaded
    server (docs/BENCHMARKS.md, "Against a bare gRPC server"). Valid only during its call."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, str] | None = None

    def _compute(self) -> dict[str, str]:
        raise NotImplementedError

    def _read(self) -> dict[str, str]:
        if self._keys is None:
            self._keys = self._compute()
        return self._keys

    def __getitem__(self, key: str) -> str:
        return self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class LazyTransportKeys(LazyKeys):
    """``transport_keys(context, secure)``, read from the connection on first use."""

    __slots__ = ("_context", "_secure")

    def __init__(self, context: Ctx, secure: bool) -> None:
        self._keys = None  # LazyKeys.__init__ written out: one call fewer per request
        self._context = context
        self._secure = secure

    def _compute(self) -> dict[str, str]:
        return transport_keys(self._context, self._secure)


def _parse(message_type: type[M], raw: bytes) -> M:
    msg = message_type()
    try:
        msg.ParseFromString(raw)
    except DecodeError:
        raise ValidationError("The request is not a valid protobuf message.") from None
    return msg


def _timestamp(epoch: int) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(epoch)
    return ts


def credentials_pb(result: AssumeRoleResult) -> types_pb2.Credentials:
    c = result.credentials
    return types_pb2.Credentials(
        access_key_id=c.access_key_id,
        secret_access_key=c.secret_access_key,
        session_token=c.session_token,
        expiration=_timestamp(c.expiration),
    )


def assumed_role_user_pb(result: AssumeRoleResult) -> types_pb2.AssumedRoleUser:
    return types_pb2.AssumedRoleUser(assumed_role_id=result.assumed_role_id, arn=result.arn)


class Services:
    def __init__(self, deps: ServerDeps, *, response_cache_size: int = 50_000) -> None:
        self.deps = deps
        self.authn = Authenticator(deps.engine)
        self._decision_counters = {d: deps.metrics.decisions.labels(d.name) for d in Decision}
        # Wire responses of cached decisions, by the result object they were built from;
        # bounded in entries and in estimated bytes (docs/SERVER.md, "Memory bounds").
        self._responses: LRU[int, tuple[AuthzResult, authorizer_pb2.AuthorizeResponse, bytes]]
        self._responses = LRU(
            response_cache_size,
            RESPONSE_CACHE_BYTES,
            lambda kept: response_bytes(kept[0]) + STR + len(kept[2]),
        )

    def env(self) -> StsEnv:
        snap = self.deps.engine.snapshot
        return StsEnv(snap.world, snap.keys, self.deps.clock, self.deps.entropy)

    async def _guard(self, context: Ctx, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except Exception as err:
            await self._refuse(context, err)

    async def _refuse(self, context: Ctx, err: Exception) -> NoReturn:
        """Answer a failure: an AWS-coded status, or INTERNAL (logged) for anything else."""
        if isinstance(err, grpc.aio.AbortError):
            raise err
        if isinstance(err, SidecarError):
            if isinstance(err, TokenError | FederationError):
                self.deps.metrics.token_failures.labels(err.reason).inc()
            await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]
        else:
            log.error("unexpected failure; the call is refused", exc_info=err)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable")  # pragma: no cover: abort raises

    # -- SecurityTokenService -----------------------------------------------------------------

    async def assume_role(self, raw: bytes, context: Ctx) -> Any:
        async def run() -> sts_pb2.AssumeRoleResponse:
            req = _parse(sts_pb2.AssumeRoleRequest, raw)
            caller = self.authn.caller(
                f"/{STS}/AssumeRole", raw, _metadata(context), context.auth_context() or {}
            )
            params = AssumeRoleParams(
                role_arn=req.role_arn,
                role_session_name=req.role_session_name,
                duration_seconds=req.duration_seconds,
                external_id=req.external_id,
                policy=req.policy,
                policy_arns=tuple(p.arn for p in req.policy_arns),
                tags=tuple((t.key, t.value) for t in req.tags),
                transitive_tag_keys=tuple(req.transitive_tag_keys),
                source_identity=req.source_identity,
                serial_number=req.serial_number,
                token_code=req.token_code,
            )
            result = assume_role(self.env(), caller, params)
            self.issued("AssumeRole", "grpc", caller=caller.principal().arn,
                        session=result.arn, expires=result.credentials.expiration)  # fmt: skip
            return sts_pb2.AssumeRoleResponse(
                credentials=credentials_pb(result),
                assumed_role_user=assumed_role_user_pb(result),
                packed_policy_size=result.packed_policy_size,
                source_identity=result.session.source_identity,
            )

        return await self._guard(context, run)

    async def get_caller_identity(self, raw: bytes, context: Ctx) -> Any:
        async def run() -> sts_pb2.GetCallerIdentityResponse:
            _parse(sts_pb2.GetCallerIdentityRequest, raw)
            caller = self.authn.caller(
                f"/{STS}/GetCallerIdentity", raw, _metadata(context), context.auth_context() or {}
            )
            ident = get_caller_identity(caller)
            return sts_pb2.GetCallerIdentityResponse(
                user_id=ident.user_id, account=ident.account, arn=ident.arn
            )

        return await self._guard(context, run)

    async def assume_role_with_web_identity(self, raw: bytes, context: Ctx) -> Any:
        """Authenticated by the token itself, as in AWS: no caller credentials needed."""

        async def run() -> sts_pb2.AssumeRoleWithWebIdentityResponse:
            req = _parse(sts_pb2.AssumeRoleWithWebIdentityRequest, raw)
            params = WebIdentityParams(
                role_arn=req.role_arn,
                role_session_name=req.role_session_name,
                web_identity_token=req.web_identity_token,
                provider_id=req.provider_id,
                policy=req.policy,
                policy_arns=tuple(p.arn for p in req.policy_arns),
                duration_seconds=req.duration_seconds,
            )
            # The JWKS may be fetched over the network: keep the event loop free.
            out = await asyncio.to_thread(
                assume_role_with_web_identity, self.env(), params, self.deps.jwks
            )
            self.issued(
                "AssumeRoleWithWebIdentity", "grpc", provider=out.provider, session=out.result.arn
            )
            return sts_pb2.AssumeRoleWithWebIdentityResponse(
                credentials=credentials_pb(out.result),
                assumed_role_user=assumed_role_user_pb(out.result),
                packed_policy_size=out.result.packed_policy_size,
                source_identity=out.source_identity,
                subject_from_web_identity_token=out.subject_from_web_identity_token,
                audience=out.audience,
                provider=out.provider,
            )

        return await self._guard(context, run)

    async def assume_role_with_saml(self, raw: bytes, context: Ctx) -> Any:
        """Authenticated by the signed assertion, as in AWS."""

        async def run() -> sts_pb2.AssumeRoleWithSAMLResponse:
            req = _parse(sts_pb2.AssumeRoleWithSAMLRequest, raw)
            params = SamlParams(
                role_arn=req.role_arn,
                principal_arn=req.principal_arn,
                saml_assertion=req.saml_assertion,
                policy=req.policy,
                policy_arns=tuple(p.arn for p in req.policy_arns),
                duration_seconds=req.duration_seconds,
            )
            out = await asyncio.to_thread(
                assume_role_with_saml, self.env(), params, self.deps.saml_metadata
            )
            self.issued("AssumeRoleWithSAML", "grpc", issuer=out.issuer, session=out.result.arn)
            return sts_pb2.AssumeRoleWithSAMLResponse(
                credentials=credentials_pb(out.result),
                assumed_role_user=assumed_role_user_pb(out.result),
                packed_policy_size=out.result.packed_policy_size,
                source_identity=out.source_identity,
                subject=out.subject,
                subject_type=out.subject_type,
                issuer=out.issuer,
                audience=out.audience,
                name_qualifier=out.name_qualifier,
            )

        return await self._guard(context, run)

    # -- Authorizer ---------------------------------------------------------------------------

    def issued(self, action: str, wire: str, **details: object) -> None:
        """Count the credentials an STS action issued and log it, the same on every wire
        (``grpc``, ``query``: the STS Query API)."""
        self.deps.metrics.credentials.labels(action).inc()
        log.info(ISSUED[action], extra={**details, "wire": wire})

    def _token(self, given: str, context: Ctx) -> str:
        token = given or bearer_token(_metadata(context))
        if not token:
            raise MissingAuthenticationToken(
                "Request is missing Authentication Token", reason="missing"
            )
        return token

    def _decide(
        self,
        token: str,
        action: str,
        resource: str,
        context_entries: Any,
        transport: Mapping[str, str],
    ) -> tuple[AuthzResult, bool]:
        if not action or not resource:
            raise ValidationError("Authorize needs an action and a resource.")
        ctx = context_from_pb(context_entries, field="context") if context_entries else None
        return self.decide(token, action, resource, ctx, transport)

    def decide(
        self,
        token: str,
        action: str,
        resource: str,
        ctx: Context | None,
        transport: Mapping[str, str],
    ) -> tuple[AuthzResult, bool]:
        """A session's decision through the engine and its caches, timed, counted and logged
        (sampled): the one path of Authorize, BatchAuthorize and Envoy's Check."""
        start = time.perf_counter()
        result, cached = self.deps.engine.authorize(token, action, resource, ctx, transport)
        if not cached:
            self.deps.metrics.evaluation.observe(time.perf_counter() - start)
        self._decision_counters[result.decision].inc()  # note(), written out: the hot path
        if self.deps.decision_log_rate:
            self._log_sampled(result, action, resource, cached)
        return result, cached

    def note(self, result: AuthzResult, action: str, resource: str, cached: bool) -> None:
        """Count a decision and log it (at the decision-log rate)."""
        self._decision_counters[result.decision].inc()
        if self.deps.decision_log_rate:
            self._log_sampled(result, action, resource, cached)

    def _log_sampled(self, result: AuthzResult, action: str, resource: str, cached: bool) -> None:
        rate = self.deps.decision_log_rate
        if rate >= 1 or self.deps.entropy.random() < rate:
            decision_log.info(
                "decision",
                extra={
                    "principal": result.principal_arn,
                    "action": action,
                    "resource": resource,
                    "decision": result.decision.name,
                    "statements": [
                        f"{m.ref.policy_id}/{m.ref.sid or m.ref.index}"
                        for m in result.evaluation.matched
                    ],
                    "cached": cached,
                },
            )

    def _kept(
        self, result: AuthzResult, *, keep: bool
    ) -> tuple[AuthzResult, authorizer_pb2.AuthorizeResponse, bytes]:
        """``result``'s response and its bytes, built once for a result the engine cached
        (``keep``: it will be asked for again) and kept beside it."""
        found = self._responses.get(id(result))
        if found is not None and found[0] is result:
            return found
        response = authorizer_pb2.AuthorizeResponse(
            decision=int(result.decision),  # type: ignore[arg-type]
            principal_arn=result.principal_arn,
            matched_statements=[statement_ref_pb(m) for m in result.evaluation.matched],
            reason=result.reason,
        )
        entry = (result, response, response.SerializeToString())
        if keep:  # holding the result keeps ids unique
            self._responses[id(result)] = entry
        return entry

    async def authorize(self, raw: bytes, context: Ctx) -> Any:
        # The hot path: written out instead of going through _guard's closure.
        try:
            req = _parse(authorizer_pb2.AuthorizeRequest, raw)
            token = req.session_token or self._token("", context)
            transport = LazyTransportKeys(context, self.deps.secure)
            result, cached = self._decide(token, req.action, req.resource, req.context, transport)
            return self._kept(result, keep=cached)[2]
        except Exception as err:
            await self._refuse(context, err)

    async def batch_authorize(self, raw: bytes, context: Ctx) -> Any:
        async def run() -> authorizer_pb2.BatchAuthorizeResponse:
            req = _parse(authorizer_pb2.BatchAuthorizeRequest, raw)
            if len(req.requests) > MAX_BATCH:
                raise ValidationError(f"BatchAuthorize takes at most {MAX_BATCH} requests.")
            token = self._token(req.session_token, context)
            transport = LazyTransportKeys(context, self.deps.secure)
            results = []
            since = time.perf_counter()
            for r in req.requests:
                result, cached = self._decide(token, r.action, r.resource, r.context, transport)
                results.append(self._kept(result, keep=cached)[1])
                if time.perf_counter() - since > SLICE_SECONDS:
                    await asyncio.sleep(PAUSE_SECONDS)  # let health checks and others in
                    since = time.perf_counter()
            return authorizer_pb2.BatchAuthorizeResponse(results=results)

        return await self._guard(context, run)

    async def simulate(self, raw: bytes, context: Ctx) -> Any:
        """Authenticated like every call, and the caller's own policies must allow
        iam:SimulateCustomPolicy on "*", as in AWS. The sizes are checked here (cheap), the
        simulation runs in a worker process; the answer is the serialized response."""

        async def run() -> bytes:
            req = _parse(authorizer_pb2.SimulateCustomPolicyRequest, raw)
            caller = self.authn.caller(
                f"/{AUTHORIZER}/SimulateCustomPolicy",
                raw,
                _metadata(context),
                context.auth_context() or {},
            )
            check_limits(simulation_request(req, context=False))
            transport = transport_keys(context, self.deps.secure)
            authorize_call(self.env(), caller, "iam:SimulateCustomPolicy", "*", transport)
            return await self.deps.simulations.run(raw, context.time_remaining())

        return await self._guard(context, run)


def _metadata(context: Ctx) -> Metadata:
    return tuple(context.invocation_metadata() or ())


def generic_handlers(services: Services) -> list[grpc.GenericRpcHandler[Any, Any]]:
    raw = {"request_deserializer": None}
    sts = grpc.method_handlers_generic_handler(
        STS,
        {
            "AssumeRole": grpc.unary_unary_rpc_method_handler(
                services.assume_role,
                response_serializer=sts_pb2.AssumeRoleResponse.SerializeToString,
                **raw,
            ),
            "AssumeRoleWithWebIdentity": grpc.unary_unary_rpc_method_handler(
                services.assume_role_with_web_identity,
                response_serializer=sts_pb2.AssumeRoleWithWebIdentityResponse.SerializeToString,
                **raw,
            ),
            "AssumeRoleWithSAML": grpc.unary_unary_rpc_method_handler(
                services.assume_role_with_saml,
                response_serializer=sts_pb2.AssumeRoleWithSAMLResponse.SerializeToString,
                **raw,
            ),
            "GetCallerIdentity": grpc.unary_unary_rpc_method_handler(
                services.get_caller_identity,
                response_serializer=sts_pb2.GetCallerIdentityResponse.SerializeToString,
                **raw,
            ),
        },
    )
    authz = grpc.method_handlers_generic_handler(
        AUTHORIZER,
        {
            # Answers with the bytes of an AuthorizeResponse (kept for cached decisions).
            "Authorize": grpc.unary_unary_rpc_method_handler(services.authorize, **raw),
            "BatchAuthorize": grpc.unary_unary_rpc_method_handler(
                services.batch_authorize,
                **raw,
                response_serializer=authorizer_pb2.BatchAuthorizeResponse.SerializeToString,
            ),
            # Answered with the bytes a worker process serialized.
            "SimulateCustomPolicy": grpc.unary_unary_rpc_method_handler(
                services.simulate, **raw, response_serializer=None
            ),
        },
    )
    return [sts, authz]


__all__ = ["Decision", "ServerDeps", "Services", "generic_handlers"]
