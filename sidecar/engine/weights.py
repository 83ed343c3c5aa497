"""Upper estimates of the bytes that cache entries hold (CPython, 64-bit), so that caches can be
bounded in bytes and not only in entries (docs/SERVER.md, "Memory bounds").

Each estimate counts the objects an entry keeps alive, as if no other entry shared them (a
session token shared by many decisions is counted in each): over-counting only makes a cache
hold fewer entries, never more memory than its budget. tests/engine/test_memory_bounds.py checks
estimates against tracemalloc.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sidecar.policy.compile import SESSION_MEMO_LIMIT, CompiledPolicy
from sidecar.policy.parse import policy_size
from sidecar.sts.session import Session

if TYPE_CHECKING:
    from sidecar.engine.authorize import AuthzResult

STR = 56  # a str's header, pymalloc's rounding included
REF = 8  # one pointer in a tuple, list or slot
TUPLE = 56  # a tuple's header (with the GC's)
ITEM = 112  # one entry of a dict (or of cachetools' dicts), its share of the table included
ENTRY = 512  # an LRU entry's bookkeeping: data, size and order dicts, the key tuple
OBJECT = 96  # a small object with slots (a dataclass instance, a closure cell)
COMPILED_PER_CHAR = 256  # compiled policy per non-space character (at most ~190 measured)
COMPILED_PER_POLICY = 4096  # the CompiledPolicy, its index dicts and statement tuple
MEMO_ENTRY = 512  # one memo entry: a 128-character action, its dict slot and result tuple


def text_bytes(text: str) -> int:
    """A str: one byte a character when ASCII, else up to four (``isascii`` is O(1))."""
    return STR + len(text) if text.isascii() else STR + 24 + 4 * len(text)


def texts_bytes(texts: Iterable[str]) -> int:
    return sum(REF + text_bytes(t) for t in texts)


def session_bytes(s: Session) -> int:
    """A verified Session: its strings, tags, claims and policy texts."""
    n = OBJECT + 20 * REF + 96  # the object, its slots and its ints
    n += sum(
        text_bytes(t)
        for t in (
            s.partition,
            s.account,
            s.role_name,
            s.role_path,
            s.role_id,
            s.session_name,
            s.access_key_id,
            s.source_identity,
            s.federated_provider,
            s.origin,
        )
    )
    parts = (s.session_policies, s.tags, s.transitive_tag_keys, s.federated_claims)
    n += TUPLE * sum(1 for part in parts if part)  # an empty tuple is shared
    for pid, text in s.session_policies:
        n += TUPLE + REF + text_bytes(pid) + text_bytes(text)
    for key, value in s.tags:
        n += TUPLE + REF + text_bytes(key) + text_bytes(value)
    n += texts_bytes(s.transitive_tag_keys)
    for key, values in s.federated_claims:
        n += 2 * TUPLE + REF + text_bytes(key) + texts_bytes(values)
    return n


def token_bytes(token: str, session: Session) -> int:
    """The token string and its session (a token-cache entry adds TOKEN_ENTRY)."""
    return text_bytes(token) + session_bytes(session)


TOKEN_ENTRY = ENTRY + TUPLE  # the token cache's own bookkeeping for one token


def policies_bytes(texts: tuple[tuple[str, str], ...], compiled: Iterable[CompiledPolicy]) -> int:
    """Compiled session policies with their texts (the cache key), each policy's action memo
    counted full (SESSION_MEMO_LIMIT actions: it fills after the entry is weighed)."""
    n = ENTRY + TUPLE
    for pid, text in texts:
        n += TUPLE + REF + text_bytes(pid) + text_bytes(text)
        n += COMPILED_PER_POLICY + COMPILED_PER_CHAR * policy_size(text)
    for policy in compiled:
        n += SESSION_MEMO_LIMIT * (MEMO_ENTRY + REF * len(policy.statements))
    return n


def scope_bytes(policies: int, keys: int) -> int:
    """A Scope: its tuple of (shared) compiled policies and the set of keys they read."""
    return OBJECT + TUPLE + REF * policies + 232 + 64 * keys


def result_bytes(result: AuthzResult) -> int:
    """An AuthzResult with its Evaluation: reason, principal ARN, matched statements, errors."""
    ev = result.evaluation
    return (
        3 * OBJECT
        + text_bytes(result.reason)
        + text_bytes(result.principal_arn)
        + 2 * TUPLE
        + len(ev.matched) * (REF + OBJECT)
        + (texts_bytes(ev.errors) if ev.errors else 0)
    )


def response_bytes(result: AuthzResult) -> int:
    """A cached wire response and the result it was built from (which it keeps alive): the
    response copies the reason, the ARN and every matched statement's policy id and sid."""
    refs = sum(
        OBJECT + text_bytes(m.ref.policy_id) + text_bytes(m.ref.sid)
        for m in result.evaluation.matched
    )
    return ENTRY + 2 * result_bytes(result) + refs


def entry_bytes(token_weight: int, action: str, resource: str, keys: tuple[str, ...] | None) -> int:
    """A decision-cache entry before any variant: its key, the session and the keys it depends
    on. The entry may outlive the token's own cache entry, so the token (``token_bytes``) is
    counted here too."""
    n = ENTRY + OBJECT + 64 + token_weight + text_bytes(action) + text_bytes(resource)
    return n + (TUPLE + REF * len(keys) if keys else 0)


def variant_bytes(values: tuple[object, ...], result: AuthzResult) -> int:
    """One decision variant: the context values it is keyed by and its result."""
    return ITEM + values_bytes(values) + result_bytes(result)


def values_bytes(values: tuple[object, ...]) -> int:
    """The context values a decision variant is keyed by (``engine._values``): per key, the
    caller's values (a tuple with a flag) or None, and the transport's value or None."""
    n = TUPLE + REF * len(values)
    for item in values:
        if isinstance(item, str):
            n += text_bytes(item)
        elif isinstance(item, tuple):
            vals = item[0]
            n += TUPLE + 2 * REF
            if isinstance(vals, tuple):
                n += TUPLE + texts_bytes(vals)
    return n
