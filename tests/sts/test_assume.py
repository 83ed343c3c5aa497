"""AssumeRole and GetCallerIdentity end to end in process, with a frozen clock."""

from __future__ import annotations

import pytest

from sidecar.errors import (
    AccessDenied,
    MalformedPolicyDocument,
    PackedPolicyTooLarge,
    ValidationError,
)
from sidecar.identity.model import World
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role, get_caller_identity
from sidecar.sts.callers import Caller, ServiceCaller, SessionCaller, UserCaller
from sidecar.sts.mfa import totp
from sidecar.sts.tokens import verify_token
from tests.sts.conftest import START
from tests.sts.world import ALICE, BOB, MFA_SEED, MFA_SERIAL, ORDERS, A, B

APP = f"arn:aws:iam::{A}:role/apps/app-reader"


def alice(world: World) -> UserCaller:
    return UserCaller(world.users_by_arn[ALICE])


def bob(world: World) -> UserCaller:
    return UserCaller(world.users_by_arn[BOB])


def params(role_arn: str = APP, name: str = "s1", **kw: object) -> AssumeRoleParams:
    return AssumeRoleParams(role_arn=role_arn, role_session_name=name, **kw)  # type: ignore[arg-type]


def denied(env: StsEnv, caller: Caller, p: AssumeRoleParams) -> str:
    with pytest.raises(AccessDenied) as info:
        assume_role(env, caller, p)
    return info.value.message


def invalid(env: StsEnv, caller: Caller, p: AssumeRoleParams) -> str:
    with pytest.raises(ValidationError) as info:
        assume_role(env, caller, p)
    return info.value.message


class TestPrincipals:
    def test_user_named_in_trust_gets_credentials(self, env: StsEnv) -> None:
        """A user the trust policy names directly needs no identity policy for it."""
        result = assume_role(env, alice(env.world), params())
        creds = result.credentials
        assert creds.access_key_id.startswith("ASIA")
        assert len(creds.access_key_id) == 20
        assert len(creds.secret_access_key) == 40
        assert creds.expiration == START + 3600
        assert result.arn == f"arn:aws:sts::{A}:assumed-role/app-reader/s1"
        assert result.assumed_role_id == f"{env.world.roles_by_arn[APP].role_id}:s1"
        session, _ = verify_token(creds.session_token, env.keys, START)
        assert session == result.session

    def test_user_not_in_trust_is_denied(self, env: StsEnv) -> None:
        """Bob is not named: AccessDenied in AWS's words."""
        assert denied(env, bob(env.world), params()) == (
            f"User: {BOB} is not authorized to perform: sts:AssumeRole on resource: {APP} "
            "because no role trust policy allows the sts:AssumeRole action"
        )

    def test_account_trust_needs_the_callers_identity_allow(self, env: StsEnv) -> None:
        """Trust naming the account delegates: alice (allowed by her policy) in, bob out."""
        arn = f"arn:aws:iam::{A}:role/account-trust"
        assume_role(env, alice(env.world), params(arn))
        denied(env, bob(env.world), params(arn))

    def test_cross_account_needs_both_sides(self, env: StsEnv) -> None:
        """Account B trusts account A; only A's users whose policies allow it get in."""
        arn = f"arn:aws:iam::{B}:role/cross"
        result = assume_role(env, alice(env.world), params(arn))
        assert result.session.account == B
        denied(env, bob(env.world), params(arn))

    def test_mesh_service_principal(self, env: StsEnv) -> None:
        """A service named in `Service` may assume; account trust does not cover it."""
        svc = ServiceCaller(ORDERS, ORDERS.spiffe_ids[0])
        assume_role(env, svc, params())
        denied(env, svc, params(f"arn:aws:iam::{A}:role/account-trust"))

    def test_unknown_role_is_access_denied(self, env: StsEnv) -> None:
        """A role that does not exist is not revealed: AccessDenied."""
        arn = f"arn:aws:iam::{A}:role/nope"
        assert denied(env, alice(env.world), params(arn)) == (
            f"User: {ALICE} is not authorized to perform: sts:AssumeRole on resource: {arn}"
        )


