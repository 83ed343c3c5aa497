"""Glob matching: semantics, literal tokens, linear time on hostile patterns, the bounded cache.

The hostile-pattern guards use patterns and texts of 10,000 characters; each is checked against
``_nfa_glob`` below, a reference that runs the whole pattern as one automaton (one int bit per
pattern position), independent of the matcher's segment search. Only the public names are
imported at the top, so that these tests also run against an older module.
"""

from __future__ import annotations

import gc
import random
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.policy import wildcard
from sidecar.policy.wildcard import QMARK, STAR, Token, compile_glob, compile_tokens

SIZE = 10_000


def _nfa_glob(pattern: str, text: str) -> bool:
    """Reference: bit j of ``state`` is set when ``pattern[:j]`` matches the text read so far.
    A character moves j to j + 1 where pattern[j] is that character or `?`, and keeps j where
    pattern[j] is `*`; then each run of stars is crossed (a star matches nothing)."""
    size = len(pattern)

    def bits(wanted: set[str]) -> int:
        return int("".join("1" if c in wanted else "0" for c in reversed(pattern)) or "0", 2)

    stars = bits({"*"})
    masks = {ch: bits({ch, "?"}) for ch in set(text)}

    def cross_stars(state: int) -> int:
        seeds = state & stars
        return state | ((seeds + stars) ^ stars)  # from each seed to one past its run of stars

    state = cross_stars(1)
    for ch in text:
        state = cross_stars(((state & masks[ch]) << 1) | (state & stars))
    return bool(state >> size & 1)


