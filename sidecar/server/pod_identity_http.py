"""``GET /v1/credentials`` on the HTTP port: the container credentials endpoint of EKS Pod
Identity, which AWS SDKs call with ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and the content of
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` as the ``Authorization`` header (docs/KUBERNETES.md).

Answers the JSON the SDKs read; refusals are JSON ``{"code","message"}``: 400 for a malformed
request, 401 for a missing, invalid or expired token, 403 for an unmapped service account or a
refusing trust policy. Credentials are cached per (pod uid, role), looked up only after the token
is validated and the trust policy evaluated, and re-issued when less than 15 minutes remain.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from cachetools import LRUCache

from sidecar.errors import (
    AccessDenied,
    ExpiredTokenException,
    FederationError,
    IDPCommunicationError,
    SidecarError,
)
from sidecar.sts.assume import Credentials, StsEnv
from sidecar.sts.federation.oidc import MAX_CHARS
from sidecar.sts.pod_identity import (
    PodGrant,
    authorize_pod,
    issue_pod_session,
    pod_identity_config,
    validate_pod_token,
)

if TYPE_CHECKING:
    from sidecar.server.servicers import ServerDeps

log = logging.getLogger("iam_sidecar.pod_identity")

PATH = "/v1/credentials"
REFRESH_BEFORE = 15 * 60  # botocore refreshes inside this window: never hand out less
CACHE_SIZE = 10_000
_CacheKey = tuple[str, str]  # (pod uid, role ARN)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodCredentials:
    """The handler, with its bounded credential cache (shared by the loop and worker threads)."""

    def __init__(self, deps: ServerDeps, cache_size: int = CACHE_SIZE) -> None:
        self.deps = deps
        self._cache: LRUCache[_CacheKey, Credentials] = LRUCache(cache_size)
        self._lock = threading.Lock()

    def _env(self) -> StsEnv:
        snap = self.deps.engine.snapshot
        return StsEnv(snap.world, snap.keys, self.deps.clock, self.deps.entropy)

    def _grant(self, token: str) -> tuple[PodGrant, Credentials, bool]:
        """Validate, map, authorize, then answer from the cache or issue (run in a thread: the
        issuer's keys may be fetched over the network)."""
        env = self._env()
        config = pod_identity_config(env.world)
        now = env.clock.now()
        pod = validate_pod_token(env.world, config, token, self.deps.jwks, now)
        grant = authorize_pod(env, config, pod)
        key = (pod.pod_uid, grant.role.arn)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.expiration - now >= REFRESH_BEFORE:
            return grant, cached, False
        creds = issue_pod_session(env, grant).credentials
        with self._lock:
            self._cache[key] = creds
        return grant, creds, True

    async def handle(self, request: web.Request) -> web.Response:
        if request.query_string or request.can_read_body:
            return _error(400, "InvalidRequestException", "The request takes no parameters.")
        token = request.headers.get("Authorization", "").strip()
        if not token:
            self.deps.metrics.token_failures.labels("missing").inc()
            return _error(
                401, "InvalidTokenException", "The Authorization header must hold the token."
            )
        if len(token) > MAX_CHARS:
            self.deps.metrics.token_failures.labels("too_large").inc()
            return _error(401, "InvalidTokenException", "The token is too large.")
        try:
            grant, creds, issued = await asyncio.to_thread(self._grant, token)
        except FederationError as err:
            self.deps.metrics.token_failures.labels(err.reason).inc()
            if isinstance(err, IDPCommunicationError):
                return _error(503, "ServiceUnavailableException", err.message)
            code = (
                "ExpiredTokenException"
                if isinstance(err, ExpiredTokenException)
                else "InvalidTokenException"
            )
            return _error(401, code, err.message)
        except AccessDenied as err:
            return _error(403, "AccessDeniedException", err.message)
        except SidecarError as err:  # e.g. a packed size over the limit: the world's doing
            log.warning("pod identity session refused", extra={"error": str(err)})
            return _error(403, err.code, err.message)
        account = grant.role.account
        if issued:
            self.deps.metrics.credentials.labels("PodIdentity").inc()
            pod = grant.pod
            log.info(
                "issued pod identity credentials",
                extra={"pod": f"{pod.namespace}/{pod.pod_name}", "pod_uid": pod.pod_uid,
                       "service_account": pod.service_account, "role": grant.role.arn,
                       "expires": creds.expiration},
            )  # fmt: skip
        return web.json_response(
            {
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "Token": creds.session_token,
                "AccountId": account,
                "Expiration": _iso(creds.expiration),
            }
        )


def add_pod_identity_routes(app: web.Application, deps: ServerDeps) -> None:
    app.router.add_get(PATH, PodCredentials(deps).handle, allow_head=False)


__all__ = ["PATH", "PodCredentials", "add_pod_identity_routes"]
