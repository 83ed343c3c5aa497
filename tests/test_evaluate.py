"""Evaluation logic paths that SimulateCustomPolicy cannot reach: trust, anonymous callers,
service and federated principals, unknown conditions and the AWS-style reasons."""

from __future__ import annotations

from typing import Any

from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, PolicySet, PolicyType, describe, evaluate
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import (
    ANONYMOUS,
    PrincipalType,
    RequestPrincipal,
    principal_from_arn,
)

ACCT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ACCT}:role/target"
SESSION = principal_from_arn(f"arn:aws:sts::{ACCT}:assumed-role/caller/s1")
assert SESSION is not None


def compiled(kind: PolicyKind, *statements: dict[str, Any], pid: str = "p") -> CompiledPolicy:
    doc = {"Version": "2012-10-17", "Statement": list(statements)}
    return compile_policy(parse_policy(doc, kind, policy_id=pid))


def trust(principal: Any) -> CompiledPolicy:
    return compiled(
        PolicyKind.TRUST, {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    )


ALLOW_ASSUME = compiled(
    PolicyKind.IDENTITY, {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE_ARN}
)


def assume(
    principal: RequestPrincipal, trust_policy: CompiledPolicy, identity: tuple[CompiledPolicy, ...]
) -> Decision:
    ev = evaluate(
        principal,
        "sts:AssumeRole",
        ROLE_ARN,
        Context(),
        PolicySet(identity=identity),
        resource_policies=(trust_policy,),
        resource_account=ACCT,
        resource_grant_required=True,
    )
    return ev.decision


class TestTrust:
    def test_naming_the_session_needs_no_identity_policy(self) -> None:
        """A trust policy naming the caller directly is enough in the same account."""
        assert SESSION is not None
        t = trust({"AWS": SESSION.arn})
        assert assume(SESSION, t, ()) is Decision.ALLOWED

    def test_naming_the_account_needs_an_identity_allow(self) -> None:
        """Account-level trust delegates: the caller's identity policy must allow too."""
        assert SESSION is not None
        t = trust({"AWS": ACCT})
        assert assume(SESSION, t, ()) is Decision.IMPLICIT_DENY
        assert assume(SESSION, t, (ALLOW_ASSUME,)) is Decision.ALLOWED

    def test_identity_allow_alone_is_not_enough(self) -> None:
        """Trust policies must always allow explicitly, even in the same account."""
        assert SESSION is not None
        t = trust({"AWS": "arn:aws:iam::111111111111:role/someone-else"})
        ev = evaluate(
            SESSION,
            "sts:AssumeRole",
            ROLE_ARN,
            Context(),
            PolicySet(identity=(ALLOW_ASSUME,)),
            resource_policies=(t,),
            resource_account=ACCT,
            resource_grant_required=True,
        )
        assert ev.decision is Decision.IMPLICIT_DENY
        assert ev.decided_by is PolicyType.RESOURCE
        reason = describe(ev, SESSION.arn, "sts:AssumeRole", ROLE_ARN, resource_label="role trust")
        assert reason == (
            f"User: {SESSION.arn} is not authorized to perform: sts:AssumeRole on resource: "
            f"{ROLE_ARN} because no role trust policy allows the sts:AssumeRole action"
        )

    def test_cross_account_needs_both_sides(self) -> None:
        """A caller from another account needs trust and its own identity allow."""
        other = principal_from_arn("arn:aws:iam::222222222222:user/bob")
        assert other is not None
        t = trust({"AWS": other.arn})
        assert assume(other, t, ()) is Decision.IMPLICIT_DENY
        assert assume(other, t, (ALLOW_ASSUME,)) is Decision.ALLOWED

    def test_service_principal(self) -> None:
        """A mesh service is trusted through `Service`, also by one of its aliases."""
        svc = RequestPrincipal(
            PrincipalType.SERVICE,
            arn="orders.mesh.local",
            name="orders.mesh.local",
            aliases=("spiffe://cluster.local/ns/orders/sa/orders",),
        )
        assert assume(svc, trust({"Service": "orders.mesh.local"}), ()) is Decision.ALLOWED
        assert assume(svc, trust({"Service": "billing.mesh.local"}), ()) is Decision.IMPLICIT_DENY
        assert assume(svc, trust({"AWS": ACCT}), ()) is Decision.IMPLICIT_DENY

    def test_federated_principal(self) -> None:
        """Web-identity callers match `Federated` with their provider."""
        provider = f"arn:aws:iam::{ACCT}:oidc-provider/kubernetes.default.svc"
        fed = RequestPrincipal(
            PrincipalType.WEB_IDENTITY, arn="", account="", federated_provider=provider
        )
        t = compiled(
            PolicyKind.TRUST,
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
            },
        )
        ev = evaluate(
            fed,
            "sts:AssumeRoleWithWebIdentity",
            ROLE_ARN,
            Context(),
            PolicySet(),
            resource_policies=(t,),
            resource_account=ACCT,
            resource_grant_required=True,
        )
        assert ev.decision is Decision.ALLOWED