@settings(max_examples=300)
@given(st.text(alphabet="ab*?", max_size=10), st.text(alphabet="ab", max_size=12))
def test_the_reference_automaton_agrees_with_a_regex(pattern: str, text: str) -> None:
    """The reference itself, checked against an anchored regex on small inputs."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    assert _nfa_glob(pattern, text) == bool(re.fullmatch(rx, text, re.DOTALL))


def _segmented(unit: str, parts: int = 4) -> str:
    """A SIZE-character pattern: `*`, then ``parts`` segments of ``unit`` repeated, each ending
    in `b*`. Segments shorter than the text give a retrying search many places to retry."""
    each = (SIZE - 1) // parts
    segment = (unit * each)[: each - 2] + "b*"
    pattern = "*" + segment * parts
    return pattern + "*" * (SIZE - len(pattern))


def _instance(pattern: str, rng: random.Random) -> str:
    """A SIZE-character text that the pattern matches (when it has a star to stretch)."""
    pieces = [rng.choice("ab") if c == "?" else "" if c == "*" else c for c in pattern]
    text = "".join(pieces)
    star = pattern.find("*")
    if star >= 0 and len(text) < SIZE:
        pieces[star] = "a" * (SIZE - len(text))
    return "".join(pieces)


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
            # `?` at the start and end of middle segments (an offset around the core)
            ("x*?b?*y", "xabcy", True),
            ("x*?b?*y", "xbcy", False),
            ("x*??*y", "x12y", True),
            ("x*??*y", "x1y", False),
            ("*?a?b?*", "zzaxbz", True),
            ("*?a?b?*", "axbz", False),
            # empty segments and adjacent stars
            ("a**b", "ab", True),
            ("a***b", "aXYb", True),
            ("**", "", True),
            ("*?*?*", "a", False),
            ("*?*?*", "ab", True),
            # the first and last segments hold `?` too
            ("?a*b?", "xaby", True),
            ("?a*b?", "xab", False),
            ("a?*?a", "abba", True),
            ("a?*?a", "aba", False),  # the first and last segments may not overlap
        ],
    )
    def test_whole_string_match(self, pattern: str, text: str, expected: bool) -> None:
        """Patterns match the whole text; `*` is any run, `?` exactly one character."""
        assert compile_glob(pattern)(text) is expected

    def test_literal_tokens_are_not_wildcards(self) -> None:
        """A `*` or `?` that came from a substituted value or `${*}` is plain text."""
        match = compile_tokens(["team-", "*", STAR])  # literal "*" then a real wildcard
        assert match("team-*x")
        assert not match("team-x")
        assert compile_tokens(["a", QMARK])("ab")
        # A literal "?" inside a segment with a real `?`: only "?" itself matches it.
        inner = compile_tokens([STAR, "x", "?", QMARK, "y", STAR])
        assert inner("--x?zy--")
        assert not inner("--xazy--")

    def test_ignore_case_lowers_the_pattern_only(self) -> None:
        """With ignore_case the pattern is lowercased; the caller lowercases the text."""
        assert compile_glob("S3:Get*", ignore_case=True)("s3:getobject")
        assert not compile_glob("S3:Get*")("s3:getobject")

    @pytest.mark.timeout(10)
    def test_hostile_pattern_is_linear(self) -> None:
        """`*a*a*a...b` (10,000 characters) against 10,000 `a`s ends quickly, with no match."""
        pattern = "*a" * 4999 + "*b"
        assert len(pattern) == SIZE
        text = "a" * SIZE
        assert compile_glob(pattern)(text) is False
        assert compile_glob(pattern[:-2])(text) is True

    @pytest.mark.timeout(10)
    def test_hostile_question_marks(self) -> None:
        """Many short `?`-segments between stars stay fast too."""
        pattern = "*a?a" * 2000 + "*b"
        assert compile_glob(pattern)("a" * SIZE) is False


# Each family: a SIZE-character pattern; `a`s make every anchor of the old search hit.
HOSTILE = {
    "*a?a?...a?b*": _segmented("a?"),
    "*a??a??...b*": _segmented("a??"),
    "?*?*...": "?*" * (SIZE // 2),
    "*?a?a...b*": _segmented("?a"),
    "one *a?a?...b* segment": "*" + ("a?" * SIZE)[: SIZE // 2 - 3] + "b*" + "*" * (SIZE // 2),
}


class TestHostilePatternsWithQuestionMarks:
    """10,000-character patterns against 10,000-character texts, each under a 2 s guard (the
    matcher takes milliseconds; a search that retries at every hit takes seconds to minutes)."""

    @pytest.mark.timeout(2)
    @pytest.mark.parametrize("name", list(HOSTILE))
    def test_family_against_texts_of_as(self, name: str) -> None:
        """Three texts where every anchor hits (all `a`, a `b` last, a `b` first): answered
        in time, as the reference answers (a match only for `?*?*`)."""
        pattern = HOSTILE[name]
        match = compile_glob(pattern)
        for text in ("a" * SIZE, "a" * (SIZE - 1) + "b", "b" + "a" * (SIZE - 1)):
            assert len(pattern) == len(text) == SIZE
            assert match(text) is _nfa_glob(pattern, text)

    @pytest.mark.timeout(2)
    @pytest.mark.parametrize("name", list(HOSTILE))
    def test_family_against_a_matching_text(self, name: str) -> None:
        """A text made from the pattern itself matches, found in time."""
        pattern = HOSTILE[name]
        text = _instance(pattern, random.Random(name))
        assert len(text) == SIZE
        assert compile_glob(pattern)(text) is True
        assert _nfa_glob(pattern, text) is True

    @pytest.mark.timeout(2)
    def test_the_reported_request_shapes(self) -> None:
        """The reported calls: `*a?a?...a?b*` (1,003 characters) against eight 2,000-character
        resources; 2,003 characters against 4,000 `a`s, and both doubled."""
        short = compile_glob("*" + "a?" * 500 + "b*")
        for _ in range(8):
            assert short("a" * 2000) is False
        for n in (1000, 2000):
            match = compile_glob("*" + "a?" * n + "b*")
            assert match("a" * 4 * n) is False
            assert match("a" * 3 * n + "b") is True

    @pytest.mark.timeout(4)
    @settings(max_examples=8, deadline=2000)
    @given(st.integers(0, 2**32 - 1), st.integers(25, 75), st.integers(2, 6), st.integers(0, 1))
    def test_random_mixes(self, seed: int, qmarks: int, parts: int, text_bs: int) -> None:
        """Random 10,000-character mixes: ``parts`` segments between stars, each a random run of
        `a` and `?` (``qmarks`` percent `?`) ending in `b`; against a text of `a`s (with
        ``text_bs`` in 100 `b`s) and a text made from the pattern. Agrees with the reference."""
        rng = random.Random(seed)
        each = (SIZE - 1) // parts
        segments = [
            "".join(rng.choices("a?", weights=(100 - qmarks, qmarks), k=each - 2)) + "b"
            for _ in range(parts)
        ]
        pattern = "*" + "*".join(segments) + "*"
        pattern += "*" * (SIZE - len(pattern))
        text = "".join(rng.choices("ab", weights=(100, text_bs), k=SIZE))
        assert len(pattern) == len(text) == SIZE
        assert compile_glob(pattern)(text) is _nfa_glob(pattern, text)
        assert compile_glob(pattern)(_instance(pattern, rng)) is True


def _leftmost(seg: tuple[str | int, ...], text: str, start: int, end: int) -> int:
    """Brute force: the first place in [start, end - size] where the segment matches."""
    size = wildcard._seg_len(seg)
    for p in range(start, end - size + 1):
        if wildcard._match_at(seg, text, p):
            return p
    return -1


@st.composite
def _segment_cases(draw: st.DrawFn) -> tuple[tuple[str | int, ...], str, int, int]:
    """A middle segment (letters and `?`, from `a`-heavy alphabets so anchors hit often) and
    a text window, long enough for the anchored search to give way to the shift-and."""
    pieces: list[Token] = ["a", "a", "b", QMARK]
    body = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=14))
    segments = wildcard._segments([STAR, *body, STAR])
    text = draw(st.text(alphabet="aaab", max_size=300))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    return segments[1], text, start, end


class TestSegmentSearch:
    @given(_segment_cases())
    def test_finder_finds_the_leftmost_place(
        self, case: tuple[tuple[str | int, ...], str, int, int]
    ) -> None:
        """The segment search (anchored, then shift-and) returns the brute-force answer."""
        seg, text, start, end = case
        assert wildcard._finder(seg)(text, start, end) == _leftmost(seg, text, start, end)

    @given(_segment_cases())
    def test_shift_and_finds_the_leftmost_place(
        self, case: tuple[tuple[str | int, ...], str, int, int]
    ) -> None:
        """The shift-and alone agrees too, for cores (segments with literal text at both ends)."""
        seg, text, start, end = case
        if not (seg and isinstance(seg[0], str) and isinstance(seg[-1], str)):
            return
        size = wildcard._seg_len(seg)
        assert wildcard._bit_search(seg, size, text, start, end) == _leftmost(seg, text, start, end)

    def test_the_anchored_search_gives_way_to_shift_and(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Dense failed candidates switch to the shift-and; a typical ARN never does."""
        calls: list[int] = []
        real = wildcard._bit_search

        def spy(*args: object) -> int:
            calls.append(1)
            return real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(wildcard, "_bit_search", spy)
        everyday = compile_glob("arn:aws:s3:::bucket/*/2024-??-??/*")
        assert everyday("arn:aws:s3:::bucket/app/2024-05-17/x.json")
        assert not everyday("arn:aws:s3:::bucket/app/2024/05/17/x.json")
        assert calls == []
        assert compile_glob("*a?a?a?b*")("a" * 200 + "b") is True
        assert calls == [1]


