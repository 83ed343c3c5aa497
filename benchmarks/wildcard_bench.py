"""Glob matching on hostile patterns: linear growth, against the previous quadratic search.

    .venv/bin/python benchmarks/wildcard_bench.py [--sizes 1000,2000,5000,10000]
                                                 [--baseline-max 10000] [--repeat 3]

Each adversarial family is timed at every size n, with a pattern of n characters against a text
of n characters (`a`s, so every anchor hits), and the ratio to the previous size is printed:
a linear matcher shows ratios near the size ratio (2, 2.5, 2). Most patterns split into four
segments, so the old search has many places to retry (``?*?*…`` is one-`?` segments, which it
already handled in one step); the last family is the reported shape, one segment of n / 2
characters, which also makes the shift-and's integers widest for the text. The baseline is the
previous search (anchor on the first literal piece of a segment, compare the rest at every
hit), kept below as ``_old_find``, run once per size up to ``--baseline-max``. New figures are
the best of ``--repeat`` runs, in ms. All times are the process's CPU time
(``time.process_time``), so that other work on a shared machine does not count. Compiling is
not timed.

The common case is three everyday patterns against six typical S3 ARNs, in µs per call (the
best of 15 loops of 20,000 rounds, old and new alternating), old against new.
"""

from __future__ import annotations

import argparse
import random
import time
import timeit
from collections.abc import Callable, Sequence

from sidecar.policy.wildcard import (
    Matcher,
    Token,
    _always,
    _match_at,
    _seg_len,
    _segments,
    compile_tokens,
    tokenize,
)

# -- the previous search, as the baseline ---------------------------------------------------


def _old_find(seg: tuple[str | int, ...], seg_len: int, text: str, start: int, end: int) -> int:
    last = end - seg_len
    if last < start:
        return -1
    offset = 0
    anchor = ""
    for piece in seg:
        if isinstance(piece, int):
            offset += piece
        else:
            anchor = piece
            break
    if not anchor:
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


def old_compile(tokens: Sequence[Token]) -> Matcher:
    """The previous ``compile_tokens`` (same fast paths, the search above for middle segments)."""
    segments = _segments(tokens)
    if len(segments) == 1:
        (seg,) = segments
        if all(isinstance(p, str) for p in seg):
            return "".join(p for p in seg if isinstance(p, str)).__eq__
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
            hit = _old_find(seg, size, text, pos, end)
            if hit < 0:
                return False
            pos = hit + size
        return True

    return match


# -- the families ---------------------------------------------------------------------------


def _segmented(unit: str, n: int, parts: int = 4) -> str:
    """``*`` then ``parts`` segments of ``unit`` repeated, each ending in ``b*``: n characters.
    Segments shorter than the text leave the old search many places to retry."""
    each = (n - 1) // parts
    segment = (unit * (each // len(unit) + 1))[: each - 2] + "b*"
    pattern = "*" + segment * parts
    return pattern + "*" * (n - len(pattern))


def _one_segment(n: int) -> str:
    """The reported shape: one `?`-segment of n / 2 characters between stars."""
    half = n // 2
    return "*" + ("a?" * half)[: half - 3] + "b*"


def _random_mix(n: int) -> str:
    """Four segments of random `a` and `?` (half each), each ending in `b`, between stars."""
    rng = random.Random(n)
    each = (n - 1) // 4
    segments = ["".join(rng.choices("a?", k=each - 2)) + "b" for _ in range(4)]
    pattern = "*" + "*".join(segments) + "*"
    return pattern + "*" * (n - len(pattern))


FAMILIES: dict[str, Callable[[int], str]] = {
    "*a?a?…a?b* (4 segments)": lambda n: _segmented("a?", n),
    "*a??a??…b* (4 segments)": lambda n: _segmented("a??", n),
    "?*?*…": lambda n: ("?*" * n)[:n],
    "random a/? (4 segments)": _random_mix,
    "*a?a?…a?b* (1 segment, n/2)": _one_segment,
}

COMMON_PATTERNS = [
    "arn:aws:s3:::bucket/*/logs/?.txt",
    "arn:aws:s3:::bucket/*/2024-??-??/*",
    "arn:aws:s3:::bucket/*/logs/*",
]
COMMON_TEXTS = [
    "arn:aws:s3:::bucket/app-1/logs/7.txt",
    "arn:aws:s3:::bucket/app-1/logs/2024-05-17/part-0001.gz",
    "arn:aws:s3:::bucket/team/app-2/2024-05-17/events/0001.json",
    "arn:aws:s3:::bucket/very/deep/prefix/of/objects/logs/a.txt",
    "arn:aws:s3:::other-bucket/app-1/logs/7.txt",
    "arn:aws:s3:::bucket/app-1/metrics/2024/05/17/x.csv",
]


def _best_ms(match: Matcher, text: str, repeat: int) -> tuple[float, bool]:
    best = float("inf")
    result = False
    for _ in range(repeat):
        start = time.process_time()
        result = match(text)
        best = min(best, time.process_time() - start)
    return best * 1000, result


def run_families(sizes: list[int], baseline_max: int, repeat: int) -> None:
    print("| family | n | new ms | ratio | old ms | ratio | answer |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, make in FAMILIES.items():
        prev_new = prev_old = 0.0
        for n in sizes:
            tokens = tokenize(make(n))
            text = "a" * n
            new_ms, answer = _best_ms(compile_tokens(tokens), text, repeat)
            old_cell = ratio_old = "-"
            if n <= baseline_max:
                old_ms, old_answer = _best_ms(old_compile(tokens), text, 1)
                assert old_answer == answer, (name, n)
                old_cell = f"{old_ms:,.1f}"
                ratio_old = f"{old_ms / prev_old:.1f}" if prev_old else ""
                prev_old = old_ms
            ratio_new = f"{new_ms / prev_new:.1f}" if prev_new else ""
            prev_new = new_ms
            print(
                f"| {name} | {n:,} | {new_ms:.2f} | {ratio_new} | {old_cell} | {ratio_old} |"
                f" {answer} |"
            )


def run_common() -> None:
    print()
    print("| pattern | old µs/call | new µs/call |")
    print("|---|---:|---:|")
    for pattern in COMMON_PATTERNS:
        tokens = tokenize(pattern)
        new, old = compile_tokens(tokens), old_compile(tokens)
        assert [new(t) for t in COMMON_TEXTS] == [old(t) for t in COMMON_TEXTS]
        runs: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(15):  # alternate, so that drift on a shared machine hits both
            for name, match in (("old", old), ("new", new)):

                def loop(match: Matcher = match) -> None:
                    for t in COMMON_TEXTS:
                        match(t)

                runs[name].append(timeit.timeit(loop, number=20_000, timer=time.process_time))
        old_us, new_us = (min(runs[k]) / (20_000 * len(COMMON_TEXTS)) * 1e6 for k in ("old", "new"))
        print(f"| `{pattern}` | {old_us:.3f} | {new_us:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000")
    parser.add_argument("--baseline-max", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    run_families(sizes, args.baseline_max, args.repeat)
    run_common()


if __name__ == "__main__":
    main()
