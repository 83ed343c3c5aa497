"""Cases of every kind decided by the engine and the STS core: passing and failing ones."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from sidecar.policytest.model import TestFileError
from sidecar.policytest.report import deciding
from tests.policytest.helpers import (
    ADMIN,
    ALICE,
    CONTRACTOR,
    NOW,
    ORDERS,
    PROD_ADMIN,
    REVOKED,
    case,
    one,
    run,
    world,
)

READ = {"action": "s3:GetObject", "resource": "arn:aws:s3:::orders-data/2026/report.csv"}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestRolePrincipal:
    def test_allowed_names_the_allowing_statement(self) -> None:
        r = one(case(principal=ORDERS, expect="ALLOWED", **READ))
        assert (r.actual, r.passed) == ("ALLOWED", True)
        assert deciding(r) == "scp FullAWSAccess[0], identity data[ReadOrders]"
        assert r.principal_arn == "arn:aws:sts::111111111111:assumed-role/orders/iam-test"

    def test_explicit_deny(self) -> None:
        private = {**READ, "resource": "arn:aws:s3:::orders-data/private/x"}
        r = one(case(principal=ORDERS, expect="EXPLICIT_DENY", **private))
        assert (r.actual, r.passed) == ("EXPLICIT_DENY", True)
        assert deciding(r) == "identity data[NoPrivate]"
        assert "with an explicit deny in an identity-based policy" in r.reason

    def test_implicit_deny(self) -> None:
        r = one(case(principal=ORDERS, action="s3:DeleteObject", resource="*", expect="DENIED"))
        assert (r.actual, r.passed) == ("IMPLICIT_DENY", True)

    @pytest.mark.parametrize("expect", ["ALLOWED", "IMPLICIT_DENY"])
    def test_a_wrong_expectation_fails(self, expect: str) -> None:
        private = {**READ, "resource": "arn:aws:s3:::orders-data/private/x"}
        r = one(case(principal=ORDERS, expect=expect, **private))
        assert (r.actual, r.passed) == ("EXPLICIT_DENY", False)

    def test_denied_accepts_either_deny_but_not_allowed(self) -> None:
        r = one(case(principal=ORDERS, expect="DENIED", **READ))
        assert (r.actual, r.passed) == ("ALLOWED", False)

    def test_session_tags_override_the_roles(self) -> None:
        put = {"action": "s3:PutObject", "resource": "arn:aws:s3:::orders-data/x"}
        assert one(case(principal=ORDERS, expect="ALLOWED", **put)).passed  # role tag team=orders
        tagged = case(principal=ORDERS, session={"tags": {"team": "web"}}, expect="ALLOWED", **put)
        assert one(tagged).actual == "IMPLICIT_DENY"

    def test_connection_keys_come_from_context(self) -> None:
        listing = {"action": "s3:ListBucket", "resource": "arn:aws:s3:::orders-data"}
        office = {
            "aws:SourceIp": {"type": "IP", "values": ["10.1.2.3"]},
            "aws:SecureTransport": True,
        }
        assert one(case(principal=ORDERS, context=office, expect="ALLOWED", **listing)).passed
        away = {**office, "aws:SourceIp": "192.0.2.1"}
        assert one(case(principal=ORDERS, context=away, expect="ALLOWED", **listing)).actual == (
            "IMPLICIT_DENY"
        )
        plain = {"aws:SourceIp": "10.1.2.3", "aws:SecureTransport": "false"}
        assert one(case(principal=ORDERS, context=plain, expect="ALLOWED", **listing)).actual == (
            "IMPLICIT_DENY"
        )
        assert one(case(principal=ORDERS, expect="ALLOWED", **listing)).actual == "IMPLICIT_DENY"

    def test_a_session_arn_names_role_and_session(self) -> None:
        arn = "arn:aws:sts::111111111111:assumed-role/orders/nightly"
        r = one(case(principal=arn, expect="ALLOWED", **READ))
        assert (r.actual, r.principal_arn) == ("ALLOWED", arn)

    def test_session_name(self) -> None:
        r = one(case(principal=ORDERS, session={"name": "batch"}, expect="ALLOWED", **READ))
        assert r.principal_arn.endswith("assumed-role/orders/batch")

    def test_mfa_only_when_asked(self) -> None:
        list_users = {"action": "iam:ListUsers", "resource": "*"}
        with_mfa = case(principal=ADMIN, session={"mfa": True}, expect="ALLOWED", **list_users)
        assert one(with_mfa).passed
        assert one(case(principal=ADMIN, expect="ALLOWED", **list_users)).actual == "IMPLICIT_DENY"

    def test_source_identity(self) -> None:
        get_user = {"action": "iam:GetUser", "resource": "*"}
        audited = case(
            principal=ADMIN, session={"source_identity": "audit-7"}, expect="ALLOWED", **get_user
        )
        assert one(audited).passed
        assert one(case(principal=ADMIN, expect="ALLOWED", **get_user)).actual == "IMPLICIT_DENY"

    def test_session_policy_narrows(self) -> None:
        policy = {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"},
        }
        r = one(
            case(principal=ORDERS, session={"session_policy": policy}, expect="ALLOWED", **READ)
        )
        assert r.actual == "IMPLICIT_DENY"
        assert "session policy" in r.reason

    def test_managed_session_policy(self) -> None:
        arns = ["arn:aws:iam::111111111111:policy/Boundary"]
        r = one(case(principal=ORDERS, session={"policy_arns": arns}, expect="ALLOWED", **READ))
        assert r.passed


class TestTime:
    def test_at_fixes_the_clock(self) -> None:
        policy = {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}},
            },
        }
        before = case(
            principal=ORDERS, session={"session_policy": policy}, at="2026-12-31T23:59:59Z",
            expect="ALLOWED", **READ,
        )  # fmt: skip
        assert one(before).passed
        after = before.replace("2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z")
        assert one(after).actual == "IMPLICIT_DENY"
        # Without `at`, the runner's clock decides.
        untimed = case(
            principal=ORDERS, session={"session_policy": policy}, expect="ALLOWED", **READ
        )
        assert one(untimed, now=NOW).passed
        assert one(untimed, now=NOW + 365 * 86400).actual == "IMPLICIT_DENY"

    def test_sessions_issued_before_a_revocation_are_denied(self) -> None:
        at = "2026-06-01T06:00:00Z"
        old = case(
            principal=REVOKED, session={"issued_at": "2026-05-31T20:00:00Z"}, at=at,
            expect="EXPLICIT_DENY", **READ,
        )  # fmt: skip
        r = one(old)
        assert r.passed
        assert deciding(r) == "identity AWSRevokeOlderSessions[0]"
        assert one(case(principal=REVOKED, at=at, expect="ALLOWED", **READ)).passed

    def test_a_session_must_exist_at_the_case_time(self) -> None:
        future = case(
            principal=REVOKED, session={"issued_at": "2026-06-02T00:00:00Z"},
            at="2026-06-01T00:00:00Z", expect="ALLOWED", **READ,
        )  # fmt: skip
        with pytest.raises(TestFileError, match=r"tests\[0\]\.session: .*issued after"):
            run(future)
        expired = case(
            principal=REVOKED, session={"issued_at": "2026-05-01T00:00:00Z"},
            at="2026-06-01T00:00:00Z", expect="ALLOWED", **READ,
        )  # fmt: skip
        with pytest.raises(TestFileError, match="would have expired"):
            run(expired)


class TestUserPrincipal:
    def test_own_policies_allow(self) -> None:
        r = one(case(principal=ALICE, expect="ALLOWED", **READ))
        assert (r.actual, r.principal_arn) == ("ALLOWED", ALICE)
        assert deciding(r) == (
            "scp FullAWSAccess[0], identity assume[ReadOrders], "
            "permissions-boundary arn:aws:iam::111111111111:policy/Boundary[0]"
        )

    def test_the_boundary_caps_them(self) -> None:
        r = one(
            case(principal=ALICE, action="ec2:DescribeInstances", resource="*", expect="ALLOWED")
        )
        assert (r.actual, r.passed) == ("IMPLICIT_DENY", False)
        assert "permissions boundary" in r.reason

    def test_an_scp_denies(self) -> None:
        r = one(
            case(
                principal=ALICE,
                action="s3:DeleteBucket",
                resource="arn:aws:s3:::b",
                expect="EXPLICIT_DENY",
            )
        )
        assert r.passed
        assert "[NoBucketDeletes]" in deciding(r)
        assert deciding(r).startswith("scp ")

    def test_a_resource_policy_allows(self) -> None:
        shared = {"action": "s3:GetObject", "resource": "arn:aws:s3:::shared/plan.txt"}
        r = one(case(principal=CONTRACTOR, expect="ALLOWED", **shared))
        assert r.passed
        assert deciding(r).endswith("resource arn:aws:s3:::shared/*[ContractorsReadShared]")
        assert one(case(principal=CONTRACTOR, expect="ALLOWED", **READ)).actual == "IMPLICIT_DENY"

    def test_get_caller_identity_needs_no_policy(self) -> None:
        for who in (CONTRACTOR, ORDERS):
            r = one(
                case(principal=who, action="sts:GetCallerIdentity", resource="*", expect="ALLOWED")
            )
            assert r.passed

    def test_assume_role_as_an_action_reads_the_trust_policy(self) -> None:
        r = one(case(principal=ALICE, action="sts:AssumeRole", resource=ADMIN, expect="DENIED"))
        assert r.actual == "IMPLICIT_DENY"  # the trust policy wants MFA


class TestAssume:
    def test_cross_account_with_external_id(self) -> None:
        ok = one(case(principal=ALICE, assume=PROD_ADMIN, external_id="prod-7", expect="ALLOWED"))
        assert (ok.actual, ok.passed) == ("ALLOWED", True)
        assert "assumed-role/prod-admin/iam-test" in ok.reason
        r = one(case(principal=ALICE, assume=PROD_ADMIN, expect="ALLOWED"))
        assert (r.actual, r.passed) == ("DENIED", False)
        assert r.reason.startswith(
            "AccessDenied: User: arn:aws:iam::111111111111:user/alice is not"
        )

    def test_contractors_cannot_assume_prod_admin(self) -> None:
        r = one(
            case(principal=CONTRACTOR, assume=PROD_ADMIN, external_id="prod-7", expect="DENIED")
        )
        assert (r.actual, r.passed) == ("DENIED", True)
        assert r.reason.startswith("AccessDenied:")

    def test_mfa_from_the_users_device(self) -> None:
        assert one(case(principal=ALICE, assume=ADMIN, expect="DENIED")).passed
        assert one(case(principal=ALICE, assume=ADMIN, mfa=True, expect="ALLOWED")).passed

    def test_parameter_checks_refuse(self) -> None:
        r = one(
            case(
                principal=ALICE,
                assume=PROD_ADMIN,
                external_id="prod-7",
                duration_seconds=7200,
                expect="ALLOWED",
            )
        )
        assert r.actual == "DENIED"
        assert r.reason.startswith("ValidationError: The requested DurationSeconds exceeds")
        bad = one(case(principal=ALICE, assume=PROD_ADMIN, session_name="a b", expect="DENIED"))
        assert bad.passed
        assert bad.reason.startswith("ValidationError: 1 validation error")

    def test_a_mesh_service(self) -> None:
        assert one(case(principal="orders.mesh.local", assume=ORDERS, expect="ALLOWED")).passed
        assert one(case(principal="orders.mesh.local", assume=ADMIN, expect="DENIED")).passed

    def test_role_chaining_needs_the_callers_own_allow(self) -> None:
        r = one(case(principal=ORDERS, assume=REVOKED, expect="DENIED"))
        assert r.passed
        assert "assumed-role/orders/iam-test is not authorized" in r.reason

    def test_session_parameters_reach_the_trust_policy(self) -> None:
        tagged = case(
            principal=ALICE,
            assume=PROD_ADMIN,
            external_id="prod-7",
            tags={"k": "v"},
            expect="DENIED",
        )
        r = one(tagged)
        assert r.passed  # the trust policy does not allow sts:TagSession
        assert "sts:TagSession" in r.reason


POD = {"namespace": "shop", "service_account": "orders"}


class TestPod:
    def test_the_associated_role(self) -> None:
        r = one(case(pod=POD, assume=ORDERS, expect="ALLOWED"))
        assert (r.actual, r.passed) == ("ALLOWED", True)
        assert r.principal_arn == "arn:aws:sts::111111111111:assumed-role/orders/eks-prod-iam-test"

    def test_another_role_is_not_the_pods(self) -> None:
        r = one(case(pod=POD, assume=ADMIN, expect="ALLOWED"))
        assert (r.actual, r.passed) == ("DENIED", False)
        assert f"gives it {ORDERS}, not {ADMIN}" in r.reason

    def test_trust_must_allow_pods_and_tags(self) -> None:
        legacy = {"namespace": "shop", "service_account": "legacy"}
        r = one(case(pod=legacy, assume="arn:aws:iam::111111111111:role/no-pods", expect="DENIED"))
        assert r.passed
        assert "sts:TagSession" in r.reason

    def test_an_unmapped_service_account(self) -> None:
        ghost = {"namespace": "shop", "service_account": "ghost"}
        r = one(case(pod=ghost, assume=ORDERS, expect="DENIED"))
        assert r.passed
        assert r.reason.startswith("AccessDenied: No pod identity association")

    def test_actions_with_the_pods_session(self) -> None:
        pod = {**POD, "pod_name": "orders-7f9", "pod_uid": "1234"}
        r = one(
            case(pod=pod, action="s3:GetObject", resource="arn:aws:s3:::pods/x", expect="ALLOWED")
        )
        assert r.passed  # the kubernetes-namespace session tag
        assert r.principal_arn.endswith("assumed-role/orders/eks-prod-orders-7f9")
        other = {"namespace": "web", "service_account": "orders"}
        assert one(case(pod=other, action="s3:GetObject", resource="*", expect="DENIED")).passed

    def test_a_world_without_pod_identity(self) -> None:
        bare = dataclasses.replace(world(), pod_identity=None)
        r = one(case(pod=POD, assume=ORDERS, expect="DENIED"), in_world=bare)
        assert r.passed
        assert "not configured" in r.reason


class TestPrincipals:
    @pytest.mark.parametrize(
        ("principal", "message"),
        [
            (
                "orders",
                "'orders' is neither an ARN (role, user or assumed-role session) nor a service principal of the world",
            ),
            (
                "arn:aws-cn:iam::111111111111:role/apps/orders",
                "the world's partition is 'aws', not 'aws-cn'",
            ),
            (
                "arn:aws:sts::111111111111:assumed-role/orders",
                "no role 'orders' in account 111111111111 for the session",
            ),
            (
                "arn:aws:sts::111111111111:assumed-role/gone/s1",
                "no role 'gone' in account 111111111111",
            ),
            (
                "arn:aws:iam::111111111111:group/admins",
                "is not a role, user or assumed-role session ARN",
            ),
            (
                "arn:aws:iam::111111111111:role/nothing",
                "no role arn:aws:iam::111111111111:role/nothing in the world",
            ),
        ],
    )
    def test_unknown_principals(self, principal: str, message: str) -> None:
        with pytest.raises(TestFileError) as info:
            run(case(principal=principal, expect="DENIED", **READ))
        [(_, path, got)] = info.value.issues
        assert path == "tests[0].principal"
        assert message in got

    def test_mfa_needs_a_device(self) -> None:
        with pytest.raises(
            TestFileError, match=r"tests\[0\]\.mfa: .*contractor-1 has no MFA device"
        ):
            run(case(principal=CONTRACTOR, assume=ORDERS, mfa=True, expect="DENIED"))

    def test_the_request_size_limits(self) -> None:
        long = {"action": "s3:GetObject", "resource": "arn:aws:s3:::b/" + "k" * 5000}
        with pytest.raises(TestFileError, match=r"tests\[0\]: ValidationError: 1 validation error"):
            run(case(principal=ORDERS, expect="DENIED", **long))


class TestSetUpProblems:
    """What cannot be set up against the world is a problem of the test file: every one of
    them is reported with its path, and no case is decided."""

    def test_every_problem_with_its_path(self) -> None:
        text = (
            "tests:\n"
            f"  - {{name: a, principal: 'arn:aws:iam::111111111111:role/orders', action: s3:GetObject, resource: '*', expect: ALLOWED}}\n"
            f"  - {{name: b, principal: '{ALICE}', session: {{name: x}}, action: s3:GetObject, resource: '*', expect: ALLOWED}}\n"
            "  - {name: c, principal: orders.mesh.local, action: s3:GetObject, resource: '*', expect: ALLOWED}\n"
            f"  - {{name: d, principal: '{ORDERS}', assume: '{ADMIN}', mfa: true, expect: DENIED}}\n"
            "  - {name: e, principal: 'arn:aws:sts::111111111111:assumed-role/orders/nightly', session: {name: t}, action: a:b, resource: '*', expect: DENIED}\n"
            f"  - {{name: f, principal: '{ORDERS}', session: {{session_policy: '{{\"Version\": \"2012-10-17\"}}'}}, action: a:b, resource: '*', expect: DENIED}}\n"
            f"  - {{name: g, principal: '{ORDERS}', context: {{'kubernetes.default.svc:sub': x}}, action: a:b, resource: '*', expect: DENIED}}\n"
            "  - {name: h, principal: 'arn:aws:iam::111111111111:user/nobody', action: a:b, resource: '*', expect: DENIED}\n"
            f"  - {{name: i, principal: '{ORDERS}', session: {{tags: {{'aws:x': y}}}}, action: a:b, resource: '*', expect: DENIED}}\n"
        )
        with pytest.raises(TestFileError) as info:
            run(text)
        paths = [path for _, path, _ in info.value.issues]
        assert paths == [
            "tests[0].principal",
            "tests[1].session",
            "tests[2].principal",
            "tests[3].mfa",
            "tests[4].session.name",
            "tests[5].session",
            "tests[6].context.kubernetes.default.svc:sub",
            "tests[7].principal",
            "tests[8].session",
        ]
        messages = [m for _, _, m in info.value.issues]
        assert "(the world has arn:aws:iam::111111111111:role/apps/orders)" in messages[0]
        assert "MalformedPolicyDocument" in messages[5]
        assert "reserved for AWS use" in messages[8]
