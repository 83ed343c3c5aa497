"""OIDC test material: issuers with keys generated here, real signed JWTs, a world with OIDC
providers and roles that trust them, and key sources for the pure validator."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256

from sidecar.errors import IDPCommunicationError
from sidecar.identity.model import OidcProvider, World
from tests.sts.conftest import START
from tests.sts.world import ORDERS, A, B, allow, doc, make_world, role, trust_stmt

K8S_ISSUER = "https://kubernetes.default.svc"
K8S_PREFIX = "kubernetes.default.svc"
K8S_ARN = f"arn:aws:iam::{A}:oidc-provider/{K8S_PREFIX}"
K8S_AUD = "sts.amazonaws.com"
K8S_OTHER_AUD = "vault"
K8S_KID = "k8s-sa-2027"
ORDERS_SA = "system:serviceaccount:shop:orders"

CORP_ISSUER = "https://idp.example.com/tenants/acme"
CORP_PREFIX = "idp.example.com/tenants/acme"
CORP_ARN = f"arn:aws:iam::{A}:oidc-provider/{CORP_PREFIX}"
CORP_CLIENT = "orders-web"
CORP_KID = "corp-ec-1"

WEB_ACTION = "sts:AssumeRoleWithWebIdentity"
ORDERS_ROLE = f"arn:aws:iam::{A}:role/k8s/orders"
TAGGED_ROLE = f"arn:aws:iam::{A}:role/orders-tagged"
SOURCE_ROLE = f"arn:aws:iam::{A}:role/orders-source"
SHOP_ROLE = f"arn:aws:iam::{A}:role/shop-any"
CORP_ROLE = f"arn:aws:iam::{A}:role/corp-mfa"
AWS_ONLY_ROLE = f"arn:aws:iam::{A}:role/aws-only"
ROLE_IN_B = f"arn:aws:iam::{B}:role/k8s-in-b"


# -- keys ---------------------------------------------------------------------------------------


@functools.cache
def rsa_key(name: str = "k8s", bits: int = 2048) -> rsa.RSAPrivateKey:
    """One RSA key per name, generated once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(name: str = "corp", curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())


def public_jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of a private key, with its kid (and e.g. use/alg)."""
    public = key.public_key()
    algo = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(public, rsa.RSAPublicKey)
        else jwt.algorithms.ECAlgorithm
    )
    return {**algo.to_jwk(public, as_dict=True), "kid": kid, **extra}


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")))


def sign(
    claims: dict[str, Any],
    *,
    key: Any = None,
    alg: str = "RS256",
    kid: str | None = K8S_KID,
    headers: dict[str, Any] | None = None,
) -> str:
    """A real JWT signed by PyJWT (the Kubernetes issuer's key by default)."""
    hdr = {"kid": kid} if kid is not None else {}
    hdr.update(headers or {})
    return jwt.encode(claims, key if key is not None else rsa_key(), algorithm=alg, headers=hdr)


def sign_bytes(
    payload: bytes, *, key: Any = None, kid: str = K8S_KID, headers: dict[str, Any] | None = None
) -> str:
    """A JWT whose payload is exactly ``payload`` (for payloads json.dumps would not write)."""
    return jwt.PyJWS().encode(
        payload,
        key if key is not None else rsa_key(),
        algorithm="RS256",
        headers={"kid": kid, **(headers or {})},
    )


def raw_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64json(header)}.{b64json(claims)}.{b64url(signature)}"


