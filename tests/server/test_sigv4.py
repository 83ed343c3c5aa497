"""SigV4 on gRPC calls: botocore signs (sidecar.client.sigv4), the server verifies."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sidecar.client.sigv4 import sign_call
from sidecar.errors import (
    ExpiredToken,
    InvalidClientTokenId,
    MissingAuthenticationToken,
    SignatureDoesNotMatch,
    TokenError,
)
from sidecar.server.sigv4 import (
    MISMATCH,
    Authorization,
    SecretLookup,
    VerifiedCall,
    parse_authorization,
    verify_call,
    world_lookup,
)
from sidecar.sts.assume import issue_credentials
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from tests.fakes import CountingEntropy
from tests.sts.world import demo_world

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z
NOW = datetime.fromtimestamp(T0, UTC)
PATH = "/iamsidecar.v1.SecurityTokenService/GetCallerIdentity"
BODY = b"\n\x05hello"
KEY_ID = "AKIAALICE00000000001"
SECRET = "alice-secret"
WORLD = demo_world()
RING = KeyRing.generate(CountingEntropy(7), "k1")

Metadata = list[tuple[str, str | bytes]]


def lookup_for(secrets: dict[str, str]) -> SecretLookup:
    def lookup(access_key_id: str, session_token: str | None) -> str:
        if access_key_id not in secrets:
            raise InvalidClientTokenId(
                "The security token included in the request is invalid.", reason="unknown_key"
            )
        return secrets[access_key_id]

    return lookup


LOOKUP = lookup_for({KEY_ID: SECRET})


def sign(**overrides: object) -> Metadata:
    args: dict[str, object] = {
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "now": NOW,
    }
    args.update(overrides)
    return list(sign_call(PATH, BODY, **args))  # type: ignore[arg-type]


def verify(
    metadata: Metadata,
    *,
    path: str = PATH,
    body: bytes = BODY,
    lookup: SecretLookup = LOOKUP,
    now: float = T0,
) -> VerifiedCall:
    return verify_call(path, body, metadata, lookup, now)


def refusal(metadata: Metadata, **kwargs: object) -> TokenError:
    with pytest.raises(TokenError) as info:
        verify(metadata, **kwargs)  # type: ignore[arg-type]
    return info.value


def replaced(metadata: Metadata, name: str, value: str | bytes) -> Metadata:
    return [(k, value if k == name else v) for k, v in metadata]


def temporary_credentials(expires_in: int = 900, kid_ring: KeyRing = RING) -> tuple[str, str, str]:
    session = Session(
        partition="aws",
        account="111111111111",
        role_name="app",
        role_path="/",
        role_id="AROAEXAMPLEEXAMPLE1",
        session_name="s1",
        access_key_id="ASIAEXAMPLEEXAMPLE1",
        issued_at=T0 - 60,
        expires_at=T0 - 60 + expires_in,
    )
    creds = issue_credentials(kid_ring, session)
    return creds.access_key_id, creds.secret_access_key, creds.session_token


@pytest.fixture
def frozen_botocore(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Make botocore's add_auth sign at a chosen instant."""

    def freeze(at: datetime) -> None:
        naive = at.astimezone(UTC).replace(tzinfo=None)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: naive)

    return freeze


def botocore_metadata(
    headers: dict[str, str],
    *,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    token: str | None = None,
    region: str = "us-east-1",
    service: str = "sts",
    path: str = PATH,
    body: bytes = BODY,
) -> Metadata:
    """Sign with botocore's own add_auth (its clock) and turn the headers into metadata."""
    request = AWSRequest(
        method="POST", url=f"https://iam-sidecar{path}", data=body, headers=headers
    )
    SigV4Auth(Credentials(key_id, secret, token), service, region).add_auth(request)
    wanted = ("authorization", "x-amz-date", "x-amz-security-token")
    return [(k.lower(), v) for k, v in request.headers.items() if k.lower() in wanted]


# --- round trips ---------------------------------------------------------------------------


