"""Policy validation: IAM's MalformedPolicyDocument messages, their order, and kind rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.errors import LimitExceeded, MalformedPolicyDocument, ValidationError
from sidecar.policy import parse as p
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy

V = "2012-10-17"


def stmt(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def doc(*statements: dict[str, Any], version: str | None = V) -> str:
    d: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        d["Version"] = version
    return json.dumps(d)


def message_of(text: str, kind: PolicyKind = PolicyKind.IDENTITY) -> str:
    with pytest.raises(MalformedPolicyDocument) as info:
        parse_policy(text, kind)
    return info.value.message


class TestCatalogue:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("not json", p.SYNTAX),
            ("[]", p.SYNTAX),
            (json.dumps({"Version": V, "Statement": [stmt()], "Extra": 1}), p.SYNTAX),
            (doc(stmt(), version="2012-10-18"), p.SYNTAX),
            (json.dumps({"Version": V}), p.SYNTAX),
            (json.dumps({"Version": V, "Statement": []}), p.SYNTAX),
            (json.dumps({"Version": V, "Statement": ["x"]}), p.SYNTAX),
            (doc(stmt(Bogus=1)), p.SYNTAX),
            (doc(stmt(NotAction="s3:PutObject")), p.SYNTAX),
            (doc(stmt(NotResource="arn:aws:s3:::x")), p.SYNTAX),
            (doc(stmt(Effect=None)), p.SYNTAX),
            (doc(stmt(Effect=1)), p.SYNTAX),
            (doc(stmt(Effect="Maybe")), p.SYNTAX),
            (json.dumps({"Version": V, "Id": ["x"], "Statement": [stmt()]}), p.SYNTAX),
            (doc(stmt(Sid=7)), p.SYNTAX),
            (doc(stmt(Condition="x")), p.SYNTAX),
            (doc(stmt(Condition={"StringEquals": "x"})), p.SYNTAX),
            (doc(stmt(Condition={"StringEquals": {"k": {"a": 1}}})), p.SYNTAX),
            (doc(stmt(Condition={"StringEqualz": {"k": "v"}})), p.SYNTAX),
            (doc(stmt(Condition={"stringequals": {"k": "v"}})), p.SYNTAX),
            (doc(stmt(Condition={"ForSomeValues:StringEquals": {"k": "v"}})), p.SYNTAX),
            (doc(stmt(Condition={"NullIfExists": {"k": "true"}})), p.SYNTAX),
            (doc(stmt(Action=["s3:GetObject", 3])), p.SYNTAX),
            ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}', p.SYNTAX),
            (doc(stmt(), version=None), p.VERSION_REQUIRED),
            (doc(stmt(), version="2008-10-17"), p.VERSION_REQUIRED),
            (doc(stmt(Effect="allow")), p.LEGACY),
            (doc(stmt(Condition={"DateLessThan": {"aws:CurrentTime": "yesterday"}})), p.LEGACY),
            (doc(stmt(Condition={"DateLessThan": {"aws:CurrentTime": "2020-13-01"}})), p.LEGACY),
            (doc(stmt(Resource="arn:aws:iam::*")), p.LEGACY),
            (doc(stmt(Sid="A"), stmt(Sid="A")), p.SID_UNIQUE),
            (doc(stmt(Sid="has space")), p.SID_CHARS),
            (doc(stmt(Action=None)), p.NO_ACTIONS),
            (doc(stmt(Action=[])), p.NO_ACTIONS),
            (doc(stmt(Resource="bucket")), 'Resource bucket must be in ARN format or "*".'),
            (
                doc(stmt(Resource="arn:b:s3")),
                'Partition "b" is not valid for resource "arn:b:s3:*:*:*".',
            ),
            (doc(stmt(Resource="arn:aws")), p.VENDOR_REGEX),
            (doc(stmt(Resource="arn:aws:s*:::x")), p.VENDOR_REGEX),
            (
                doc(stmt(Resource="arn:aws:iam:us-east-1:111111111111:role/x")),
                "IAM resource arn:aws:iam:us-east-1:111111111111:role/x cannot contain region "
                "information.",
            ),
            (
                doc(stmt(Resource="arn:aws:s3:us-east-1::bucket")),
                "Resource arn:aws:s3:us-east-1::bucket can not contain region information.",
            ),
            (doc(stmt(Resource="arn:aws:iam::111111111111:thing/x")), p.IAM_PATH),
            (doc(stmt(Action="GetObject")), p.VENDOR_REQUIRED),
            (doc(stmt(Action="s3:Get:Object")), p.ONE_COLON),
            (doc(stmt(Action="s_3:GetObject")), "Vendor s_3 is not valid"),
            (doc(stmt(Resource=None)), p.NO_RESOURCES),
            (doc(stmt(Resource=[])), p.NO_RESOURCES),
            (doc(stmt(Principal={"AWS": "111111111111"})), p.NO_PRINCIPAL_ALLOWED),
        ],
    )
    def test_message(self, text: str, message: str) -> None:
        """Each broken identity policy is refused with IAM's message for its first problem."""
        assert message_of(text) == message

    def test_first_failing_check_wins(self) -> None:
        """A document with a version problem and a Sid clash reports the version first."""
        text = doc(stmt(Sid="A"), stmt(Sid="A"), version="2008-10-17")
        assert message_of(text) == p.VERSION_REQUIRED

    def test_resource_format_reported_after_missing_actions(self) -> None:
        """A resource format error comes after the actions check (docs/SEMANTICS.md §1.8)."""
        text = doc(stmt(Resource="bucket"), stmt(Action=[]))
        assert message_of(text) == p.NO_ACTIONS

    def test_legacy_resource_error_comes_before_sid_clash(self) -> None:
        """An ARN with an empty service fails legacy parsing before the Sid check."""
        text = doc(stmt(Sid="A", Resource="arn:aws::x"), stmt(Sid="A"))
        assert message_of(text) == p.LEGACY

    def test_location_names_the_statement_and_element(self) -> None:
        """The error says where the problem is."""
        with pytest.raises(MalformedPolicyDocument) as info:
            parse_policy(doc(stmt(), stmt(Condition={"Bogus": {"k": "v"}})), PolicyKind.IDENTITY)
        assert info.value.location == "Statement[1].Condition.Bogus"