class TestChaining:
    def test_a_b_c_carries_transitive_tags_and_source_identity(self, env: StsEnv) -> None:
        """Transitive tags and the source identity flow down the chain; session policies and
        non-transitive tags do not; chained sessions are marked."""
        first = assume_role(
            env,
            alice(env.world),
            params(
                tags=(("project", "apollo"), ("cost", "42")),
                transitive_tag_keys=("project",),
                source_identity="alice",
                policy='{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":'
                '["s3:*","sts:AssumeRole"],"Resource":"*"}}',
            ),
        )
        b = assume_role(env, SessionCaller(first.session), params(f"arn:aws:iam::{A}:role/chain-b"))
        assert dict(b.session.tags) == {"project": "apollo"}
        assert b.session.transitive_tag_keys == ("project",)
        assert b.session.source_identity == "alice"
        assert b.session.session_policies == ()
        assert b.session.chained
        c = assume_role(env, SessionCaller(b.session), params(f"arn:aws:iam::{A}:role/chain-c"))
        assert dict(c.session.tags) == {"project": "apollo"}
        assert c.session.source_identity == "alice"

    def test_chaining_caps_duration_at_one_hour(self, env: StsEnv) -> None:
        """A role session may not ask for more than 3600 seconds."""
        first = assume_role(env, alice(env.world), params())
        p = params(f"arn:aws:iam::{A}:role/chain-b", duration_seconds=3601)
        assert invalid(env, SessionCaller(first.session), p) == (
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by "
            "role chaining."
        )

    def test_inherited_transitive_tag_cannot_be_overridden(self, env: StsEnv) -> None:
        """Passing a key already inherited as transitive fails."""
        first = assume_role(
            env,
            alice(env.world),
            params(tags=(("project", "apollo"),), transitive_tag_keys=("project",)),
        )
        p = params(f"arn:aws:iam::{A}:role/chain-b", tags=(("Project", "zeus"),))
        assert "transitive" in invalid(env, SessionCaller(first.session), p)

    def test_source_identity_cannot_change(self, env: StsEnv) -> None:
        """Down a chain the source identity is immutable."""
        first = assume_role(env, alice(env.world), params(source_identity="alice"))
        p = params(f"arn:aws:iam::{A}:role/chain-b", source_identity="mallory")
        assert "SourceIdentity cannot be changed" in invalid(env, SessionCaller(first.session), p)

    def test_a_role_does_not_trust_itself(self, env: StsEnv) -> None:
        """chain-b trusts app-reader only, so a chain-b session cannot assume chain-b."""
        first = assume_role(env, alice(env.world), params())
        b = assume_role(env, SessionCaller(first.session), params(f"arn:aws:iam::{A}:role/chain-b"))
        denied(env, SessionCaller(b.session), params(f"arn:aws:iam::{A}:role/chain-b"))


