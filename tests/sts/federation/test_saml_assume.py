"""AssumeRoleWithSAML end to end: real signed responses, real metadata files, a frozen clock."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sidecar.errors import (
    AccessDenied,
    ExpiredTokenException,
    InvalidIdentityToken,
    MalformedPolicyDocument,
    SidecarError,
    ValidationError,
)
from sidecar.identity.model import SamlProvider, World
from sidecar.policy.context import Context
from sidecar.server.saml_metadata import MetadataSource
from sidecar.sts.assume import StsEnv
from sidecar.sts.context import session_context
from sidecar.sts.federation.saml_assume import SamlParams, SamlResult, assume_role_with_saml
from sidecar.sts.tokens import verify_token
from tests.fakes import CountingEntropy
from tests.sts.conftest import START
from tests.sts.federation.saml_world import (
    AFFILIATION_OID,
    ATTR,
    IDP_ENTITY,
    OTHER_PROVIDER_ARN,
    PROVIDER,
    PROVIDER_ARN,
    READER,
    RECIPIENT,
    ROLE_ATTR,
    SUBJECT,
    Claims,
    Idp,
    build_assertion,
    build_response,
    clone,
    encode,
    encode_text,
    find,
    make_idp,
    response_b64,
    saml_world,
    write_metadata,
)
from tests.sts.world import A

DENIED = "Not authorized to perform sts:AssumeRoleWithSAML"
BASIC = f"arn:aws:iam::{A}:role/saml-basic"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{A}:role/{name}"


def listing(*roles: str, provider: str = PROVIDER_ARN) -> Claims:
    """Claims whose Role attribute lists each role with the provider."""
    claims = Claims()
    claims.attributes[ROLE_ATTR] = [f"{r},{provider}" for r in roles]
    return claims


@pytest.fixture(scope="module")
def idp() -> Idp:
    return make_idp()


@pytest.fixture(scope="module")
def evil() -> Idp:
    return make_idp("evil.example.com")


@pytest.fixture(scope="module")
def metadata_files(
    tmp_path_factory: pytest.TempPathFactory, idp: Idp, evil: Idp
) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("saml")
    ours = write_metadata(d / "corp-idp.xml", IDP_ENTITY, [idp.cert])
    other = write_metadata(d / "other-idp.xml", "https://other-idp.example.com", [evil.cert])
    return ours, other


@pytest.fixture
def world(metadata_files: tuple[Path, Path]) -> World:
    return saml_world(*metadata_files)


@pytest.fixture
def source() -> MetadataSource:
    return MetadataSource()


def params(b64: str, role: str = READER, principal: str = PROVIDER_ARN, **kw: Any) -> SamlParams:
    return SamlParams(role_arn=role, principal_arn=principal, saml_assertion=b64, **kw)


def assume(env: StsEnv, source: MetadataSource, b64: str, **kw: Any) -> SamlResult:
    return assume_role_with_saml(env, params(b64, **kw), source)


def counter(env: StsEnv) -> int:
    entropy = env.entropy
    assert isinstance(entropy, CountingEntropy)
    return entropy.counter


def refused(
    env: StsEnv, source: MetadataSource, p: SamlParams, kind: type[SidecarError]
) -> SidecarError:
    """The call fails with exactly ``kind`` and mints nothing (no randomness drawn)."""
    before = counter(env)
    with pytest.raises(SidecarError) as info:
        assume_role_with_saml(env, p, source)
    assert type(info.value) is kind, info.value
    assert counter(env) == before
    return info.value


class TestSuccess:
    def test_credentials_and_response_fields(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """A valid assertion gives verifiable credentials for the role and AWS's SAML response fields."""
        out = assume(env, source, response_b64(Claims(), idp))
        creds = out.result.credentials
        assert creds.access_key_id.startswith("ASIA")
        assert creds.expiration == START + 3600
        session, _ = verify_token(creds.session_token, env.keys, START)
        assert session == out.result.session
        assert session.arn == f"arn:aws:sts::{A}:assumed-role/saml-reader/{SUBJECT}"
        assert session.origin == "AssumeRoleWithSAML"
        assert session.federated_provider == PROVIDER_ARN
        assert session.chained is False
        assert (out.subject, out.subject_type, out.issuer, out.audience) == (
            SUBJECT,
            "persistent",
            IDP_ENTITY,
            RECIPIENT,
        )
        assert out.name_qualifier == session.federated_claims[0][1][0]

    def test_name_qualifier_as_documented(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """NameQualifier is base64(sha1(issuer + account id + "/" + provider name))."""
        out = assume(env, source, response_b64(Claims(), idp))
        digest = hashlib.sha1(f"{IDP_ENTITY}{A}/{PROVIDER}".encode()).digest()
        assert out.name_qualifier == base64.b64encode(digest).decode()

    def test_only_three_keys_carry_into_the_session(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """The session carries saml:namequalifier, saml:sub and saml:sub_type and nothing else from the assertion."""
        claims = Claims()
        claims.attributes[AFFILIATION_OID] = ["staff"]
        out = assume(env, source, response_b64(claims, idp))
        session = out.result.session
        assert [k for k, _ in session.federated_claims] == [
            "saml:namequalifier",
            "saml:sub",
            "saml:sub_type",
        ]
        ctx = session_context(Context(), session, None, START)
        assert ctx.single("saml:sub") == SUBJECT
        assert ctx.single("saml:sub_type") == "persistent"
        assert ctx.single("aws:federatedprovider") == PROVIDER_ARN
        assert "saml:iss" not in ctx
        assert "saml:edupersonaffiliation" not in ctx

    def test_role_attribute_in_either_order_among_several(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """Role values may list provider then role, and the requested pair may be any of several."""
        claims = Claims()
        claims.attributes[ROLE_ATTR] = [
            f"{READER},{OTHER_PROVIDER_ARN}",
            f"{PROVIDER_ARN}, {BASIC}",
        ]
        out = assume(env, source, response_b64(claims, idp), role=BASIC)
        assert out.result.session.role_name == "saml-basic"

    def test_session_policies_apply(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """An inline session policy and managed policy ARNs are recorded on the session."""
        policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
        arn = f"arn:aws:iam::{A}:policy/S3ReadAll"
        out = assume(env, source, response_b64(Claims(), idp), policy=policy, policy_arns=(arn,))
        assert [pid for pid, _ in out.result.session.session_policies] == ["SessionPolicy", arn]


class TestDuration:
    def test_session_not_on_or_after_ends_the_session_first(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """With SessionNotOnOrAfter 20 minutes away and DurationSeconds one hour, the session lasts 20 minutes."""
        b64 = response_b64(Claims(session_not_on_or_after=START + 1200), idp)
        out = assume(env, source, b64, duration_seconds=3600)
        assert out.result.credentials.expiration == START + 1200
        assert out.result.session.expires_at == START + 1200

    def test_duration_ends_the_session_first(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """With DurationSeconds 900 and SessionNotOnOrAfter two hours away, the session lasts 900 s."""
        b64 = response_b64(Claims(session_not_on_or_after=START + 7200), idp)
        assert (
            assume(env, source, b64, duration_seconds=900).result.credentials.expiration
            == START + 900
        )

    def test_session_duration_attribute(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """SessionDuration sets the length when DurationSeconds is absent, and the smaller one wins when both are given."""
        b64 = response_b64(Claims().with_attributes(SessionDuration=["1800"]), idp)
        assert assume(env, source, b64).result.credentials.expiration == START + 1800
        assert (
            assume(env, source, b64, duration_seconds=7200).result.credentials.expiration
            == START + 1800
        )
        assert (
            assume(env, source, b64, duration_seconds=900).result.credentials.expiration
            == START + 900
        )

    def test_session_duration_is_capped_by_the_role(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """A SessionDuration above the role's MaxSessionDuration is capped at it."""
        claims = listing(BASIC).with_attributes(SessionDuration=["43200"])
        out = assume(env, source, response_b64(claims, idp), role=BASIC)
        assert out.result.credentials.expiration == START + 7200

    def test_duration_above_role_maximum(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """DurationSeconds above the role's MaxSessionDuration is a ValidationError."""
        p = params(response_b64(listing(BASIC), idp), role=BASIC, duration_seconds=7201)
        err = refused(env, source, p, ValidationError)
        assert (
            err.message
            == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )

    def test_never_role_chaining(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """A SAML session may last 12 hours: it is never capped at the one-hour chaining limit."""
        out = assume(env, source, response_b64(Claims(), idp), duration_seconds=43200)
        assert out.result.credentials.expiration == START + 43200


class TestAttributes:
    def test_principal_tags_become_session_tags(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """PrincipalTag:* attributes are session tags; TransitiveTagKeys marks them transitive."""
        claims = Claims().with_attributes(
            PrincipalTag_dept=["eng"], PrincipalTag_cost=["42"], TransitiveTagKeys=["dept"]
        )
        session = assume(env, source, response_b64(claims, idp)).result.session
        assert dict(session.tags) == {"dept": "eng", "cost": "42"}
        assert session.transitive_tag_keys == ("dept",)
        ctx = session_context(Context(), session, env.world.roles_by_arn[READER], START)
        assert ctx.single("aws:principaltag/dept") == "eng"
        assert ctx.single("aws:principaltag/team") == "payments"

    def test_tags_need_tag_session(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """Passing tags from the IdP needs sts:TagSession in the trust policy."""
        claims = listing(BASIC).with_attributes(PrincipalTag_dept=["eng"])
        err = refused(env, source, params(response_b64(claims, idp), role=BASIC), AccessDenied)
        assert err.message == DENIED

    def test_source_identity(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """SourceIdentity is set on the session, and needs sts:SetSourceIdentity."""
        claims = Claims().with_attributes(SourceIdentity=["alice"])
        out = assume(env, source, response_b64(claims, idp))
        assert out.source_identity == "alice"
        claims = listing(BASIC).with_attributes(SourceIdentity=["alice"])
        refused(env, source, params(response_b64(claims, idp), role=BASIC), AccessDenied)

    @pytest.mark.parametrize(
        "extra",
        [
            {"RoleSessionName": []},
            {"RoleSessionName": ["a"]},
            {"RoleSessionName": ["has space"]},
            {"RoleSessionName": ["one", "two"]},
            {"SessionDuration": ["899"]},
            {"SessionDuration": ["43201"]},
            {"SessionDuration": ["1h"]},
            {"PrincipalTag_aws:x": ["y"]},
            {"PrincipalTag_Dept": ["a"], "PrincipalTag_dept": ["b"]},
            {"PrincipalTag_dept": ["a", "b"]},
            {"PrincipalTag_dept": ["semi;colon"]},
            {"PrincipalTag_dept": ["eng"], "TransitiveTagKeys": ["team"]},
            {"SourceIdentity": ["aws:me"]},
            {"SourceIdentity": ["x"]},
        ],
    )
    def test_bad_aws_attributes(
        self, env: StsEnv, source: MetadataSource, idp: Idp, extra: dict[str, list[str]]
    ) -> None:
        """Invalid AWS attributes (session name, duration, tags, source identity) are refused with reason bad_attribute."""
        claims = Claims().with_attributes(**extra)
        if extra.get("RoleSessionName") == []:
            del claims.attributes[ATTR + "RoleSessionName"]
        err = refused(env, source, params(response_b64(claims, idp)), InvalidIdentityToken)
        assert getattr(err, "reason", None) == "bad_attribute"

    def test_no_role_attribute(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """An assertion without a Role attribute is refused."""
        claims = Claims()
        del claims.attributes[ROLE_ATTR]
        err = refused(env, source, params(response_b64(claims, idp)), InvalidIdentityToken)
        assert getattr(err, "reason", None) == "bad_attribute"


class TestTrust:
    def test_pair_not_listed(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """A role the Role attribute does not list with this provider is AccessDenied."""
        b64 = response_b64(Claims(), idp)
        err = refused(env, source, params(b64, role=BASIC), AccessDenied)
        assert err.message == DENIED

    def test_role_listed_with_another_provider(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """The role listed only with another provider does not count for this one."""
        b64 = response_b64(listing(READER, provider=OTHER_PROVIDER_ARN), idp)
        refused(env, source, params(b64), AccessDenied)

    def test_assertion_for_another_provider(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """Naming another provider checks the assertion against that provider's keys, which did not sign it."""
        b64 = response_b64(listing(role_arn("saml-other-idp"), provider=OTHER_PROVIDER_ARN), idp)
        p = params(b64, role=role_arn("saml-other-idp"), principal=OTHER_PROVIDER_ARN)
        err = refused(env, source, p, InvalidIdentityToken)
        assert getattr(err, "reason", None) == "bad_signature"

    def test_trust_condition_on_saml_aud(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """saml:aud is the Recipient: a trust policy expecting another value denies."""
        arn = role_arn("saml-other-aud")
        err = refused(env, source, params(response_b64(listing(arn), idp), role=arn), AccessDenied)
        assert err.message == DENIED

    def test_trust_condition_on_saml_sub(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """saml:sub (the NameID) and saml:iss conditions allow the named user and deny another."""
        arn = role_arn("saml-sub")
        assert assume(env, source, response_b64(listing(arn), idp), role=arn).subject == SUBJECT
        other = dataclasses.replace(listing(arn), name_id="mallory@example.com")
        refused(env, source, params(response_b64(other, idp), role=arn), AccessDenied)

    def test_attribute_cannot_pose_as_the_subject(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """An attribute named "sub" never replaces saml:sub, which is always the NameID."""
        arn = role_arn("saml-sub")
        claims = dataclasses.replace(listing(arn), name_id="mallory@example.com")
        claims.attributes["sub"] = [SUBJECT]
        refused(env, source, params(response_b64(claims, idp), role=arn), AccessDenied)

    def test_attributes_and_doc_as_condition_keys(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """Assertion attributes are multivalued saml: keys (by AWS's OID names), with saml:doc and saml:sub_type."""
        arn = role_arn("saml-staff")
        staff = listing(arn)
        staff.attributes[AFFILIATION_OID] = ["member", "staff"]
        assert (
            assume(env, source, response_b64(staff, idp), role=arn).result.session.role_name
            == "saml-staff"
        )
        student = listing(arn)
        student.attributes[AFFILIATION_OID] = ["student"]
        refused(env, source, params(response_b64(student, idp), role=arn), AccessDenied)

    def test_role_that_trusts_only_users(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """A role whose trust policy does not name the provider denies."""
        arn = role_arn("users-only")
        refused(env, source, params(response_b64(listing(arn), idp), role=arn), AccessDenied)

    def test_role_that_does_not_exist(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """A listed role that does not exist is AccessDenied, revealing nothing."""
        arn = role_arn("ghost")
        refused(env, source, params(response_b64(listing(arn), idp), role=arn), AccessDenied)

    def test_role_path_must_match(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """A role ARN with the wrong path does not name the role, even when listed."""
        arn = role_arn("saml-reader")  # the role's path is /fed/
        refused(env, source, params(response_b64(listing(arn), idp), role=arn), AccessDenied)


class TestRequest:
    def test_shape_errors(self, env: StsEnv, source: MetadataSource) -> None:
        """Every shape violation is listed in AWS's format, without echoing the assertion."""
        err = refused(
            env, source, params("abc", role="arn:short", principal="arn:too-short"), ValidationError
        )
        assert err.message == (
            "3 validation errors detected: "
            "Value 'arn:short' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20; "
            "Value 'arn:too-short' at 'principalArn' failed to satisfy constraint: Member must have length greater than or equal to 20; "
            "Value at 'sAMLAssertion' failed to satisfy constraint: Member must have length greater than or equal to 4"
        )

    def test_oversized_assertion(self, env: StsEnv, source: MetadataSource) -> None:
        """An assertion over 100,000 characters is a ValidationError."""
        err = refused(env, source, params("A" * 100_001), ValidationError)
        assert err.message == (
            "1 validation error detected: Value at 'sAMLAssertion' failed to satisfy "
            "constraint: Member must have length less than or equal to 100000"
        )

    def test_duration_shape(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """DurationSeconds outside 900..43200 is a ValidationError."""
        err = refused(
            env, source, params(response_b64(Claims(), idp), duration_seconds=600), ValidationError
        )
        assert "durationSeconds" in err.message

    def test_unknown_provider(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """A PrincipalArn that names no SAML provider is InvalidIdentityToken."""
        p = params(response_b64(Claims(), idp), principal=f"arn:aws:iam::{A}:saml-provider/nobody")
        err = refused(env, source, p, InvalidIdentityToken)
        assert getattr(err, "reason", None) == "unknown_provider"

    def test_unreadable_metadata(
        self, env: StsEnv, source: MetadataSource, idp: Idp, tmp_path: Path
    ) -> None:
        """A provider whose metadata file is missing refuses with reason metadata."""
        acct = env.world.accounts[A]
        broken = SamlProvider(A, PROVIDER, PROVIDER_ARN, str(tmp_path / "gone.xml"))
        world = dataclasses.replace(
            env.world,
            accounts={A: dataclasses.replace(acct, saml_providers={PROVIDER_ARN: broken})},
        )
        env2 = dataclasses.replace(env, world=world)
        err = refused(env2, source, params(response_b64(Claims(), idp)), InvalidIdentityToken)
        assert getattr(err, "reason", None) == "metadata"

    def test_order_assertion_before_policy(
        self, env: StsEnv, source: MetadataSource, idp: Idp
    ) -> None:
        """A bad assertion is reported before a malformed session policy, and the pair check before it too."""
        refused(env, source, params(response_b64(Claims(), None), policy="{"), InvalidIdentityToken)
        refused(
            env, source, params(response_b64(Claims(), idp), role=BASIC, policy="{"), AccessDenied
        )

    def test_order_policy_before_trust(self, env: StsEnv, source: MetadataSource, idp: Idp) -> None:
        """A malformed session policy is reported before the trust policy is evaluated."""
        arn = role_arn("users-only")
        refused(
            env,
            source,
            params(response_b64(listing(arn), idp), role=arn, policy="{"),
            MalformedPolicyDocument,
        )
        refused(
            env, source, params(response_b64(Claims(), idp), policy="{"), MalformedPolicyDocument
        )


def _unsigned(idp: Idp, evil: Idp) -> str:
    return response_b64(Claims(), None)


def _other_key(idp: Idp, evil: Idp) -> str:
    return response_b64(Claims(), evil)


def _wrapped(idp: Idp, evil: Idp) -> str:
    r = build_response(Claims(), idp)
    forged = build_assertion(Claims(name_id="admin", assertion_id="_forged"), placeholder=False)
    find(r, "saml:Assertion").addprevious(forged)
    return encode(r)


def _duplicated(idp: Idp, evil: Idp) -> str:
    r = build_response(Claims(), idp)
    r.append(clone(find(r, "saml:Assertion")))
    return encode(r)


def _comment(idp: Idp, evil: Idp) -> str:
    r = build_response(Claims(name_id="alice@example.com.evil.com"), idp)
    xml = etree.tostring(r).decode()
    return encode_text(
        xml.replace(">alice@example.com.evil.com<", ">alice@example.com<!---->.evil.com<")
    )


def _replayed(idp: Idp, evil: Idp) -> str:
    return response_b64(
        Claims(
            issue_instant=START - 900, not_on_or_after=START + 900, scd_not_on_or_after=START + 900
        ),
        idp,
    )


def _expired(idp: Idp, evil: Idp) -> str:
    return response_b64(Claims(issue_instant=START - 280, not_on_or_after=START - 100), idp)


def _recipient(idp: Idp, evil: Idp) -> str:
    return response_b64(Claims(recipient="https://sp.example.org/acs", destination=None), idp)


def _audience(idp: Idp, evil: Idp) -> str:
    return response_b64(Claims(audiences=("urn:other",)), idp)


def _issuer(idp: Idp, evil: Idp) -> str:
    return response_b64(Claims(issuer="https://other-idp.example.com", response_issuer=None), idp)


def _garbage(idp: Idp, evil: Idp) -> str:
    return "%%%% definitely not base64 %%%%"


def _laughs(idp: Idp, evil: Idp) -> str:
    body = etree.tostring(build_response(Claims(), idp)).decode().replace(f">{SUBJECT}<", ">&b;<")
    return encode_text(
        f'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>{body}'
    )


ATTACKS: list[tuple[Callable[[Idp, Idp], str], type[SidecarError], str]] = [
    (_unsigned, InvalidIdentityToken, "unsigned"),
    (_other_key, InvalidIdentityToken, "bad_signature"),
    (_wrapped, InvalidIdentityToken, "wrapped"),
    (_duplicated, InvalidIdentityToken, "wrapped"),
    (_comment, InvalidIdentityToken, "malformed"),
    (_replayed, ExpiredTokenException, "too_old"),
    (_expired, ExpiredTokenException, "expired"),
    (_recipient, InvalidIdentityToken, "wrong_recipient"),
    (_audience, InvalidIdentityToken, "wrong_audience"),
    (_issuer, InvalidIdentityToken, "wrong_issuer"),
    (_garbage, InvalidIdentityToken, "malformed"),
    (_laughs, InvalidIdentityToken, "malformed"),
]


@pytest.mark.parametrize(
    ("attack", "kind", "reason"), ATTACKS, ids=[a.__name__.strip("_") for a, _, _ in ATTACKS]
)
def test_attack_is_refused_and_nothing_else_is_affected(
    env: StsEnv,
    source: MetadataSource,
    idp: Idp,
    evil: Idp,
    attack: Callable[[Idp, Idp], str],
    kind: type[SidecarError],
    reason: str,
) -> None:
    """Each attack fails with its own error and reason, mints nothing, and a genuine assertion still works afterwards."""
    err = refused(env, source, params(attack(idp, evil)), kind)
    assert getattr(err, "reason", None) == reason
    out = assume(env, source, response_b64(Claims(), idp))
    assert out.subject == SUBJECT
    assert source.reads == 1
