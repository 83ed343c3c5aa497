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
from sidecar.policy.principals import principal_from_arn
from sidecar.policy.wildcard import compile_glob
from tests import strategies as s

PRINCIPAL = principal_from_arn("arn:aws:sts::111111111111:assumed-role/app/session-1")
assert PRINCIPAL is not None


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


class TestEvaluationProperties:
    @given(st.lists(s.policies(), min_size=1, max_size=3), s.requests(), s.contexts())
    def test_evaluation_never_raises_and_answers_a_decision(
        self, docs: list[dict[str, Any]], req: tuple[str, str], ctx: dict[str, tuple[str, ...]]
    ) -> None:
        """Any well-formed policies and context give one of the three decisions."""
        assert _decide(docs, *req, ctx) in set(Decision)

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
            expected = ipaddress.ip_network(text, strict=False)
        except ValueError:
            assert parse_network(text) is None
            return
        got = parse_network(text)
        assert got is not None
        assert (got.network, got.prefixlen) == (int(expected.network_address), expected.prefixlen)
        block_text = ".".join(map(str, block[:4])) + f"/{block[4]}"
        policy = ipaddress.ip_network(block_text, strict=False)
        parsed_block = parse_network(block_text)
        assert parsed_block is not None
        assert ip_in(got, parsed_block) == expected.subnet_of(policy)
