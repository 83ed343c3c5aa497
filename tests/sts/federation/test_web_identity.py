"""AssumeRoleWithWebIdentity end to end in process: Kubernetes service-account tokens, trust
conditions, session tags, durations, error order and every token attack."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from sidecar.errors import (
    AccessDenied,
    ExpiredTokenException,
    FederationError,
    IDPCommunicationError,
    InvalidIdentityToken,
    MalformedPolicyDocument,
    PackedPolicyTooLarge,
    SidecarError,
    ValidationError,
)
from sidecar.identity.model import World
from sidecar.policy.context import Context
from sidecar.server.jwks import JwksCache
from sidecar.sts.assume import StsEnv
from sidecar.sts.context import session_context
from sidecar.sts.federation.web_identity import (
    WebIdentityParams,
    WebIdentityResult,
    assume_role_with_web_identity,
)
from sidecar.sts.keys import KeyRing
from sidecar.sts.tokens import verify_token
from tests.fakes import CountingEntropy
from tests.sts.conftest import START
from tests.sts.federation.oidc_world import (
    AWS_ONLY_ROLE,
    CORP_ARN,
    CORP_CLIENT,
    CORP_ISSUER,
    CORP_PREFIX,
    CORP_ROLE,
    K8S_ARN,
    K8S_AUD,
    K8S_ISSUER,
    K8S_OTHER_AUD,
    K8S_PREFIX,
    ORDERS_ROLE,
    ORDERS_SA,
    ROLE_IN_B,
    SHOP_ROLE,
    SOURCE_ROLE,
    TAGGED_ROLE,
    StaticKeys,
    attacks,
    corp_token,
    k8s_jwks,
    k8s_token,
    oidc_world,
)
from tests.sts.world import A

TAGS = "https://aws.amazon.com/tags"


@pytest.fixture
def world() -> World:
    return oidc_world()


def params(
    role_arn: str = ORDERS_ROLE, token: str | None = None, name: str = "pod-orders", **kw: Any
) -> WebIdentityParams:
    return WebIdentityParams(
        role_arn=role_arn,
        role_session_name=name,
        web_identity_token=token if token is not None else k8s_token(),
        **kw,
    )


def assume(env: StsEnv, p: WebIdentityParams, keys: Any = None) -> WebIdentityResult:
    return assume_role_with_web_identity(env, p, keys if keys is not None else StaticKeys())


def fails(env: StsEnv, p: WebIdentityParams, keys: Any = None) -> SidecarError:
    with pytest.raises(SidecarError) as info:
        assume(env, p, keys)
    return info.value


def tagged_token(**tags_claim: Any) -> str:
    return k8s_token(START, **{TAGS: tags_claim})


class TestKubernetes:
    def test_service_account_gets_credentials(self, env: StsEnv) -> None:
        """A pod's service-account token, trusted on sub and aud, gets working credentials."""
        out = assume(env, params())
        r = out.result
        assert r.credentials.access_key_id.startswith("ASIA")
        assert r.credentials.expiration == START + 3600
        assert r.arn == f"arn:aws:sts::{A}:assumed-role/orders/pod-orders"
        assert (out.subject_from_web_identity_token, out.audience, out.provider) == (
            ORDERS_SA,
            K8S_AUD,
            K8S_ISSUER,
        )
        session, _ = verify_token(r.credentials.session_token, env.keys, START)
        assert session == r.session
        assert session.origin == "AssumeRoleWithWebIdentity"
        assert session.federated_provider == K8S_ARN
        assert session.chained is False
        assert session.role_arn == ORDERS_ROLE

    def test_carried_claims_on_the_session(self, env: StsEnv) -> None:
        """The session carries :aud and :sub (and aws:FederatedProvider) into later requests."""
        session = assume(env, params()).result.session
        assert session.federated_claims == (
            (f"{K8S_PREFIX}:aud", (K8S_AUD,)),
            (f"{K8S_PREFIX}:sub", (ORDERS_SA,)),
        )
        ctx = session_context(Context(), session, env.world.role(ORDERS_ROLE), START)
        assert ctx.single(f"{K8S_PREFIX}:sub".lower()) == ORDERS_SA
        assert ctx.single("aws:federatedprovider") == K8S_ARN
        assert ctx.single("aws:principaltype") == "AssumedRole"

    def test_duration_up_to_role_maximum(self, env: StsEnv) -> None:
        """Web identity is never role chaining: 12 hours are fine when the role allows it."""
        out = assume(env, params(duration_seconds=43200))
        assert out.result.credentials.expiration == START + 43200

    def test_duration_above_role_maximum(self, env: StsEnv) -> None:
        """Above the role's MaxSessionDuration is AWS's ValidationError."""
        err = fails(env, params(TAGGED_ROLE, duration_seconds=7200, token=k8s_token()))
        assert isinstance(err, ValidationError)
        assert (
            err.message
            == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )

    def test_other_service_account_denied(self, env: StsEnv) -> None:
        """The trust policy's sub condition keeps other service accounts out."""
        err = fails(env, params(token=k8s_token(sub="system:serviceaccount:shop:payments")))
        assert isinstance(err, AccessDenied)
        assert err.message == "Not authorized to perform sts:AssumeRoleWithWebIdentity"

    def test_other_client_id_denied_by_trust(self, env: StsEnv) -> None:
        """A token for another registered client id is valid, but the aud condition denies it."""
        err = fails(env, params(token=k8s_token(aud=[K8S_OTHER_AUD])))
        assert isinstance(err, AccessDenied)

    def test_wildcard_sub_and_explicit_deny(self, env: StsEnv) -> None:
        """StringLike on sub admits a namespace; an explicit Deny still wins for one account."""
        out = assume(
            env, params(SHOP_ROLE, token=k8s_token(sub="system:serviceaccount:shop:payments"))
        )
        assert out.subject_from_web_identity_token == "system:serviceaccount:shop:payments"
        err = fails(
            env, params(SHOP_ROLE, token=k8s_token(sub="system:serviceaccount:shop:intruder"))
        )
        assert isinstance(err, AccessDenied)
        err = fails(
            env, params(SHOP_ROLE, token=k8s_token(sub="system:serviceaccount:kube-system:x"))
        )
        assert isinstance(err, AccessDenied)

    def test_role_trusting_only_aws_principals(self, env: StsEnv) -> None:
        """A role whose trust names no Federated provider cannot be assumed with a token."""
        assert isinstance(fails(env, params(AWS_ONLY_ROLE)), AccessDenied)

    def test_role_that_does_not_exist(self, env: StsEnv) -> None:
        """A missing role is AccessDenied (existence is not revealed)."""
        err = fails(env, params(f"arn:aws:iam::{A}:role/ghost"))
        assert isinstance(err, AccessDenied)
        assert err.message == "Not authorized to perform sts:AssumeRoleWithWebIdentity"

    def test_provider_must_be_in_the_role_account(self, env: StsEnv) -> None:
        """The issuer is looked up among the role's account's providers, as AWS does."""
        err = fails(env, params(ROLE_IN_B))
        assert isinstance(err, InvalidIdentityToken)
        assert err.message == f"No OpenIDConnect provider found in your account for {K8S_ISSUER}"

    def test_session_policy_caps_the_session(self, env: StsEnv) -> None:
        """An inline session policy is recorded on the session."""
        policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::orders/a",
                    }
                ],
            }
        )
        out = assume(env, params(policy=policy))
        assert [pid for pid, _ in out.result.session.session_policies] == ["SessionPolicy"]
        assert out.result.packed_policy_size > 0

    def test_jwks_file_end_to_end(self, keys: KeyRing, clock: Any, tmp_path: Path) -> None:
        """With the cluster's JWKS in a file (kubectl get --raw /openid/v1/jwks) it all works."""
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps({"keys": k8s_jwks()}))
        env = StsEnv(oidc_world(jwks_file=str(path)), keys, clock, CountingEntropy(7))
        out = assume_role_with_web_identity(env, params(), JwksCache())
        assert out.subject_from_web_identity_token == ORDERS_SA


