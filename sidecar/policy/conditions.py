"""Compile condition clauses into predicates over the request context.

Results are three-valued so that conversion errors stay visible: FALSE (0), UNKNOWN (1) and
TRUE (2). AND is ``min``, OR is ``max`` and NOT is ``2 - x`` (Kleene logic). The statement
decides what UNKNOWN means: an Allow does not match, a Deny does (docs/SEMANTICS.md §3.5).

Semantics (§3): operators and keys AND together; the values under one key OR together, and a
negated operator NORs them. A missing key makes every operator false except negated ones and
``...IfExists`` (true) and ``Null``. A plain operator on a multivalued key does not match (§3.3);
``ForAllValues`` is true and ``ForAnyValue`` false on a missing or empty key (§3.4). An empty
list counts as absent (§3.6).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from sidecar.policy.arn import Arn, split_pattern
from sidecar.policy.context import Context
from sidecar.policy.model import ConditionClause
from sidecar.policy.operators import OPERATORS, VARIABLE_FAMILIES, Family
from sidecar.policy.values import (
    ip_in,
    parse_address,
    parse_binary,
    parse_bool,
    parse_date,
    parse_network,
    parse_number,
)
from sidecar.policy.variables import (
    Part,
    Var,
    has_variables,
    parse_template,
    raw_tokens,
    substitute_text,
    substitute_tokens,
)
from sidecar.policy.wildcard import (
    Matcher,
    Token,
    compile_substituted,
    compile_tokens,
    entry_weight,
    tokenize,
)

FALSE: Final = 0
UNKNOWN: Final = 1
TRUE: Final = 2

Predicate = Callable[[Context], int]
# One request value against all the policy values of a clause (OR over them).
ValueTest = Callable[[str, Context], int]


def _converted(ctx: Context, kind: str, text: str, parse: Callable[[str], Any]) -> Any:
    """Parse a request value once per request."""
    memo = ctx.memo
    key = (kind, text)
    try:
        return memo[key]
    except KeyError:
        value = memo[key] = parse(text)
        return value


# -- per-family value tests ----------------------------------------------------------------


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _any_of(
    kind: str,
    parse: Callable[[str], Any],
    policy_values: Sequence[Any],
    match: Callable[[Any, Any], bool],
) -> ValueTest:
    """OR of ``match(request value, policy value)`` over converted values; a value on either
    side that did not convert (None) makes the answer UNKNOWN unless another one matches."""

    def test(r: str, ctx: Context) -> int:
        actual = _converted(ctx, kind, r, parse)
        if actual is None:
            return UNKNOWN
        result = FALSE
        for p in policy_values:
            if p is None:
                result = UNKNOWN
            elif match(actual, p):
                return TRUE
        return result

    return test


def _ordered_test(
    kind: str, parse: Callable[[str], Any], test: str, policy_values: Sequence[Any]
) -> ValueTest:
    if test == "eq" and all(p is not None for p in policy_values):
        exact = frozenset(policy_values)

        def eq_test(r: str, ctx: Context) -> int:
            value = _converted(ctx, kind, r, parse)
            if value is None:
                return UNKNOWN
            return TRUE if value in exact else FALSE

        return eq_test
    return _any_of(kind, parse, policy_values, _COMPARE[test])


def _compile_arn(tokens: list[Token]) -> Callable[[str], bool]:
    parts = split_pattern(tokens)
    if parts is None:
        return lambda _value: False
    matchers = [compile_tokens(p) for p in parts]

    def match(value: str) -> bool:
        segs = value.split(":", 5)
        if len(segs) != 6:
            return False
        return all(m(s) for m, s in zip(matchers, segs, strict=True))

    return match


@lru_cache(maxsize=4096)
def _compile_arn_lru(tokens: tuple[Token, ...]) -> Callable[[str], bool]:
    return _compile_arn(list(tokens))


def _compile_arn_cached(tokens: tuple[Token, ...]) -> Callable[[str], bool]:
    """Kept only when its estimated weight is at most 4 KiB (so 4,096 entries hold at most
    16 MiB); a heavier one (long substituted values) is compiled for the call."""
    if entry_weight(tokens) > 4096:
        return _compile_arn(list(tokens))
    return _compile_arn_lru(tokens)


def _string_test(test: str, values: Sequence[str], templates: Sequence[Any] | None) -> ValueTest:
    if templates is None:
        if test == "eq":
            exact = frozenset(values)
            return lambda r, _ctx: TRUE if r in exact else FALSE
        if test == "eq_ci":
            folded = frozenset(v.lower() for v in values)
            return lambda r, _ctx: TRUE if r.lower() in folded else FALSE
        globs = [compile_tokens(tokenize(v)) for v in values]
        return lambda r, _ctx: TRUE if any(g(r) for g in globs) else FALSE

    # Values with variables: substitute per request; an unresolved value matches nothing.
    if test in ("eq", "eq_ci"):
        lower = test == "eq_ci"
        parts_list: list[tuple[Part, ...]] = list(templates)

        def eq_vars(r: str, ctx: Context) -> int:
            probe = r.lower() if lower else r
            for parts in parts_list:
                text = substitute_text(parts, ctx)
                if text is not None and (text.lower() if lower else text) == probe:
                    return TRUE
            return FALSE

        return eq_vars

    token_templates: list[list[Token | Part]] = list(templates)

    def like_vars(r: str, ctx: Context) -> int:
        for template in token_templates:
            tokens = substitute_tokens(template, ctx)
            if tokens is not None and compile_substituted(tokens)(r):
                return TRUE
        return FALSE

    return like_vars


def _not_arn(value: str) -> bool:
    """A request value that is not an ARN does not convert for an ARN operator (§3.5)."""
    return Arn.parse(value) is None


def _arn_test(values: Sequence[str], templates: Sequence[Any] | None) -> ValueTest:
    if templates is None:
        matchers = [_compile_arn(tokenize(v)) for v in values]

        def arn(r: str, _ctx: Context) -> int:
            if _not_arn(r):
                return UNKNOWN
            return TRUE if any(m(r) for m in matchers) else FALSE

        return arn
    token_templates: list[list[Token | Part]] = list(templates)

    def arn_vars(r: str, ctx: Context) -> int:
        if _not_arn(r):
            return UNKNOWN
        for template in token_templates:
            tokens = substitute_tokens(template, ctx)
            if tokens is not None and _compile_arn_cached(tuple(tokens))(r):
                return TRUE
        return FALSE

    return arn_vars


def _bool_test(values: Sequence[str], templates: Sequence[Any] | None) -> ValueTest:
    if templates is None:
        wanted = {parse_bool(v) for v in values}
        return lambda r, _ctx: TRUE if parse_bool(r) in wanted else FALSE
    parts_list: list[tuple[Part, ...]] = list(templates)

    def bool_vars(r: str, ctx: Context) -> int:
        actual = parse_bool(r)
        for parts in parts_list:
            text = substitute_text(parts, ctx)
            if text is not None and parse_bool(text) == actual:
                return TRUE
        return FALSE

    return bool_vars


def _binary_test(values: Sequence[str]) -> ValueTest:
    return _any_of("binary", parse_binary, [parse_binary(v) for v in values], operator.eq)


def _ip_test(values: Sequence[str]) -> ValueTest:
    # Policy values are blocks; the request value is one address (a block does not convert).
    return _any_of("ip", parse_address, [parse_network(v) for v in values], ip_in)


def _value_test(clause: ConditionClause, family: Family, test: str, variables: bool) -> ValueTest:
    values = clause.values
    templates: list[Any] | None = None
    if variables and family in VARIABLE_FAMILIES:
        parsed = [parse_template(v) for v in values]
        if any(has_variables(p) for p in parsed):
            if (family is Family.STRING and test == "like") or family is Family.ARN:
                templates = [raw_tokens(p) for p in parsed]
            else:
                templates = parsed
    if family is Family.STRING:
        return _string_test(test, values, templates)
    if family is Family.ARN:
        return _arn_test(values, templates)
    if family is Family.BOOL:
        return _bool_test(values, templates)
    if family is Family.NUMERIC:
        nums: list[Decimal | None] = [parse_number(v) for v in values]
        return _ordered_test("number", parse_number, test, nums)
    if family is Family.DATE:
        dates: list[int | None] = [parse_date(v) for v in values]
        return _ordered_test("date", parse_date, test, dates)
    if family is Family.BINARY:
        return _binary_test(values)
    return _ip_test(values)


# -- clauses -------------------------------------------------------------------------------


def _null_clause(clause: ConditionClause, key: str) -> Predicate:
    wants = {v.lower() for v in clause.values}
    want_absent, want_present = "true" in wants, "false" in wants
    per_value = TRUE if want_present else FALSE
    if clause.qualifier == "ForAllValues":
        return lambda ctx: per_value if ctx.values.get(key) else TRUE
    if clause.qualifier == "ForAnyValue":
        return lambda ctx: per_value if ctx.values.get(key) else FALSE

    def null(ctx: Context) -> int:
        absent = not ctx.values.get(key)
        return TRUE if (want_absent and absent) or (want_present and not absent) else FALSE

    return null


def compile_clause(clause: ConditionClause, *, variables: bool) -> Predicate:
    """A predicate for one key under one operator."""
    spec = OPERATORS[clause.base]
    key = clause.key.lower()
    if spec.family is Family.NULL:
        return _null_clause(clause, key)
    test = _value_test(clause, spec.family, spec.test, variables)
    negated = spec.negated

    if clause.qualifier == "ForAllValues":

        def for_all(ctx: Context) -> int:
            vals = ctx.values.get(key)
            if not vals:
                return TRUE
            result = TRUE
            for r in vals:
                t = test(r, ctx)
                if negated:
                    t = TRUE - t
                if t < result:
                    result = t
                    if result == FALSE:
                        break
            return result

        return for_all

    if clause.qualifier == "ForAnyValue":

        def for_any(ctx: Context) -> int:
            vals = ctx.values.get(key)
            if not vals:
                return FALSE
            result = FALSE
            for r in vals:
                t = test(r, ctx)
                if negated:
                    t = TRUE - t
                if t > result:
                    result = t
                    if result == TRUE:
                        break
            return result

        return for_any

    missing = TRUE if (negated or clause.if_exists) else FALSE
    multi_keys_result = FALSE

    if negated:

        def plain_negated(ctx: Context) -> int:
            vals = ctx.values.get(key)
            if not vals:
                return missing
            if key in ctx.multi:
                return multi_keys_result
            return TRUE - test(vals[0], ctx)

        return plain_negated

    def plain(ctx: Context) -> int:
        vals = ctx.values.get(key)
        if not vals:
            return missing
        if key in ctx.multi:
            return multi_keys_result
        return test(vals[0], ctx)

    return plain


def compile_conditions(clauses: Sequence[ConditionClause], *, variables: bool) -> Predicate | None:
    """The AND of all clauses of a statement, or None when there are none."""
    if not clauses:
        return None
    predicates = [compile_clause(c, variables=variables) for c in clauses]
    if len(predicates) == 1:
        return predicates[0]

    def all_of(ctx: Context) -> int:
        result = TRUE
        for p in predicates:
            t = p(ctx)
            if t < result:
                result = t
                if result == FALSE:
                    return FALSE
        return result

    return all_of


def referenced_keys(clauses: Sequence[ConditionClause], *, variables: bool) -> set[str]:
    """Context keys (lowercased) a statement's conditions read, variables included."""
    keys = {c.key.lower() for c in clauses}
    if variables:
        for c in clauses:
            if OPERATORS[c.base].family in VARIABLE_FAMILIES:
                for v in c.values:
                    keys.update(p.key for p in parse_template(v) if isinstance(p, Var))
    return keys


__all__ = [
    "FALSE",
    "TRUE",
    "UNKNOWN",
    "Matcher",
    "Predicate",
    "compile_clause",
    "compile_conditions",
    "referenced_keys",
]
