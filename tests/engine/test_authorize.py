"""Authorizing role sessions: policies in scope as they are now, sidecar-set context keys,
expiry, revocation and resource policies."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.errors import ExpiredToken, InvalidClientTokenId, ValidationError
from sidecar.identity import ids
from sidecar.identity.model import ResourcePolicy, World
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.clock import iso8601
from sidecar.sts.revoke import REVOKE_POLICY_NAME, revocation_policy
from sidecar.sts.tokens import EXPIRED, NOT_YET_VALID
from tests.fakes import FixedClock
from tests.sts.conftest import START
from tests.sts.world import ALICE, A, B, _compile, allow, doc

APP = f"arn:aws:iam::{A}:role/apps/app-reader"
REPORT = "arn:aws:s3:::reports/q1.csv"


def token_for(env: StsEnv, role_arn: str = APP, **kw: object) -> str:
    caller = UserCaller(env.world.users_by_arn[ALICE])
    p = AssumeRoleParams(role_arn=role_arn, role_session_name="s1", **kw)  # type: ignore[arg-type]
    return assume_role(env, caller, p).credentials.session_token


def with_role(world: World, role_arn: str, **changes: object) -> World:
    """A copy of ``world`` in which one role is changed (what a reload would give)."""
    role = world.roles_by_arn[role_arn]
    new_role = dataclasses.replace(role, **changes)  # type: ignore[arg-type]
    acct = world.accounts[role.account]
    roles = {**acct.roles, role.name.lower(): new_role}
    accounts = {**world.accounts, role.account: dataclasses.replace(acct, roles=roles)}
    return dataclasses.replace(
        world, accounts=accounts, roles_by_arn={**world.roles_by_arn, role_arn: new_role}
    )


@pytest.fixture
def authz(env: StsEnv) -> Authorizer:
    return Authorizer(env.world, env.keys, env.clock)


class TestDecisions:
    def test_role_policies_decide(self, env: StsEnv, authz: Authorizer) -> None:
        """The role's managed policy allows reading reports and nothing else."""
        token = token_for(env)
        ok = authz.authorize(token, "s3:GetObject", REPORT)
        assert ok.decision is Decision.ALLOWED
        assert ok.principal_arn == f"arn:aws:sts::{A}:assumed-role/app-reader/s1"
        assert [m.ref.policy_id for m in ok.evaluation.matched] == [
            f"arn:aws:iam::{A}:policy/S3Read"
        ]
        no = authz.authorize(token, "s3:PutObject", REPORT)
        assert no.decision is Decision.IMPLICIT_DENY
        assert "because no identity-based policy allows the s3:PutObject action" in no.reason

    def test_session_policy_caps(self, env: StsEnv, authz: Authorizer) -> None:
        """A session policy narrower than the role leaves only the intersection."""
        policy = (
            '{"Version":"2012-10-17","Statement":'
            '{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}}'
        )
        token = token_for(env, policy=policy)
        assert authz.authorize(token, "s3:GetObject", REPORT).decision is Decision.IMPLICIT_DENY

    def test_boundary_caps(self, env: StsEnv, authz: Authorizer) -> None:
        """The role allows s3:*, its boundary only ListBucket."""
        token = token_for(env, f"arn:aws:iam::{A}:role/bounded")
        assert (
            authz.authorize(token, "s3:ListBucket", "arn:aws:s3:::b").decision is Decision.ALLOWED
        )
        assert authz.authorize(token, "s3:GetObject", REPORT).decision is Decision.IMPLICIT_DENY

    def test_live_sessions_see_the_role_as_it_is_now(self, env: StsEnv) -> None:
        """Changing the role's policies (a reload) changes what existing sessions may do."""
        token = token_for(env)
        grant = {"extra": _compile(doc(allow("s3:PutObject")), PolicyKind.IDENTITY, "extra")}
        newer = with_role(env.world, APP, inline_policies=grant)
        authz = Authorizer(newer, env.keys, env.clock)
        assert authz.authorize(token, "s3:PutObject", REPORT).decision is Decision.ALLOWED


def without_role(world: World, role_arn: str) -> World:
    """A copy of ``world`` in which one role is deleted."""
    role = world.roles_by_arn[role_arn]
    acct = world.accounts[role.account]
    roles = {k: r for k, r in acct.roles.items() if r.arn != role_arn}
    accounts = {**world.accounts, role.account: dataclasses.replace(acct, roles=roles)}
    by_arn = {k: r for k, r in world.roles_by_arn.items() if k != role_arn}
    return dataclasses.replace(world, accounts=accounts, roles_by_arn=by_arn)


def in_partition(world: World, partition: str) -> World:
    """``world`` reloaded in another partition: same names, role ids derived anew."""
    for arn, role in list(world.roles_by_arn.items()):
        world = with_role(world, arn, role_id=ids.role_id(partition, role.account, role.name))
    return dataclasses.replace(world, partition=partition)