class TestOtherProviders:
    def test_amr_and_azp(self, env: StsEnv) -> None:
        """azp is the audience; amr is multivalued for ForAnyValue and carried on the session."""
        out = assume(env, params(CORP_ROLE, token=corp_token()))
        assert (out.audience, out.provider) == (CORP_CLIENT, CORP_ISSUER)
        assert out.result.session.federated_provider == CORP_ARN
        assert dict(out.result.session.federated_claims) == {
            f"{CORP_PREFIX}:amr": ("pwd", "mfa"),
            f"{CORP_PREFIX}:aud": (CORP_CLIENT,),
            f"{CORP_PREFIX}:sub": ("user-4711",),
        }

    def test_amr_condition_denies(self, env: StsEnv) -> None:
        """Without mfa in amr the ForAnyValue condition does not match."""
        assert isinstance(
            fails(env, params(CORP_ROLE, token=corp_token(amr=["pwd"]))), AccessDenied
        )
        assert isinstance(fails(env, params(CORP_ROLE, token=corp_token(amr=None))), AccessDenied)

    def test_token_for_another_provider(self, env: StsEnv) -> None:
        """A valid token of one provider does not match a trust naming another provider."""
        assert isinstance(fails(env, params(ORDERS_ROLE, token=corp_token())), AccessDenied)


