"""A caller states facts about the request only: the allow-list of caller context keys, its
table in docs/CONDITION-KEYS.md, and the engine refusing sidecar keys before any cache."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sidecar.engine.authorize import BUILT_IN_PREFIXES, Authorizer, federated_prefixes
from sidecar.engine.engine import Engine
from sidecar.errors import ValidationError
from sidecar.identity.model import OidcProvider, ResourcePolicy, World
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.policy.key_owners import (
    CALLER_GLOBAL_KEYS,
    SESSION_SERVICE_KEYS,
    SIDECAR_GLOBAL_KEYS,
    caller_may_give,
)
from sidecar.policy.model import PolicyKind
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.context import CallerKeys, check_caller_keys
from tests.sts.world import ALICE, A, _compile, demo_world, doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONDITION-KEYS.md"
APP = f"arn:aws:iam::{A}:role/apps/app-reader"
ORG_OBJECT = "arn:aws:s3:::org-shared/plan.txt"
ORG_ID = "o-a1b2c3d4e5"

SPELLED = {k.lower() for k in (*SIDECAR_GLOBAL_KEYS, *SESSION_SERVICE_KEYS)} | {
    "aws:principaltag/admin"
}
ALLOWED = [
    "s3:prefix",
    "s3:x-amz-acl",
    "orders:Amount",
    "iam:PassedToService",
    "app:client",
    "aws:RequestTag/team",
    "aws:TagKeys",
    "aws:ResourceTag/env",
    "aws:RequestedRegion",
    "aws:UserAgent",
    "aws:Referer",
    "aws:SourceArn",
    "aws:SourceAccount",
]
REFUSED = [
    # the principal, its session, its organization, the network (known to AWS or not)
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalServiceNamesList",
    "aws:AssumedRoot",
    "aws:PrincipalTag/admin",
    "aws:SourceIp",
    "aws:SourceVpc",
    "aws:CalledVia",
    "aws:ResourceOrgID",
    "aws:SourceOrgID",
    "aws:NoSuchKeyYet",
    "aws:RequestTag",  # the family needs its slash
    # STS and SAML keys
    "sts:ExternalId",
    "sts:RoleSessionName",
    "saml:sub",
    "saml:edupersonaffiliation",
    # the built-in identity providers
    "accounts.google.com:sub",
    "cognito-identity.amazonaws.com:amr",
    "graph.facebook.com:id",
    "www.amazon.com:user_id",
    # service-prefixed keys that describe the session
    "ec2:RoleDelivery",
    "ec2:SourceInstanceArn",
    "glue:RoleAssumedBy",
    "glue:CredentialIssuingService",
    "lambda:SourceFunctionArn",
    "ssm:SourceInstanceArn",
    "identitystore:UserId",
]


def refusal(context: Context, prefixes: tuple[str, ...] = BUILT_IN_PREFIXES) -> str:
    with pytest.raises(ValidationError) as info:
        check_caller_keys(context, prefixes)
    assert info.value.code == "ValidationError"
    return info.value.message


class TestAllowList:
    @pytest.mark.parametrize("key", ALLOWED)
    def test_request_keys_are_accepted(self, key: str) -> None:
        """Service keys and the request/target global keys pass, in any case."""
        for spelled in (key, key.upper(), key.lower()):
            assert caller_may_give(spelled, BUILT_IN_PREFIXES)
        check_caller_keys(Context({key.upper(): ("v",), "s3:prefix": ("a",)}), BUILT_IN_PREFIXES)

    @pytest.mark.parametrize("key", REFUSED)
    def test_sidecar_keys_are_refused_by_name(self, key: str) -> None:
        """Each refused family is a ValidationError whose message names the key (as AWS
        spells it when AWS lists it; keys are kept lowercased otherwise)."""
        assert not caller_may_give(key, BUILT_IN_PREFIXES)
        message = refusal(Context({"s3:prefix": ("a",), key: ("v",)}))
        named = key if key.lower() in SPELLED else key.lower()
        assert f"The context key {named} is reserved for the sidecar" in message

    @pytest.mark.parametrize("key", [*SIDECAR_GLOBAL_KEYS, *SESSION_SERVICE_KEYS])
    def test_every_listed_sidecar_key_is_refused(self, key: str) -> None:
        """Every global key AWS lists that is not a caller's, and every session service key,
        is refused and named in AWS's spelling."""
        name = key + "x" if key.endswith("/") else key
        assert not caller_may_give(name)
        assert f"context key {name} is reserved" in refusal(Context({name: ("v",)}), ())

    @pytest.mark.parametrize(
        "given", ["AWS:PRINCIPALORGID", "aws:principalorgid", "Aws:PrincipalOrgId"]
    )
    def test_names_compare_case_insensitively(self, given: str) -> None:
        """Any spelling is refused, and named as AWS spells the key."""
        assert not caller_may_give(given)
        assert "The context key aws:PrincipalOrgID is reserved" in refusal(Context({given: ("o",)}))

    def test_a_principal_tag_keeps_its_tag_name(self) -> None:
        """The family is named as AWS spells it, the tag key as stored (lowercased)."""
        message = refusal(Context({"AWS:PrincipalTAG/Cost-Center": ("1",)}))
        assert "context key aws:PrincipalTag/cost-center is reserved" in message

    def test_oidc_prefixes_come_from_the_world(self) -> None:
        """An OIDC provider's keys are the sidecar's only where the world has that provider."""
        key = "kubernetes.default.svc:sub"
        assert caller_may_give(key, BUILT_IN_PREFIXES)
        world = _with_oidc_provider(demo_world(), "kubernetes.default.svc")
        prefixes = federated_prefixes(world)
        assert "kubernetes.default.svc:" in prefixes
        assert not caller_may_give(key, prefixes)
        assert not caller_may_give("Kubernetes.Default.Svc:AUD", prefixes)
        assert "context key kubernetes.default.svc:sub is reserved" in refusal(
            Context({key: ("system:serviceaccount:shop:orders",)}), prefixes
        )

    def test_remembered_keys_are_bounded_and_never_let_a_refused_key_in(self) -> None:
        """The memory of accepted keys stops at its limit; refused keys never enter it."""
        checker = CallerKeys(BUILT_IN_PREFIXES, limit=3)
        checker.check(Context({f"app:k{i}": ("v",) for i in range(10)}))
        assert len(checker._accepted) == 3
        for _ in range(2):  # a refusal is never remembered as accepted
            with pytest.raises(ValidationError, match="aws:PrincipalOrgID"):
                checker.check(Context({"app:k0": ("v",), "aws:PrincipalOrgID": (ORG_ID,)}))
        assert "aws:principalorgid" not in checker._accepted