def hs256_with_public_key(claims: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the issuer's public key bytes."""
    from cryptography.hazmat.primitives import serialization

    pem = (
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': K8S_KID})}.{b64json(claims)}"
    mac = hmac.new(pem, head.encode(), hashlib.sha256).digest()
    return f"{head}.{b64url(mac)}"


def rs256_raw(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    """RS256 signed with cryptography directly (PyJWT warns on short keys when signing)."""
    head = f"{b64json({'alg': 'RS256', 'kid': kid})}.{b64json(claims)}"
    return f"{head}.{b64url(key.sign(head.encode(), PKCS1v15(), SHA256()))}"


# -- claims -------------------------------------------------------------------------------------


def k8s_claims(now: float = START, **overrides: Any) -> dict[str, Any]:
    """A projected Kubernetes service-account token for shop/orders (audience sts.amazonaws.com)."""
    claims: dict[str, Any] = {
        "aud": [K8S_AUD],
        "exp": int(now) + 3600,
        "iat": int(now) - 5,
        "nbf": int(now) - 5,
        "iss": K8S_ISSUER,
        "jti": "5e1b6d1c-0f7d-4a8e-9c31-3f0c3a2b9d11",
        "kubernetes.io": {
            "namespace": "shop",
            "node": {"name": "node-a", "uid": "0b6cde5d-8f0e-4d7b-a5b1-1f1e64c0f5a0"},
            "pod": {
                "name": "orders-7d9f8c6b5-x2x7q",
                "uid": "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b",
            },
            "serviceaccount": {"name": "orders", "uid": "3c2d1e0f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"},
        },
        "sub": ORDERS_SA,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def corp_claims(now: float = START, **overrides: Any) -> dict[str, Any]:
    """An ID token of a corporate IdP: aud + azp, amr."""
    claims: dict[str, Any] = {
        "iss": CORP_ISSUER,
        "sub": "user-4711",
        "aud": [CORP_CLIENT, "profile-api"],
        "azp": CORP_CLIENT,
        "amr": ["pwd", "mfa"],
        "exp": int(now) + 600,
        "iat": int(now),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def k8s_token(now: float = START, **overrides: Any) -> str:
    return sign(k8s_claims(now, **overrides))


def corp_token(now: float = START, **overrides: Any) -> str:
    return sign(corp_claims(now, **overrides), key=ec_key(), alg="ES256", kid=CORP_KID)


def k8s_jwks() -> list[dict[str, Any]]:
    return [public_jwk(rsa_key(), K8S_KID, use="sig")]


def corp_jwks() -> list[dict[str, Any]]:
    return [public_jwk(ec_key(), CORP_KID, use="sig", alg="ES256")]


# -- key sources --------------------------------------------------------------------------------


class StaticKeys:
    """A KeySource answering from memory; ``rotated`` is what a refresh finds. Records calls."""

    def __init__(
        self,
        keys: dict[str, list[dict[str, Any]]] | None = None,
        rotated: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.by_arn = keys if keys is not None else {K8S_ARN: k8s_jwks(), CORP_ARN: corp_jwks()}
        self.rotated = rotated or {}
        self.calls: list[tuple[str, str | None, bool]] = []

    def keys(
        self, provider: OidcProvider, kid: str | None, *, refresh: bool
    ) -> list[dict[str, Any]]:
        self.calls.append((provider.arn, kid, refresh))
        if refresh and provider.arn in self.rotated:
            self.by_arn[provider.arn] = self.rotated[provider.arn]
        return list(self.by_arn.get(provider.arn, []))


class DownKeys:
    """A KeySource whose issuer cannot be reached."""

    def __init__(self) -> None:
        self.calls = 0

    def keys(
        self, provider: OidcProvider, kid: str | None, *, refresh: bool
    ) -> list[dict[str, Any]]:
        self.calls += 1
        raise IDPCommunicationError(
            "Couldn't retrieve verification key from your identity provider",
            reason="idp_unreachable",
        )


# -- the world ----------------------------------------------------------------------------------


def k8s_provider(
    account: str = A, *, jwks_file: str = "/var/run/oidc/jwks.json", jwks_url: str = ""
) -> OidcProvider:
    return OidcProvider(
        account=account,
        url=K8S_ISSUER,
        arn=f"arn:aws:iam::{account}:oidc-provider/{K8S_PREFIX}",
        client_ids=(K8S_AUD, K8S_OTHER_AUD),
        jwks_file="" if jwks_url else jwks_file,
        jwks_url=jwks_url,
    )


def corp_provider() -> OidcProvider:
    return OidcProvider(
        account=A,
        url=CORP_ISSUER + "/",  # registered with a trailing slash: IAM ignores it
        arn=CORP_ARN,
        client_ids=(CORP_CLIENT,),
        jwks_url="https://idp.example.com/tenants/acme/jwks",
    )


def _k8s_trust(actions: Any, sub: str = ORDERS_SA, op: str = "StringEquals") -> dict[str, Any]:
    return doc(
        trust_stmt(
            {"Federated": K8S_ARN},
            actions,
            Condition={op: {f"{K8S_PREFIX}:sub": sub, f"{K8S_PREFIX}:aud": K8S_AUD}},
        )
    )


def oidc_world(*, jwks_file: str = "/var/run/oidc/jwks.json", jwks_url: str = "") -> World:
    """demo_world plus a Kubernetes and a corporate OIDC provider in account A and roles that
    trust them; account B has a role trusting A's provider but no provider of its own."""
    from tests.sts.world import demo_world

    base = demo_world()
    read = {"read": doc(allow("s3:GetObject", "arn:aws:s3:::orders/*"))}
    new_a = [
        role(
            A,
            "orders",
            _k8s_trust(WEB_ACTION),
            path="/k8s/",
            inline=read,
            tags={"team": "shop"},
            max_session=43200,
        ),
        role(A, "orders-tagged", _k8s_trust([WEB_ACTION, "sts:TagSession"]), inline=read),
        role(A, "orders-source", _k8s_trust([WEB_ACTION, "sts:SetSourceIdentity"]), inline=read),
        role(
            A,
            "shop-any",
            doc(
                trust_stmt(
                    {"Federated": K8S_ARN},
                    WEB_ACTION,
                    Condition={"StringLike": {f"{K8S_PREFIX}:sub": "system:serviceaccount:shop:*"}},
                ),
                {
                    "Effect": "Deny",
                    "Principal": {"Federated": K8S_ARN},
                    "Action": WEB_ACTION,
                    "Condition": {
                        "StringEquals": {f"{K8S_PREFIX}:sub": "system:serviceaccount:shop:intruder"}
                    },
                },
            ),
        ),
        role(
            A,
            "corp-mfa",
            doc(
                trust_stmt(
                    {"Federated": CORP_ARN},
                    WEB_ACTION,
                    Condition={
                        "StringEquals": {f"{CORP_PREFIX}:aud": CORP_CLIENT},
                        "ForAnyValue:StringEquals": {f"{CORP_PREFIX}:amr": "mfa"},
                    },
                )
            ),
        ),
        role(A, "aws-only", doc(trust_stmt({"AWS": A}, WEB_ACTION))),
    ]
    acct_a = base.accounts[A]
    acct_a = dataclasses.replace(
        acct_a,
        roles={**acct_a.roles, **{r.name.lower(): r for r in new_a}},
        oidc_providers={
            K8S_ARN: k8s_provider(jwks_file=jwks_file, jwks_url=jwks_url),
            CORP_ARN: corp_provider(),
        },
    )
    acct_b = base.accounts[B]
    in_b = role(B, "k8s-in-b", _k8s_trust(WEB_ACTION))
    acct_b = dataclasses.replace(acct_b, roles={**acct_b.roles, in_b.name.lower(): in_b})
    return make_world([acct_a, acct_b], (ORDERS,))


@dataclass(frozen=True)
class Attack:
    """A hostile token and how it must be refused."""

    name: str
    token: str
    code: str
    reason: str
    fetches_keys: bool  # whether the refusal may come after asking for keys


def attacks() -> list[Attack]:
    """Every attack on a Kubernetes token, each with the refusal it must get."""
    good = k8s_claims()
    tampered = k8s_token().split(".")
    tampered[1] = b64json({**good, "sub": "system:serviceaccount:kube-system:admin"})
    attacker = rsa_key("attacker")
    return [
        Attack(
            "alg none",
            raw_token({"alg": "none", "kid": K8S_KID}, good),
            "InvalidIdentityToken",
            "alg_not_allowed",
            False,
        ),
        Attack(
            "alg none, no kid",
            raw_token({"alg": "none", "typ": "JWT"}, good),
            "InvalidIdentityToken",
            "alg_not_allowed",
            False,
        ),
        Attack(
            "RS256 without a signature",
            raw_token({"alg": "RS256", "kid": K8S_KID}, good),
            "InvalidIdentityToken",
            "malformed",
            False,
        ),
        Attack(
            "HS256 keyed with the public key",
            hs256_with_public_key(good),
            "InvalidIdentityToken",
            "alg_not_allowed",
            False,
        ),
        Attack(
            "expired",
            k8s_token(exp=START - 3600, iat=START - 7200, nbf=START - 7200),
            "ExpiredTokenException",
            "expired",
            True,
        ),
        Attack(
            "too old",
            k8s_token(iat=START - 90000, nbf=START - 90000, exp=START + 3600),
            "ExpiredTokenException",
            "too_old",
            True,
        ),
        Attack(
            "not yet valid",
            k8s_token(nbf=START + 600, iat=START + 600, exp=START + 4200),
            "InvalidIdentityToken",
            "not_yet_valid",
            True,
        ),
        Attack(
            "wrong issuer",
            sign(k8s_claims(iss="https://evil.example.com")),
            "InvalidIdentityToken",
            "unknown_issuer",
            False,
        ),
        Attack(
            "wrong audience",
            k8s_token(aud=["https://kubernetes.default.svc"]),
            "InvalidIdentityToken",
            "wrong_audience",
            True,
        ),
        Attack(
            "unknown kid",
            sign(good, kid="rotated-away"),
            "InvalidIdentityToken",
            "unknown_kid",
            True,
        ),
        Attack(
            "signed by another key",
            sign(good, key=attacker),
            "InvalidIdentityToken",
            "bad_signature",
            True,
        ),
        Attack(
            "own key embedded in the header",
            sign(
                good,
                key=attacker,
                headers={
                    "jwk": public_jwk(attacker, K8S_KID),
                    "jku": "https://evil.example.com/jwks",
                },
            ),
            "InvalidIdentityToken",
            "bad_signature",
            True,
        ),
        Attack(
            "tampered payload", ".".join(tampered), "InvalidIdentityToken", "bad_signature", True
        ),
        Attack(
            "oversized",
            sign({**good, "pad": "x" * 20000}),
            "InvalidIdentityToken",
            "too_large",
            False,
        ),
        Attack("garbage", "not-a-token-at-all", "InvalidIdentityToken", "malformed", False),
    ]
