"""OIDC token validation (pure) and the server's JWKS cache, with real keys and real JWTs."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.errors import (
    ExpiredTokenException,
    FederationError,
    IDPCommunicationError,
    InvalidIdentityToken,
)
from sidecar.identity.model import World
from sidecar.server.jwks import JwksCache
from sidecar.sts.federation.oidc import ValidatedToken, find_provider, validate_token
from tests.sts.conftest import START
from tests.sts.federation.oidc_world import (
    CORP_ARN,
    CORP_CLIENT,
    CORP_ISSUER,
    CORP_KID,
    K8S_ARN,
    K8S_AUD,
    K8S_ISSUER,
    K8S_KID,
    K8S_OTHER_AUD,
    ORDERS_SA,
    DownKeys,
    StaticKeys,
    attacks,
    b64json,
    corp_claims,
    corp_token,
    ec_key,
    k8s_claims,
    k8s_jwks,
    k8s_provider,
    k8s_token,
    oidc_world,
    public_jwk,
    raw_token,
    rs256_raw,
    rsa_key,
    sign,
    sign_bytes,
)
from tests.sts.world import A, B


@pytest.fixture
def world() -> World:
    return oidc_world()


def check(
    world: World, token: str, keys: Any = None, now: float = START, **kw: Any
) -> ValidatedToken:
    return validate_token(token, world, keys if keys is not None else StaticKeys(), now, **kw)


def refused(
    world: World, token: str, keys: Any = None, now: float = START, **kw: Any
) -> FederationError:
    with pytest.raises(FederationError) as info:
        check(world, token, keys, now, **kw)
    return info.value


class TestValidTokens:
    def test_kubernetes_service_account_token(self, world: World) -> None:
        """A projected service-account token validates against the cluster's provider."""
        v = check(world, k8s_token())
        assert v.provider.arn == K8S_ARN
        assert v.subject == ORDERS_SA
        assert v.audience == K8S_AUD
        assert v.issuer == K8S_ISSUER
        assert v.claims["kubernetes.io"]["namespace"] == "shop"
        assert v.claims["kubernetes.io"]["serviceaccount"]["name"] == "orders"
        assert v.claims["kubernetes.io"]["pod"]["name"].startswith("orders-")

    @pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
    def test_rsa_algorithms(self, world: World, alg: str) -> None:
        """An RSA JWK without an alg member verifies RS256, RS384 and RS512."""
        assert check(world, sign(k8s_claims(), alg=alg)).subject == ORDERS_SA

    def test_es256_with_azp(self, world: World) -> None:
        """An ES256 token whose azp is a client id: the audience is the azp."""
        v = check(world, corp_token())
        assert (v.provider.arn, v.audience, v.issuer) == (CORP_ARN, CORP_CLIENT, CORP_ISSUER)

    def test_es384(self, world: World) -> None:
        """A P-384 key verifies ES384 tokens."""
        key = ec_key("p384", "P-384")
        keys = StaticKeys({CORP_ARN: [public_jwk(key, "p384", use="sig")]})
        token = sign(corp_claims(), key=key, alg="ES384", kid="p384")
        assert check(world, token, keys).subject == "user-4711"

    def test_audience_from_a_list(self, world: World) -> None:
        """aud may be a list; the first value that is a client id is the audience."""
        v = check(world, k8s_token(aud=["https://kubernetes.default.svc", K8S_OTHER_AUD]))
        assert v.audience == K8S_OTHER_AUD

    def test_aud_used_when_azp_is_not_a_client_id(self, world: World) -> None:
        """An azp that is not a client id does not spoil an aud that is."""
        v = check(world, corp_token(azp="someone-else", aud=CORP_CLIENT))
        assert v.audience == CORP_CLIENT

    def test_issuer_trailing_slash(self, world: World) -> None:
        """One trailing slash on iss (or on the registered URL) is ignored, as in IAM."""
        v = check(world, corp_token(iss=CORP_ISSUER + "/"))
        assert v.provider.arn == CORP_ARN
        assert v.issuer == CORP_ISSUER + "/"
        assert check(world, k8s_token(iss=K8S_ISSUER + "/")).provider.arn == K8S_ARN

    def test_leeway_on_both_ends(self, world: World) -> None:
        """Within the leeway, a just-expired or not-quite-valid token is accepted."""
        check(world, k8s_token(exp=START - 30, iat=START - 600, nbf=START - 600))
        check(world, k8s_token(nbf=START + 30, iat=START + 30))
        err = refused(world, k8s_token(exp=START - 30, iat=START - 600), leeway=0)
        assert err.reason == "expired"

    def test_single_key_without_kid(self, world: World) -> None:
        """A token without kid is verified by the provider's only key for its algorithm."""
        assert check(world, sign(k8s_claims(), kid=None)).subject == ORDERS_SA

    def test_rotation_found_by_one_refresh(self, world: World) -> None:
        """A kid the cache does not know yet is found by exactly one refresh."""
        new = rsa_key("rotated")
        keys = StaticKeys(
            {K8S_ARN: k8s_jwks()},
            rotated={K8S_ARN: [*k8s_jwks(), public_jwk(new, "k8s-2028")]},
        )
        check(world, sign(k8s_claims(), key=new, kid="k8s-2028"), keys)
        assert keys.calls == [(K8S_ARN, "k8s-2028", False), (K8S_ARN, "k8s-2028", True)]

    def test_known_kid_needs_no_refresh(self, world: World) -> None:
        """A known kid asks the key source once, without refresh."""
        keys = StaticKeys()
        check(world, k8s_token(), keys)
        assert keys.calls == [(K8S_ARN, K8S_KID, False)]

    def test_private_members_of_a_jwk_are_ignored(self, world: World) -> None:
        """A JWKS that leaks private members still only verifies with the public key."""
        leaked = {**k8s_jwks()[0], "d": "AAAA", "p": "AAAA"}
        assert check(world, k8s_token(), StaticKeys({K8S_ARN: [leaked]})).subject == ORDERS_SA


