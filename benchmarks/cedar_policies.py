"""Translate the benchmark's IAM policy documents into Cedar, for the cedarpy comparison.

Only the subset of IAM the benchmark uses is translated; anything else raises
``NotImplementedError`` so that no statement is silently given another meaning.

How the IAM request maps onto a Cedar request:

- principal: ``Role::"<role name>"``; identity policies are attached to it, so every Cedar policy
  leaves ``principal`` unconstrained.
- action: ``Action::"<action, lowercased>"`` (IAM actions are case-insensitive). A statement whose
  actions are all exact names puts them in the policy scope (``action in [...]``); one with a
  wildcard action tests ``context.action like "svc:get*"`` instead.
- resource: the request ARN is ``context.resource``; each Resource pattern becomes
  ``context.resource like "..."``. Cedar's ``like`` lets ``*`` cross ``:``, which equals IAM's ARN
  matching only when no wildcard sits in the first five ARN segments; such patterns are refused.
- context keys: lowercased (IAM keys are case-insensitive) and typed: aws:SourceIp is an
  ``ip`` value, aws:SecureTransport a Bool, aws:CurrentTime a ``datetime``; the rest are strings.
  Every test is guarded with ``context has "key"`` so that a missing key behaves as in IAM
  (false for plain operators, true for negated ones) instead of making the policy an error,
  which Cedar would skip (a skipped ``forbid`` would fail open).
- policy variables (``${aws:PrincipalTag/team}``): Cedar has no string concatenation, so a
  pattern cannot be built from a request value. They are substituted when the Cedar text is
  written, with the values of the one principal the benchmark asks about (what a Cedar template
  linked per principal would do). That is equivalent only while those keys are fixed for the
  principal, which holds in the benchmark (they are the principal's tag and user id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

IP_KEYS = frozenset({"aws:sourceip"})
BOOL_KEYS = frozenset({"aws:securetransport", "aws:multifactorauthpresent"})
DATE_KEYS = frozenset({"aws:currenttime"})

_VAR = re.compile(r"\$\{([^}]*)\}")


def _str(text: str) -> str:
    """A Cedar string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pattern(text: str, link: Mapping[str, str]) -> str:
    """A Cedar ``like`` pattern for an IAM glob; variables substituted as literal text."""
    if "?" in text:
        raise NotImplementedError(f"'?' wildcard has no Cedar equivalent here: {text!r}")
    out: list[str] = []
    pos = 0
    for m in _VAR.finditer(text):
        out.append(_escape_glob(text[pos : m.start()], wildcard=True))
        out.append(_escape_glob(_variable(m.group(1), link), wildcard=False))
        pos = m.end()
    out.append(_escape_glob(text[pos:], wildcard=True))
    return '"' + "".join(out) + '"'


def _escape_glob(text: str, *, wildcard: bool) -> str:
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return text if wildcard else text.replace("*", "\\*")


def _variable(name: str, link: Mapping[str, str]) -> str:
    key = name.strip().lower()
    if key not in link:
        raise NotImplementedError(f"policy variable ${{{name}}} has no linked value")
    return link[key]


def _literal(text: str, link: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: _variable(m.group(1), link), text)


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _any(terms: Iterable[str]) -> str:
    items = list(terms)
    return items[0] if len(items) == 1 else "(" + " || ".join(items) + ")"


