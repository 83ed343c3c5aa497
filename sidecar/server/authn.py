"""Who is calling (docs/API.md §2): a bearer session token, a SigV4-signed call (an IAM user's
long-term key, or temporary credentials with their session token), or an mTLS peer whose SPIFFE
id maps to a service principal. Anonymous calls are refused."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote

from sidecar.engine.engine import Engine, Snapshot
from sidecar.errors import MissingAuthenticationToken
from sidecar.server.sigv4 import VerifiedCall, verify_call, world_lookup
from sidecar.sts.callers import Caller, ServiceCaller, SessionCaller, UserCaller

Metadata = Sequence[tuple[str, str | bytes]]


def metadata_value(metadata: Metadata, name: str) -> str | None:
    for key, value in metadata:
        if key.lower() == name:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def bearer_token(metadata: Metadata) -> str | None:
    value = metadata_value(metadata, "authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def peer_ip(peer: str) -> str | None:
    """The IP address of a gRPC peer string (``ipv4:1.2.3.4:5``; IPv6 as grpc reports it,
    ``ipv6:%5B::1%5D:5``, brackets percent-encoded), or None (a unix socket)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    host = unquote(rest).rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def spiffe_ids(auth_context: Mapping[str, Iterable[bytes]]) -> list[str]:
    """The verified peer certificate's SPIFFE id. gRPC sets `peer_spiffe_id` only when the
    certificate is an X.509-SVID (exactly one URI SAN, a SPIFFE id); a `spiffe://` string in a
    DNS name, or one URI among several, is not an identity."""
    ids = [s.decode() for s in auth_context.get("peer_spiffe_id", ())]
    return ids if len(ids) == 1 and ids[0].startswith("spiffe://") else []


class Authenticator:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def caller(
        self,
        method_path: str,
        body: bytes,
        metadata: Metadata,
        auth_context: Mapping[str, Iterable[bytes]],
    ) -> Caller:
        snap = self.engine.snapshot
        authorization = metadata_value(metadata, "authorization") or ""
        token = bearer_token(metadata)
        if token is not None:
            return SessionCaller(self.engine.verify(token, snap))
        if authorization.startswith("AWS4-"):
            now = self.engine.clock.now()
            lookup = world_lookup(snap.world.access_keys, snap.keys, now)
            return self.signer(verify_call(method_path, body, metadata, lookup, now), snap)
        for spiffe_id in spiffe_ids(auth_context):
            service = snap.world.services_by_spiffe.get(spiffe_id)
            if service is not None:
                return ServiceCaller(service, spiffe_id)
        raise MissingAuthenticationToken(
            "Request is missing Authentication Token", reason="missing"
        )

    def signer(self, verified: VerifiedCall, snap: Snapshot) -> Caller:
        """The caller whose key signed a verified request (of either port)."""
        if verified.session_token is None:
            user, _key = snap.world.access_keys[verified.access_key_id]
            return UserCaller(user, snap.world.partition)
        return SessionCaller(self.engine.verify(verified.session_token, snap))