def test_round_trip_with_a_long_term_key() -> None:
    """A call signed with a long-term key verifies and names the key, region and service."""
    metadata = sign()
    assert [k for k, _ in metadata] == ["authorization", "x-amz-date"]
    assert dict(metadata)["x-amz-date"] == "20270115T080000Z"
    assert str(dict(metadata)["authorization"]).startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20270115/us-east-1/sts/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    assert verify(metadata) == VerifiedCall(KEY_ID, "us-east-1", "sts", None)


def test_round_trip_with_the_world_lookup() -> None:
    """world_lookup finds a long-term key's secret in World.access_keys."""
    lookup = world_lookup(WORLD.access_keys, RING, T0)
    assert verify(sign(), lookup=lookup).access_key_id == KEY_ID


def test_round_trip_with_temporary_credentials() -> None:
    """A temporary key signs with its session token, which the server passes to the lookup."""
    key_id, secret, token = temporary_credentials()
    seen: list[tuple[str, str | None]] = []

    def lookup(access_key_id: str, session_token: str | None) -> str:
        seen.append((access_key_id, session_token))
        return world_lookup(WORLD.access_keys, RING, T0)(access_key_id, session_token)

    metadata = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    assert ("x-amz-security-token", token) in metadata
    assert "x-amz-security-token" in str(dict(metadata)["authorization"])
    assert verify(metadata, lookup=lookup) == VerifiedCall(key_id, "us-east-1", "sts", token)
    assert seen == [(key_id, token)]


def test_empty_body_round_trip() -> None:
    """A request message that serializes to no bytes (GetCallerIdentity) still verifies."""
    metadata = sign_call(PATH, b"", access_key_id=KEY_ID, secret_access_key=SECRET, now=NOW)
    assert verify(list(metadata), body=b"").access_key_id == KEY_ID


@pytest.mark.parametrize(
    ("region", "service"), [("eu-west-1", "sts"), ("us-east-1", "execute-api")]
)
def test_the_scope_region_and_service_are_honoured(region: str, service: str) -> None:
    """The server verifies for the region and service that the credential scope states."""
    call = verify(sign(region=region, service=service))
    assert (call.region, call.service) == (region, service)


def test_the_scope_cannot_be_changed_after_signing() -> None:
    """Rewriting the scope's region in the header breaks the signature."""
    metadata = sign(region="eu-west-1")
    auth = str(dict(metadata)["authorization"]).replace("/eu-west-1/", "/us-east-1/")
    assert refusal(replaced(metadata, "authorization", auth)).reason == "mismatch"


def test_sign_call_matches_botocore_add_auth(frozen_botocore: Callable[[datetime], None]) -> None:
    """At the same instant, sign_call produces exactly what botocore's add_auth produces."""
    frozen_botocore(NOW)
    key_id, secret, token = temporary_credentials()
    headers = {"content-type": "application/grpc", "host": "iam-sidecar"}
    for creds in ((KEY_ID, SECRET, None), (key_id, secret, token)):
        expected = botocore_metadata(
            dict(headers), key_id=creds[0], secret=creds[1], token=creds[2]
        )
        got = sign(access_key_id=creds[0], secret_access_key=creds[1], session_token=creds[2])
        assert sorted(got) == sorted(expected)


def test_a_plain_botocore_signature_verifies_now() -> None:
    """A call signed by botocore's add_auth with the real clock verifies at the real time."""
    metadata = botocore_metadata({"host": "iam-sidecar"})
    assert verify(metadata, now=time.time()).access_key_id == KEY_ID


def test_sign_call_defaults_to_the_current_time() -> None:
    """Without ``now``, sign_call signs with the current time."""
    metadata = sign_call(PATH, BODY, access_key_id=KEY_ID, secret_access_key=SECRET)
    assert verify(list(metadata), now=time.time()).access_key_id == KEY_ID


def test_sign_call_converts_other_time_zones_to_utc() -> None:
    """An aware ``now`` in another zone is signed as its UTC instant."""
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    assert sign(now=tokyo) == sign()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"now": datetime(2027, 1, 15, 8, 0, 0)}, "timezone-aware"),  # naive on purpose
        ({"region": "EU/West"}, "region"),
        ({"service": ""}, "service"),
        ({"secret_access_key": ""}, "secret"),
    ],
)
def test_sign_call_refuses_bad_arguments(overrides: dict[str, object], match: str) -> None:
    """Naive datetimes, bad scope names and empty secrets are programming errors."""
    with pytest.raises(ValueError, match=match):
        sign(**overrides)


