"""OpenID Connect ID tokens (web identity): validation against the world's OIDC providers.

Pure: the provider's keys come from an injected :class:`KeySource` (the server's JWKS cache) and
the time is passed in. The token is treated as hostile until its signature is verified:

1. size and shape (three base64url parts, JSON objects): ``malformed`` / ``too_large``;
2. ``alg`` from a fixed allow-list of asymmetric algorithms, checked before any key is touched
   (never ``none``, never HMAC): ``alg_not_allowed``;
3. ``iss`` must be the URL of a registered provider: ``unknown_issuer``;
4. ``kid`` selects one of the provider's keys (one refetch on an unknown kid): ``unknown_kid``;
   keys named by the token itself (``jku``, ``jwk``, ``x5u``, ``x5c``) are never used;
5. the signature, verified by PyJWT with the selected JWK and an explicit algorithm list:
   ``bad_signature`` / ``weak_key``;
6. ``aud`` or ``azp`` among the provider's client ids: ``wrong_audience``;
7. ``sub``, ``exp`` and ``iat`` present: ``missing_claim``;
8. ``exp`` / ``nbf`` / ``iat`` with leeway, and a maximum age: ``expired``, ``not_yet_valid``,
   ``too_old``.

Every refusal is a :class:`~sidecar.errors.FederationError` carrying its ``reason``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from sidecar.errors import ExpiredTokenException, InvalidIdentityToken
from sidecar.identity.model import OidcProvider, World

# Asymmetric signature algorithms only. HS* would let anyone holding the (public) JWKS sign.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384")
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384"}
MIN_CHARS = 4
MAX_CHARS = 20000
DEFAULT_LEEWAY = 60
DEFAULT_MAX_AGE = 86400

INVALID_TOKEN = (
    "The web identity token that was passed could not be validated by AWS. Get a new identity "
    "token from the identity provider and then retry the request."
)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")  # used with fullmatch: no trailing newline
# The members of a public JWK; anything else (private parts, x5c, ...) is never used.
_PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y")}

# PyJWT verifies signatures only; every claim is checked here against the injected time.
_JWS = jwt.PyJWS(
    algorithms=list(ALLOWED_ALGORITHMS),
    options={"verify_signature": True, "enforce_minimum_key_length": True},
)


class KeySource(Protocol):
    """Where an OIDC provider's signing keys (JWKs) come from."""

    def keys(
        self, provider: OidcProvider, kid: str | None, *, refresh: bool
    ) -> list[dict[str, Any]]:
        """The provider's JWKs. ``refresh`` asks for a fresh copy (an unknown ``kid`` was seen);
        the source may rate-limit refreshes and answer from its cache. Raises
        IDPCommunicationError when the keys cannot be obtained at all."""
        ...


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    provider: OidcProvider
    claims: Mapping[str, Any]  # the verified payload
    subject: str  # sub
    audience: str  # the client id that matched: azp when it is a client id, else aud
    issuer: str  # iss, as the token wrote it


