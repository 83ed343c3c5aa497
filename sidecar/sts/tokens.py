"""Session tokens: self-contained, signed with Ed25519, verifiable by any holder of the key set.

    IAMS1.<header>.<payload>.<signature>      (base64url without padding)

The header names the key (``kid``) and its public-key fingerprint (``fp``), so a token signed by
another key that claims a known id ("wrong key") is told apart from a token whose content was
changed ("tampered"). The payload is the Session. The secret access key is not in the token: it
is derived from the signing key's secret and the access key id, so only holders of the key set
can recover it (to verify SigV4 requests signed with the temporary credentials).

Tokens are canonical: exactly one string verifies for a session. Every part is decoded strictly
(``_b64d``), the signature must be 64 bytes, and Ed25519 verification refuses a signature whose
scalar is not reduced. So a token is a safe cache key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature

from sidecar.errors import ExpiredToken, InvalidClientTokenId
from sidecar.sts.keys import KeyRing, TokenKey
from sidecar.sts.session import Session

PREFIX = "IAMS1"
# The longest token the sidecar issues and accepts (one constant for both sides, so no token is
# issued that verification refuses). gRPC refuses a call whose metadata passes 8 KiB (each entry
# counted as name + value + 32 bytes); a token travels in metadata as `authorization: Bearer`,
# or as `x-amz-security-token` beside SigV4's `authorization` and `x-amz-date`. 6 KiB leaves
# 2 KiB: about 380 bytes for those two, about 550 for gRPC's own headers (:path, :authority,
# user-agent, te, content-type, grpc-timeout), and 1 KiB for the caller's (tracing, a longer
# :authority). tests/server/test_token_size_rpc.py sends the largest token both ways.
MAX_TOKEN_CHARS = 6144
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
SIGNATURE_BYTES = 64  # Ed25519
INVALID = "The security token included in the request is invalid."
EXPIRED = "The security token included in the request is expired"
NOT_YET_VALID = "The security token included in the request is not valid yet"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    """Strict base64url without padding: only the text ``_b64e`` makes decodes, so no other
    string (extra or foreign characters, padding, nonzero unused bits in the last character)
    stands for the same bytes. The lenient decoder drops characters outside the alphabet."""
    if len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise ValueError("base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(data) != text:
        raise ValueError("base64url")
    return data


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _to_payload(s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {
        "p": s.partition,
        "a": s.account,
        "r": s.role_name,
        "rp": s.role_path,
        "ri": s.role_id,
        "sn": s.session_name,
        "ak": s.access_key_id,
        "iat": s.issued_at,
        "exp": s.expires_at,
        "o": s.origin,
    }
    if s.session_policies:
        out["sp"] = [list(p) for p in s.session_policies]
    if s.tags:
        out["tg"] = [list(t) for t in s.tags]
    if s.transitive_tag_keys:
        out["tt"] = list(s.transitive_tag_keys)
    if s.source_identity:
        out["si"] = s.source_identity
    if s.mfa_authenticated_at is not None:
        out["mfa"] = s.mfa_authenticated_at
    if s.federated_provider:
        out["fp"] = s.federated_provider
    if s.federated_claims:
        out["fc"] = [[k, list(v)] for k, v in s.federated_claims]
    if s.chained:
        out["ch"] = True
    return out


def _str(p: dict[str, Any], key: str, default: str | None = None) -> str:
    value = p.get(key, default)
    if not isinstance(value, str):
        raise ValueError(key)
    return value


def _int(p: dict[str, Any], key: str) -> int:
    value = p[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(key)
    return value


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in value
    ):
        raise ValueError("pairs")
    return tuple((x[0], x[1]) for x in value)


def _from_payload(p: Any) -> Session:
    if not isinstance(p, dict):
        raise ValueError("payload")
    mfa = p.get("mfa")
    if mfa is not None and (not isinstance(mfa, int) or isinstance(mfa, bool)):
        raise ValueError("mfa")
    claims = p.get("fc", [])
    if not isinstance(claims, list) or not all(
        isinstance(c, list)
        and len(c) == 2
        and isinstance(c[0], str)
        and isinstance(c[1], list)
        and all(isinstance(v, str) for v in c[1])
        for c in claims
    ):
        raise ValueError("fc")
    tt = p.get("tt", [])
    if not isinstance(tt, list) or not all(isinstance(k, str) for k in tt):
        raise ValueError("tt")
    return Session(
        partition=_str(p, "p"),
        account=_str(p, "a"),
        role_name=_str(p, "r"),
        role_path=_str(p, "rp"),
        role_id=_str(p, "ri"),
        session_name=_str(p, "sn"),
        access_key_id=_str(p, "ak"),
        issued_at=_int(p, "iat"),
        expires_at=_int(p, "exp"),
        session_policies=_pairs(p.get("sp", [])),
        tags=_pairs(p.get("tg", [])),
        transitive_tag_keys=tuple(tt),
        source_identity=_str(p, "si", ""),
        mfa_authenticated_at=mfa,
        federated_provider=_str(p, "fp", ""),
        federated_claims=tuple((c[0], tuple(c[1])) for c in claims),
        chained=p.get("ch", False) is True,
        origin=_str(p, "o", "AssumeRole"),
    )


def encode_token(session: Session, ring: KeyRing) -> str:
    """Sign ``session`` with the ring's active key."""
    key = ring.active
    assert key.private is not None  # KeyRing guarantees the active key can sign
    header = _b64e(_canonical({"kid": key.kid, "fp": key.fingerprint}))
    payload = _b64e(_canonical(_to_payload(session)))
    signing_input = f"{PREFIX}.{header}.{payload}".encode()
    return f"{PREFIX}.{header}.{payload}.{_b64e(key.private.sign(signing_input))}"