@pytest.mark.parametrize("path", ["GetCallerIdentity", "/a/../b", "/svc/m?x=1", "/only"])
def test_sign_call_refuses_paths_that_are_not_method_paths(path: str) -> None:
    """Only /package.Service/Method paths are signed."""
    with pytest.raises(ValueError, match="method path"):
        sign_call(path, BODY, access_key_id=KEY_ID, secret_access_key=SECRET, now=NOW)


# --- refusals ------------------------------------------------------------------------------


def test_tampered_body() -> None:
    """A body other than the signed one is a signature mismatch."""
    err = refusal(sign(), body=BODY + b"\x00")
    assert isinstance(err, SignatureDoesNotMatch)
    assert (err.reason, err.message) == ("mismatch", MISMATCH)


def test_wrong_method_path() -> None:
    """A signature for one method does not authorize another."""
    err = refusal(sign(), path="/iamsidecar.v1.SecurityTokenService/AssumeRole")
    assert isinstance(err, SignatureDoesNotMatch)
    assert err.reason == "mismatch"


def test_a_method_path_that_is_not_one_is_malformed() -> None:
    """A path the protocol cannot sign is refused before any lookup."""
    err = refusal(sign(), path="/x/../iamsidecar.v1.SecurityTokenService/GetCallerIdentity")
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "malformed")


def test_wrong_secret() -> None:
    """Signing with another secret is a mismatch, and the message holds neither secret."""
    metadata = sign(secret_access_key="not-alice-secret")
    err = refusal(metadata)
    assert isinstance(err, SignatureDoesNotMatch)
    assert err.reason == "mismatch"
    signature = str(dict(metadata)["authorization"]).rsplit("=", 1)[1]
    for text in (str(err), repr(err), err.message):
        assert SECRET not in text
        assert "not-alice-secret" not in text
        assert signature not in text


def test_wrong_secret_for_a_temporary_key() -> None:
    """A temporary key id and token with a secret not derived for it is a mismatch."""
    key_id, _, token = temporary_credentials()
    metadata = sign(access_key_id=key_id, secret_access_key=SECRET, session_token=token)
    lookup = world_lookup(WORLD.access_keys, RING, T0)
    assert refusal(metadata, lookup=lookup).reason == "mismatch"


def test_unknown_key() -> None:
    """A long-term key id the world does not know is InvalidClientTokenId (unknown_key)."""
    metadata = sign(access_key_id="AKIAUNKNOWN000000001")
    err = refusal(metadata, lookup=world_lookup(WORLD.access_keys, RING, T0))
    assert isinstance(err, InvalidClientTokenId)
    assert (err.reason, err.message) == (
        "unknown_key",
        "The security token included in the request is invalid.",
    )


def test_expired_session_token() -> None:
    """An expired session token is ExpiredToken, before the signature is looked at."""
    key_id, secret, token = temporary_credentials(expires_in=30)
    metadata = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    err = refusal(metadata, lookup=world_lookup(WORLD.access_keys, RING, T0))
    assert isinstance(err, ExpiredToken)
    assert err.reason == "expired"


def test_session_token_of_another_key() -> None:
    """A valid session token presented with another access key id is refused."""
    _, _, token = temporary_credentials()
    metadata = sign(session_token=token)  # alice's long-term key with a session's token
    err = refusal(metadata, lookup=world_lookup(WORLD.access_keys, RING, T0))
    assert isinstance(err, InvalidClientTokenId)
    assert err.reason == "key_mismatch"


