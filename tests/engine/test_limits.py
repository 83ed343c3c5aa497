"""Size limits of Authorize requests: AWS's lengths for action and resource, ours for the
context, refused with AWS's ValidationError wording before any cache is consulted."""

from __future__ import annotations

import pytest

from sidecar.engine.engine import Engine
from sidecar.engine.limits import (
    MAX_ACTION_CHARS,
    MAX_CONTEXT_ENTRIES,
    MAX_CONTEXT_KEY_CHARS,
    MAX_CONTEXT_VALUE_CHARS,
    MAX_CONTEXT_VALUES,
    MAX_RESOURCE_CHARS,
    check_request,
)
from sidecar.errors import ValidationError
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.sts.assume import StsEnv
from tests.engine.test_authorize import REPORT, token_for

ACTION = "s3:GetObject"


def refusal(action: str = ACTION, resource: str = REPORT, context: Context | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        check_request(action, resource, context)
    assert info.value.code == "ValidationError"
    return info.value.message


def ctx(**values: str | list[str]) -> Context:
    c = Context()
    for key, value in values.items():
        if isinstance(value, list):
            c.set_multi(key, value)
        else:
            c.set(key, value)
    return c


class TestActionAndResource:
    def test_lengths_up_to_the_limits_pass(self) -> None:
        """A 128-character action and a 2,048-character resource are decided."""
        check_request("s3:" + "a" * (MAX_ACTION_CHARS - 3), "r" * MAX_RESOURCE_CHARS, None)

    def test_resource_over_2048_in_aws_wording(self) -> None:
        """One character more: AWS's message, the value cut so the error stays small."""
        resource = "arn:aws:s3:::reports/" + "x" * (MAX_RESOURCE_CHARS - 20)
        message = refusal(resource=resource)
        assert message.startswith("1 validation error detected: Value 'arn:aws:s3:::reports/xx")
        assert message.endswith(
            "...(2049 characters)' at 'resource' failed to satisfy constraint: Member must have "
            "length less than or equal to 2048"
        )
        assert len(message) < 300

    def test_action_over_128(self) -> None:
        message = refusal(action="s3:" + "a" * 126)
        assert message.endswith(
            "at 'action' failed to satisfy constraint: Member must have length less than or "
            "equal to 128"
        )

    def test_both_listed(self) -> None:
        """Every violation is listed, as AWS does."""
        message = refusal(action="a" * 129, resource="r" * 2049)
        assert message.startswith("2 validation errors detected: ")
        assert "at 'action'" in message
        assert "at 'resource'" in message


class TestContext:
    def test_context_at_the_limits_passes(self) -> None:
        values: dict[str, str | list[str]] = {
            "k" * MAX_CONTEXT_KEY_CHARS: "v" * MAX_CONTEXT_VALUE_CHARS,
            "list": ["x"] * MAX_CONTEXT_VALUES,
        }
        c = ctx(**values)
        check_request(ACTION, REPORT, c)
        many = Context({f"k{i}": ("v",) for i in range(MAX_CONTEXT_ENTRIES)})
        check_request(ACTION, REPORT, many)

    def test_key_too_long(self) -> None:
        message = refusal(context=ctx(a="1", **{"k" * 257: "v"}))
        assert "at 'context.2.member.key' failed to satisfy constraint: Member must have length" \
            " less than or equal to 256" in message  # fmt: skip

    def test_value_too_long(self) -> None:
        message = refusal(context=ctx(tags=["ok", "v" * 2049]))
        assert "...(2049 characters)' at 'context.1.member.values.2.member' failed to satisfy" \
            " constraint: Member must have length less than or equal to 2048" in message  # fmt: skip

    def test_too_many_values(self) -> None:
        message = refusal(context=ctx(tags=["x"] * 257))
        assert "Value '[257 values]' at 'context.1.member.values' failed to satisfy constraint:" \
            " Member must have length less than or equal to 256" in message  # fmt: skip

    def test_too_many_entries(self) -> None:
        message = refusal(context=Context({f"k{i}": ("v",) for i in range(257)}))
        assert message == (
            "1 validation error detected: Value '[257 entries]' at 'context' failed to satisfy "
            "constraint: Member must have length less than or equal to 256"
        )

    def test_message_stays_small_with_many_violations(self) -> None:
        """A request with hundreds of oversized values gets a short message (it travels in
        gRPC trailers, which a client accepts up to 8 KiB)."""
        big = Context({f"k{i}": ("v" * 5000,) * 10 for i in range(200)})
        message = refusal(action="a" * 10_000, resource="r" * 100_000, context=big)
        assert message.startswith("7 validation errors detected: ")
        assert len(message) < 2000


class TestBeforeAnyCache:
    def test_refused_before_the_token_and_the_caches(self, env: StsEnv) -> None:
        """The engine refuses an oversized request before verifying the token or touching a
        cache: nothing of it is kept."""
        engine = Engine(env.world, env.keys, env.clock)
        with pytest.raises(ValidationError):
            engine.authorize("not a token", ACTION, "r" * 2049)
        token = token_for(env)
        for resource in ("r" * 2049, "r" * 1_048_576):
            with pytest.raises(ValidationError):
                engine.authorize(token, ACTION, resource)
        with pytest.raises(ValidationError):
            engine.authorize(token, ACTION, REPORT, ctx(big="v" * 2049))
        assert len(engine.decisions) == 0
        assert len(engine.tokens) == 0
        assert engine.decisions.stats.misses == 0
        assert engine.authorize(token, ACTION, REPORT)[0].decision is Decision.ALLOWED