class TestRoleGone:
    """Sessions whose role the world no longer has can do nothing (nothing cached either)."""

    GONE = "the session's role no longer exists"

    def test_a_deleted_role(self, env: StsEnv) -> None:
        token = token_for(env)
        authz = Authorizer(without_role(env.world, APP), env.keys, env.clock)
        result = authz.authorize(token, "s3:GetObject", REPORT)
        assert result.decision is Decision.IMPLICIT_DENY
        assert result.reason == self.GONE
        assert authz.referenced_keys(authz.session(token), REPORT) is None

    def test_a_reload_into_another_partition(self, env: StsEnv) -> None:
        """The session names `arn:aws:...`; a world reloaded as aws-cn has a role of that name
        in that account, but not that role."""
        token = token_for(env)
        engine = Engine(env.world, env.keys, env.clock)
        assert engine.authorize(token, "s3:GetObject", REPORT)[0].decision is Decision.ALLOWED
        engine.swap(in_partition(env.world, "aws-cn"), env.keys)
        for _ in range(2):  # the refusal is not served from the decision cache
            result, cached = engine.authorize(token, "s3:GetObject", REPORT)
            assert (result.decision, result.reason, cached) == (
                Decision.IMPLICIT_DENY,
                self.GONE,
                False,
            )
        assert engine.snapshot.authorizer.referenced_keys(engine.verify(token), REPORT) is None