def test_session_token_from_another_key_set() -> None:
    """A session token signed by a key set the server does not hold is refused."""
    key_id, secret, token = temporary_credentials(kid_ring=KeyRing.generate(CountingEntropy(99)))
    metadata = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    err = refusal(metadata, lookup=world_lookup(WORLD.access_keys, RING, T0))
    assert isinstance(err, InvalidClientTokenId)
    assert err.reason == "wrong_key"


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (
            -360,
            "Signature expired: 20270115T075400Z is now earlier than 20270115T075500Z "
            "(20270115T080000Z - 5 min.)",
        ),
        (
            360,
            "Signature not yet current: 20270115T080600Z is still later than 20270115T080500Z "
            "(20270115T080000Z + 5 min.)",
        ),
    ],
)
def test_x_amz_date_six_minutes_off(offset: int, message: str) -> None:
    """A signing time 6 minutes before or after the server's clock is clock skew."""
    err = refusal(sign(now=NOW + timedelta(seconds=offset)))
    assert isinstance(err, SignatureDoesNotMatch)
    assert (err.reason, err.message) == ("clock_skew", message)


@pytest.mark.parametrize("offset", [-300, 300])
def test_x_amz_date_exactly_five_minutes_off_is_accepted(offset: int) -> None:
    """The 5-minute window includes its ends."""
    assert verify(sign(now=NOW + timedelta(seconds=offset))).access_key_id == KEY_ID


def test_scope_date_differs_from_x_amz_date() -> None:
    """A scope dated another day than x-amz-date is refused, even within the skew window."""
    midnight = datetime(2027, 1, 15, 0, 0, 30, tzinfo=UTC)
    metadata = replaced(sign(now=midnight), "x-amz-date", "20270114T235930Z")
    err = refusal(metadata, now=midnight.timestamp())
    assert isinstance(err, SignatureDoesNotMatch)
    assert err.reason == "scope_date"
    assert err.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '20270115' != '20270114', from '20270114T235930Z'."
    )


def test_changed_x_amz_date_within_the_window() -> None:
    """Changing x-amz-date (same day, within the window) breaks the signature."""
    metadata = replaced(sign(), "x-amz-date", "20270115T080001Z")
    assert refusal(metadata).reason == "mismatch"


@pytest.mark.parametrize(
    "metadata", [[], [("x-amz-date", "20270115T080000Z")], [("authorization", "")]]
)
def test_missing_authorization(metadata: Metadata) -> None:
    """No (or an empty) authorization is MissingAuthenticationToken."""
    err = refusal(metadata)
    assert isinstance(err, MissingAuthenticationToken)
    assert (err.reason, err.message) == ("missing", "Request is missing Authentication Token")


GOOD = (
    "AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20270115/us-east-1/sts/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "a" * 64
)


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 garbage",
        GOOD.replace("Credential=", "Credentials="),
        GOOD.replace(", Signature=" + "a" * 64, ""),
        GOOD + ", Signature=" + "b" * 64,
        GOOD.replace("/aws4_request", "/aws4_request/extra"),
        GOOD.replace("/aws4_request", "/aws5_request"),
        GOOD.replace("AKIAALICE00000000001", "akia-alice"),
        GOOD.replace("AKIAALICE00000000001/", ""),
        GOOD.replace("20270115", "20271345"),
        GOOD.replace("20270115", "2027-01-15"),
        GOOD.replace("us-east-1", ""),
        GOOD.replace("us-east-1", "US East 1"),
        GOOD.replace("/sts/", "/s t s/"),
        GOOD.replace("content-type;host", "Content-Type;Host"),
        GOOD.replace("content-type;host", "host;host"),
        GOOD.replace("content-type;host", "content-type;;host"),
        GOOD.replace("a" * 64, "A" * 64),
        GOOD.replace("a" * 64, "a" * 63),
        GOOD.replace("a" * 64, "z" * 64),
        GOOD.replace("Signature=", " " * 5000 + "Signature="),
        GOOD.replace(", ", " "),
    ],
)
def test_garbage_authorization_is_malformed(value: str) -> None:
    """An authorization that is not a well-formed SigV4 header is SignatureDoesNotMatch (malformed)."""
    metadata: Metadata = [("authorization", value), ("x-amz-date", "20270115T080000Z")]
    err = refusal(metadata)
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "malformed")
    assert "a" * 64 not in err.message


