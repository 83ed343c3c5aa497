"""ARNs: splitting, and resource-pattern matching (docs/SEMANTICS.md §2.2).

A pattern is split at its first five colons. Segments 1-5 are matched one by one, where `*` and
`?` stay inside the segment; segment 6 is matched whole, where `*` crosses `/` and `:`. A pattern
with fewer than six segments whose last segment ends in `*` is padded with `*` segments; any
other short pattern matches nothing. `*` alone matches everything. Matching is case-sensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sidecar.policy.context import Context
from sidecar.policy.variables import (
    Part,
    has_variables,
    parse_template,
    raw_tokens,
    substitute_tokens,
)
from sidecar.policy.wildcard import (
    STAR,
    Matcher,
    Token,
    compile_substituted,
    compile_tokens,
    has_wildcard,
    tokenize,
)

# AWS's partitions, in AWS's order (the order error messages list them in).
PARTITIONS: tuple[str, ...] = (
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
)

# Matches a request resource, given as the string and its split form (split once per request).
ResourceMatcher = Callable[[str, list[str], Context], bool]


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn | None:
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            return None
        return cls(parts[1], parts[2], parts[3], parts[4], parts[5])

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def _never(_r: str, _parts: list[str], _ctx: Context) -> bool:
    return False


def _always(_r: str, _parts: list[str], _ctx: Context) -> bool:
    return True


def split_pattern(tokens: Sequence[Token]) -> list[list[Token]] | None:
    """An ARN pattern's six segments as glob tokens: split at the first five colons of its
    literal text; a shorter pattern whose last segment ends in a wildcard `*` is padded with `*`
    segments; any other shorter pattern is None (it matches nothing)."""
    parts: list[list[Token]] = [[]]
    for tok in tokens:
        if isinstance(tok, str) and len(parts) < 6 and ":" in tok:
            pieces = tok.split(":", 6 - len(parts))
            for i, piece in enumerate(pieces):
                if i:
                    parts.append([])
                if piece:
                    parts[-1].append(piece)
        else:
            parts[-1].append(tok)
    if len(parts) < 6:
        last = parts[-1]
        if not (last and isinstance(last[-1], int) and last[-1] == STAR):
            return None
        parts.extend([[STAR] for _ in range(6 - len(parts))])
    return parts


def _text(tokens: list[Token]) -> str:
    """The pattern text of tokens from `tokenize` (its inverse)."""
    return "".join(t if isinstance(t, str) else "*" if t == STAR else "?" for t in tokens)


def compile_resource(pattern: str, *, variables: bool) -> ResourceMatcher:
    """A matcher for one Resource entry. Variables are substituted in segment 6 only."""
    if pattern == "*":
        return _always
    segments = split_pattern(tokenize(pattern))
    if segments is None:
        return _never
    head_tokens = segments[:5]
    tail_tokens = segments[5]
    head = [_text(t) for t in head_tokens]
    tail = _text(tail_tokens)
    if any(has_wildcard(t) for t in head_tokens):
        head_matchers: list[Matcher] | None = [compile_tokens(t) for t in head_tokens]
    else:
        head_matchers = None  # literal: compare segments directly

    def head_ok(parts: list[str]) -> bool:
        if head_matchers is None:
            return parts[:5] == head
        return all(m(s) for m, s in zip(head_matchers, parts, strict=False))

    template = parse_template(tail) if variables else None
    if template is not None and has_variables(template):
        tail_template: list[Token | Part] = raw_tokens(template)

        def with_variables(_r: str, parts: list[str], ctx: Context) -> bool:
            if len(parts) != 6 or not head_ok(parts):
                return False
            tokens = substitute_tokens(tail_template, ctx)
            return tokens is not None and compile_substituted(tokens)(parts[5])

        return with_variables

    if head_matchers is None and not has_wildcard(tail_tokens):
        return lambda r, _parts, _ctx: r == pattern
    tail_match = compile_tokens(tail_tokens)
    if head_matchers is None:
        prefix = ":".join(head) + ":"
        if tail_tokens == [STAR]:
            return lambda r, _parts, _ctx: r.startswith(prefix)
        size = len(prefix)
        return lambda r, _parts, _ctx: r.startswith(prefix) and tail_match(r[size:])

    def general(_r: str, parts: list[str], _ctx: Context) -> bool:
        return len(parts) == 6 and head_ok(parts) and tail_match(parts[5])

    return general
