"""Glob matching for IAM patterns (`*` any run, `?` one character), linear in the text.

A pattern compiles once into a matcher; no regular expressions are built. The pattern is split at
its stars into segments: the first is compared at the start of the text, the last at the end,
and the middle ones are found left to right. Taking the leftmost place for each middle segment is
always safe for globs (a later place only leaves less room for the rest), so a segment is never
retried once found.

Finding a middle segment: its leading and trailing `?` are only an offset, so the search is for
its core, which starts and ends with literal text.

- A literal core is found with one ``str.find``.
- A core with `?` inside is first searched by anchor: ``str.find`` of its first literal piece,
  then the other pieces compared in place. Each failed candidate is charged the work it took
  (anchor length, plus one step and the characters of each piece compared); once the charges
  exceed twice the text passed over plus an allowance (twice the core's length, plus 32), the
  search switches to a bit-parallel shift-and over the rest of the text: a Python int holds one
  bit per core position, bit i set while ``core[:i + 1]`` matches the text ending at the current
  character; each character costs a shift, an or and an and, and is read once.

Bound, for a text of n characters: the matcher first checks that the text is at least as long as
all segments together, so the segments' lengths add up to at most n. Each middle segment's search
starts where the previous one's match ended, so the text passed over adds up to at most n, and
the anchored phases cost at most about 2n + 6n + 11n steps and character comparisons in all
(charges, the last candidate of each segment, and the allowances of at most n / 3 segments with
`?` inside). The shift-and phases read each character at most once: O(n) interpreter steps. On
top, the shift-and's integer operations each cost ``ceil(m / 30)`` machine digits for a core of m
characters (m <= n), work done in C: for n = 10,000 and m = 5,000 the whole match takes a few ms
(docs/BENCHMARKS.md, "Wildcard matching"). ``str.find`` is CPython's fastsearch: at most about
min(needle, 100) comparisons per character searched, Crochemore-Perrin two-way (linear) for
longer needles, except that a search range under 2,500 characters may cost up to its length
squared (a few million comparisons, milliseconds). Literal-only segments, prefixes, suffixes and
exact patterns keep their one-call paths.
Memory: a compiled matcher holds O(pattern); a shift-and search builds, for that call only, one
m-bit mask per distinct character found in both the core and the text.

Patterns are token lists so that literal `*` and `?` (from `${*}` escapes or substituted policy
variables) never act as wildcards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from threading import Lock
from typing import Final, Generic, TypeVar

STAR: Final = 0
QMARK: Final = 1
Token = str | int  # a literal run of text, STAR or QMARK

Matcher = Callable[[str], bool]
M = TypeVar("M")  # what a MatcherCache keeps

# A segment (between stars) as pieces: literal strings and counts of `?`.
_Piece = str | int
_Segment = tuple[_Piece, ...]
# Finds a middle segment: (text, start, end) -> leftmost start in [start, end - size] or -1.
_Finder = Callable[[str, int, int], int]


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
    """Split tokens at stars; merge adjacent literals (joined once, not re-copied per token)
    and adjacent `?`."""
    segments: list[_Segment] = []
    current: list[_Piece] = []
    run: list[str] = []
    for tok in tokens:
        if isinstance(tok, str):
            if tok:
                run.append(tok)
            continue
        if run:
            current.append("".join(run))
            run = []
        if tok == STAR:
            segments.append(tuple(current))
            current = []
        elif current and isinstance(current[-1], int):
            current[-1] += 1
        else:
            current.append(1)
    if run:
        current.append("".join(run))
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


def _bit_search(core: _Segment, size: int, text: str, start: int, end: int) -> int:
    """Leftmost p >= start with p + size <= end where ``core`` matches, or -1 (shift-and)."""
    wild = bytearray((size + 7) >> 3)  # bit i: core position i is `?`
    spots: dict[str, list[int]] = {}  # character -> core positions holding it
    i = 0
    for piece in core:
        if isinstance(piece, int):
            for k in range(i, i + piece):
                wild[k >> 3] |= 1 << (k & 7)
            i += piece
        else:
            for ch in piece:
                spots.setdefault(ch, []).append(i)
                i += 1
    any_char = int.from_bytes(wild, "little")
    masks: dict[str, int] = {}  # built on first sight: only characters the text holds
    top = size - 1
    state = 0
    for j in range(start, end):
        ch = text[j]
        mask = masks.get(ch)
        if mask is None:
            where = spots.get(ch)
            if where is None:
                mask = any_char
            else:
                bits = bytearray(wild)
                for k in where:
                    bits[k >> 3] |= 1 << (k & 7)
                mask = int.from_bytes(bits, "little")
            masks[ch] = mask
        state = ((state << 1) | 1) & mask
        if state >> top:
            return j - top
    return -1


def _mismatch_at(seg: _Segment, text: str, pos: int) -> int:
    """Index of the first piece of ``seg`` that does not match at ``pos``, or -1."""
    for k, piece in enumerate(seg):
        if isinstance(piece, int):
            pos += piece
        else:
            if not text.startswith(piece, pos):
                return k
            pos += len(piece)
    return -1


def _core_finder(core: _Segment, lead: int, trail: int) -> _Finder:
    """Search for a segment whose core has `?` inside (and literal text at both ends): anchored
    while cheap, then shift-and (see the module docstring for the bound)."""
    core_len = _seg_len(core)
    anchor = core[0]
    assert isinstance(anchor, str)
    anchor_len = len(anchor)
    rest = core[1:]
    slack = core_len - anchor_len + trail  # text the segment needs after its anchor
    # The work of a failed candidate that stopped at rest[k]: the anchor's characters, then one
    # step and the characters of each piece compared.
    costs: list[int] = []
    work = anchor_len
    for piece in rest:
        work += 1 + (len(piece) if isinstance(piece, str) else 0)
        costs.append(work)
    allowance = 2 * core_len + 32

    def find(text: str, start: int, end: int) -> int:
        lo = start + lead
        limit = end - slack  # the anchor must end by here
        if limit - anchor_len < lo:
            return -1
        spent = 0
        q = lo
        while True:
            hit = text.find(anchor, q, limit)
            if hit < 0:
                return -1
            k = _mismatch_at(rest, text, hit + anchor_len)
            if k < 0:
                return hit - lead
            q = hit + 1
            spent += costs[k]
            if spent > 2 * (q - lo) + allowance:  # failed candidates cost too much: shift-and
                hit = _bit_search(core, core_len, text, q, end - trail)
                return hit - lead if hit >= 0 else -1

    return find


def _finder(seg: _Segment) -> _Finder:
    """Leftmost-place search for one middle segment; its leading and trailing `?` are offsets."""
    size = _seg_len(seg)
    lead = seg[0] if isinstance(seg[0], int) else 0
    core = seg[1:] if lead else seg
    trail = core[-1] if core and isinstance(core[-1], int) else 0
    if trail:
        core = core[:-1]
    if not core:  # only `?`: the first place that fits
        return lambda text, start, end: start if end - start >= size else -1
    if len(core) > 1:
        return _core_finder(core, lead, trail)
    literal = core[0]
    assert isinstance(literal, str)

    def find_literal(text: str, start: int, end: int) -> int:
        if end - start < size:  # also keeps the indices below non-negative
            return -1
        hit = text.find(literal, start + lead, end - trail)
        return hit - lead if hit >= 0 else -1

    return find_literal


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
    middle = [(_finder(s), _seg_len(s)) for s in segments[1:-1] if s]
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
    # Every segment must fit: this also keeps each search within the text's length.
    fixed = first_len + last_len + sum(size for _, size in middle)

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
        for find, size in middle:
            hit = find(text, pos, end)
            if hit < 0:
                return False
            pos = hit + size
        return True

    return match


# The cache of request-time matchers. An entry is weighed by an upper estimate of the bytes its
# key and matcher hold (tests/test_wildcard.py checks the estimate against tracemalloc).
CACHE_ENTRIES: Final = 4096
CACHE_BYTES: Final = 8 << 20  # 8 MiB of estimated weight in all
CACHE_ENTRY_BYTES: Final = 64 << 10  # heavier matchers are compiled per call, not kept
_BYTES_PER_CHAR: Final = 8  # up to 4 bytes a character, held twice (key and segments)
_BYTES_PER_TOKEN: Final = 384  # string headers, tuple slots, one segment's finder closure
_BYTES_PER_ENTRY: Final = 1024  # the matcher closure, the key tuple, the dict slot


def entry_weight(tokens: Sequence[Token]) -> int:
    """Upper estimate of the bytes a cached matcher for ``tokens`` holds, with its key."""
    chars = sum(len(t) for t in tokens if isinstance(t, str))
    return _BYTES_PER_ENTRY + _BYTES_PER_TOKEN * len(tokens) + _BYTES_PER_CHAR * chars


class MatcherCache(Generic[M]):
    """An LRU of request-time matchers by token tuple, bounded by entry count and by total
    weight (``entry_weight``); a matcher heavier than ``per_entry`` is compiled and not kept.
    LRU by a dict's insertion order (a hit moves to the end); thread-safe, since evaluation
    also runs in worker threads."""

    def __init__(
        self,
        compile_key: Callable[[tuple[Token, ...]], M],
        *,
        entries: int = CACHE_ENTRIES,
        total: int = CACHE_BYTES,
        per_entry: int = CACHE_ENTRY_BYTES,
    ) -> None:
        self._compile = compile_key
        self.entries, self.total, self.per_entry = entries, total, per_entry
        self.weight = 0
        self._data: dict[tuple[Token, ...], tuple[M, int]] = {}
        self._lock = Lock()

    def get(self, tokens: Sequence[Token]) -> M:
        key = tuple(tokens)
        with self._lock:
            found = self._data.pop(key, None)
            if found is not None:
                self._data[key] = found
                return found[0]
        value = self._compile(key)
        weight = entry_weight(key)
        if weight > self.per_entry:
            return value
        with self._lock:
            old = self._data.pop(key, None)  # compiled meanwhile by another thread
            if old is not None:
                self.weight -= old[1]
            self._data[key] = (value, weight)
            self.weight += weight
            while len(self._data) > self.entries or self.weight > self.total:
                oldest = next(iter(self._data))
                self.weight -= self._data.pop(oldest)[1]
        return value

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, tokens: Sequence[Token]) -> bool:
        return tuple(tokens) in self._data


_SUBSTITUTED: MatcherCache[Matcher] = MatcherCache(compile_tokens)


def compile_substituted(tokens: Sequence[Token]) -> Matcher:
    """A matcher for tokens made at request time (policy variables substituted).

    The same substitutions recur, so matchers are kept in an LRU of at most ``CACHE_ENTRIES``
    (4,096) entries and ``CACHE_BYTES`` (8 MiB) of weight, where an entry weighs an upper
    estimate of the bytes its key and matcher hold (``entry_weight``: 1 KiB, plus 384 per token,
    plus 8 per character). A matcher weighing over ``CACHE_ENTRY_BYTES`` (64 KiB: about 8,000
    characters, or 160 tokens) is compiled for the call and not kept; compiling is linear in the
    pattern. Worst case in bytes: 8 MiB held by the entries, plus the dict's own slots (under
    0.5 MiB for 4,096 entries).
    """
    return _SUBSTITUTED.get(tokens)


def _always(_text: str) -> bool:
    return True


def compile_glob(pattern: str, *, ignore_case: bool = False) -> Matcher:
    """A matcher for a plain glob pattern. With ``ignore_case`` the caller lowercases the text."""
    if pattern == "*":
        return _always
    return compile_tokens(tokenize(pattern.lower() if ignore_case else pattern))
