"""Reading test files: the format's rules, matrices, context types, and every problem with its
path."""

from __future__ import annotations

import datetime as dt

import pytest

from sidecar.policy.entries import ContextType
from sidecar.policytest.model import Expect, TestFileError
from tests.policytest.helpers import ALICE, ORDERS, case, parse

READ = {"action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"}


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(TestFileError) as info:
        parse(text)
    return [(path, message) for _, path, message in info.value.issues]


class TestCases:
    def test_an_action_case(self) -> None:
        [c] = parse(case(principal=ORDERS, expect="ALLOWED", **READ))
        assert (c.name, c.path, c.principal, c.action, c.resource) == (
            "c", "tests[0]", ORDERS, "s3:GetObject", "arn:aws:s3:::b/k",
        )  # fmt: skip
        assert c.expect is Expect.ALLOWED
        assert c.assume is None
        assert c.at is None

    def test_an_assume_case_with_its_parameters(self) -> None:
        [c] = parse(
            case(
                principal=ALICE, assume=ORDERS, duration_seconds=900, external_id="x1",
                tags={"team": "a"}, transitive_tag_keys=["team"], source_identity="alice",
                session_name="s1", session_policy={"Version": "2012-10-17", "Statement": []},
                policy_arns=["arn:aws:iam::111111111111:policy/P"], expect="DENIED",
            )
        )  # fmt: skip
        a = c.assume
        assert a is not None
        assert (a.role_arn, a.session_name, a.duration_seconds, a.external_id) == (
            ORDERS, "s1", 900, "x1",
        )  # fmt: skip
        assert (a.tags, a.transitive_tag_keys, a.source_identity) == (
            (("team", "a"),), ("team",), "alice",
        )  # fmt: skip
        assert a.policy == '{"Version":"2012-10-17","Statement":[]}'
        assert a.policy_arns == ("arn:aws:iam::111111111111:policy/P",)

    def test_a_pod_case_with_defaults(self) -> None:
        [c] = parse(case(pod={"namespace": "shop", "service_account": "orders"}, assume=ORDERS,
                         expect="ALLOWED"))  # fmt: skip
        assert c.pod is not None
        assert (c.pod.pod_name, c.pod.pod_uid) == (
            "iam-test",
            "00000000-0000-0000-0000-000000000000",
        )

    def test_session(self) -> None:
        text = (
            "tests:\n"
            "  - name: c\n"
            f"    principal: {ORDERS}\n"
            "    session:\n"
            "      name: nightly\n"
            "      tags: {team: orders}\n"
            "      transitive_tag_keys: [team]\n"
            "      source_identity: alice\n"
            "      session_policy: {Version: 2012-10-17, Statement: []}\n"
            "      mfa: true\n"
            "      issued_at: 2026-01-02T03:04:05Z\n"
            "    action: s3:GetObject\n"
            "    resource: '*'\n"
            "    expect: ALLOWED\n"
        )
        [c] = parse(text)
        s = c.session
        assert (s.name, s.tags, s.transitive_tag_keys, s.source_identity, s.mfa) == (
            "nightly", (("team", "orders"),), ("team",), "alice", True,
        )  # fmt: skip
        assert s.policy == '{"Version":"2012-10-17","Statement":[]}'  # an unquoted date: text
        assert s.issued_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()


class TestMatrix:
    def test_expands_into_named_cases(self) -> None:
        text = case(
            principal=ORDERS,
            matrix={
                "action": ["s3:GetObject", "s3:PutObject"],
                "resource": ["arn:aws:s3:::a", "arn:aws:s3:::b"],
            },
            expect="ALLOWED",
        )
        cases = parse(text)
        assert [c.name for c in cases] == [
            "c [s3:GetObject arn:aws:s3:::a]",
            "c [s3:GetObject arn:aws:s3:::b]",
            "c [s3:PutObject arn:aws:s3:::a]",
            "c [s3:PutObject arn:aws:s3:::b]",
        ]
        assert [(c.action, c.resource) for c in cases][1] == ("s3:GetObject", "arn:aws:s3:::b")
        assert {c.path for c in cases} == {"tests[0]"}

    def test_one_list_with_a_fixed_other(self) -> None:
        cases = parse(
            case(principal=ORDERS, matrix={"action": ["a:b", "c:d"]}, resource="*", expect="DENIED")
        )
        assert [c.name for c in cases] == ["c [a:b *]", "c [c:d *]"]

    def test_problems(self) -> None:
        both = case(
            principal=ORDERS,
            action="a:b",
            matrix={"action": ["c:d"], "resurce": ["x"]},
            resource="*",
            expect="DENIED",
        )
        assert problems(both) == [
            ("tests[0].matrix", "unknown key 'resurce' (did you mean 'resource'?)"),
            ("tests[0].action", "give 'action' or 'matrix.action', not both"),
        ]
        empty = case(principal=ORDERS, matrix={"action": []}, resource="*", expect="DENIED")
        assert problems(empty) == [("tests[0].matrix.action", "must list at least one value")]