class TestSessionTags:
    def test_tags_claim_needs_tag_session(self, env: StsEnv) -> None:
        """Tags in the token need sts:TagSession in the trust policy."""
        token = tagged_token(principal_tags={"cost-center": ["42"]})
        assert isinstance(fails(env, params(ORDERS_ROLE, token=token)), AccessDenied)

    def test_tags_claim_becomes_session_tags(self, env: StsEnv) -> None:
        """principal_tags become session tags and transitive_tag_keys carry through chaining."""
        token = tagged_token(
            principal_tags={"cost-center": ["42"], "env": ["prod"]}, transitive_tag_keys=["env"]
        )
        session = assume(env, params(TAGGED_ROLE, token=token)).result.session
        assert dict(session.tags) == {"cost-center": "42", "env": "prod"}
        assert session.transitive_tag_keys == ("env",)
        ctx = session_context(Context(), session, env.world.role(TAGGED_ROLE), START)
        assert ctx.single("aws:principaltag/cost-center") == "42"

    @pytest.mark.parametrize(
        "claim",
        [
            "not-an-object",
            {"principal_tags": {"env": "prod"}},
            {"principal_tags": {"env": ["a", "b"]}},
            {"principal_tags": {"aws:env": ["x"]}},
            {"principal_tags": {"Env": ["x"], "env": ["y"]}},
            {"principal_tags": {"env": ["x"]}, "transitive_tag_keys": ["team"]},
            {"principal_tags": {"bad key!": ["x"]}},
            {"principal_tags": {f"k{i}": ["v"] for i in range(51)}},
        ],
        ids=[
            "not-object",
            "value-not-list",
            "two-values",
            "aws-prefix",
            "duplicate",
            "transitive-unknown",
            "bad-chars",
            "too-many",
        ],
    )
    def test_invalid_tags_claim(self, env: StsEnv, claim: Any) -> None:
        """A malformed tags claim is an InvalidIdentityToken, before trust is evaluated."""
        err = fails(env, params(TAGGED_ROLE, token=k8s_token(**{TAGS: claim})))
        assert isinstance(err, InvalidIdentityToken)
        assert err.reason == "invalid_claim"

    def test_source_identity_claim(self, env: StsEnv) -> None:
        """A source identity claim needs sts:SetSourceIdentity and sticks to the session."""
        token = k8s_token(START, **{"https://aws.amazon.com/source_identity": "alice"})
        out = assume(env, params(SOURCE_ROLE, token=token))
        assert out.source_identity == "alice"
        assert isinstance(fails(env, params(ORDERS_ROLE, token=token)), AccessDenied)
        for value in ("aws:root", "alice\n", "x", 42):
            bad = k8s_token(START, **{"https://aws.amazon.com/source_identity": value})
            assert isinstance(fails(env, params(SOURCE_ROLE, token=bad)), InvalidIdentityToken)

    def test_packed_size_limit(self, env: StsEnv) -> None:
        """Tags from the token count toward the packed size."""
        import random

        rng = random.Random(1)
        tags = {
            f"k{i}": [
                "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(250))
            ]
            for i in range(40)
        }
        err = fails(env, params(TAGGED_ROLE, token=tagged_token(principal_tags=tags)))
        assert isinstance(err, PackedPolicyTooLarge)