class TestDocumentedTable:
    def rows(self) -> dict[str, str]:
        """key -> source for every row of the global-key tables."""
        out = {}
        for line in DOC.read_text().splitlines():
            m = re.match(r"\| `([a-z0-9]+:[A-Za-z0-9/-]+)` \| ([^|]+) \|", line)
            if m:
                out[m.group(1).replace("/tag-key", "/")] = m.group(2).strip()
        return out

    def test_every_listed_key_is_documented_with_its_source(self) -> None:
        """The doc lists exactly the keys the code knows; 'caller' rows are exactly the ones
        a caller may give."""
        rows = self.rows()
        known = {*SIDECAR_GLOBAL_KEYS, *SESSION_SERVICE_KEYS, *CALLER_GLOBAL_KEYS}
        known |= {"aws:RequestTag/", "aws:ResourceTag/"}
        assert set(rows) == known
        for key, source in rows.items():
            assert source.split(" ")[0] in {"sidecar", "caller", "world", "absent"}, key
            probe = key + "k" if key.endswith("/") else key
            assert caller_may_give(probe) == (source == "caller"), key

    def test_semantics_links_the_table(self) -> None:
        assert "CONDITION-KEYS.md" in (DOC.parent / "SEMANTICS.md").read_text()


# -- the engine -----------------------------------------------------------------------------------


def _with_oidc_provider(world: World, prefix: str) -> World:
    provider = OidcProvider(
        A, f"https://{prefix}", f"arn:aws:iam::{A}:oidc-provider/{prefix}", ("sts",)
    )
    acct = dataclasses.replace(world.accounts[A], oidc_providers={provider.arn: provider})
    return dataclasses.replace(world, accounts={**world.accounts, A: acct})