def _refuse(reason: str, message: str = INVALID) -> InvalidClientTokenId:
    return InvalidClientTokenId(message, reason=reason)


def verify_token(
    token: str,
    ring: KeyRing,
    now: float,
    *,
    not_before_leeway: float = 30.0,
    expiry_leeway: float = 0.0,
) -> tuple[Session, TokenKey]:
    """Check a token and return its session and the key that signed it.

    Refusals carry distinct reasons: malformed, unknown_key, wrong_key, tampered,
    not_yet_valid (InvalidClientTokenId) and expired (ExpiredToken); the last two come from
    ``check_window``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise _refuse("malformed")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise _refuse("malformed")
    _, header_b64, payload_b64, sig_b64 = parts
    try:
        header = json.loads(_b64d(header_b64))
        payload = _b64d(payload_b64)
        signature = _b64d(sig_b64)
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError("signature")
        if not isinstance(header, dict):
            raise ValueError("header")
        kid, fingerprint = header.get("kid"), header.get("fp")
        if not isinstance(kid, str) or not isinstance(fingerprint, str):
            raise ValueError("kid")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _refuse("malformed") from None
    key = ring.get(kid)
    if key is None:
        raise _refuse("unknown_key")
    if not hmac.compare_digest(fingerprint, key.fingerprint):
        raise _refuse("wrong_key")
    try:
        key.public.verify(signature, f"{PREFIX}.{header_b64}.{payload_b64}".encode())
    except InvalidSignature:
        raise _refuse("tampered") from None
    try:
        session = _from_payload(json.loads(payload))
    except (ValueError, KeyError, UnicodeDecodeError):
        raise _refuse("malformed") from None
    check_window(session, now, not_before_leeway=not_before_leeway, expiry_leeway=expiry_leeway)
    return session, key


def check_window(
    session: Session,
    now: float,
    *,
    not_before_leeway: float = 30.0,
    expiry_leeway: float = 0.0,
) -> None:
    """Refuse a session outside its validity window: from ``issued_at`` (less the not-before
    leeway, for replicas whose clocks differ) until, not including, ``expires_at`` (plus the
    expiry leeway, 0 by default). Verification checks it, and so does every use of a session
    verified earlier (the engine's caches), as the window moves with the clock."""
    if now + not_before_leeway < session.issued_at:
        raise _refuse("not_yet_valid", NOT_YET_VALID)
    if now >= session.expires_at + expiry_leeway:
        raise ExpiredToken(EXPIRED, reason="expired")


def derive_secret(key: TokenKey, access_key_id: str) -> str:
    """The secret access key of a temporary access key id (40 characters, as AWS's)."""
    mac = hmac.new(key.secret, b"secret-access-key:" + access_key_id.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()[:40]
