"""Properties that must hold for every well-formed input (Hypothesis)."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sidecar.policy.compile import compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, PolicySet, evaluate
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import RequestPrincipal, principal_from_arn
from sidecar.policy.wildcard import QMARK, STAR, Token, compile_glob, compile_tokens
from tests import strategies as s

_SESSION = principal_from_arn("arn:aws:sts::111111111111:assumed-role/app/session-1")
assert _SESSION is not None
PRINCIPAL: RequestPrincipal = _SESSION


def _ctx(values: dict[str, tuple[str, ...]]) -> Context:
    return Context(values, multi=[k for k in values if k in s.MULTI_KEYS])


def _decide(
    docs: list[dict[str, Any]],
    action: str,
    resource: str,
    ctx_values: dict[str, tuple[str, ...]],
    boundary: dict[str, Any] | None = None,
) -> Decision:
    compiled = tuple(
        compile_policy(parse_policy(d, PolicyKind.IDENTITY, policy_id=f"p{i}"))
        for i, d in enumerate(docs)
    )
    bound = None
    if boundary is not None:
        bound = (compile_policy(parse_policy(boundary, PolicyKind.BOUNDARY, policy_id="b")),)
    ev = evaluate(
        PRINCIPAL, action, resource, _ctx(ctx_values), PolicySet(identity=compiled, boundary=bound)
    )
    return ev.decision


# A reference evaluator over simple identity policies: each statement's match is computed on
# its own, straight from the documented rules (docs/SEMANTICS.md: actions are case-insensitive
# globs; resources are matched segment by segment, padded when short and ending in `*`, `*`
# alone matching all; StringEquals is exact and false when the key is absent).
REF_ACTIONS = ["s3:GetObject", "S3:getobject", "s3:Get*", "s3:?etObject", "s3:*", "*",
               "*:GetObject", "sqs:SendMessage", "sqs:*"]  # fmt: skip
REF_RESOURCES = ["*", "arn:aws:s3:::reports/*", "arn:aws:s3:::reports/q?.csv",
                 "arn:aws:s3:::reports/q1.csv", "arn:aws:s3:::*", "arn:aws:s3:::other/*",
                 "arn:aws:sqs:*:111111111111:*", "arn:aws:sqs:us-east-1:111111111111:jobs",
                 "arn:aws:sqs:*"]  # fmt: skip
REF_REQUEST_ACTIONS = ["s3:GetObject", "s3:PutObject", "sqs:SendMessage", "sqs:GetQueueUrl"]
REF_REQUEST_RESOURCES = ["arn:aws:s3:::reports/q1.csv", "arn:aws:s3:::reports/q10.csv",
                         "arn:aws:s3:::other/x", "arn:aws:sqs:us-east-1:111111111111:jobs",
                         "arn:aws:sqs:eu-west-1:222222222222:jobs"]  # fmt: skip
TEAMS = ["payments", "search", "Payments"]
TEAM_KEY = "aws:PrincipalTag/team"


def _ref_statement(
    effect: str,
    not_action: bool,
    actions: list[str],
    not_resource: bool,
    resources: list[str],
    teams: list[str] | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": effect}
    out["NotAction" if not_action else "Action"] = actions
    out["NotResource" if not_resource else "Resource"] = resources
    if teams is not None:
        out["Condition"] = {"StringEquals": {TEAM_KEY: teams}}
    return out


ref_statements = st.builds(
    _ref_statement,
    st.sampled_from(["Allow", "Allow", "Deny"]),
    st.sampled_from([False, False, True]),
    st.lists(st.sampled_from(REF_ACTIONS), min_size=1, max_size=2),
    st.sampled_from([False, False, True]),
    st.lists(st.sampled_from(REF_RESOURCES), min_size=1, max_size=2),
    st.one_of(st.none(), st.lists(st.sampled_from(TEAMS), min_size=1, max_size=2)),
)


def _ref_resource(pattern: str, resource: str) -> bool:
    if pattern == "*":
        return True
    segments = pattern.split(":", 5)
    if len(segments) < 6:
        if not segments[-1].endswith("*"):
            return False
        segments += ["*"] * (6 - len(segments))
    parts = resource.split(":", 5)
    return len(parts) == 6 and all(map(_reference_glob, segments, parts))


def _ref_matches(stmt: dict[str, Any], action: str, resource: str, team: str | None) -> bool:
    actions = stmt["Action" if "Action" in stmt else "NotAction"]
    action_hit = any(_reference_glob(a.lower(), action.lower()) for a in actions)
    resources = stmt["Resource" if "Resource" in stmt else "NotResource"]
    resource_hit = any(_ref_resource(r, resource) for r in resources)
    condition = "Condition" not in stmt or (
        team is not None and team in stmt["Condition"]["StringEquals"][TEAM_KEY]
    )
    return (
        action_hit != ("NotAction" in stmt)
        and resource_hit != ("NotResource" in stmt)
        and condition
    )


class TestEvaluationProperties:
    @given(
        st.lists(st.lists(ref_statements, min_size=1, max_size=4), min_size=1, max_size=3),
        st.sampled_from(REF_REQUEST_ACTIONS),
        st.sampled_from(REF_REQUEST_RESOURCES),
        st.one_of(st.none(), st.sampled_from(TEAMS)),
    )
    def test_evaluation_agrees_with_a_statement_by_statement_reference(
        self,
        policies: list[list[dict[str, Any]]],
        action: str,
        resource: str,
        team: str | None,
    ) -> None:
        """Identity policies only: EXPLICIT_DENY iff some Deny statement matches, else ALLOWED
        iff some Allow statement matches, else IMPLICIT_DENY; the statements the decision names
        are exactly the matching Denies (explicit deny) or the matching Allows (allow)."""
        compiled = tuple(
            compile_policy(
                parse_policy(
                    {"Version": "2012-10-17", "Statement": stmts},
                    PolicyKind.IDENTITY,
                    policy_id=f"p{i}",
                )
            )
            for i, stmts in enumerate(policies)
        )
        ctx = Context({TEAM_KEY: (team,)} if team is not None else {})
        ev = evaluate(PRINCIPAL, action, resource, ctx, PolicySet(identity=compiled))
        matching = {
            (f"p{i}", j, stmt["Effect"])
            for i, stmts in enumerate(policies)
            for j, stmt in enumerate(stmts)
            if _ref_matches(stmt, action, resource, team)
        }
        denies = {(pid, j) for pid, j, effect in matching if effect == "Deny"}
        allows = {(pid, j) for pid, j, effect in matching if effect == "Allow"}
        if denies:
            expected, named = Decision.EXPLICIT_DENY, denies
        elif allows:
            expected, named = Decision.ALLOWED, allows
        else:
            expected, named = Decision.IMPLICIT_DENY, set()
        assert ev.decision is expected
        assert {(m.ref.policy_id, m.ref.index) for m in ev.matched} == named
        assert len(ev.matched) == len(named)
        assert ev.errors == ()

    @given(
        st.lists(s.policies(), min_size=1, max_size=3),
        s.requests(),
        s.contexts(),
        st.data(),
    )
    def test_a_matching_deny_always_wins(
        self,
        docs: list[dict[str, Any]],
        req: tuple[str, str],
        ctx: dict[str, tuple[str, ...]],
        data: st.DataObject,
    ) -> None:
        """Adding an unconditional Deny for the request makes the answer an explicit deny."""
        action, resource = req
        docs = copy.deepcopy(docs)
        target = data.draw(st.integers(0, len(docs) - 1))
        docs[target]["Statement"].append({"Effect": "Deny", "Action": action, "Resource": "*"})
        assert _decide(docs, action, resource, ctx) is Decision.EXPLICIT_DENY

    @given(
        st.lists(s.policies(), min_size=1, max_size=3),
        s.requests(),
        s.contexts(),
        s.statements(effect="Allow"),
        st.one_of(st.none(), s.policies()),
        st.data(),
    )
    def test_adding_an_allow_never_turns_an_allow_into_a_deny(
        self,
        docs: list[dict[str, Any]],
        req: tuple[str, str],
        ctx: dict[str, tuple[str, ...]],
        extra: dict[str, Any],
        boundary: dict[str, Any] | None,
        data: st.DataObject,
    ) -> None:
        """Allow statements only ever add permissions, wherever they are added."""
        before = _decide(docs, *req, ctx, boundary)
        docs = copy.deepcopy(docs)
        target = data.draw(st.integers(0, len(docs) - 1))
        docs[target]["Statement"].append(extra)
        after = _decide(docs, *req, ctx, boundary)
        if before is Decision.ALLOWED:
            assert after is Decision.ALLOWED
        if before is Decision.EXPLICIT_DENY:
            assert after is Decision.EXPLICIT_DENY

    @given(s.policies(max_statements=8), st.sampled_from([*s.ACTIONS, "S3:getobject", "x:y"]))
    def test_action_index_agrees_with_scanning_every_statement(
        self, doc: dict[str, Any], action: str
    ) -> None:
        """The per-action index finds exactly the statements a full scan would."""
        compiled = compile_policy(parse_policy(doc, PolicyKind.IDENTITY, policy_id="p"))
        expected = []
        for cst in compiled.statements:
            st_ = cst.source
            hit = any(_reference_glob(a.lower(), action.lower()) for a in st_.actions)
            if hit != st_.not_action:
                expected.append(cst.ref.index)
        assert [c.ref.index for c in compiled.candidates(action.lower())] == expected


@lru_cache(maxsize=4096)
def _reference_glob(pattern: str, text: str) -> bool:
    """Textbook recursive glob: `*` any run, `?` one character."""
    if not pattern:
        return not text
    head = pattern[0]
    if head == "*":
        return _reference_glob(pattern[1:], text) or (
            bool(text) and _reference_glob(pattern, text[1:])
        )
    if not text:
        return False
    return (head == "?" or head == text[0]) and _reference_glob(pattern[1:], text[1:])


class TestWildcardProperties:
    @given(s.glob_patterns, s.glob_texts)
    def test_glob_agrees_with_the_reference_matcher(self, pattern: str, text: str) -> None:
        """The linear-time matcher gives the same answer as the textbook recursion."""
        assert compile_glob(pattern)(text) == _reference_glob(pattern, text)

    @given(st.text(max_size=12), st.text(max_size=12))
    def test_glob_agrees_with_a_translated_regex_on_any_text(self, pattern: str, text: str) -> None:
        """On arbitrary unicode, the matcher equals an anchored regex of the same glob."""
        rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        assert compile_glob(pattern)(text) == bool(re.fullmatch(rx, text, re.DOTALL))

    @given(
        st.lists(st.text(alphabet="ab?", max_size=4), max_size=5).map("*".join),
        st.text(alphabet="ab", max_size=14),
    )
    def test_segments_with_edge_question_marks_and_empty_segments(
        self, pattern: str, text: str
    ) -> None:
        """Patterns built from segments: `?` at segment starts and ends, empty segments
        (adjacent stars), stars at either end or none."""
        assert compile_glob(pattern)(text) == _reference_glob(pattern, text)

    @given(
        st.tuples(
            st.text(alphabet="ab?*", max_size=4),
            st.tuples(
                st.text(alphabet="?", max_size=2),
                st.text(alphabet="a?", min_size=1, max_size=7),
                st.text(alphabet="ab?", max_size=3),
            ).map(lambda t: f"{t[0]}a{t[1]}b{t[2]}"),
            st.text(alphabet="ab?*", max_size=4),
        ).map("*".join),
        st.tuples(
            st.text(alphabet="ab", max_size=6),
            st.integers(0, 200).map("a".__mul__),
            st.text(alphabet="ab", max_size=10),
        ).map("".join),
    )
    def test_long_texts_with_dense_anchors_agree_with_the_reference(
        self, pattern: str, text: str
    ) -> None:
        """A middle segment with `?` inside, against texts with a long run of `a` where every
        anchor hits, so the search gives way to the shift-and; the answers stay the textbook's."""
        assert compile_glob(pattern)(text) == _reference_glob(pattern, text)

    @given(
        st.lists(
            st.one_of(st.just(STAR), st.just(QMARK), st.text(alphabet="ab*?", max_size=3)),
            max_size=8,
        ),
        st.text(alphabet="ab*?", max_size=14),
    )
    def test_token_lists_agree_with_a_regex(self, tokens: list[Token], text: str) -> None:
        """Literal tokens (substituted values, `${*}`) holding `*` and `?` match only themselves,
        beside real wildcards."""
        rx = "".join(
            re.escape(t) if isinstance(t, str) else ".*" if t == STAR else "." for t in tokens
        )
        assert compile_tokens(tokens)(text) == bool(re.fullmatch(rx, text, re.DOTALL))


class TestIpProperties:
    @given(
        st.tuples(*[st.integers(0, 300)] * 4, st.one_of(st.none(), st.integers(0, 40))),
        st.tuples(*[st.integers(0, 255)] * 4, st.integers(0, 32)),
    )
    def test_ipv4_parsing_and_containment_agree_with_ipaddress(
        self, value: tuple[int, ...], block: tuple[int, ...]
    ) -> None:
        """The integer fast path parses and matches IPv4 exactly as the ipaddress module does."""
        import ipaddress

        from sidecar.policy.values import ip_in, parse_network

        text = ".".join(map(str, value[:4])) + (f"/{value[4]}" if value[4] is not None else "")
        try:
            expected = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            assert parse_network(text) is None
            return
        got = parse_network(text)
        assert got is not None
        assert (got.network, got.prefixlen) == (int(expected.network_address), expected.prefixlen)
        block_text = ".".join(map(str, block[:4])) + f"/{block[4]}"
        policy = ipaddress.IPv4Network(block_text, strict=False)
        parsed_block = parse_network(block_text)
        assert parsed_block is not None
        assert ip_in(got, parsed_block) == expected.subnet_of(policy)
