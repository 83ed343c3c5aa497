"""Verifying AWS Signature Version 4 (the server's side), for both ports: ``verify_request``
checks any signed request (the HTTP port's STS Query API hands it the request as received);
``verify_call`` is its gRPC form, described here first.

The gRPC protocol (``sidecar.client.sigv4`` signs it):

- The signed request is ``POST https://iam-sidecar{method_path}``: the gRPC method path the
  server routes on, no query string, and as payload the serialized protobuf request message.
- The headers that may be signed are exactly those the server can reproduce: ``host`` (always
  ``iam-sidecar``: a gRPC server does not see ``:authority`` in its metadata), ``content-type``
  (always ``application/grpc``: the server does not see the wire content type either),
  ``x-amz-date`` and ``x-amz-security-token`` (both from the metadata). ``host`` and
  ``x-amz-date`` must be signed, and ``x-amz-security-token`` too when the call carries one.
- The call carries, as gRPC metadata (keys compared case-insensitively, values ``str`` or ASCII
  ``bytes``): ``authorization`` (``AWS4-HMAC-SHA256 Credential=<key id>/<yyyymmdd>/<region>/
  <service>/aws4_request, SignedHeaders=<a;b;c>, Signature=<64 lower-case hex>``),
  ``x-amz-date`` (``yyyymmddThhmmssZ``) and, with temporary credentials,
  ``x-amz-security-token``. Each may appear at most once.
- Any region and service that the credential scope states are accepted (docs/API.md §2): the
  signature is recomputed for that scope.

On the HTTP port the request is verified as received: its method, ``Host``, path and query
string, and any header it carries may be signed (``host`` and ``x-amz-date`` must be); a signed
``x-amz-content-sha256`` must be the body's hash.

``verify_request`` checks, in this order, each failure with its error and ``reason``:

1. ``authorization`` present (MissingAuthenticationToken, ``missing``), algorithm
   AWS4-HMAC-SHA256 (SignatureDoesNotMatch, ``unsupported_algorithm``) and well formed
   (SignatureDoesNotMatch, ``malformed``);
2. ``x-amz-date`` present and well formed (``malformed``) and within ``max_skew`` seconds
   (default 5 minutes, inclusive) of ``now`` (``clock_skew``);
3. the credential scope's date is the date of ``x-amz-date`` (``scope_date``);
4. the signed headers: the required ones and only reproducible ones (``signed_headers``);
5. the secret, from ``lookup`` (which raises InvalidClientTokenId or ExpiredToken itself);
6. the signature, recomputed with botocore's ``SigV4Auth`` for the same canonical request and
   compared in constant time with ``hmac.compare_digest`` (``mismatch``).

Error messages follow AWS's wording but never contain a secret, a signature, a session token or
the raw header; ``Authorization`` does not show its signature in its repr.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sidecar.errors import (
    InvalidClientTokenId,
    MissingAuthenticationToken,
    SignatureDoesNotMatch,
)
from sidecar.identity.model import AccessKey, User
from sidecar.sts.keys import KeyRing
from sidecar.sts.tokens import INVALID, derive_secret, verify_token

ALGORITHM = "AWS4-HMAC-SHA256"
HOST = "iam-sidecar"
CONTENT_TYPE = "application/grpc"
TERMINATOR = "aws4_request"
MAX_AUTHORIZATION_CHARS = 4096
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)

AUTHORIZATION = "authorization"
DATE = "x-amz-date"
TOKEN = "x-amz-security-token"
REQUIRED_SIGNED = ("host", DATE)
CONTENT_SHA256 = "x-amz-content-sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
REPRODUCIBLE = frozenset({"host", "content-type", DATE, TOKEN})
GRPC_HEADERS = {"host": HOST, "content-type": CONTENT_TYPE}  # what a gRPC server signs for

_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_DATE = re.compile(r"[0-9]{8}")
_SCOPE_PART = re.compile(r"[a-z0-9-]{1,64}")
_HEADER_NAME = re.compile(r"[a-z0-9-]{1,64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_METHOD_PATH = re.compile(r"/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_PARAMS = ("Credential", "SignedHeaders", "Signature")


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of a SigV4 ``authorization`` value."""

    access_key_id: str
    date: str  # yyyymmdd, the credential scope's date
    region: str
    service: str
    signed_headers: tuple[str, ...]  # lower-case, in the order given
    signature: str = field(repr=False)  # 64 lower-case hex digits