class TestContext:
    def test_principal_tags_from_role_and_session(self, env: StsEnv) -> None:
        """aws:PrincipalTag/* holds role tags, overridden by session tags whatever the case."""
        cond = doc(
            allow("s3:GetObject", Condition={"StringEquals": {"aws:PrincipalTag/team": "search"}})
        )
        world = with_role(
            env.world,
            APP,
            inline_policies={"t": _compile(cond, PolicyKind.IDENTITY, "t")},
            managed_policy_arns=(),
        )
        env = dataclasses.replace(env, world=world)
        authz = Authorizer(world, env.keys, env.clock)
        role_tagged = token_for(env)  # role tag team=payments
        assert (
            authz.authorize(role_tagged, "s3:GetObject", REPORT).decision is Decision.IMPLICIT_DENY
        )
        session_tagged = token_for(env, tags=(("Team", "search"),))
        assert authz.authorize(session_tagged, "s3:GetObject", REPORT).decision is Decision.ALLOWED

    def test_callers_cannot_set_sidecar_keys(self, env: StsEnv) -> None:
        """Caller-given aws:PrincipalTag/* or aws:PrincipalArn are refused (ValidationError
        naming the key), never evaluated; without them the session's own tags decide."""
        cond = doc(
            allow("s3:GetObject", Condition={"StringEquals": {"aws:PrincipalTag/admin": "yes"}})
        )
        world = with_role(
            env.world,
            APP,
            inline_policies={"t": _compile(cond, PolicyKind.IDENTITY, "t")},
            managed_policy_arns=(),
        )
        env = dataclasses.replace(env, world=world)
        authz = Authorizer(world, env.keys, env.clock)
        token = token_for(env)
        for key, name in (
            ("aws:PrincipalTag/admin", "aws:PrincipalTag/admin"),
            ("AWS:PRINCIPALARN", "aws:PrincipalArn"),
        ):
            with pytest.raises(ValidationError, match=f"context key {name} is reserved"):
                authz.authorize(token, "s3:GetObject", REPORT, Context({key: ("yes",)}))
        assert authz.authorize(token, "s3:GetObject", REPORT).decision is Decision.IMPLICIT_DENY

    def test_caller_keys_and_transport_reach_conditions(self, env: StsEnv) -> None:
        """Service keys from the caller and aws:SourceIp from the transport are evaluated."""
        cond = doc(
            allow(
                "s3:ListBucket",
                Condition={
                    "StringLike": {"s3:prefix": "home/*"},
                    "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                },
            )
        )
        world = with_role(
            env.world, APP, inline_policies={"t": _compile(cond, PolicyKind.IDENTITY, "t")}
        )
        env = dataclasses.replace(env, world=world)
        authz = Authorizer(world, env.keys, env.clock)
        token = token_for(env)
        ctx = Context({"s3:prefix": ("home/alice",)})
        yes = authz.authorize(
            token, "s3:ListBucket", "arn:aws:s3:::b", ctx, {"aws:SourceIp": "10.1.2.3"}
        )
        assert yes.decision is Decision.ALLOWED
        no = authz.authorize(
            token, "s3:ListBucket", "arn:aws:s3:::b", ctx, {"aws:SourceIp": "192.0.2.1"}
        )
        assert no.decision is Decision.IMPLICIT_DENY


class TestLifetime:
    def test_expiry_at_the_exact_second(self, env: StsEnv) -> None:
        """Allowed one second before the expiration, refused (ExpiredToken) at it."""
        token = token_for(env, duration_seconds=900)
        clock = FixedClock(START + 899)
        authz = Authorizer(env.world, env.keys, clock)
        assert authz.authorize(token, "s3:GetObject", REPORT).decision is Decision.ALLOWED
        clock.advance(1)
        with pytest.raises(ExpiredToken):
            authz.authorize(token, "s3:GetObject", REPORT)

    def test_cached_sessions_keep_the_window(self, env: StsEnv) -> None:
        """The engine's caches skip verification, not the validity window: expired at the
        exact second, not yet valid when the clock falls back past the leeway."""
        token = token_for(env, duration_seconds=900)
        clock = FixedClock(START + 899)
        engine = Engine(env.world, env.keys, clock)
        assert engine.authorize(token, "s3:GetObject", REPORT)[0].decision is Decision.ALLOWED
        assert engine.authorize(token, "s3:GetObject", REPORT)[1]  # from the decision cache
        clock.advance(1)
        for use in (
            lambda: engine.authorize(token, "s3:GetObject", REPORT),  # decision cache
            lambda: engine.verify(token),  # token cache
        ):
            with pytest.raises(ExpiredToken) as expired:
                use()
            assert (expired.value.reason, expired.value.message) == ("expired", EXPIRED)
        clock.advance(-900 - 31)  # 31 s before the issue time: past the 30 s leeway
        with pytest.raises(InvalidClientTokenId) as early:
            engine.authorize(token, "s3:GetObject", REPORT)
        assert (early.value.reason, early.value.message) == ("not_yet_valid", NOT_YET_VALID)
        clock.advance(1)  # within the leeway
        assert engine.authorize(token, "s3:GetObject", REPORT)[1]

    def test_revocation_denies_older_sessions_only(self, env: StsEnv) -> None:
        """AWSRevokeOlderSessions explicitly denies sessions issued before it, not after."""
        old = token_for(env)
        env.clock.advance(60)  # type: ignore[attr-defined]
        revoke = _compile(
            revocation_policy(iso8601(env.clock.now())), PolicyKind.IDENTITY, REVOKE_POLICY_NAME
        )
        role = env.world.roles_by_arn[APP]
        world = with_role(
            env.world, APP, inline_policies={**role.inline_policies, REVOKE_POLICY_NAME: revoke}
        )
        env = dataclasses.replace(env, world=world)
        authz = Authorizer(world, env.keys, env.clock)
        result = authz.authorize(old, "s3:GetObject", REPORT)
        assert result.decision is Decision.EXPLICIT_DENY
        assert [m.ref.policy_id for m in result.evaluation.matched] == [REVOKE_POLICY_NAME]
        env.clock.advance(1)  # type: ignore[attr-defined]
        assert authz.authorize(token_for(env), "s3:GetObject", REPORT).decision is Decision.ALLOWED


class TestResourcePolicies:
    def _world_with_bucket_policy(self, world: World, principal: object) -> World:
        policy = _compile(
            doc(
                {
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::shared/*",
                }
            ),
            PolicyKind.RESOURCE,
            "arn:aws:s3:::shared/*",
        )
        acct = world.accounts[B]
        acct = dataclasses.replace(
            acct, resource_policies=(ResourcePolicy(B, "arn:aws:s3:::shared/*", policy),)
        )
        return dataclasses.replace(world, accounts={**world.accounts, B: acct})

    def test_cross_account_needs_the_identity_side_too(self, env: StsEnv) -> None:
        """B's bucket names A's session; the session's role must also allow it
        (docs/SEMANTICS.md §5.4)."""
        token = token_for(
            env, f"arn:aws:iam::{A}:role/bounded"
        )  # role allows s3:*, boundary not GetObject
        session_arn = f"arn:aws:sts::{A}:assumed-role/bounded/s1"
        world = self._world_with_bucket_policy(env.world, {"AWS": session_arn})
        authz = Authorizer(world, env.keys, env.clock)
        result = authz.authorize(token, "s3:GetObject", "arn:aws:s3:::shared/x")
        assert result.decision is Decision.IMPLICIT_DENY

    def test_same_account_session_grant_ignores_the_boundary(self, env: StsEnv) -> None:
        """A resource policy naming the session allows despite the boundary
        (docs/SEMANTICS.md §5.3)."""
        token = token_for(env, f"arn:aws:iam::{A}:role/bounded")
        session_arn = f"arn:aws:sts::{A}:assumed-role/bounded/s1"
        world = self._world_with_bucket_policy(env.world, {"AWS": session_arn})
        acct_b = world.accounts[B]
        acct_a = dataclasses.replace(world.accounts[A], resource_policies=acct_b.resource_policies)
        world = dataclasses.replace(
            world, accounts={A: acct_a, B: dataclasses.replace(acct_b, resource_policies=())}
        )
        authz = Authorizer(world, env.keys, env.clock)
        assert (
            authz.authorize(token, "s3:GetObject", "arn:aws:s3:::shared/x").decision
            is Decision.ALLOWED
        )
        role_arn = f"arn:aws:iam::{A}:role/bounded"
        world_role = self._world_with_bucket_policy(env.world, {"AWS": role_arn})
        acct_a2 = dataclasses.replace(
            world_role.accounts[A], resource_policies=world_role.accounts[B].resource_policies
        )
        world_role = dataclasses.replace(
            world_role, accounts={A: acct_a2, B: env.world.accounts[B]}
        )
        authz2 = Authorizer(world_role, env.keys, env.clock)
        assert (
            authz2.authorize(token, "s3:GetObject", "arn:aws:s3:::shared/x").decision
            is Decision.IMPLICIT_DENY
        )