class TestContext:
    def test_types(self) -> None:
        context = {
            "s3:prefix": ["2026/", "2027/"],
            "aws:SourceIp": {"type": "IP", "values": ["10.1.2.3"]},
            "aws:SecureTransport": True,
            "s3:max-keys": 10,
            "aws:RequestTag/team": "orders",
            "aws:SourceVpc": "vpc-1",
        }
        [c] = parse(case(principal=ORDERS, context=context, expect="ALLOWED", **READ))
        assert [(e.key, e.values, e.type) for e in c.context] == [
            ("s3:prefix", ("2026/", "2027/"), ContextType.STRING_LIST),
            ("aws:SourceIp", ("10.1.2.3",), ContextType.IP),
            ("aws:SecureTransport", ("true",), ContextType.BOOLEAN),
            ("s3:max-keys", ("10",), ContextType.NUMERIC),
            ("aws:RequestTag/team", ("orders",), ContextType.STRING),
            ("aws:SourceVpc", ("vpc-1",), ContextType.STRING),
        ]

    @pytest.mark.parametrize(
        ("key", "source"),
        [
            ("aws:PrincipalArn", "the principal"),
            ("aws:PrincipalTag/team", "the tags of the principal"),
            ("aws:userid", "the principal"),
            ("AWS:TokenIssueTime", "the principal"),
            ("aws:MultiFactorAuthPresent", "the principal"),
            ("aws:SourceIdentity", "the principal"),
            ("aws:PrincipalOrgID", "the principal"),
            ("ec2:SourceInstanceArn", "the principal"),
            ("aws:CurrentTime", "set 'at' instead"),
            ("aws:ResourceAccount", "the world"),
            ("sts:ExternalId", "the assume parameters"),
        ],
    )
    def test_principal_and_session_keys_are_refused(self, key: str, source: str) -> None:
        [(path, message)] = problems(
            case(principal=ORDERS, context={key: "x"}, expect="ALLOWED", **READ)
        )
        assert path == f"tests[0].context.{key}"
        assert source in message
        assert message.endswith("never from 'context'")

    def test_bad_values(self) -> None:
        context = {
            "aws:SourceIp": {"type": "IP", "values": ["10.0.0.0/8"]},
            "a:b": {"type": "TEXT", "values": ["x"]},
            "c:d": {"type": "STRING", "value": "x"},
            "e:f": [{"x": 1}],
            "g:h": None,
        }
        assert problems(case(principal=ORDERS, context=context, expect="ALLOWED", **READ)) == [
            (
                "tests[0].context.a:b.type",
                "expected one of STRING, STRING_LIST, NUMERIC, NUMERIC_LIST, BOOLEAN, BOOLEAN_LIST, IP, IP_LIST, BINARY, BINARY_LIST, DATE, DATE_LIST, got 'TEXT'",
            ),
            ("tests[0].context.c:d", "unknown key 'value' (did you mean 'values'?)"),
            ("tests[0].context.c:d", "missing required key 'values'"),
            ("tests[0].context.e:f[0]", "expected a value, got a map"),
            ("tests[0].context.g:h", "expected a string, a list or {type, values}, got null"),
            (
                "tests[0].context",
                "Context key 'aws:SourceIp' has a value that is not a valid IP: '10.0.0.0/8'",
            ),
        ]

    def test_more_bad_shapes(self) -> None:
        text = (
            "tests:\n"
            f"  - {{name: a, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED,\n"
            "      context: {1: x, 'a:b': {type: STRING_LIST, values: x}, 'c:d': [true, 2, x]}}\n"
            f"  - {{name: b, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED, session: {{session_policy: null}}}}\n"
            f"  - {{name: c, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED, session: {{session_policy: [1]}}}}\n"
            f"  - {{name: d, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED, session: []}}\n"
            f"  - {{name: e, pod: {{namespace: a}}, action: a:b, resource: '*', expect: DENIED}}\n"
        )
        assert problems(text) == [
            ("tests[0].context.1", "a condition key is text, got an integer"),
            ("tests[0].context.a:b.values", "expected a list, got a string"),
            ("tests[1].session.session_policy", "expected a policy document, got null"),
            (
                "tests[2].session.session_policy",
                "expected a policy document (a map or a JSON string), got a list",
            ),
            ("tests[3].session", "expected a map, got a list"),
            ("tests[4].pod", "missing required key 'service_account'"),
        ]
        [c] = parse(
            text.split("\n  - {name: b")[0]
            .replace("1: x, ", "")
            .replace("{type: STRING_LIST, values: x}", "[y]")
            + "\n"
        )
        assert [e.values for e in c.context] == [("y",), ("true", "2", "x")]

    def test_assume_cases_take_no_context(self) -> None:
        text = case(
            principal=ALICE, assume=ORDERS, context={"aws:SourceIp": "10.0.0.1"}, expect="DENIED"
        )
        assert problems(text) == [
            (
                "tests[0].context",
                "assume cases read no request context: STS takes only the assume parameters",
            )
        ]