@dataclass(frozen=True, slots=True)
class VerifiedCall:
    """Who signed a call, and for which scope."""

    access_key_id: str
    region: str
    service: str
    session_token: str | None = field(default=None, repr=False)


class SecretLookup(Protocol):
    """The secret access key of ``access_key_id``; for a temporary key, ``session_token`` (from
    ``x-amz-security-token``) carries it. Raises InvalidClientTokenId (unknown key, bad token)
    or ExpiredToken."""

    def __call__(self, access_key_id: str, session_token: str | None) -> str: ...


def _malformed(message: str) -> SignatureDoesNotMatch:
    return SignatureDoesNotMatch(message, reason="malformed")


def _valid_date(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_authorization(value: str) -> Authorization:
    """Parse ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``.

    An empty value raises MissingAuthenticationToken (``missing``); another algorithm
    SignatureDoesNotMatch (``unsupported_algorithm``); anything else not well formed
    SignatureDoesNotMatch (``malformed``). Parameters may be separated by ``,`` with optional
    spaces, in any order, each exactly once.
    """
    value = value.strip()
    if not value:
        raise MissingAuthenticationToken(
            "Request is missing Authentication Token", reason="missing"
        )
    if len(value) > MAX_AUTHORIZATION_CHARS:
        raise _malformed("The Authorization header is too long.")
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        # The first word is not echoed: a misdirected bearer token may be all there is.
        raise SignatureDoesNotMatch(
            f"Unsupported AWS 'algorithm': only {ALGORITHM} is accepted.",
            reason="unsupported_algorithm",
        )
    params: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, text = item.strip().partition("=")
        if not eq or name not in _PARAMS:
            raise _malformed(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                "parameters, each as name=value, separated by commas."
            )
        if name in params:
            raise _malformed(f"Authorization header has more than one '{name}' parameter.")
        params[name] = text
    missing = [name for name in _PARAMS if name not in params]
    if missing:
        raise _malformed(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )

    scope = params["Credential"].split("/")
    if len(scope) != 5:
        raise _malformed(
            "Credential must be <access key id>/<yyyymmdd>/<region>/<service>/aws4_request."
        )
    key_id, date, region, service, terminator = scope
    if not _KEY_ID.fullmatch(key_id):
        raise _malformed("Credential should begin with a valid access key id.")
    if not _DATE.fullmatch(date) or _valid_date(date, "%Y%m%d") is None:
        raise _malformed("Credential should be scoped to a valid date (yyyymmdd).")
    if not _SCOPE_PART.fullmatch(region):
        raise _malformed("Credential should be scoped to a valid region.")
    if not _SCOPE_PART.fullmatch(service):
        raise _malformed("Credential should be scoped to a valid service.")
    if terminator != TERMINATOR:
        raise _malformed(f"Credential should be scoped with a valid terminator: '{TERMINATOR}'.")

    signed = tuple(params["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(name) for name in signed):
        raise _malformed("SignedHeaders must be lower-case header names separated by ';'.")
    if len(set(signed)) != len(signed):
        raise _malformed("SignedHeaders names a header more than once.")
    signature = params["Signature"]
    if not _SIGNATURE.fullmatch(signature):
        raise _malformed("Signature must be 64 lower-case hexadecimal digits.")
    return Authorization(key_id, date, region, service, signed, signature)


def _single(metadata: Sequence[tuple[str, str | bytes]], name: str) -> str | None:
    """The one value of ``name`` (None if absent); repeated or undecodable is malformed."""
    values = [value for key, value in metadata if key.lower() == name]
    if not values:
        return None
    if len(values) > 1:
        raise _malformed(f"The request has more than one '{name}' header.")
    value = values[0]
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed(f"The '{name}' header is not ASCII text.") from None
    return value


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch // 1), UTC).strftime(_TIMESTAMP)


def _check_date(amz_date: str | None, now: float, max_skew: int) -> str:
    if amz_date is None:
        raise _malformed("Authorization header requires existence of a 'X-Amz-Date' header.")
    when = _valid_date(amz_date, _TIMESTAMP) if _AMZ_DATE.fullmatch(amz_date) else None
    if when is None:
        raise _malformed("X-Amz-Date must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z'.")
    skew = f"{max_skew // 60} min." if max_skew % 60 == 0 else f"{max_skew} s."
    signed_at = when.timestamp()
    if signed_at < now - max_skew:
        raise SignatureDoesNotMatch(
            f"Signature expired: {amz_date} is now earlier than {_stamp(now - max_skew)} "
            f"({_stamp(now)} - {skew})",
            reason="clock_skew",
        )
    if signed_at > now + max_skew:
        raise SignatureDoesNotMatch(
            f"Signature not yet current: {amz_date} is still later than "
            f"{_stamp(now + max_skew)} ({_stamp(now)} + {skew})",
            reason="clock_skew",
        )
    return amz_date


def _check_signed_headers(
    signed: tuple[str, ...], token: str | None, present: frozenset[str], fixed: bool
) -> None:
    """``present``: the headers the server can reproduce for this request; ``fixed`` says they
    are a fixed set (gRPC) rather than the headers the request happens to carry (HTTP)."""

    def refuse(message: str) -> SignatureDoesNotMatch:
        return SignatureDoesNotMatch(message, reason="signed_headers")

    required = (*REQUIRED_SIGNED, TOKEN) if token is not None else REQUIRED_SIGNED
    for name in required:
        if name not in signed:
            raise refuse(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
    for name in signed:
        if name == TOKEN:
            continue  # checked below against the request's token
        if name not in present:
            if fixed:
                raise refuse(
                    f"The signed header '{name}' cannot be verified: sign only host, "
                    "content-type, x-amz-date and x-amz-security-token."
                )
            raise refuse(f"The signed header '{name}' is not in the request.")
    if TOKEN in signed and token is None:
        raise refuse("'x-amz-security-token' is a signed header but the request has none.")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as its signer saw it: ``url`` is ``scheme://host/path?query``; ``headers``
    every header received (names compared case-insensitively); ``reproducible``, when given,
    the only headers that may be signed, with the values the server knows for them (the gRPC
    port cannot see ``host`` or ``content-type``), else any header of ``headers`` may be."""

    method: str
    url: str
    headers: Sequence[tuple[str, str | bytes]]
    body: bytes = field(repr=False)
    reproducible: Mapping[str, str] | None = None


def _expected_signature(
    request: SignedRequest,
    auth: Authorization,
    amz_date: str,
    token: str | None,
    secret: str,
) -> str:
    """botocore's signature for the request the client must have signed."""
    known = dict(request.reproducible or {})
    known.update({DATE: amz_date, TOKEN: token or ""})
    headers = {
        name: known[name] if name in known else _single(request.headers, name) or ""
        for name in auth.signed_headers
    }
    signed = AWSRequest(
        method=request.method, url=request.url, data=bytes(request.body), headers=headers
    )
    signed.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(auth.access_key_id, secret, token), auth.service, auth.region)
    canonical = signer.canonical_request(signed)
    signature: str = signer.signature(signer.string_to_sign(signed, canonical), signed)
    return signature


def verify_request(
    request: SignedRequest,
    lookup: SecretLookup,
    now: float,
    *,
    max_skew: int = 300,
    check_target: Callable[[], None] | None = None,
    unsigned_payload: bool = False,
) -> VerifiedCall:
    """Verify a SigV4-signed request (see the module docstring for the checks and reasons).

    ``now`` is the server's time in epoch seconds; ``check_target`` (raising for a request the
    verifier must not sign for) runs after the header checks, before the secret is looked up.
    ``unsigned_payload`` accepts a signed ``x-amz-content-sha256: UNSIGNED-PAYLOAD`` (the
    signature then covers no body, as S3 allows; Envoy's Check accepts it).
    Returns the signer's key id, the scope's region and service, and the session token when the
    key is temporary.
    """
    value = _single(request.headers, AUTHORIZATION)
    if value is None:
        raise MissingAuthenticationToken(
            "Request is missing Authentication Token", reason="missing"
        )
    auth = parse_authorization(value)
    amz_date = _check_date(_single(request.headers, DATE), now, max_skew)
    if auth.date != amz_date[:8]:
        raise SignatureDoesNotMatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            f"HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'.",
            reason="scope_date",
        )
    token = _single(request.headers, TOKEN)
    if token is not None and not token:
        raise _malformed("The 'x-amz-security-token' header is empty.")
    if request.reproducible is not None:
        present, fixed = frozenset({*request.reproducible, DATE}), True
    else:
        present, fixed = frozenset(key.lower() for key, _ in request.headers), False
    _check_signed_headers(auth.signed_headers, token, present, fixed)
    if CONTENT_SHA256 in auth.signed_headers:
        # botocore signs this header's value instead of hashing the body: it must be the body's.
        claimed = _single(request.headers, CONTENT_SHA256)
        if not (unsigned_payload and claimed == UNSIGNED_PAYLOAD) and (
            claimed != hashlib.sha256(request.body).hexdigest()
        ):
            raise SignatureDoesNotMatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                reason="mismatch",
            )
    if check_target is not None:
        check_target()

    secret = lookup(auth.access_key_id, token)
    expected = _expected_signature(request, auth, amz_date, token, secret)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureDoesNotMatch(MISMATCH, reason="mismatch")
    return VerifiedCall(auth.access_key_id, auth.region, auth.service, token)


def verify_call(
    method_path: str,
    body: bytes,
    metadata: Sequence[tuple[str, str | bytes]],
    lookup: SecretLookup,
    now: float,
    *,
    max_skew: int = 300,
) -> VerifiedCall:
    """Verify a SigV4-signed gRPC call: ``method_path`` is the path the server routes on,
    ``body`` the serialized request message, signed as ``POST https://iam-sidecar{path}``."""

    def check_path() -> None:
        if not _METHOD_PATH.fullmatch(method_path) or any(
            part in (".", "..") for part in method_path.split("/")
        ):
            raise _malformed("The request path is not a gRPC method path.")

    request = SignedRequest("POST", f"https://{HOST}{method_path}", metadata, body, GRPC_HEADERS)
    return verify_request(request, lookup, now, max_skew=max_skew, check_target=check_path)


def world_lookup(
    access_keys: Mapping[str, tuple[User, AccessKey]], ring: KeyRing, now: float
) -> SecretLookup:
    """A lookup over long-term keys (``World.access_keys``) and temporary keys (whose session
    token is verified with ``ring`` at ``now`` and must belong to the key id).

    Refusals: an unknown long-term key is InvalidClientTokenId (``unknown_key``); a token that
    does not verify raises what ``verify_token`` raises (InvalidClientTokenId with its reason,
    ExpiredToken ``expired``); a valid token of another key id is InvalidClientTokenId
    (``key_mismatch``). Revocation is not checked here.
    """

    def lookup(access_key_id: str, session_token: str | None) -> str:
        if session_token is None:
            entry = access_keys.get(access_key_id)
            if entry is None:
                raise InvalidClientTokenId(INVALID, reason="unknown_key")
            return entry[1].secret
        session, key = verify_token(session_token, ring, now)
        if session.access_key_id != access_key_id:
            raise InvalidClientTokenId(INVALID, reason="key_mismatch")
        return derive_secret(key, access_key_id)

    return lookup
