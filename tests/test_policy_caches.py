"""The policy package's own caches keep only small entries: long request values (never a valid
address or date, or an ARN pattern made long by a substituted value) are worked out per call and
not kept, and each policy's action memo holds at most MEMO_LIMIT actions."""

from __future__ import annotations

import json
from collections.abc import Callable

from sidecar.policy.compile import MEMO_LIMIT, compile_policy
from sidecar.policy.context import Context
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.values import parse_date, parse_network


def compiled(statement: dict[str, object]) -> object:
    doc = {"Version": "2012-10-17", "Statement": statement}
    return compile_policy(parse_policy(json.dumps(doc), PolicyKind.IDENTITY))


def test_long_texts_are_parsed_but_not_kept(measure: Callable[[], int]) -> None:
    """2,000 distinct 2,000-character values through the IP and date parsers: nothing kept
    (8,192 of them used to stay, ~2 KB each). Short texts still parse (and are cached)."""
    for i in range(2000):
        text = f"{i}".rjust(2000, "9")
        assert parse_network(text) is None
        assert parse_date(text) is None
        assert parse_date(" " * 2000 + "1") is None
    assert measure() < 256 << 10
    assert parse_network("10.1.2.3/16") is not None
    assert parse_date("2027-01-15T08:00:00Z") == 1_800_000_000 * 10**9


def test_action_memo_is_bounded() -> None:
    """A policy asked about many distinct actions remembers at most MEMO_LIMIT of them."""
    policy = compiled({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    for i in range(3 * MEMO_LIMIT):
        assert policy.candidates(f"s3:action{i}")  # type: ignore[attr-defined]
        assert len(policy._memo) <= MEMO_LIMIT  # type: ignore[attr-defined]


def test_long_substituted_arn_patterns_are_not_kept(measure: Callable[[], int]) -> None:
    """ArnLike with a policy variable: matchers for long substituted values are built per
    call, not kept (up to 4,096 were, each holding its value)."""
    policy = compiled(
        {
            "Effect": "Allow",
            "Action": "*",
            "Resource": "*",
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::${ex:bucket}/*"}},
        }
    )
    condition = policy.statements[0].condition  # type: ignore[attr-defined]
    before = measure()
    for i in range(1000):
        bucket = f"b{i}".ljust(2000, "x")
        ctx = Context()
        ctx.set("ex:bucket", bucket)
        ctx.set("aws:SourceArn", f"arn:aws:s3:::{bucket}/key")
        assert condition(ctx) == 2  # TRUE
    assert measure() - before < 512 << 10
