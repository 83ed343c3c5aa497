"""Size limits of an Authorize request, checked before any cache is consulted.

Everything a request brings may end up in a cache key or value, so nothing beyond these sizes is
decided (docs/SERVER.md, "Memory bounds"). Action and resource follow AWS's parameter limits
(an IAM action name is at most 128 characters, a resource ARN at most 2,048); the context limits
are ours, set above anything a real request carries: AWS condition key names are at most 256
characters (SimulateCustomPolicy's ContextKeyName), and no ARN, tag or other condition value is
longer than 2,048. A refusal is AWS's ValidationError listing each violation, with long values
elided so that the message itself stays small (it travels in gRPC trailers).
"""

from __future__ import annotations

from sidecar.policy.context import Context
from sidecar.sts.validation import Violations

MAX_ACTION_CHARS = 128
MAX_RESOURCE_CHARS = 2048
MAX_CONTEXT_ENTRIES = 256
MAX_CONTEXT_VALUES = 256  # values of one (list) key
MAX_CONTEXT_KEY_CHARS = 256
MAX_CONTEXT_VALUE_CHARS = 2048
MAX_REPORTED = 5  # context violations listed before the scan stops
SHOWN_CHARS = 64  # longer values are shown cut, with their length


def shown(value: str) -> str:
    """``value`` as a message may show it: cut after SHOWN_CHARS characters."""
    if len(value) <= SHOWN_CHARS:
        return value
    return f"{value[:SHOWN_CHARS]}...({len(value)} characters)"


def _longer(v: Violations, value: str, field: str, high: int) -> None:
    v.add(shown(value), field, f"Member must have length less than or equal to {high}")


def check_request(action: str, resource: str, context: Context | None) -> None:
    """Raise ValidationError when the request is over a limit. A few len() calls, plus a few per
    context key; the message is built only for a refusal."""
    if (
        len(action) <= MAX_ACTION_CHARS
        and len(resource) <= MAX_RESOURCE_CHARS
        and (context is None or _context_fits(context))
    ):
        return
    v = Violations()
    if len(action) > MAX_ACTION_CHARS:
        _longer(v, action, "action", MAX_ACTION_CHARS)
    if len(resource) > MAX_RESOURCE_CHARS:
        _longer(v, resource, "resource", MAX_RESOURCE_CHARS)
    if context is not None and context.values:
        _check_context(v, context)
    v.raise_if_any()


def _context_fits(context: Context) -> bool:
    entries = context.values
    if len(entries) > MAX_CONTEXT_ENTRIES:
        return False
    for key, values in entries.items():
        if len(key) > MAX_CONTEXT_KEY_CHARS or len(values) > MAX_CONTEXT_VALUES:
            return False
        for value in values:
            if len(value) > MAX_CONTEXT_VALUE_CHARS:
                return False
    return True


def _check_context(v: Violations, context: Context) -> None:
    entries = context.values
    if len(entries) > MAX_CONTEXT_ENTRIES:
        v.add(
            f"[{len(entries)} entries]",
            "context",
            f"Member must have length less than or equal to {MAX_CONTEXT_ENTRIES}",
        )
        return
    found = len(v.items)
    for n, (key, values) in enumerate(entries.items(), start=1):
        if len(key) > MAX_CONTEXT_KEY_CHARS:
            _longer(v, key, f"context.{n}.member.key", MAX_CONTEXT_KEY_CHARS)
        if len(values) > MAX_CONTEXT_VALUES:
            v.add(
                f"[{len(values)} values]",
                f"context.{n}.member.values",
                f"Member must have length less than or equal to {MAX_CONTEXT_VALUES}",
            )
        else:
            for m, value in enumerate(values, start=1):
                if len(value) > MAX_CONTEXT_VALUE_CHARS:
                    field = f"context.{n}.member.values.{m}.member"
                    _longer(v, value, field, MAX_CONTEXT_VALUE_CHARS)
                    break  # one per entry is enough to say what is wrong
        if len(v.items) - found >= MAX_REPORTED:
            return
