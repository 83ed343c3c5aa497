"""Session tokens: round trip, every distinct refusal, rotation and verify-only rings."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from sidecar.errors import ExpiredToken, InvalidClientTokenId, KeySetError, TokenError
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from sidecar.sts.tokens import derive_secret, encode_token, verify_token
from tests.fakes import CountingEntropy

T0 = 1_800_000_000
SESSION = Session(
    partition="aws",
    account="111111111111",
    role_name="app",
    role_path="/",
    role_id="AROAEXAMPLEEXAMPLE1",
    session_name="s1",
    access_key_id="ASIAEXAMPLEEXAMPLE1",
    issued_at=T0,
    expires_at=T0 + 900,
    session_policies=(("SessionPolicy", '{"Version":"2012-10-17"}'),),
    tags=(("team", "payments"),),
    transitive_tag_keys=("team",),
    source_identity="alice",
    mfa_authenticated_at=T0,
    federated_provider="arn:aws:iam::111111111111:oidc-provider/issuer.example",
    federated_claims=(("issuer.example:sub", ("system:serviceaccount:shop:orders",)),),
    chained=True,
)


def ring(seed: int = 1, kid: str = "k1") -> KeyRing:
    return KeyRing.generate(CountingEntropy(seed), kid)


def reason(token: str, keys: KeyRing, now: float = T0 + 1) -> str:
    with pytest.raises(TokenError) as info:
        verify_token(token, keys, now)
    return info.value.reason


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class TestRoundTrip:
    def test_everything_survives_the_token(self) -> None:
        """Every session field comes back unchanged after signing and verifying."""
        keys = ring()
        session, key = verify_token(encode_token(SESSION, keys), keys, T0 + 10)
        assert session == SESSION
        assert key.kid == "k1"

    def test_secret_is_recoverable_only_with_the_key_set(self) -> None:
        """The secret derives from the key's secret; another key set derives another one."""
        keys = ring()
        secret = derive_secret(keys.active, SESSION.access_key_id)
        assert len(secret) == 40
        assert derive_secret(keys.verify_only().get("k1"), SESSION.access_key_id) == secret  # type: ignore[arg-type]
        assert derive_secret(ring(seed=2).active, SESSION.access_key_id) != secret
        assert secret not in encode_token(SESSION, keys)


class TestRefusals:
    def test_tampered_payload(self) -> None:
        """Changing the payload breaks the signature: reason `tampered`."""
        keys = ring()
        prefix, header, payload, sig = encode_token(SESSION, keys).split(".")
        body = json.loads(base64.urlsafe_b64decode(payload + "=="))
        body["r"] = "admin"
        assert reason(".".join([prefix, header, _b64(body), sig]), keys) == "tampered"

    def test_wrong_key_with_a_known_id(self) -> None:
        """A token signed by another key claiming our key id: reason `wrong_key`."""
        assert reason(encode_token(SESSION, ring(seed=9)), ring()) == "wrong_key"

    def test_unknown_key_id(self) -> None:
        """A key id the ring does not hold: reason `unknown_key`."""
        assert reason(encode_token(SESSION, ring(kid="other")), ring()) == "unknown_key"

    @pytest.mark.parametrize(
        "token",
        ["", "garbage", "IAMS1.a.b", "IAMS1.!!.!!.!!", "JWT.a.b.c", "IAMS1." + "a" * 20000],
    )
    def test_malformed(self, token: str) -> None:
        """Anything that is not a well-formed token: reason `malformed`."""
        assert reason(token, ring()) == "malformed"

    def test_valid_signature_over_a_bad_payload_is_malformed(self) -> None:
        """A correctly signed payload that is not a session is refused, not crashed on."""
        keys = ring()
        key = keys.active
        assert key.private is not None
        header = _b64({"kid": key.kid, "fp": key.fingerprint})
        payload = _b64({"r": 3})
        sig = base64.urlsafe_b64encode(key.private.sign(f"IAMS1.{header}.{payload}".encode()))
        token = f"IAMS1.{header}.{payload}.{sig.rstrip(b'=').decode()}"
        assert reason(token, keys) == "malformed"

    def test_expires_at_the_exact_second(self) -> None:
        """Valid one second before expiry; expired at expiry (ExpiredToken)."""
        keys = ring()
        token = encode_token(SESSION, keys)
        verify_token(token, keys, SESSION.expires_at - 1)
        with pytest.raises(ExpiredToken) as info:
            verify_token(token, keys, SESSION.expires_at)
        assert info.value.reason == "expired"
        assert info.value.message == "The security token included in the request is expired"

    def test_not_yet_valid_beyond_the_leeway(self) -> None:
        """Issued in the future by more than the leeway: reason `not_yet_valid`."""
        keys = ring()
        token = encode_token(SESSION, keys)
        verify_token(token, keys, T0 - 30)  # within the default 30 s leeway
        with pytest.raises(InvalidClientTokenId) as info:
            verify_token(token, keys, T0 - 31)
        assert info.value.reason == "not_yet_valid"
        verify_token(token, keys, T0 - 31, not_before_leeway=60)