@pytest.mark.parametrize(
    "value", ["Bearer IAMS1.eyJ.eyJ.sig", "AWS4-HMAC-SHA512 Credential=x", "secret-token-only"]
)
def test_other_algorithms_are_refused_without_echoing(value: str) -> None:
    """Another scheme is unsupported_algorithm, and the message does not repeat the value."""
    err = refusal([("authorization", value), ("x-amz-date", "20270115T080000Z")])
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "unsupported_algorithm")
    assert value.split()[-1] not in err.message


@pytest.mark.parametrize(
    "date", ["", "20270115", "20270115T080000", "2027-01-15T08:00:00Z", "20271315T080000Z", "x"]
)
def test_garbage_x_amz_date_is_malformed(date: str) -> None:
    """An x-amz-date not in the basic ISO 8601 form is malformed."""
    err = refusal(replaced(sign(), "x-amz-date", date))
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "malformed")


def test_missing_x_amz_date_is_malformed() -> None:
    """Without x-amz-date the call is refused as malformed."""
    metadata = [(k, v) for k, v in sign() if k != "x-amz-date"]
    err = refusal(metadata)
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "malformed")


@pytest.mark.parametrize("name", ["authorization", "x-amz-date"])
def test_repeated_headers_are_malformed(name: str) -> None:
    """A header given twice is ambiguous, so it is refused."""
    metadata = sign()
    metadata.append((name, dict(metadata)[name]))
    assert refusal(metadata).reason == "malformed"


def test_repeated_security_token_is_malformed() -> None:
    """Two session tokens are refused as malformed."""
    key_id, secret, token = temporary_credentials()
    metadata = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    metadata.append(("x-amz-security-token", token))
    assert refusal(metadata).reason == "malformed"


def test_non_ascii_bytes_are_malformed() -> None:
    """Metadata bytes that are not ASCII are refused as malformed."""
    err = refusal(replaced(sign(), "x-amz-date", b"\xff\xfe"))
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "malformed")


def test_metadata_values_given_as_bytes() -> None:
    """Values given as bytes (and keys in another case) verify like strings."""
    key_id, secret, token = temporary_credentials()
    metadata = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    as_bytes: Metadata = [(k.upper(), str(v).encode()) for k, v in metadata]
    lookup = world_lookup(WORLD.access_keys, RING, T0)
    assert verify(as_bytes, lookup=lookup) == VerifiedCall(key_id, "us-east-1", "sts", token)


# --- signed headers ------------------------------------------------------------------------


def test_minimal_signed_headers_are_enough(frozen_botocore: Callable[[datetime], None]) -> None:
    """Signing only host and x-amz-date (no content-type) is accepted."""
    frozen_botocore(NOW)
    metadata = botocore_metadata({"host": "iam-sidecar"})
    assert "SignedHeaders=host;x-amz-date," in str(dict(metadata)["authorization"])
    assert verify(metadata).access_key_id == KEY_ID


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"host": "iam-sidecar", "x-trace": "1"}, "'x-trace' cannot be verified"),
        ({"host": "iam-sidecar", "content-length": "7"}, "'content-length' cannot be verified"),
    ],
)
def test_unreproducible_signed_headers_are_refused(
    frozen_botocore: Callable[[datetime], None], headers: dict[str, str], fragment: str
) -> None:
    """A signed header the server cannot reproduce is refused (signed_headers)."""
    frozen_botocore(NOW)
    err = refusal(botocore_metadata(headers))
    assert (type(err), err.reason) == (SignatureDoesNotMatch, "signed_headers")
    assert fragment in err.message


def test_host_must_be_signed() -> None:
    """An authorization whose signed headers leave out host is refused (signed_headers)."""
    metadata = sign()
    auth = str(dict(metadata)["authorization"]).replace("content-type;host;", "content-type;")
    err = refusal(replaced(metadata, "authorization", auth))
    assert err.reason == "signed_headers"
    assert err.message == "'host' must be a 'SignedHeader' in the AWS Authorization."


def test_security_token_must_be_signed_when_present() -> None:
    """A session token that is present but not signed is refused (signed_headers)."""
    key_id, secret, token = temporary_credentials()
    metadata = sign(access_key_id=key_id, secret_access_key=secret)  # token not signed
    metadata.append(("x-amz-security-token", token))
    err = refusal(metadata)
    assert err.reason == "signed_headers"
    assert "x-amz-security-token" in err.message
    assert token not in err.message


