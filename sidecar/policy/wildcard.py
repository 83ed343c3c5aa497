"""Linear-time glob matching for IAM patterns (`*` any run, `?` one character).

A pattern compiles once into a matcher. No regular expressions are built: a pattern is split at
its stars into segments, the first is anchored at the start, the last at the end, and the middle
ones are found left to right with ``str.find``. Taking the leftmost place for each middle segment
is always safe for globs, so nothing is ever retried and the cost is linear in the text for
patterns without `?` (and bounded by text x segment for segments holding `?`).

Patterns are token lists so that literal `*` and `?` (from `${*}` escapes or substituted policy
variables) never act as wildcards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final

STAR: Final = 0
QMARK: Final = 1
Token = str | int  # a literal run of text, STAR or QMARK

Matcher = Callable[[str], bool]

# A segment (between stars) as pieces: literal strings and counts of `?`.
_Piece = str | int
_Segment = tuple[_Piece, ...]


def tokenize(pattern: str) -> list[Token]:
    """Tokens of a plain glob pattern, where every `*` and `?` is a wildcard."""
    tokens: list[Token] = []
    run: list[str] = []
    for ch in pattern:
        if ch == "*" or ch == "?":
            if run:
                tokens.append("".join(run))
                run = []
            tokens.append(STAR if ch == "*" else QMARK)
        else:
            run.append(ch)
    if run:
        tokens.append("".join(run))
    return tokens


def has_wildcard(tokens: Sequence[Token]) -> bool:
    return any(isinstance(t, int) for t in tokens)


def _segments(tokens: Sequence[Token]) -> list[_Segment]:
    """Split tokens at stars; merge adjacent literals and adjacent `?`."""
    segments: list[_Segment] = []
    current: list[_Piece] = []
    for tok in tokens:
        if tok == STAR and isinstance(tok, int):
            segments.append(tuple(current))
            current = []
        elif isinstance(tok, int):  # QMARK
            if current and isinstance(current[-1], int):
                current[-1] += 1
            else:
                current.append(1)
        elif current and isinstance(current[-1], str):
            current[-1] += tok
        elif tok:
            current.append(tok)
    segments.append(tuple(current))
    return segments


def _seg_len(seg: _Segment) -> int:
    return sum(p if isinstance(p, int) else len(p) for p in seg)


def _match_at(seg: _Segment, text: str, pos: int) -> bool:
    """Does ``seg`` match ``text`` at ``pos`` (the caller checked the length fits)?"""
    for piece in seg:
        if isinstance(piece, int):
            pos += piece
        else:
            if not text.startswith(piece, pos):
                return False
            pos += len(piece)
    return True


def _find(seg: _Segment, seg_len: int, text: str, start: int, end: int) -> int:
    """Leftmost position p in [start, end - seg_len] where ``seg`` matches, or -1."""
    last = end - seg_len
    if last < start:
        return -1
    # Anchor the search on the first literal piece; `?` runs before it are an offset.
    offset = 0
    anchor = ""
    for piece in seg:
        if isinstance(piece, int):
            offset += piece
        else:
            anchor = piece
            break
    if not anchor:  # only `?`: any position fits
        return start
    pos = start
    while pos <= last:
        hit = text.find(anchor, pos + offset, last + offset + len(anchor))
        if hit < 0:
            return -1
        cand = hit - offset
        if _match_at(seg, text, cand):
            return cand
        pos = cand + 1
    return -1


def compile_tokens(tokens: Sequence[Token]) -> Matcher:
    """A matcher for the whole string (anchored at both ends)."""
    segments = _segments(tokens)
    if len(segments) == 1:
        (seg,) = segments
        if all(isinstance(p, str) for p in seg):
            literal = "".join(p for p in seg if isinstance(p, str))
            return literal.__eq__
        size = _seg_len(seg)
        return lambda text: len(text) == size and _match_at(seg, text, 0)
    first, last = segments[0], segments[-1]
    middle = [(s, _seg_len(s)) for s in segments[1:-1] if s]
    first_len, last_len = _seg_len(first), _seg_len(last)
    if not middle:
        if not first and not last:
            return _always
        if not last and all(isinstance(p, str) for p in first):
            prefix = "".join(p for p in first if isinstance(p, str))
            return lambda text: text.startswith(prefix)
        if not first and all(isinstance(p, str) for p in last):
            suffix = "".join(p for p in last if isinstance(p, str))
            return lambda text: text.endswith(suffix)
    fixed = first_len + last_len

    def match(text: str) -> bool:
        n = len(text)
        if n < fixed:
            return False
        if first and not _match_at(first, text, 0):
            return False
        end = n - last_len
        if last and not _match_at(last, text, end):
            return False
        pos = first_len
        for seg, size in middle:
            hit = _find(seg, size, text, pos, end)
            if hit < 0:
                return False
            pos = hit + size
        return True

    return match


@lru_cache(maxsize=4096)
def _compile_cached(tokens: tuple[Token, ...]) -> Matcher:
    return compile_tokens(tokens)


def compile_substituted(tokens: Sequence[Token]) -> Matcher:
    """A matcher for tokens made at request time (policy variables substituted): the same
    substitutions recur, so their matchers are kept (bounded)."""
    return _compile_cached(tuple(tokens))


def _always(_text: str) -> bool:
    return True


def compile_glob(pattern: str, *, ignore_case: bool = False) -> Matcher:
    """A matcher for a plain glob pattern. With ``ignore_case`` the caller lowercases the text."""
    if pattern == "*":
        return _always
    return compile_tokens(tokenize(pattern.lower() if ignore_case else pattern))