class TestParameters:
    def test_durations(self, env: StsEnv) -> None:
        """Default 3600; up to the role's maximum; beyond it, AWS's message."""
        assert (
            assume_role(env, alice(env.world), params(duration_seconds=7200)).credentials.expiration
            == START + 7200
        )
        assert invalid(env, alice(env.world), params(duration_seconds=7201)) == (
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
        long = f"arn:aws:iam::{A}:role/long"
        assert (
            assume_role(
                env, alice(env.world), params(long, duration_seconds=43200)
            ).credentials.expiration
            == START + 43200
        )

    @pytest.mark.parametrize(
        ("p", "message"),
        [
            (
                params(name="a"),
                "1 validation error detected: Value 'a' at 'roleSessionName' failed to satisfy "
                "constraint: Member must have length greater than or equal to 2",
            ),
            (
                params(name="has space"),
                "1 validation error detected: Value 'has space' at 'roleSessionName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            ),
            (
                params(name="x" * 65),
                f"1 validation error detected: Value '{'x' * 65}' at 'roleSessionName' failed to "
                "satisfy constraint: Member must have length less than or equal to 64",
            ),
            (
                params(duration_seconds=899),
                "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy "
                "constraint: Member must have value greater than or equal to 900",
            ),
            (
                params(duration_seconds=43201),
                "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy "
                "constraint: Member must have value less than or equal to 43200",
            ),
            (
                params(external_id="x"),
                "1 validation error detected: Value 'x' at 'externalId' failed to satisfy "
                "constraint: Member must have length greater than or equal to 2",
            ),
            (
                params(token_code="12345", serial_number=MFA_SERIAL),
                "1 validation error detected: Value '12345' at 'tokenCode' failed to satisfy "
                "constraint: Member must have length greater than or equal to 6",
            ),
            (
                params(tags=(("k" * 129, "v"),)),
                f"1 validation error detected: Value '{'k' * 129}' at 'tags.1.member.key' failed "
                "to satisfy constraint: Member must have length less than or equal to 128",
            ),
            (
                params(source_identity="a b"),
                "1 validation error detected: Value 'a b' at 'sourceIdentity' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            ),
        ],
    )
    def test_shape_messages(self, env: StsEnv, p: AssumeRoleParams, message: str) -> None:
        """Each shape rule fails with AWS's standard ValidationError message."""
        assert invalid(env, alice(env.world), p) == message

    def test_several_violations_are_counted(self, env: StsEnv) -> None:
        """Two broken parameters: "2 validation errors detected", joined by "; "."""
        message = invalid(env, alice(env.world), params(name="a", duration_seconds=10))
        assert message.startswith("2 validation errors detected: Value 'a' at 'roleSessionName'")
        assert "; Value '10' at 'durationSeconds'" in message

    def test_external_id(self, env: StsEnv) -> None:
        """sts:ExternalId reaches the trust policy's condition."""
        arn = f"arn:aws:iam::{A}:role/external"
        denied(env, alice(env.world), params(arn))
        denied(env, alice(env.world), params(arn, external_id="wrong-id"))
        assume_role(env, alice(env.world), params(arn, external_id="xyz-123"))

    def test_mfa(self, env: StsEnv) -> None:
        """A valid TOTP code makes aws:MultiFactorAuthPresent true; a bad one is refused."""
        arn = f"arn:aws:iam::{A}:role/mfa-role"
        denied(env, alice(env.world), params(arn))
        assert (
            denied(
                env, alice(env.world), params(arn, serial_number=MFA_SERIAL, token_code="000000")
            )
            == "MultiFactorAuthentication failed with invalid MFA one time pass code."
        )
        code = totp(MFA_SEED, START)
        result = assume_role(
            env, alice(env.world), params(arn, serial_number=MFA_SERIAL, token_code=code)
        )
        assert result.session.mfa_authenticated_at == START

    def test_tags_need_tag_session_in_trust(self, env: StsEnv) -> None:
        """Passing tags requires sts:TagSession from the trust policy."""
        arn = f"arn:aws:iam::{A}:role/account-trust"
        message = denied(env, alice(env.world), params(arn, tags=(("a", "b"),)))
        assert "sts:TagSession" in message

    def test_source_identity_needs_set_source_identity(self, env: StsEnv) -> None:
        """Passing a source identity requires sts:SetSourceIdentity."""
        arn = f"arn:aws:iam::{A}:role/account-trust"
        assert "sts:SetSourceIdentity" in denied(
            env, alice(env.world), params(arn, source_identity="al")
        )

    def test_duplicate_tag_keys_ignoring_case(self, env: StsEnv) -> None:
        """Tag keys are case-insensitive: Team and team clash."""
        assert "Duplicate tag keys" in invalid(
            env, alice(env.world), params(tags=(("Team", "a"), ("team", "b")))
        )

    def test_packed_policy_too_large(self, env: StsEnv) -> None:
        """Session policies plus tags over the packed budget: PackedPolicyTooLarge."""
        import random

        rnd = random.Random(7)
        tags = tuple(
            (
                f"k{i}",
                "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(200)),
            )
            for i in range(50)
        )
        with pytest.raises(
            PackedPolicyTooLarge, match=r"Packed policy consumes \d+% of allotted space"
        ):
            assume_role(env, alice(env.world), params(tags=tags))

    def test_small_session_policy_reports_packed_size(self, env: StsEnv) -> None:
        """PackedPolicySize is a percentage: above 0 with a session policy."""
        policy = (
            '{"Version":"2012-10-17","Statement":'
            '{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}'
        )
        result = assume_role(env, alice(env.world), params(policy=policy))
        assert 0 < result.packed_policy_size < 100
        assert assume_role(env, alice(env.world), params()).packed_policy_size == 0

    def test_unknown_policy_arn(self, env: StsEnv) -> None:
        """A PolicyArns entry naming no managed policy of the role's account: the position and
        the ARN in AWS's one-violation ValidationError."""
        s3read = f"arn:aws:iam::{A}:policy/S3Read"
        nope = f"arn:aws:iam::{A}:policy/Nope"
        assert invalid(env, alice(env.world), params(policy_arns=(s3read, nope))) == (
            f"1 validation error detected: Value '{nope}' at 'policyArns.2.member.arn' failed "
            "to satisfy constraint: the policy does not exist in the role's account"
        )


class TestErrorOrder:
    def test_shape_before_access(self, env: StsEnv) -> None:
        """A denied caller with a bad parameter sees the ValidationError first."""
        invalid(env, bob(env.world), params(name="a"))

    def test_malformed_session_policy_before_access(self, env: StsEnv) -> None:
        """A denied caller with a malformed session policy sees MalformedPolicyDocument."""
        with pytest.raises(MalformedPolicyDocument):
            assume_role(env, bob(env.world), params(policy='{"Statement": []}'))

    def test_access_before_duration_cap(self, env: StsEnv) -> None:
        """A denied caller asking for too long a session sees AccessDenied."""
        denied(env, bob(env.world), params(duration_seconds=7201))

    def test_duration_cap_before_packed_size(self, env: StsEnv) -> None:
        """Too long a session and too many tags: the duration error comes first."""
        tags = tuple((f"k{i}", "v" * 256) for i in range(50))
        invalid(env, alice(env.world), params(duration_seconds=7201, tags=tags))


class TestCallerIdentity:
    def test_every_kind_of_caller(self, env: StsEnv) -> None:
        """Users, sessions and services each get their ids, account and ARN."""
        user = env.world.users_by_arn[ALICE]
        ident = get_caller_identity(alice(env.world))
        assert (ident.user_id, ident.account, ident.arn) == (user.user_id, A, ALICE)
        session = assume_role(env, alice(env.world), params()).session
        ident = get_caller_identity(SessionCaller(session))  # no permission needed
        assert (ident.user_id, ident.account, ident.arn) == (
            session.assumed_role_id,
            A,
            session.arn,
        )
        svc = get_caller_identity(ServiceCaller(ORDERS, ORDERS.spiffe_ids[0]))
        assert svc.arn == ORDERS.spiffe_ids[0]


def test_session_policy_caps_a_role_level_trust_grant(env: StsEnv) -> None:
    """chain-b trusts the app-reader role ARN: a role-level grant, so the first session's
    session policy still applies and, allowing only s3, blocks the chain."""
    only_s3 = (
        '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}'
    )
    first = assume_role(env, alice(env.world), params(policy=only_s3))
    message = denied(env, SessionCaller(first.session), params(f"arn:aws:iam::{A}:role/chain-b"))
    assert message.endswith("because no session policy allows the sts:AssumeRole action")
