"""The condition operator table (docs/SEMANTICS.md §3.2) and operator-name parsing."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Family(StrEnum):
    STRING = "String"
    NUMERIC = "Numeric"
    DATE = "Date"
    BOOL = "Bool"
    BINARY = "Binary"
    IP = "Ip"
    ARN = "Arn"
    NULL = "Null"


class OperatorSpec(NamedTuple):
    family: Family
    negated: bool
    test: str  # the comparison: eq, eq_ci, like, lt, le, gt, ge, ip, null


OPERATORS: dict[str, OperatorSpec] = {
    "StringEquals": OperatorSpec(Family.STRING, False, "eq"),
    "StringNotEquals": OperatorSpec(Family.STRING, True, "eq"),
    "StringEqualsIgnoreCase": OperatorSpec(Family.STRING, False, "eq_ci"),
    "StringNotEqualsIgnoreCase": OperatorSpec(Family.STRING, True, "eq_ci"),
    "StringLike": OperatorSpec(Family.STRING, False, "like"),
    "StringNotLike": OperatorSpec(Family.STRING, True, "like"),
    "NumericEquals": OperatorSpec(Family.NUMERIC, False, "eq"),
    "NumericNotEquals": OperatorSpec(Family.NUMERIC, True, "eq"),
    "NumericLessThan": OperatorSpec(Family.NUMERIC, False, "lt"),
    "NumericLessThanEquals": OperatorSpec(Family.NUMERIC, False, "le"),
    "NumericGreaterThan": OperatorSpec(Family.NUMERIC, False, "gt"),
    "NumericGreaterThanEquals": OperatorSpec(Family.NUMERIC, False, "ge"),
    "DateEquals": OperatorSpec(Family.DATE, False, "eq"),
    "DateNotEquals": OperatorSpec(Family.DATE, True, "eq"),
    "DateLessThan": OperatorSpec(Family.DATE, False, "lt"),
    "DateLessThanEquals": OperatorSpec(Family.DATE, False, "le"),
    "DateGreaterThan": OperatorSpec(Family.DATE, False, "gt"),
    "DateGreaterThanEquals": OperatorSpec(Family.DATE, False, "ge"),
    "Bool": OperatorSpec(Family.BOOL, False, "eq"),
    "BinaryEquals": OperatorSpec(Family.BINARY, False, "eq"),
    "IpAddress": OperatorSpec(Family.IP, False, "ip"),
    "NotIpAddress": OperatorSpec(Family.IP, True, "ip"),
    "ArnEquals": OperatorSpec(Family.ARN, False, "like"),
    "ArnLike": OperatorSpec(Family.ARN, False, "like"),
    "ArnNotEquals": OperatorSpec(Family.ARN, True, "like"),
    "ArnNotLike": OperatorSpec(Family.ARN, True, "like"),
    "Null": OperatorSpec(Family.NULL, False, "null"),
}

QUALIFIERS = ("ForAllValues", "ForAnyValue")

# Families whose values may hold policy variables (docs/SEMANTICS.md §4; Bool is our choice, §3.2).
VARIABLE_FAMILIES = frozenset({Family.STRING, Family.ARN, Family.BOOL})


class ParsedOperator(NamedTuple):
    qualifier: str
    base: str
    if_exists: bool


def parse_operator(name: str) -> ParsedOperator | None:
    """Split ``ForAnyValue:StringLikeIfExists``; None for an unknown operator (case-sensitive)."""
    qualifier = ""
    rest = name
    if ":" in name:
        qualifier, _, rest = name.partition(":")
        if qualifier not in QUALIFIERS:
            return None
    if_exists = False
    if rest.endswith("IfExists"):
        if_exists = True
        rest = rest[: -len("IfExists")]
    if rest not in OPERATORS or (if_exists and rest == "Null"):
        return None
    return ParsedOperator(qualifier, rest, if_exists)