def _invalid(reason: str, detail: str = "") -> InvalidIdentityToken:
    return InvalidIdentityToken(
        f"{INVALID_TOKEN} ({detail})" if detail else INVALID_TOKEN, reason=reason
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_json_segment(segment: str) -> dict[str, Any]:
    """A base64url JSON object (NaN and Infinity refused: they would defeat time checks)."""
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
    value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _split(token: object, max_chars: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, parsed without trusting either."""
    if not isinstance(token, str):
        raise _invalid("malformed", "the token is not text")
    if len(token) > max_chars:
        raise _invalid("too_large", f"the token is longer than {max_chars} characters")
    if len(token) < MIN_CHARS:
        raise _invalid("malformed", "the token is not a JWT")
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid("malformed", "the token is not a JWT")
    try:
        header = _decode_json_segment(parts[0])
        payload = _decode_json_segment(parts[1])
        if parts[2] and not _SEGMENT.fullmatch(parts[2]):
            raise ValueError("signature is not base64url")
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise _invalid("malformed", "the token is not a JWT") from None
    return header, payload


def _algorithm(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        shown = alg if isinstance(alg, str) else type(alg).__name__
        raise _invalid("alg_not_allowed", f"algorithm {shown[:20]!r} is not allowed")
    if "crit" in header:
        raise _invalid("malformed", "critical header extensions are not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _invalid("malformed", "kid is not a string")
    return alg


def _strip_slash(url: str) -> str:
    return url[:-1] if url.endswith("/") else url


def find_provider(world: World, issuer: str, account: str | None = None) -> OidcProvider | None:
    """The provider whose URL is ``issuer`` (one trailing slash ignored, as IAM does), in
    ``account`` when given, else in any account of the world."""
    wanted = _strip_slash(issuer)
    if account is None:
        accounts = list(world.accounts.values())
    else:
        acct = world.accounts.get(account)
        accounts = [acct] if acct is not None else []
    for acct in accounts:
        for provider in acct.oidc_providers.values():
            if _strip_slash(provider.url) == wanted:
                return provider
    return None


def _key_algorithms(jwk: object) -> frozenset[str]:
    """The allowed algorithms this JWK can verify (empty: unusable for signatures)."""
    if not isinstance(jwk, dict):
        return frozenset()
    use, ops = jwk.get("use"), jwk.get("key_ops")
    if use is not None and use != "sig":
        return frozenset()
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return frozenset()
    kty = jwk.get("kty")
    if kty == "RSA":
        algs = _RSA_ALGORITHMS
    elif kty == "EC" and jwk.get("crv") in _EC_CURVES:
        algs = frozenset({_EC_CURVES[jwk["crv"]]})
    else:
        return frozenset()
    declared = jwk.get("alg")
    if declared is not None:
        return algs & {declared}
    return algs


def _build_key(jwk: dict[str, Any], alg: str) -> jwt.PyJWK | None:
    """A verification key from the public members of ``jwk`` only (private parts ignored)."""
    members = _PUBLIC_MEMBERS[jwk["kty"]]
    if not all(isinstance(jwk.get(m), str) for m in members):
        return None
    public = {"kty": jwk["kty"], **{m: jwk[m] for m in members}}
    try:
        return jwt.PyJWK(public, algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError, KeyError):
        return None


def _select_key(keys: list[dict[str, Any]], kid: str | None, alg: str) -> jwt.PyJWK | None:
    """The key named by ``kid`` that can verify ``alg``. Without a kid, the provider's only
    key for ``alg`` (several candidates: refused, the token must say which)."""
    candidates = [
        k for k in keys if alg in _key_algorithms(k) and (kid is None or k.get("kid") == kid)
    ]
    if kid is None and len(candidates) != 1:
        return None
    for jwk in candidates:
        key = _build_key(jwk, alg)
        if key is not None:
            return key
    return None


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid("malformed", f"{name} is not a NumericDate")
    return float(value)


def _audience(claims: dict[str, Any], client_ids: tuple[str, ...]) -> str:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = claims.get("azp")
    if isinstance(azp, str) and azp in client_ids:
        return azp
    for value in audiences:
        if isinstance(value, str) and value in client_ids:
            return value
    raise InvalidIdentityToken("Incorrect token audience", reason="wrong_audience")


def _check_times(claims: dict[str, Any], now: float, leeway: float, max_age: float) -> None:
    exp = _number(claims, "exp")
    iat = _number(claims, "iat")
    nbf = _number(claims, "nbf")
    if exp is None or iat is None:
        missing = "exp" if exp is None else "iat"
        raise _invalid("missing_claim", f"the token has no {missing} claim")
    if now >= exp + leeway:
        raise ExpiredTokenException(
            f"Token expired: current date/time {int(now)} must be before the expiration "
            f"date/time {int(exp)}",
            reason="expired",
        )
    if nbf is not None and now + leeway < nbf:
        raise _invalid("not_yet_valid", f"the token is not valid before {int(nbf)}")
    if now + leeway < iat:
        raise _invalid("not_yet_valid", f"the token was issued in the future ({int(iat)})")
    if now - iat > max_age:
        raise ExpiredTokenException(f"Token too old: {int(now - iat)}", reason="too_old")


def validate_token(
    token: str,
    world: World,
    key_source: KeySource,
    now: float,
    *,
    leeway: float = DEFAULT_LEEWAY,
    max_age: float = DEFAULT_MAX_AGE,
    max_chars: int = MAX_CHARS,
    account: str | None = None,
    audiences: tuple[str, ...] | None = None,
) -> ValidatedToken:
    """Validate an OIDC ID token against the world's providers (those of ``account`` when
    given: AssumeRoleWithWebIdentity looks in the role's account). Raises FederationError
    subclasses (InvalidIdentityToken, ExpiredTokenException, IDPCommunicationError).
    ``audiences`` replaces the provider's client ids (pod identity has its own audience)."""
    header, unverified = _split(token, max_chars)
    alg = _algorithm(header)
    if token.endswith("."):
        raise _invalid("malformed", "the token is not signed")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _invalid("missing_claim", "the token has no iss claim")
    provider = find_provider(world, issuer, account)
    if provider is None:
        raise InvalidIdentityToken(
            f"No OpenIDConnect provider found in your account for {issuer[:512]}",
            reason="unknown_issuer",
        )
    kid: str | None = header.get("kid")
    key = _select_key(key_source.keys(provider, kid, refresh=False), kid, alg)
    if key is None:
        key = _select_key(key_source.keys(provider, kid, refresh=True), kid, alg)
    if key is None:
        shown = f"kid {kid[:64]!r}" if kid is not None else "a token without kid"
        raise _invalid("unknown_kid", f"no {alg} key of the identity provider matches {shown}")
    try:
        decoded = _JWS.decode_complete(token, key=key, algorithms=[alg])
    except jwt.InvalidSignatureError:
        raise _invalid("bad_signature", "the signature does not verify") from None
    except jwt.InvalidKeyError:
        raise _invalid("weak_key", "the identity provider's key is too weak") from None
    except jwt.PyJWTError:
        raise _invalid("malformed", "the token is not a JWT") from None
    try:
        claims = json.loads(decoded["payload"].decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid("malformed", "the token is not a JWT") from None
    if not isinstance(claims, dict) or claims.get("iss") != issuer:
        raise _invalid("malformed", "the token is not a JWT")
    audience = _audience(claims, provider.client_ids if audiences is None else audiences)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("missing_claim", "the token has no sub claim")
    _check_times(claims, now, leeway, max_age)
    return ValidatedToken(provider, claims, subject, audience, issuer)


__all__ = [
    "ALLOWED_ALGORITHMS",
    "KeySource",
    "ValidatedToken",
    "find_provider",
    "validate_token",
]