class TestAnonymous:
    def test_only_a_public_resource_policy_lets_anonymous_in(self) -> None:
        """Anonymous callers match `*` only, and need no identity policy."""
        public = compiled(
            PolicyKind.RESOURCE,
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::site/*"},
        )  # fmt: skip
        account_only = compiled(
            PolicyKind.RESOURCE,
            {"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::site/*"},
        )  # fmt: skip
        for policy, expected in (
            (public, Decision.ALLOWED),
            (account_only, Decision.IMPLICIT_DENY),
        ):
            ev = evaluate(
                ANONYMOUS,
                "s3:GetObject",
                "arn:aws:s3:::site/index.html",
                Context(),
                PolicySet(),
                resource_policies=(policy,),
                resource_account=ACCT,
            )
            assert ev.decision is expected


class TestUnknownConditions:
    def test_unknown_never_grants_and_always_denies(self) -> None:
        """A value that does not convert fails closed, and the decision records it
        (docs/SEMANTICS.md §3.5)."""
        allow = compiled(
            PolicyKind.IDENTITY,
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
             "Condition": {"NumericLessThan": {"s3:max-keys": "10"}}},
        )  # fmt: skip
        deny = compiled(
            PolicyKind.IDENTITY,
            {"Sid": "Cap", "Effect": "Deny", "Action": "s3:ListBucket", "Resource": "*",
             "Condition": {"NumericGreaterThan": {"s3:max-keys": "100"}}},
            pid="d",
        )  # fmt: skip
        assert SESSION is not None
        ctx = Context({"s3:max-keys": ("ten",)})
        only_allow = evaluate(SESSION, "s3:ListBucket", "*", ctx, PolicySet(identity=(allow,)))
        assert only_allow.decision is Decision.IMPLICIT_DENY
        assert only_allow.errors
        both = evaluate(SESSION, "s3:ListBucket", "*", Context({"s3:max-keys": ("ten",)}),
                        PolicySet(identity=(allow, deny)))  # fmt: skip
        assert both.decision is Decision.EXPLICIT_DENY
        assert [m.ref.sid for m in both.matched] == ["Cap"]
        fine = evaluate(SESSION, "s3:ListBucket", "*", Context({"s3:max-keys": ("5",)}),
                        PolicySet(identity=(allow, deny)))  # fmt: skip
        assert fine.decision is Decision.ALLOWED
        assert not fine.errors


class TestReasons:
    def test_explicit_deny_reason(self) -> None:
        """Explicit denies name the policy type that denied (docs/SEMANTICS.md §5.5)."""
        assert SESSION is not None
        deny = compiled(PolicyKind.IDENTITY, {"Effect": "Deny", "Action": "*", "Resource": "*"})
        ev = evaluate(SESSION, "s3:GetObject", "arn:aws:s3:::b/k", Context(),
                      PolicySet(identity=(deny,)))  # fmt: skip
        assert describe(ev, SESSION.arn, "s3:GetObject", "arn:aws:s3:::b/k") == (
            f"User: {SESSION.arn} is not authorized to perform: s3:GetObject on resource: "
            "arn:aws:s3:::b/k with an explicit deny in an identity-based policy"
        )
