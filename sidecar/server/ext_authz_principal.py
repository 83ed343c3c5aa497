"""Who made the HTTP request Envoy asks about, and who may ask (docs/API.md §1.5).

The caller of Check: Check believes what a CheckRequest says about the downstream (its address,
its SPIFFE id, its headers) only because Envoy sent it, so only Envoy may call: in sidecar mode
(the gRPC port on loopback or a unix socket) a peer on loopback or a unix socket, Envoy beside
the sidecar; in any mode an mTLS peer whose SPIFFE id is one of the world's
`ext_authz.envoy_identities`. A central sidecar (the gRPC port on the pod's address) believes no
loopback peer: a proxy in its pod (an injected Istio sidecar) relays remote callers from
loopback addresses.

The principal of the request, in this order (as the gRPC port's callers, docs/API.md §2):
1. `authorization: Bearer <session token>`;
2. an AWS SigV4 `authorization` with `x-amz-date`, verified by sidecar/server/sigv4.py over the
   request as Envoy forwards it: method, `scheme://host` + path and query as received, the
   headers, and the body Envoy buffered (`with_request_body` with `pack_as_bytes`, in
   `raw_body`). Temporary credentials from this sidecar (`x-amz-security-token`) make the
   request their session's; an IAM user's long-term key makes it the user's, as at AWS;
3. the downstream's SPIFFE id (`source.principal`, from Envoy's mTLS) mapped by the world's
   `service_principals` to a service principal.
Nothing of these: MissingAuthenticationToken (401).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sidecar.api.envoy.service.auth.v3 import attribute_context_pb2
from sidecar.engine.engine import Engine, Snapshot
from sidecar.errors import MissingAuthenticationToken
from sidecar.identity.model import ServicePrincipal, User
from sidecar.server.authn import peer_ip, spiffe_ids
from sidecar.server.sigv4 import (
    SignedRequest,
    parse_authorization,
    verify_request,
    world_lookup,
)

HttpAttributes = attribute_context_pb2.AttributeContext.HttpRequest

MISSING = "Request is missing Authentication Token"


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """A mesh service principal and the SPIFFE id it was recognized by."""

    service: ServicePrincipal
    spiffe_id: str


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """An IAM user whose long-term access key signed the request."""

    user: User


def is_local_peer(peer: str) -> bool:
    """A unix-socket peer, or a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104)."""
    if peer.startswith("ipv4:127."):  # the common case, without parsing
        return True
    if peer.startswith(("unix:", "unix-abstract:")):
        return True
    host = peer_ip(peer)
    if host is None:
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id is not the address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_local_listener(address: str) -> bool:
    """Whether a --listen address reaches only this host (sidecar mode): a unix socket, a
    loopback address or ``localhost``."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def envoy_may_call(
    peer: str,
    auth_context: Mapping[str, Iterable[bytes]],
    envoy_identities: frozenset[str],
    *,
    local_callers: bool = True,
) -> bool:
    """Whether this gRPC caller may call Check: local when ``local_callers`` (sidecar mode),
    or an mTLS peer that is a configured Envoy (its verified certificate's single SPIFFE id, as
    sidecar/server/authn.py reads it)."""
    if local_callers and is_local_peer(peer):
        return True
    return is_envoy_identity(auth_context, envoy_identities)


def is_envoy_identity(
    auth_context: Mapping[str, Iterable[bytes]], envoy_identities: frozenset[str]
) -> bool:
    """An mTLS peer whose verified certificate's single SPIFFE id is a configured Envoy."""
    if not envoy_identities:
        return False
    ids = spiffe_ids(auth_context)
    return bool(ids) and ids[0] in envoy_identities


def request_principal(
    http: HttpAttributes,
    headers: Mapping[str, str],
    attributes: attribute_context_pb2.AttributeContext,
    engine: Engine,
    snap: Snapshot,
) -> str | UserIdentity | ServiceIdentity:
    """The request's session token, its signing user, or its service principal (see the
    module docstring).
    Raises TokenError subclasses: MissingAuthenticationToken, InvalidClientTokenId,
    ExpiredToken, SignatureDoesNotMatch."""
    authorization = headers.get("authorization")
    if authorization:
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            if not token:
                raise MissingAuthenticationToken(MISSING, reason="missing")
            return token
        if is_sigv4(authorization):  # any case: a look-alike is refused, never ignored
            return signed_principal(http, headers, engine, snap)
    source_principal = attributes.source.principal
    if source_principal:
        service = snap.world.services_by_spiffe.get(source_principal)
        if service is not None:
            return ServiceIdentity(service, source_principal)
    raise MissingAuthenticationToken(MISSING, reason="missing")


def is_sigv4(authorization: str) -> bool:
    return authorization[:5].upper() == "AWS4-"


def unsigned_headers(headers: Mapping[str, str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (headers a route takes condition keys from) a SigV4-signed request
    carries without signing them: a replay within the signature's five minutes could change
    them, and with them the decision (as AWS refuses unsigned x-amz-* headers)."""
    if not names:
        return []
    authorization = headers.get("authorization", "")
    if not is_sigv4(authorization):
        return []
    signed = parse_authorization(authorization).signed_headers
    return [name for name in names if name in headers and name not in signed]


def signed_principal(
    http: HttpAttributes, headers: Mapping[str, str], engine: Engine, snap: Snapshot
) -> str | UserIdentity:
    """Verify a SigV4-signed request as Envoy forwards it: the session token of its temporary
    credentials, or the user of its long-term key. UNSIGNED-PAYLOAD is accepted only as the
    value of a signed x-amz-content-sha256 (otherwise the body's hash is what was signed)."""
    # Envoy reports Host as :authority (http.host); pseudo-headers are not signable.
    signed = [("host", http.host)]
    signed += [(k, v) for k, v in headers.items() if k != "host" and not k.startswith(":")]
    request = SignedRequest(
        http.method, f"{http.scheme or 'http'}://{http.host}{http.path}", signed, http.raw_body
    )
    now = engine.clock.now()
    lookup = world_lookup(snap.world.access_keys, snap.keys, now)
    verified = verify_request(request, lookup, now, unsigned_payload=True)
    if verified.session_token is None:  # the lookup found this key id among the users' keys
        return UserIdentity(snap.world.access_keys[verified.access_key_id][0])
    return verified.session_token


def request_headers(http: HttpAttributes) -> Mapping[str, str]:
    """The request's headers, lower-case names, repeated values joined with "," (Envoy's
    ``headers`` map as is; with ``encode_raw_headers: true`` its ``header_map`` so joined)."""
    headers = http.headers
    if headers:  # Envoy sends one form or the other
        return headers
    out: dict[str, str] = {}
    for h in http.header_map.headers:
        name = h.key.lower()
        value = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
        out[name] = f"{out[name]},{value}" if name in out else value
    return out