def _with_org_bucket(world: World) -> World:
    """A bucket in A whose policy lets in every principal of one organization."""
    policy = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::org-shared/*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}},
        },
    }
    compiled = _compile(policy, PolicyKind.RESOURCE, "arn:aws:s3:::org-shared")
    acct = world.accounts[A]
    acct = dataclasses.replace(
        acct, resource_policies=(ResourcePolicy(A, "arn:aws:s3:::org-shared/*", compiled),)
    )
    return dataclasses.replace(world, accounts={**world.accounts, A: acct})


def _with_tag_rule(world: World) -> World:
    """app-reader may tag orders only with its own team."""
    rule = doc(
        {
            "Effect": "Allow",
            "Action": "orders:TagOrder",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestTag/team": "${aws:PrincipalTag/team}"}},
        }
    )
    role = world.roles_by_arn[APP]
    new = dataclasses.replace(
        role, inline_policies={"tags": _compile(rule, PolicyKind.IDENTITY, "t")}
    )
    acct = world.accounts[A]
    acct = dataclasses.replace(acct, roles={**acct.roles, role.name.lower(): new})
    return dataclasses.replace(
        world, accounts={**world.accounts, A: acct}, roles_by_arn={**world.roles_by_arn, APP: new}
    )


def _token(env: StsEnv) -> str:
    caller = UserCaller(env.world.users_by_arn[ALICE])
    params = AssumeRoleParams(role_arn=APP, role_session_name="s1")
    return assume_role(env, caller, params).credentials.session_token


class TestEngine:
    def test_org_guarded_resource_policy_is_not_opened_by_the_caller(self, env: StsEnv) -> None:
        """A bucket policy guarded by aws:PrincipalOrgID: the caller that sends the key is
        refused (ValidationError), and without it the session is not in the organization."""
        world = _with_org_bucket(env.world)
        env = dataclasses.replace(env, world=world)
        engine = Engine(world, env.keys, env.clock)
        token = _token(env)
        forged = Context({"aws:PrincipalOrgID": (ORG_ID,)})
        for _ in range(2):  # the second time the decision for this request is cached
            with pytest.raises(ValidationError, match="context key aws:PrincipalOrgID"):
                engine.authorize(token, "s3:GetObject", ORG_OBJECT, forged)
            result, _cached = engine.authorize(token, "s3:GetObject", ORG_OBJECT)
            assert result.decision is Decision.IMPLICIT_DENY
        with pytest.raises(ValidationError, match="aws:PrincipalOrgID"):  # the uncached path
            Authorizer(world, env.keys, env.clock).authorize(
                token, "s3:GetObject", ORG_OBJECT, forged
            )

    def test_refused_before_the_token_and_the_cache(self, env: StsEnv) -> None:
        """The key check runs first: even a garbage token gets the ValidationError, and a
        cached decision for allowed keys does not let a forged key through."""
        engine = Engine(env.world, env.keys, env.clock)
        forged = Context({"aws:SecureTransport": ("true",)})
        with pytest.raises(ValidationError):
            engine.authorize("garbage", "s3:GetObject", ORG_OBJECT, forged)
        token = _token(env)
        allowed = Context({"s3:prefix": ("a",)})
        engine.authorize(token, "s3:GetObject", ORG_OBJECT, allowed)
        assert engine.authorize(token, "s3:GetObject", ORG_OBJECT, allowed)[1] is True
        both = Context({"s3:prefix": ("a",), "sts:SourceIdentity": ("admin",)})
        with pytest.raises(ValidationError, match="sts:sourceidentity"):
            engine.authorize(token, "s3:GetObject", ORG_OBJECT, both)

    def test_allowed_keys_still_decide(self, env: StsEnv) -> None:
        """aws:RequestTag/* from the caller meets the session's own aws:PrincipalTag/*."""
        world = _with_tag_rule(env.world)
        env = dataclasses.replace(env, world=world)
        engine = Engine(world, env.keys, env.clock)
        token = _token(env)
        order = "arn:aws:orders:::order/1"

        def decide(team: str) -> Decision:
            ctx = Context({"aws:RequestTag/team": (team,)})
            ctx.set_multi("aws:TagKeys", ["team"])
            return engine.authorize(token, "orders:TagOrder", order, ctx)[0].decision

        assert decide("payments") is Decision.ALLOWED
        assert decide("security") is Decision.IMPLICIT_DENY

    def test_federated_keys_of_the_world_are_refused(self, env: StsEnv) -> None:
        world = _with_oidc_provider(env.world, "idp.example.com/tenants/acme")
        env = dataclasses.replace(env, world=world)
        engine = Engine(world, env.keys, env.clock)
        forged = Context({"idp.example.com/tenants/acme:sub": ("alice",)})
        with pytest.raises(ValidationError, match=re.escape("idp.example.com/tenants/acme:sub")):
            engine.authorize(_token(env), "s3:GetObject", ORG_OBJECT, forged)