class TestValidDocuments:
    @pytest.mark.parametrize(
        "d",
        [
            {"Version": V, "Statement": stmt()},
            {"Version": V, "Id": "anything", "Statement": [stmt(Action="*")]},
            {"Version": V, "Statement": [stmt(Condition={"Bool": {"aws:SecureTransport": True}})]},
            {"Version": V, "Statement": [stmt(Condition={"NumericLessThan": {"s3:max-keys": 10}})]},
            {"Version": V, "Statement": [stmt(Condition={"StringEquals": {}})]},
            {"Version": V, "Statement": [stmt(Resource="arn:aws:s3:::bucket/*")]},
            {"Version": V, "Statement": [stmt(Resource="arn:aws:iam::111111111111:role/*")]},
            {"Version": V, "Statement": [stmt(Resource="arn:aws:ec2:*")]},
            {
                "Version": V,
                "Statement": [
                    stmt(
                        Condition={
                            "DateGreaterThan": {
                                "aws:CurrentTime": [
                                    "2020-01-01",
                                    "2020-01-01T00:00:01Z",
                                    "2020-01-01T10:00:00.123+02:00",
                                    "1577836800",
                                ]
                            }
                        }
                    )
                ],
            },
        ],
    )
    def test_accepted(self, d: dict[str, Any]) -> None:
        """Valid identity policies parse, including single-object Statement and JSON numbers."""
        assert parse_policy(json.dumps(d), PolicyKind.IDENTITY).statements

    def test_condition_numbers_and_booleans_become_text(self) -> None:
        """Quotes are optional around numbers and booleans (docs/SEMANTICS.md §1.1)."""
        pol = parse_policy(
            doc(stmt(Condition={"Bool": {"a:b": True}, "NumericEquals": {"c:d": [1, 2.5]}})),
            PolicyKind.IDENTITY,
        )
        values = {c.key: c.values for c in pol.statements[0].conditions}
        assert values == {"a:b": ("true",), "c:d": ("1", "2.5")}

    def test_yaml_dates_in_version_are_read_as_text(self) -> None:
        """A world file may say Version: 2012-10-17 unquoted, which YAML reads as a date."""
        import datetime

        pol = parse_policy(
            {"Version": datetime.date(2012, 10, 17), "Statement": [stmt()]}, PolicyKind.MANAGED
        )
        assert pol.version == V