class TestShapeAndOrder:
    def test_shape_violations_listed(self, env: StsEnv) -> None:
        """Every shape violation is listed, and the token's value is never echoed."""
        err = fails(env, params(name="a b", token="abc", provider_id="x", duration_seconds=100))
        assert isinstance(err, ValidationError)
        assert err.message.startswith("4 validation errors detected: ")
        assert (
            "Value at 'webIdentityToken' failed to satisfy constraint: Member must have length greater than or equal to 4"
            in err.message
        )
        assert "'abc'" not in err.message
        assert "at 'providerId'" in err.message
        assert "at 'roleSessionName'" in err.message
        assert "at 'durationSeconds'" in err.message

    def test_oversized_token_is_a_validation_error(self, env: StsEnv) -> None:
        """Over 20000 characters is a ValidationError that does not repeat the token."""
        token = "x" * 20001
        err = fails(env, params(token=token))
        assert isinstance(err, ValidationError)
        assert err.message == (
            "1 validation error detected: Value at 'webIdentityToken' failed to satisfy "
            "constraint: Member must have length less than or equal to 20000"
        )

    def test_provider_id_refused(self, env: StsEnv) -> None:
        """ProviderId (OAuth 2.0 providers) is not supported: the OIDC token must come alone."""
        err = fails(env, params(provider_id="www.amazon.com"))
        assert isinstance(err, InvalidIdentityToken)
        assert err.reason == "unsupported_provider"

    def test_shape_before_token(self, env: StsEnv) -> None:
        """A bad session name is reported before a bad token."""
        assert isinstance(
            fails(env, params(name="x", token=k8s_token(aud="nobody"))), ValidationError
        )

    def test_token_before_session_policy(self, env: StsEnv) -> None:
        """A bad token is reported before a malformed session policy."""
        err = fails(env, params(token=k8s_token(aud="nobody"), policy="{not json"))
        assert isinstance(err, InvalidIdentityToken)

    def test_session_policy_before_trust(self, env: StsEnv) -> None:
        """A malformed session policy is reported before a trust denial."""
        err = fails(env, params(AWS_ONLY_ROLE, policy="{not json"))
        assert isinstance(err, MalformedPolicyDocument)

    def test_trust_before_duration(self, env: StsEnv) -> None:
        """A trust denial is reported before the duration cap."""
        err = fails(env, params(AWS_ONLY_ROLE, duration_seconds=43200))
        assert isinstance(err, AccessDenied)

    def test_expired_token_before_missing_role(self, env: StsEnv) -> None:
        """The token is validated before the role is looked up."""
        token = k8s_token(exp=START - 600, iat=START - 4000, nbf=START - 4000)
        assert isinstance(
            fails(env, params(f"arn:aws:iam::{A}:role/ghost", token=token)), ExpiredTokenException
        )


class TestAttacks:
    @pytest.mark.parametrize("attack", attacks(), ids=lambda a: a.name)
    def test_attack_refused_and_nothing_else_affected(self, env: StsEnv, attack: Any) -> None:
        """Each hostile token is refused with its code and reason; no session is minted and the
        next good token still works."""
        keys = StaticKeys()
        entropy_before = env.entropy.counter  # type: ignore[attr-defined]
        err = fails(env, params(token=attack.token), keys)
        if attack.reason == "too_large":
            assert isinstance(err, ValidationError)  # the shape check comes first
        else:
            assert isinstance(err, FederationError)
            assert (err.code, err.reason) == (attack.code, attack.reason)
        assert env.entropy.counter == entropy_before  # type: ignore[attr-defined]
        assert assume(env, params(), keys).subject_from_web_identity_token == ORDERS_SA

    def test_jwks_endpoint_down(self, keys: KeyRing, clock: Any) -> None:
        """An unreachable JWKS endpoint is IDPCommunicationError."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = StsEnv(
            oidc_world(jwks_url=f"http://127.0.0.1:{port}/openid/v1/jwks"),
            keys,
            clock,
            CountingEntropy(3),
        )
        with pytest.raises(IDPCommunicationError) as info:
            assume_role_with_web_identity(env, params(), JwksCache())
        assert info.value.code == "IDPCommunicationError"

    def test_token_replayed_after_expiry(self, env: StsEnv, clock: Any) -> None:
        """The same token works now and is refused once its exp (plus leeway) has passed."""
        token = k8s_token()
        assume(env, params(token=token))
        clock.advance(3600 + 60)
        err = fails(env, params(token=token))
        assert isinstance(err, ExpiredTokenException)