class TestSubstitutedCache:
    def test_cached_matchers_answer_as_compiled_ones(self) -> None:
        """A repeated substitution gets the same matcher back, answering as a fresh one."""
        tokens: list[Token] = ["arn:aws:s3:::home/", "alice", "/", STAR]
        first = wildcard.compile_substituted(tokens)
        assert wildcard.compile_substituted(list(tokens)) is first
        assert first("arn:aws:s3:::home/alice/notes.txt")
        assert not first("arn:aws:s3:::home/bob/notes.txt")

    def test_bounded_by_weight_not_only_entries(self) -> None:
        """Large substituted values evict older entries long before the entry limit."""
        cache = wildcard.MatcherCache(compile_tokens, entries=1000, total=100_000, per_entry=50_000)
        for i in range(50):
            cache.get([f"{i:04d}" + "x" * 4000, STAR])  # about 33 KB of weight each
            assert cache.weight <= cache.total
        assert len(cache) <= 3
        assert cache.weight == sum(
            wildcard.entry_weight([f"{i:04d}" + "x" * 4000, STAR])
            for i in range(50 - len(cache), 50)
        )

    def test_too_heavy_matchers_are_not_kept(self) -> None:
        """A matcher over the per-entry limit is compiled, used and dropped."""
        cache = wildcard.MatcherCache(compile_tokens, entries=10, total=100_000, per_entry=10_000)
        heavy: list[Token] = ["y" * 2000, STAR]
        assert wildcard.entry_weight(heavy) > cache.per_entry
        assert cache.get(heavy)("y" * 2000 + "tail")
        assert heavy not in cache
        assert cache.weight == 0

    def test_least_recently_used_goes_first(self) -> None:
        """A hit refreshes an entry: the oldest untouched one is evicted."""
        cache = wildcard.MatcherCache(compile_tokens, entries=2)
        a: list[Token] = ["a", STAR]
        b: list[Token] = ["b", STAR]
        c: list[Token] = ["c", STAR]
        cache.get(a)
        cache.get(b)
        cache.get(a)
        cache.get(c)
        assert a in cache
        assert c in cache
        assert b not in cache

    def test_module_cache_worst_case(self) -> None:
        """The documented bounds: 4,096 entries, 8 MiB of weight, 64 KiB a kept entry."""
        assert wildcard.CACHE_ENTRIES == 4096
        assert wildcard.CACHE_BYTES == 8 << 20
        assert wildcard.CACHE_ENTRY_BYTES == 64 << 10
        assert wildcard._SUBSTITUTED.total == wildcard.CACHE_BYTES

    @pytest.mark.parametrize(
        "shape",
        [
            "typical",
            "letter-star",
            "letter-qmark",
            "wide-chars",
            "wide-merged",
            "qmark-cores",
            "stars",
        ],
    )
    def test_weight_bounds_the_bytes_held(self, shape: str) -> None:
        """tracemalloc: the key and matcher of an entry take no more than its weight."""
        wide = chr(0x1F600)

        def make() -> list[Token]:
            if shape == "typical":
                return ["arn:aws:s3:::home/", "".join(["ali", "ce"]), "/", STAR]
            if shape == "letter-star":
                return [t for i in range(400) for t in (chr(97 + i % 26), STAR)]
            if shape == "letter-qmark":
                return [t for i in range(400) for t in (chr(97 + i % 26), QMARK)]
            if shape == "wide-chars":
                return [wide * 3000 + "x", STAR, "y"]
            if shape == "wide-merged":
                return [wide * 1500, wide * 1500, STAR]
            if shape == "qmark-cores":
                return [STAR] + [t for i in range(300) for t in ("a", QMARK, f"b{i}", QMARK, STAR)]
            return [STAR] * 1000

        gc.collect()
        tracemalloc.start()
        try:
            key = tuple(make())
            matcher = compile_tokens(key)
            gc.collect()
            held, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert matcher is not None
        assert held <= wildcard.entry_weight(key)