class TestRotation:
    def test_old_sessions_verify_after_rotation_and_new_ones_use_the_new_key(self) -> None:
        """Rotating adds an active key and keeps the old one for verification."""
        old = ring()
        old_token = encode_token(SESSION, old)
        new = old.rotated(CountingEntropy(50), "k2")
        assert new.active_kid == "k2"
        verify_token(old_token, new, T0 + 1)
        new_token = encode_token(SESSION, new)
        _, key = verify_token(new_token, new, T0 + 1)
        assert key.kid == "k2"
        assert reason(new_token, old) == "unknown_key"

    def test_verify_only_ring_verifies_but_cannot_sign(self) -> None:
        """A replica with public keys only checks tokens and refuses to mint them."""
        keys = ring()
        public = KeyRing.from_dict(keys.to_dict(include_private=False))
        assert not public.can_sign
        verify_token(encode_token(SESSION, keys), public, T0 + 1)
        with pytest.raises(KeySetError):
            encode_token(SESSION, public)

    def test_key_set_document_round_trip(self) -> None:
        """A key set written and read back signs and verifies the same."""
        keys = ring().rotated(CountingEntropy(7), "k2")
        again = KeyRing.from_dict(json.loads(json.dumps(keys.to_dict())))
        assert again.active_kid == "k2"
        assert sorted(again.kids()) == ["k1", "k2"]
        verify_token(encode_token(SESSION, keys), again, T0 + 1)

    def test_inconsistent_key_sets_are_refused(self) -> None:
        """A private key that does not match its public key, or a missing secret, is refused."""
        a = ring(seed=1).to_dict()
        b = ring(seed=2).to_dict()
        a["keys"][0]["public_key"] = b["keys"][0]["public_key"]
        with pytest.raises(KeySetError, match="does not match"):
            KeyRing.from_dict(a)
        c = ring().to_dict()
        del c["keys"][0]["secret"]
        with pytest.raises(KeySetError):
            KeyRing.from_dict(c)
        with pytest.raises(KeySetError):
            KeyRing.from_dict({"active": "nope", "keys": []})


def _alphabet_twin(last: str) -> str:
    """Another base64url character whose high bits are the same as ``last``'s: with the 2
    unused low bits of a 64-byte signature's last character set, the lenient decoder gives
    the same bytes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = alphabet.index(last)
    return alphabet[i ^ 1]


class TestCanonical:
    """Exactly one string verifies for a session: each token is one cache key, never many."""

    @pytest.mark.parametrize(
        "change",
        [
            lambda t: t + "!!!!",
            lambda t: t + "!",
            lambda t: t + "=",
            lambda t: t + "==",
            lambda t: t + "AA",
            lambda t: t + "A",
            lambda t: " " + t,
            lambda t: t + " ",
            lambda t: t + "\n",
            lambda t: t[:60] + "\n" + t[60:],
            lambda t: t[:-10] + " " + t[-10:],
            lambda t: t[:-10] + "!" + t[-10:],
        ],
        ids=[
            "four-bangs",
            "one-bang",
            "padding",
            "double-padding",
            "two-chars",
            "one-char",
            "leading-space",
            "trailing-space",
            "trailing-newline",
            "newline-inside",
            "space-in-signature",
            "bang-in-signature",
        ],
    )
    def test_anything_added_is_malformed(self, change: object) -> None:
        """Characters added to (or inside) a valid token make it malformed; before, the
        lenient base64 decoder dropped them and the token verified."""
        keys = ring()
        token = encode_token(SESSION, keys)
        verify_token(token, keys, T0 + 1)
        assert reason(change(token), keys) == "malformed"  # type: ignore[operator]

    def test_non_canonical_last_signature_character(self) -> None:
        """A 64-byte signature leaves 2 unused bits in its last base64 character; setting
        them gives the same bytes through a lenient decoder, but is refused."""
        keys = ring()
        token = encode_token(SESSION, keys)
        sig = token.rsplit(".", 1)[1]
        assert len(sig) == 86
        twin = token[:-1] + _alphabet_twin(token[-1])
        assert base64.urlsafe_b64decode(twin.rsplit(".", 1)[1] + "==") == base64.urlsafe_b64decode(
            sig + "=="
        )
        assert reason(twin, keys) == "malformed"

    def test_non_canonical_payload(self) -> None:
        """The payload's text is decoded as strictly, before the signature is checked."""
        keys = ring()
        for n in range(8):
            token = encode_token(dataclasses.replace(SESSION, session_name=f"s{n}"), keys)
            prefix, header, payload, sig = token.split(".")
            if len(payload) % 4 in (2, 3):  # the last character has unused low bits
                break
        else:  # pragma: no cover
            pytest.fail("no payload with unused bits")
        twin = payload[:-1] + _alphabet_twin(payload[-1])
        assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(payload + "==")
        assert reason(".".join([prefix, header, twin, sig]), keys) == "malformed"

    def test_standard_alphabet_is_refused(self) -> None:
        """`+` and `/` (standard base64) in place of `-` and `_` are refused, not translated."""
        keys = ring()
        for n in range(40):
            token = encode_token(dataclasses.replace(SESSION, session_name=f"s{n}"), keys)
            sig = token.rsplit(".", 1)[1]
            if "-" in sig or "_" in sig:
                break
        else:  # pragma: no cover - 40 signatures without either character
            pytest.fail("no signature with - or _")
        swapped = sig.replace("-", "+").replace("_", "/")
        assert reason(token[: -len(sig)] + swapped, keys) == "malformed"

    def test_unreduced_signature_scalar_is_refused(self) -> None:
        """S + L (the group order) is the same scalar mod L; Ed25519 verification refuses
        it, so it is not a second valid signature."""
        keys = ring()
        token = encode_token(SESSION, keys)
        head, sig = token.rsplit(".", 1)
        raw = base64.urlsafe_b64decode(sig + "==")
        order = 2**252 + 27742317777372353535851937790883648493
        s = int.from_bytes(raw[32:], "little") + order
        assert s < 2**256
        other = raw[:32] + s.to_bytes(32, "little")
        forged = head + "." + base64.urlsafe_b64encode(other).rstrip(b"=").decode()
        assert reason(forged, keys) == "tampered"
