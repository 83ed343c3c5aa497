"""Hypothesis strategies for policies, requests and glob patterns."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
SERVICES = ["s3", "sqs", "dynamodb", "orders"]
NAMES = ["GetObject", "PutObject", "ListBucket", "SendMessage", "GetItem", "GetOrder"]
ACTIONS = [f"{s}:{n}" for s in SERVICES for n in NAMES]
RESOURCES = [
    "arn:aws:s3:::reports/q1.csv",
    "arn:aws:s3:::reports/alice/notes.txt",
    "arn:aws:sqs:us-east-1:111111111111:jobs",
    "arn:aws:dynamodb:us-east-1:111111111111:table/orders",
    "arn:aws:orders:::order/42",
    "*",
]
CONTEXT_KEYS = {
    "aws:SourceIp": ["10.1.2.3", "203.0.113.9", "2001:db8::1", "not-an-ip"],
    "aws:PrincipalTag/team": ["payments", "search", "", "Payments"],
    "aws:SecureTransport": ["true", "false", "TRUE", "yes"],
    "aws:CurrentTime": ["2026-01-01T00:00:00Z", "2030-06-01", "garbage"],
    "s3:max-keys": ["5", "10", "12.5", "ten"],
    "aws:username": ["alice", "bob", "*"],
}
MULTI_KEYS = {"aws:TagKeys": ["env", "team", "cost-center", ""]}

OPERATORS = [
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringLike", "StringNotLike",
    "NumericLessThan", "NumericEquals", "NumericNotEquals", "DateLessThan", "DateGreaterThan",
    "Bool", "IpAddress", "NotIpAddress", "ArnLike", "ArnNotEquals", "Null", "BinaryEquals",
]  # fmt: skip
POLICY_VALUES = [
    "payments", "pay*", "10", "2027-01-01T00:00:00Z", "true", "false", "10.0.0.0/8",
    "203.0.113.0/24", "arn:aws:s3:::reports/*", "${aws:username}", "${aws:PrincipalTag/team}",
    "x${*}y", "aGVsbG8=", "not-a-number", "*", "",
]  # fmt: skip


def action_patterns() -> st.SearchStrategy[str]:
    return st.sampled_from([*ACTIONS, "*", "s3:*", "s3:Get*", "*:GetObject", "sqs:Send?essage"])


def resource_patterns() -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            *RESOURCES,
            "arn:aws:s3:::reports/*",
            "arn:aws:s3:::reports/${aws:username}/*",
            "arn:aws:sqs:*:111111111111:*",
            "arn:aws:dynamodb:*",
            "arn:aws:orders:::order/?",
        ]
    )


DATE_VALUES = ["2027-01-01T00:00:00Z", "2026-06-01", "1767225600", "2026-01-01T00:00:00+02:00"]


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from([*CONTEXT_KEYS, *MULTI_KEYS])
    qualifier = st.sampled_from(["", "", "ForAllValues:", "ForAnyValue:"])
    suffix = st.sampled_from(["", "", "IfExists"])

    def block(parts: tuple[str, str, str]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        q, base, sfx = parts
        op = q + base + (sfx if base != "Null" else "")
        # Date values must parse at validation (legacy parsing); other families may hold junk.
        pool = DATE_VALUES if base.startswith("Date") else POLICY_VALUES
        values = st.one_of(st.sampled_from(pool), st.lists(st.sampled_from(pool)))
        return st.tuples(st.just(op), st.dictionaries(keys, values, min_size=1, max_size=2))

    ops = st.tuples(qualifier, st.sampled_from(OPERATORS), suffix).flatmap(block)
    return st.lists(ops, max_size=2).map(dict)


def statements(effect: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    def build(
        eff: str,
        not_action: bool,
        actions: list[str],
        not_res: bool,
        res: list[str],
        cond: dict[str, Any],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"Effect": eff}
        out["NotAction" if not_action else "Action"] = actions
        out["NotResource" if not_res else "Resource"] = res
        if cond:
            out["Condition"] = cond
        return out

    return st.builds(
        build,
        st.just(effect) if effect else st.sampled_from(["Allow", "Allow", "Deny"]),
        st.sampled_from([False, False, False, True]),
        st.lists(action_patterns(), min_size=1, max_size=3),
        st.sampled_from([False, False, False, True]),
        st.lists(resource_patterns(), min_size=1, max_size=2),
        conditions(),
    )


def policies(max_statements: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    return st.lists(statements(), min_size=1, max_size=max_statements).map(
        lambda sts: {"Version": "2012-10-17", "Statement": sts}
    )


def contexts() -> st.SearchStrategy[dict[str, tuple[str, ...]]]:
    single = st.fixed_dictionaries(
        {}, optional={k: st.sampled_from(v).map(lambda x: (x,)) for k, v in CONTEXT_KEYS.items()}
    )
    multi = st.fixed_dictionaries(
        {},
        optional={
            k: st.lists(st.sampled_from(v), max_size=3).map(tuple) for k, v in MULTI_KEYS.items()
        },
    )
    return st.tuples(single, multi).map(lambda t: {**t[0], **t[1]})


def requests() -> st.SearchStrategy[tuple[str, str]]:
    return st.tuples(st.sampled_from(ACTIONS), st.sampled_from(RESOURCES))


# Globs over a tiny alphabet make collisions (and so interesting cases) likely.
glob_patterns = st.text(alphabet="ab*?", max_size=12)
glob_texts = st.text(alphabet="ab", max_size=14)