class TestTime:
    @pytest.mark.parametrize(
        "given",
        ["2026-11-02T09:30:00Z", "2026-11-02T10:30:00+01:00", "2026-11-02T09:30:00"],
    )
    def test_iso_times(self, given: str) -> None:
        [c] = parse(case(principal=ORDERS, at=given, expect="ALLOWED", **READ))
        assert c.at == dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC).timestamp()

    def test_yaml_timestamps_and_dates(self) -> None:
        base = f"tests:\n  - {{name: c, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED, at: "
        [c] = parse(base + "2026-11-02T09:30:00Z}\n")
        assert c.at == dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC).timestamp()
        [d] = parse(base + "2026-11-02}\n")
        assert d.at == dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()

    def test_bad_times(self) -> None:
        assert problems(case(principal=ORDERS, at="next tuesday", expect="ALLOWED", **READ)) == [
            ("tests[0].at", "not an ISO 8601 time: 'next tuesday' (e.g. 2026-11-02T09:30:00Z)")
        ]
        assert problems(case(principal=ORDERS, at=5, expect="ALLOWED", **READ)) == [
            ("tests[0].at", "expected an ISO 8601 time, got an integer")
        ]


class TestProblems:
    def test_unknown_keys_everywhere(self) -> None:
        text = (
            "version: 1\n"
            "tests:\n"
            f"  - {{name: a, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED, expected: DENIED}}\n"
            f"  - {{name: b, principal: '{ORDERS}', session: {{tag: {{a: b}}}}, action: a:b, resource: '*', expect: DENIED}}\n"
            "  - {name: c, pod: {namespace: a, service_account: b, pod: c}, action: a:b, resource: '*', expect: DENIED}\n"
        )
        assert problems(text) == [
            ("", "unknown key 'version'"),
            ("tests[0]", "unknown key 'expected' (did you mean 'expect'?)"),
            ("tests[1].session", "unknown key 'tag' (did you mean 'tags'?)"),
            ("tests[2].pod", "unknown key 'pod' (did you mean 'pod_uid'?)"),
        ]

    def test_shape_of_the_file(self) -> None:
        assert problems("- a\n") == [("", "expected a map, got a list")]
        assert problems("tests: []\n") == [("tests", "must list at least one test")]
        assert problems("tests: {a: 1}\n") == [("tests", "expected a list, got a map")]
        assert problems("tests: [1]\n") == [("tests[0]", "expected a map, got an integer")]

    def test_every_problem_of_every_case(self) -> None:
        text = (
            "tests:\n"
            "  - {principal: x, action: a:b, resource: '*'}\n"
            f"  - {{name: b, principal: '{ORDERS}', pod: {{namespace: a, service_account: b}}, action: a:b, resource: '*', expect: DENIED}}\n"
            "  - {name: c, action: a:b, resource: '*', expect: DENIED}\n"
            f"  - {{name: d, principal: '{ORDERS}', action: a:b, assume: '{ORDERS}', expect: DENIED}}\n"
            f"  - {{name: e, principal: '{ORDERS}', assume: '{ORDERS}', expect: EXPLICIT_DENY}}\n"
            f"  - {{name: f, principal: '{ORDERS}', action: a:b, expect: allowed}}\n"
            f"  - {{name: g, principal: '{ORDERS}', action: a:b, resource: '*', external_id: x, expect: DENIED}}\n"
            f"  - {{name: h, pod: {{namespace: a, service_account: b}}, assume: '{ORDERS}', tags: {{a: b}}, session: {{}}, expect: DENIED}}\n"
            f"  - {{name: i, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED}}\n"
            f"  - {{name: i, principal: '{ORDERS}', action: a:b, resource: '*', expect: DENIED}}\n"
            f"  - {{name: j, principal: '{ALICE}', assume: '{ORDERS}', duration_seconds: '900', tags: {{a: 1}}, expect: DENIED}}\n"
        )
        assert problems(text) == [
            ("tests[0]", "missing required key 'name'"),
            ("tests[0]", "missing required key 'expect'"),
            ("tests[1]", "give exactly one of 'principal' or 'pod'"),
            ("tests[2]", "give exactly one of 'principal' or 'pod'"),
            ("tests[3].action", "an assume case has no action or resource: drop it"),
            (
                "tests[4].expect",
                "an assume case expects one of ALLOWED, DENIED, got 'EXPLICIT_DENY'",
            ),
            (
                "tests[5].expect",
                "expected one of ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, DENIED, got 'allowed'",
            ),
            ("tests[5]", "missing required key 'resource' (or 'assume' for an assume case)"),
            ("tests[6].external_id", "'external_id' is an assume parameter: it needs 'assume'"),
            ("tests[7].tags", "pod identity sets the assume parameters: drop it"),
            ("tests[7].session", "a pod's session is made by pod identity: drop 'session'"),
            ("tests[10].duration_seconds", "expected an integer, got a string"),
            ("tests[10].tags.a", "expected text, got an integer: quote it"),
            ("tests[9]", "the test name 'i' is used by tests[8] too"),
        ]

    def test_problems_name_the_file(self) -> None:
        with pytest.raises(TestFileError) as info:
            parse("tests: []\n")
        assert info.value.issues == [("t.iamtest.yaml", "tests", "must list at least one test")]
        assert (
            str(info.value) == "InvalidTestFile: t.iamtest.yaml: tests: must list at least one test"
        )
