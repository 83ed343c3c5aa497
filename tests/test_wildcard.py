"""Glob matching: semantics, literal tokens, and linear time on hostile patterns."""

from __future__ import annotations

import pytest

from sidecar.policy.wildcard import QMARK, STAR, compile_glob, compile_tokens


class TestGlob:
    @pytest.mark.parametrize(
        ("pattern", "text", "expected"),
        [
            ("*", "", True),
            ("*", "anything:at/all", True),
            ("s3:Get*", "s3:GetObject", True),
            ("s3:Get*", "s3:PutObject", False),
            ("iam:*AccessKey*", "iam:ListAccessKeys", True),
            ("a?c", "abc", True),
            ("a?c", "ac", False),
            ("a*b*c", "aXbYc", True),
            ("a*b*c", "aXcYb", False),
            ("*ab", "aab", True),
            ("ab*ab", "ab", False),
            ("ab*ab", "abab", True),
            ("", "", True),
            ("", "a", False),
        ],
    )
    def test_whole_string_match(self, pattern: str, text: str, expected: bool) -> None:
        """Patterns match the whole text; `*` is any run, `?` exactly one character."""
        assert compile_glob(pattern)(text) is expected

    def test_literal_tokens_are_not_wildcards(self) -> None:
        """A `*` that came from a substituted value or `${*}` is plain text."""
        match = compile_tokens(["team-", "*", STAR])  # literal "*" then a real wildcard
        assert match("team-*x")
        assert not match("team-x")
        assert compile_tokens(["a", QMARK])("ab")

    @pytest.mark.timeout(10)
    def test_hostile_pattern_is_linear(self) -> None:
        """`*a*a*a...b` (10,000 characters) against 10,000 `a`s ends quickly, with no match."""
        pattern = "*a" * 4999 + "*b"
        assert len(pattern) == 10_000
        text = "a" * 10_000
        assert compile_glob(pattern)(text) is False
        assert compile_glob(pattern[:-2])(text) is True

    @pytest.mark.timeout(10)
    def test_hostile_question_marks(self) -> None:
        """Many `?`-segments between stars stay fast too."""
        pattern = "*a?a" * 2000 + "*b"
        assert compile_glob(pattern)("a" * 10_000) is False