def _clause(operator: str, key: str, values: list[str], link: Mapping[str, str]) -> str:
    k = key.lower()
    attr = f"context[{_str(k)}]"
    has = f"context has {_str(k)}"
    if operator in ("StringEquals", "StringNotEquals"):
        test = _any(f"{attr} == {_str(_literal(v, link))}" for v in values)
    elif operator in ("StringLike", "StringNotLike"):
        test = _any(f"{attr} like {_pattern(v, link)}" for v in values)
    elif operator in ("IpAddress", "NotIpAddress"):
        if k not in IP_KEYS:
            raise NotImplementedError(f"{operator} on {key}: not typed as an ip here")
        test = _any(f"{attr}.isInRange(ip({_str(v)}))" for v in values)
    elif operator == "Bool":
        if k not in BOOL_KEYS:
            raise NotImplementedError(f"Bool on {key}: not typed as a Bool here")
        wanted = {v.lower() == "true" for v in values}
        if wanted == {True, False}:
            return has
        test = f"{attr} == {'true' if True in wanted else 'false'}"
    elif operator in ("DateLessThan", "DateGreaterThan"):
        if k not in DATE_KEYS:
            raise NotImplementedError(f"{operator} on {key}: not typed as a datetime here")
        op = "<" if operator == "DateLessThan" else ">"
        test = _any(f"{attr} {op} datetime({_str(v)})" for v in values)
    else:
        raise NotImplementedError(f"condition operator {operator} is not translated")
    if operator.startswith(("StringNot", "Not")):
        return f"(!({has}) || !{test})"
    return f"({has} && {test})"


def _resource_ok(pattern: str) -> None:
    if pattern == "*":
        return
    head = pattern.split(":", 5)[:5]
    if len(pattern.split(":", 5)) != 6 or any("*" in s or "?" in s for s in head):
        raise NotImplementedError(f"resource pattern {pattern!r}: wildcard outside segment 6")


def statement_to_cedar(
    statement: Mapping[str, Any], annotation: str, link: Mapping[str, str]
) -> str:
    """One Cedar ``permit``/``forbid`` for one IAM statement."""
    unsupported = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
    if unsupported:
        raise NotImplementedError(f"statement elements {sorted(unsupported)} are not translated")
    effect = {"Allow": "permit", "Deny": "forbid"}[statement["Effect"]]
    actions = [a.lower() for a in _as_list(statement["Action"])]
    when: list[str] = []
    if any("*" in a or "?" in a for a in actions):
        if "*" in actions:
            pass  # every action
        else:
            when.append(
                _any(
                    f"context.action like {_pattern(a, {})}"
                    if "*" in a or "?" in a
                    else f"context.action == {_str(a)}"
                    for a in actions
                )
            )
        scope_action = "action"
    else:
        names = ", ".join(f"Action::{_str(a)}" for a in actions)
        scope_action = f"action in [{names}]"
    resources = _as_list(statement.get("Resource", "*"))
    for r in resources:
        _resource_ok(r)
    if "*" not in resources:
        when.append(_any(f"context.resource like {_pattern(r, link)}" for r in resources))
    for operator, block in statement.get("Condition", {}).items():
        for key, values in block.items():
            when.append(_clause(operator, key, [str(v) for v in _as_list(values)], link))
    head = f"@id({_str(annotation)})\n{effect}(principal, {scope_action}, resource)"
    if not when:
        return head + ";"
    return head + "\nwhen {\n  " + "\n  && ".join(when) + "\n};"


def policies_to_cedar(documents: Mapping[str, Mapping[str, Any]], link: Mapping[str, str]) -> str:
    """Cedar text for IAM documents (policy id -> document); one Cedar policy per statement."""
    out: list[str] = []
    for policy_id, doc in documents.items():
        statements = doc["Statement"]
        if isinstance(statements, Mapping):
            statements = [statements]
        for i, st in enumerate(statements):
            out.append(statement_to_cedar(st, f"{policy_id}#{i}", link))
    return "\n\n".join(out) + "\n"


def context_to_cedar(values: Mapping[str, str], action: str, resource: str) -> dict[str, Any]:
    """The Cedar context record for one request (single-valued IAM context keys)."""
    ctx: dict[str, Any] = {"action": action.lower(), "resource": resource}
    for key, value in values.items():
        k = key.lower()
        if k in IP_KEYS:
            ctx[k] = {"__extn": {"fn": "ip", "arg": value}}
        elif k in BOOL_KEYS:
            ctx[k] = value.lower() == "true"
        elif k in DATE_KEYS:
            ctx[k] = {"__extn": {"fn": "datetime", "arg": value}}
        else:
            ctx[k] = value
    return ctx