def test_signed_security_token_must_be_present() -> None:
    """A signed x-amz-security-token that the call does not carry is refused."""
    key_id, secret, token = temporary_credentials()
    metadata = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    metadata = [(k, v) for k, v in metadata if k != "x-amz-security-token"]
    assert refusal(metadata).reason == "signed_headers"


def test_content_type_must_be_application_grpc(frozen_botocore: Callable[[datetime], None]) -> None:
    """A signed content-type other than application/grpc does not verify."""
    frozen_botocore(NOW)
    metadata = botocore_metadata({"host": "iam-sidecar", "content-type": "application/grpc+proto"})
    assert refusal(metadata).reason == "mismatch"


# --- parsing and constant-time comparison --------------------------------------------------


def test_parse_authorization() -> None:
    """The parts are returned, and the signature is not shown in the repr."""
    value = GOOD.replace(", ", ",").replace("Credential=", "Signature=" + "a" * 64 + ",Credential=")
    value = value.rsplit(",Signature=", 1)[0]
    auth = parse_authorization(value)
    assert auth == Authorization(
        "AKIAALICE00000000001",
        "20270115",
        "us-east-1",
        "sts",
        ("content-type", "host", "x-amz-date"),
        "a" * 64,
    )
    assert "a" * 64 not in repr(auth)


def test_signature_comparison_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature is compared with hmac.compare_digest, whose answer decides."""
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    metadata = sign()
    verify(metadata)
    signature = str(dict(metadata)["authorization"]).rsplit("=", 1)[1].encode()
    assert calls == [(signature, signature)]

    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    assert refusal(metadata).reason == "mismatch"


# --- one digit, one empty header ------------------------------------------------------------


def flip_last_signature_digit(metadata: Metadata) -> Metadata:
    """The same call with the last hex digit of its signature changed (and nothing else)."""
    auth = str(dict(metadata)["authorization"])
    flipped = auth[:-1] + format(int(auth[-1], 16) ^ 1, "x")
    assert flipped != auth
    assert len(flipped) == len(auth)
    return replaced(metadata, "authorization", flipped)


def test_a_signature_with_its_last_digit_changed_is_refused() -> None:
    """Every digit of the signature counts: the last one changed is SignatureDoesNotMatch."""
    key_id, secret, token = temporary_credentials()
    lookup = world_lookup(WORLD.access_keys, RING, T0)
    temporary = sign(access_key_id=key_id, secret_access_key=secret, session_token=token)
    for metadata in (sign(), temporary):
        assert verify(metadata, lookup=lookup).access_key_id in (KEY_ID, key_id)
        err = refusal(flip_last_signature_digit(metadata), lookup=lookup)
        assert isinstance(err, SignatureDoesNotMatch)
        assert (err.code, err.reason, err.message) == (
            "SignatureDoesNotMatch",
            "mismatch",
            MISMATCH,
        )


def test_an_empty_security_token_is_refused_as_malformed(
    frozen_botocore: Callable[[datetime], None],
) -> None:
    """``x-amz-security-token: ""`` is refused up front, even when it is signed and the key
    would verify without it (a long-term key, whose lookup ignores the token)."""
    frozen_botocore(NOW)
    metadata = botocore_metadata({"host": "iam-sidecar", "x-amz-security-token": ""})
    assert ("x-amz-security-token", "") in metadata
    assert "x-amz-security-token" in str(dict(metadata)["authorization"])
    err = refusal(metadata)
    assert isinstance(err, SignatureDoesNotMatch)
    assert (err.code, err.reason, err.message) == (
        "SignatureDoesNotMatch",
        "malformed",
        "The 'x-amz-security-token' header is empty.",
    )
    # With the world's lookup too (an empty token is not looked up as a session).
    err = refusal(metadata, lookup=world_lookup(WORLD.access_keys, RING, T0))
    assert (err.code, err.reason) == ("SignatureDoesNotMatch", "malformed")