class TestAttacks:
    @pytest.mark.parametrize("attack", attacks(), ids=lambda a: a.name)
    def test_refused_with_code_and_reason(self, world: World, attack: Any) -> None:
        """Each hostile token is refused with its error code and reason, before any key use
        when the refusal does not need the keys."""
        keys = StaticKeys()
        err = refused(world, attack.token, keys)
        assert (err.code, err.reason) == (attack.code, attack.reason)
        if not attack.fetches_keys:
            assert keys.calls == []
        assert len(keys.calls) <= 2
        # Nothing else is affected: the same validator still accepts a good token.
        assert check(world, k8s_token(), keys).subject == ORDERS_SA

    @pytest.mark.parametrize(
        "alg", ["none", "None", "HS256", "HS512", "PS256", "ES512", "EdDSA", ""]
    )
    def test_algorithms_outside_the_list(self, world: World, alg: str) -> None:
        """Only RS256/384/512 and ES256/384 are accepted; anything else is refused unkeyed."""
        keys = StaticKeys()
        err = refused(world, raw_token({"alg": alg, "kid": K8S_KID}, k8s_claims(), b"sig"), keys)
        assert err.reason == "alg_not_allowed"
        assert keys.calls == []

    def test_missing_alg(self, world: World) -> None:
        """A header without alg is refused as not allowed."""
        assert (
            refused(world, raw_token({"kid": K8S_KID}, k8s_claims(), b"sig")).reason
            == "alg_not_allowed"
        )

    def test_alg_switched_in_header(self, world: World) -> None:
        """Re-labelling an RS256 token as RS512 breaks the signature."""
        _head, payload, sig = k8s_token().split(".")
        forged = f"{b64json({'alg': 'RS512', 'kid': K8S_KID})}.{payload}.{sig}"
        assert refused(world, forged).reason == "bad_signature"

    def test_ec_kid_with_rsa_alg(self, world: World) -> None:
        """A kid naming an EC key cannot be used with an RSA algorithm."""
        token = sign(corp_claims(), key=rsa_key(), alg="RS256", kid=CORP_KID)
        assert refused(world, token).reason == "unknown_kid"

    def test_jwk_bound_to_another_alg(self, world: World) -> None:
        """A JWK declaring alg RS256 does not verify an RS512 token."""
        keys = StaticKeys({K8S_ARN: [public_jwk(rsa_key(), K8S_KID, alg="RS256")]})
        assert refused(world, sign(k8s_claims(), alg="RS512"), keys).reason == "unknown_kid"

    def test_encryption_key_not_used(self, world: World) -> None:
        """A JWK marked use=enc never verifies signatures."""
        keys = StaticKeys({K8S_ARN: [public_jwk(rsa_key(), K8S_KID, use="enc")]})
        assert refused(world, k8s_token(), keys).reason == "unknown_kid"

    def test_unknown_kid_refreshes_once(self, world: World) -> None:
        """An unknown kid asks for a refresh exactly once, then is refused."""
        keys = StaticKeys()
        err = refused(world, sign(k8s_claims(), kid="nope"), keys)
        assert err.reason == "unknown_kid"
        assert keys.calls == [(K8S_ARN, "nope", False), (K8S_ARN, "nope", True)]

    def test_no_kid_and_several_keys(self, world: World) -> None:
        """Without kid, a JWKS with several candidate keys is ambiguous: refused."""
        keys = StaticKeys({K8S_ARN: [*k8s_jwks(), public_jwk(rsa_key("second"), "second")]})
        assert refused(world, sign(k8s_claims(), kid=None), keys).reason == "unknown_kid"

    def test_weak_rsa_key(self, world: World) -> None:
        """A 1024-bit RSA key in the JWKS is refused as too weak."""
        weak = rsa_key("weak", 1024)
        keys = StaticKeys({K8S_ARN: [public_jwk(weak, "weak")]})
        err = refused(world, rs256_raw(k8s_claims(), weak, "weak"), keys)
        assert (err.code, err.reason) == ("InvalidIdentityToken", "weak_key")

    def test_expired_message(self, world: World) -> None:
        """An expired token gets AWS's message with both epoch times."""
        err = refused(world, k8s_token(exp=START - 120, iat=START - 900, nbf=START - 900))
        assert isinstance(err, ExpiredTokenException)
        assert err.message == (
            f"Token expired: current date/time {START} must be before the expiration "
            f"date/time {START - 120}"
        )

    def test_too_old_message(self, world: World) -> None:
        """A token issued longer ago than the maximum age is 'too old' with its age."""
        err = refused(world, k8s_token(iat=START - 100, nbf=START - 100), max_age=60)
        assert isinstance(err, ExpiredTokenException)
        assert (err.reason, err.message) == ("too_old", "Token too old: 100")

    def test_issued_in_the_future(self, world: World) -> None:
        """iat beyond the leeway in the future is not yet valid."""
        err = refused(world, k8s_token(iat=START + 300, nbf=None, exp=START + 3900))
        assert (err.code, err.reason) == ("InvalidIdentityToken", "not_yet_valid")

    def test_unknown_issuer_message(self, world: World) -> None:
        """An unregistered issuer gets AWS's 'No OpenIDConnect provider' message."""
        err = refused(world, sign(k8s_claims(iss="https://evil.example.com")))
        assert (
            err.message
            == "No OpenIDConnect provider found in your account for https://evil.example.com"
        )

    def test_issuer_is_exact(self, world: World) -> None:
        """Scheme, case and extra path segments matter: only a trailing slash is ignored."""
        for iss in (
            "http://kubernetes.default.svc",
            "https://KUBERNETES.default.svc",
            K8S_ISSUER + "/x",
            K8S_ISSUER + "//",
        ):
            assert refused(world, sign(k8s_claims(iss=iss))).reason == "unknown_issuer"

    def test_provider_of_another_account(self, world: World) -> None:
        """Looking in one account ignores providers registered in others."""
        assert refused(world, k8s_token(), account=B).reason == "unknown_issuer"
        assert check(world, k8s_token(), account=A).provider.arn == K8S_ARN
        assert find_provider(world, K8S_ISSUER, "999999999999") is None

    def test_wrong_audience_message(self, world: World) -> None:
        """Neither aud nor azp among the client ids: 'Incorrect token audience'."""
        err = refused(world, corp_token(aud=["profile-api"], azp="profile-api"))
        assert (err.code, err.reason, err.message) == (
            "InvalidIdentityToken",
            "wrong_audience",
            "Incorrect token audience",
        )

    @pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss"])
    def test_missing_required_claim(self, world: World, claim: str) -> None:
        """A token without sub, exp, iat or iss is refused as missing a claim."""
        token = sign({k: v for k, v in k8s_claims().items() if k != claim})
        assert refused(world, token).reason == "missing_claim"

    def test_empty_sub(self, world: World) -> None:
        """An empty sub counts as missing."""
        assert refused(world, k8s_token(sub="")).reason == "missing_claim"

    @pytest.mark.parametrize(
        "payload",
        [
            b'{"iss":"https://kubernetes.default.svc","sub":"x","aud":"sts.amazonaws.com","iat":1800000000,"exp":NaN}',
            b'{"iss":"https://kubernetes.default.svc","sub":"x","aud":"sts.amazonaws.com","iat":1800000000,"exp":Infinity}',
            b'{"iss":"https://kubernetes.default.svc","sub":"x","aud":"sts.amazonaws.com","iat":1800000000,"exp":1e400}',
            b'{"iss":"https://kubernetes.default.svc","sub":"x","aud":"sts.amazonaws.com","iat":1800000000,"exp":"1900000000"}',
            b'{"iss":"https://kubernetes.default.svc","sub":"x","aud":"sts.amazonaws.com","iat":1800000000,"exp":true}',
        ],
        ids=["NaN", "Infinity", "overflow", "string", "bool"],
    )
    def test_exp_that_is_not_a_number(self, world: World, payload: bytes) -> None:
        """A validly signed token whose exp is not a finite number is malformed, never eternal."""
        assert refused(world, sign_bytes(payload)).reason == "malformed"

    def test_critical_header(self, world: World) -> None:
        """Critical header extensions are not supported: refused."""
        token = sign(k8s_claims(), headers={"crit": ["exp"], "exp": 1})
        assert refused(world, token).reason == "malformed"

    @pytest.mark.parametrize(
        "token",
        [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "a.b.c.d.e",
            "!!!!.????.####",
            f"{b64json([1, 2])}.{b64json(k8s_claims())}.c2ln",
            f"{b64json({'alg': 'RS256'})}.{b64json('text')}.c2ln",
            "eyJhbGciOiJSUzI1NiJ9.eyJ.c2ln",
            "\u00e9\u00e9\u00e9\u00e9.\u00e9.\u00e9",
            f"{b64json({'alg': 'RS256', 'kid': 7})}.{b64json(k8s_claims())}.c2ln",
        ],
    )
    def test_garbage(self, world: World, token: str) -> None:
        """Garbage is malformed and never reaches the keys."""
        keys = StaticKeys()
        assert refused(world, token, keys).reason == "malformed"
        assert keys.calls == []

    def test_newlines_in_segments(self, world: World) -> None:
        """A newline tucked into a segment is malformed (base64 decoders would skip it)."""
        head, payload, sig = k8s_token().split(".")
        for token in (
            f"{head}\n.{payload}.{sig}",
            f"{head}.{payload}.{sig}\n",
            f"{head}.{payload}\n.{sig}",
        ):
            assert refused(world, token).reason == "malformed"

    def test_deep_nesting(self, world: World) -> None:
        """Deeply nested JSON is refused as malformed, not a crash."""
        head = b64json({"alg": "RS256", "kid": K8S_KID})
        from tests.sts.federation.oidc_world import b64url

        assert refused(world, f"{head}.{b64url('[' * 9000)}.c2ln").reason == "malformed"

    def test_size_limit(self, world: World) -> None:
        """Over max_chars is too_large; the limit is configurable."""
        token = k8s_token()
        assert refused(world, token, max_chars=len(token) - 1).reason == "too_large"
        assert check(world, token, max_chars=len(token)).subject == ORDERS_SA

    def test_issuer_unreachable(self, world: World) -> None:
        """When the keys cannot be fetched the error is IDPCommunicationError."""
        keys = DownKeys()
        with pytest.raises(IDPCommunicationError) as info:
            check(world, k8s_token(), keys)
        assert info.value.reason == "idp_unreachable"
        assert keys.calls == 1

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(max_size=300)
        | st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_=-]{0,40}")
    )
    def test_no_input_crashes(self, token: str) -> None:
        """Any text is either refused with a FederationError or (never, here) accepted."""
        with pytest.raises(FederationError):
            validate_token(token, _WORLD, StaticKeys(), START)