class TestKinds:
    def test_session_and_trust_policies_accept_2008_and_no_version(self) -> None:
        """docs/SEMANTICS.md §1.2: only identity-side policies must be 2012-10-17."""
        parse_policy(doc(stmt(), version="2008-10-17"), PolicyKind.SESSION)
        parse_policy(doc(stmt(), version=None), PolicyKind.SESSION)
        trust = stmt(Principal={"Service": "ec2.amazonaws.com"}, Action="sts:AssumeRole")
        del trust["Resource"]
        parse_policy(doc(trust, version="2008-10-17"), PolicyKind.TRUST)

    def test_trust_policy_rules(self) -> None:
        """Trust policies need a principal, take only sts actions and no Resource."""
        good = {"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "sts:AssumeRole"}
        parse_policy(doc(good), PolicyKind.TRUST)
        parse_policy(
            doc({**good, "Action": ["sts:AssumeRole", "sts:TagSession"]}), PolicyKind.TRUST
        )
        assert message_of(doc({**good, "Action": "s3:GetObject"}), PolicyKind.TRUST) == (
            p.TRUST_ACTIONS
        )
        assert message_of(doc({**good, "Resource": "*"}), PolicyKind.TRUST) == p.TRUST_RESOURCE
        no_principal = {"Effect": "Allow", "Action": "sts:AssumeRole"}
        assert message_of(doc(no_principal), PolicyKind.TRUST) == p.PRINCIPAL_REQUIRED
        not_principal = {"Effect": "Deny", "NotPrincipal": {"AWS": "111111111111"},
                         "Action": "sts:AssumeRole"}  # fmt: skip
        assert message_of(doc(not_principal), PolicyKind.TRUST) == p.TRUST_NOT_PRINCIPAL

    @pytest.mark.parametrize(
        "principal",
        [
            "arn:aws:iam::111111111111:role/*",
            "arn:aws:sts::111111111111:assumed-role/app/*",
            "arn:aws:iam::1111:root",
            "arn:aws:s3:::bucket",
            "alice",
        ],
    )
    def test_invalid_principals(self, principal: str) -> None:
        """Partial wildcards and unknown forms are invalid principals (docs/SEMANTICS.md §1.6)."""
        st = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
        assert message_of(doc(st), PolicyKind.TRUST) == (
            f'Invalid principal in policy: "AWS":"{principal}"'
        )

    def test_resource_policy_requires_principal_and_resource(self) -> None:
        """Resource-based policies name a principal and a resource."""
        assert message_of(doc(stmt()), PolicyKind.RESOURCE) == p.PRINCIPAL_REQUIRED
        with_principal = stmt(Principal="*", Resource=None)
        assert message_of(doc(with_principal), PolicyKind.RESOURCE) == p.NO_RESOURCES


class TestSizes:
    def test_managed_policy_quota_ignores_whitespace(self) -> None:
        """6,144 non-whitespace characters at most for a managed policy."""
        filler = "x" * 6100
        text = doc(stmt(Sid="A", Resource=f"arn:aws:s3:::{filler}"))
        with pytest.raises(LimitExceeded, match="PolicySize: 6144"):
            parse_policy(text, PolicyKind.MANAGED)
        spaced = doc(stmt(Resource="arn:aws:s3:::b")) + " " * 7000
        parse_policy(spaced, PolicyKind.MANAGED)

    def test_quota_can_be_skipped(self) -> None:
        """SimulateCustomPolicy applies no quota beyond the API's length."""
        text = doc(stmt(Resource="arn:aws:s3:::" + "x" * 7000))
        parse_policy(text, PolicyKind.MANAGED, enforce_quota=False)

    def test_characters_outside_latin1_are_a_validation_error(self) -> None:
        """Policy text may hold only TAB, LF, CR and U+0020-U+00FF."""
        text = (
            '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", '
            '"Resource": "arn:aws:s3:::caf\u00e9\u2603"}}'
        )
        message = (
            "1 validation error detected: Value at 'policyDocument' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+"
        )
        with pytest.raises(ValidationError) as info:
            parse_policy(text, PolicyKind.IDENTITY)
        assert info.value.message == message
        with pytest.raises(ValidationError) as info:  # a parsed document: the same rule
            parse_policy(json.loads(text), PolicyKind.IDENTITY)
        assert info.value.message == message
        parse_policy(text.replace("\u2603", ""), PolicyKind.IDENTITY)  # U+00E9 is allowed

    def test_oversized_document_is_a_validation_error(self) -> None:
        """More than 131,072 characters is refused before parsing."""
        with pytest.raises(ValidationError) as info:
            parse_policy(" " * 131073, PolicyKind.IDENTITY, field="policy")
        assert info.value.message == (
            "1 validation error detected: Value at 'policy' failed to satisfy constraint: "
            "Member must have length between 1 and 131072"
        )