_WORLD = oidc_world()


# -- the JWKS cache (shell) ---------------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.body = json.dumps({"keys": k8s_jwks()}).encode()
        self.status = 200
        self.delay = 0.0
        self.hits = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.hits += 1
        if state.delay:
            time.sleep(state.delay)
        try:
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)
        except OSError:
            pass  # the client gave up (timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, _State]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    state = _State()
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/openid/v1/jwks", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestJwksCache:
    def test_fetch_once_then_cached(self, jwks_server: tuple[str, _State]) -> None:
        """The JWKS URL is fetched once; later calls are answered from the cache."""
        url, state = jwks_server
        cache = JwksCache(clock=FakeMonotonic())
        provider = k8s_provider(jwks_url=url)
        for _ in range(5):
            assert [k["kid"] for k in cache.keys(provider, K8S_KID, refresh=False)] == [K8S_KID]
        assert state.hits == 1

    def test_validates_real_tokens_over_http(self, jwks_server: tuple[str, _State]) -> None:
        """validate_token works end to end with keys fetched over HTTP."""
        url, state = jwks_server
        world = oidc_world(jwks_url=url)
        v = validate_token(k8s_token(), world, JwksCache(clock=FakeMonotonic()), START)
        assert v.subject == ORDERS_SA
        assert state.hits == 1

    def test_unknown_kid_refetch_is_rate_limited(self, jwks_server: tuple[str, _State]) -> None:
        """A flood of unknown kids refetches at most once per min_refresh_interval."""
        url, state = jwks_server
        clock = FakeMonotonic()
        cache = JwksCache(clock=clock, min_refresh_interval=30.0)
        provider = k8s_provider(jwks_url=url)
        cache.keys(provider, K8S_KID, refresh=False)
        clock.t += 31
        for i in range(100):
            cache.keys(provider, f"made-up-{i}", refresh=True)
        assert state.hits == 2
        clock.t += 29
        cache.keys(provider, "again", refresh=True)
        assert state.hits == 2
        clock.t += 1
        cache.keys(provider, "again", refresh=True)
        assert state.hits == 3

    def test_no_refresh_right_after_first_load(self, jwks_server: tuple[str, _State]) -> None:
        """The refresh that follows a first load in the same validation does not refetch."""
        url, state = jwks_server
        world = oidc_world(jwks_url=url)
        cache = JwksCache(clock=FakeMonotonic())
        with pytest.raises(InvalidIdentityToken):
            validate_token(sign(k8s_claims(), kid="nope"), world, cache, START)
        assert state.hits == 1

    def test_rotation_picked_up_by_refresh(self, jwks_server: tuple[str, _State]) -> None:
        """A new key published by the issuer is found through an unknown-kid refresh."""
        url, state = jwks_server
        clock = FakeMonotonic()
        world = oidc_world(jwks_url=url)
        cache = JwksCache(clock=clock)
        validate_token(k8s_token(), world, cache, START)
        new = rsa_key("rotated")
        state.body = json.dumps({"keys": [*k8s_jwks(), public_jwk(new, "k8s-2028")]}).encode()
        clock.t += 60
        v = validate_token(sign(k8s_claims(), key=new, kid="k8s-2028"), world, cache, START)
        assert v.subject == ORDERS_SA
        assert state.hits == 2

    def test_stale_cache_refetched(self, jwks_server: tuple[str, _State]) -> None:
        """Keys older than max_age are fetched again (so removed keys stop being trusted)."""
        url, state = jwks_server
        clock = FakeMonotonic()
        cache = JwksCache(clock=clock, max_age=600)
        provider = k8s_provider(jwks_url=url)
        cache.keys(provider, K8S_KID, refresh=False)
        state.body = b'{"keys": []}'
        clock.t += 599
        assert len(cache.keys(provider, K8S_KID, refresh=False)) == 1
        clock.t += 1
        assert cache.keys(provider, K8S_KID, refresh=False) == []
        assert state.hits == 2

    def test_failed_refresh_keeps_cached_keys(self, jwks_server: tuple[str, _State]) -> None:
        """When a refresh fails, the cached keys keep serving."""
        url, state = jwks_server
        clock = FakeMonotonic()
        cache = JwksCache(clock=clock)
        provider = k8s_provider(jwks_url=url)
        cache.keys(provider, K8S_KID, refresh=False)
        state.status = 500
        clock.t += 31
        assert [k["kid"] for k in cache.keys(provider, "x", refresh=True)] == [K8S_KID]
        assert (state.hits, cache.failures) == (2, 1)

    def test_endpoint_down(self) -> None:
        """Nothing listening: IDPCommunicationError; retries wait retry_interval (fail fast)."""
        clock = FakeMonotonic()
        cache = JwksCache(clock=clock, retry_interval=5.0)
        provider = k8s_provider(jwks_url=f"http://127.0.0.1:{_closed_port()}/jwks")
        for _ in range(3):
            with pytest.raises(IDPCommunicationError) as info:
                cache.keys(provider, K8S_KID, refresh=True)
            assert info.value.reason == "idp_unreachable"
        assert cache.failures == 1
        clock.t += 5
        with pytest.raises(IDPCommunicationError):
            cache.keys(provider, K8S_KID, refresh=False)
        assert cache.failures == 2

    def test_endpoint_down_end_to_end(self, world: World) -> None:
        """validate_token reports an unreachable JWKS endpoint as IDPCommunicationError."""
        world = oidc_world(jwks_url=f"http://127.0.0.1:{_closed_port()}/jwks")
        with pytest.raises(IDPCommunicationError):
            validate_token(k8s_token(), world, JwksCache(), START)

    def test_timeout(self, jwks_server: tuple[str, _State]) -> None:
        """A slow issuer times out into IDPCommunicationError within the timeout."""
        url, state = jwks_server
        state.delay = 1.0
        cache = JwksCache(timeout=0.2)
        started = time.monotonic()
        with pytest.raises(IDPCommunicationError):
            cache.keys(k8s_provider(jwks_url=url), K8S_KID, refresh=False)
        assert time.monotonic() - started < 0.9

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (200, b"<html>not json</html>"),
            (200, b'{"no_keys": []}'),
            (200, b'{"keys": {"kid": "x"}}'),
            (200, b"\xff\xfe"),
            (200, b'{"keys": [], "pad": "' + b"x" * 2000 + b'"}'),
            (404, b'{"keys": []}'),
        ],
        ids=["html", "no-keys", "keys-not-list", "not-utf8", "too-large", "404"],
    )
    def test_bad_documents(self, jwks_server: tuple[str, _State], status: int, body: bytes) -> None:
        """Unparseable, oversized or failed responses become IDPCommunicationError."""
        url, state = jwks_server
        state.status, state.body = status, body
        cache = JwksCache(max_bytes=1024)
        with pytest.raises(IDPCommunicationError):
            cache.keys(k8s_provider(jwks_url=url), K8S_KID, refresh=False)

    def test_file_reread_when_changed(self, tmp_path: Path) -> None:
        """A JWKS file is read once and again only when its mtime changes."""
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps({"keys": k8s_jwks()}))
        cache = JwksCache(clock=FakeMonotonic())
        provider = k8s_provider(jwks_file=str(path))
        for _ in range(3):
            assert len(cache.keys(provider, K8S_KID, refresh=False)) == 1
        assert cache.loads == 1
        path.write_text(
            json.dumps({"keys": [*k8s_jwks(), public_jwk(rsa_key("rotated"), "k8s-2028")]})
        )
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert len(cache.keys(provider, K8S_KID, refresh=False)) == 2
        assert cache.loads == 2

    def test_missing_file(self, tmp_path: Path) -> None:
        """A JWKS file that cannot be read is IDPCommunicationError until it appears."""
        path = tmp_path / "jwks.json"
        clock = FakeMonotonic()
        cache = JwksCache(clock=clock)
        provider = k8s_provider(jwks_file=str(path))
        with pytest.raises(IDPCommunicationError):
            cache.keys(provider, K8S_KID, refresh=False)
        path.write_text(json.dumps({"keys": k8s_jwks()}))
        clock.t += 5
        assert len(cache.keys(provider, K8S_KID, refresh=False)) == 1

    def test_broken_file_keeps_cached_keys(self, tmp_path: Path) -> None:
        """A JWKS file rewritten with garbage does not throw away the keys already read."""
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps({"keys": k8s_jwks()}))
        cache = JwksCache(clock=FakeMonotonic())
        provider = k8s_provider(jwks_file=str(path))
        cache.keys(provider, K8S_KID, refresh=False)
        path.write_text("{broken")
        os.utime(path, ns=(0, 1))
        assert len(cache.keys(provider, K8S_KID, refresh=False)) == 1
        assert cache.failures == 1
