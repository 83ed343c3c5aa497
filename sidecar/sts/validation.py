"""STS parameter shape rules (docs/SEMANTICS.md §7.1) with AWS's ValidationError messages."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from sidecar.errors import LEFT_OUT, validation_errors, violation
from sidecar.policy.parse import POLICY_PATTERN

SESSION_NAME = re.compile(r"^[\w+=,.@-]*\Z", re.ASCII)
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]*\Z", re.ASCII)
SERIAL = re.compile(r"^[\w+=/:,.@-]*\Z", re.ASCII)
TOKEN_CODE = re.compile(r"^\d*\Z", re.ASCII)
POLICY_CHARS = re.compile(r"^[\t\n\r\u0020-\u00ff]+\Z")
ARN_CHARS = re.compile(
    r"^[\t\n\r\u0020-\u007e\u0085\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+\Z"
)
_TAG_EXTRA = set("_.:/=+-@")

PATTERNS = {
    "session": r"[\w+=,.@-]*",
    "external": r"[\w+=,.@:/-]*",
    "serial": r"[\w+=/:,.@-]*",
    "code": r"[\d]*",
    "tag_key": r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+",
    "tag_value": r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*",
    "policy": POLICY_PATTERN,
    "arn": r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+",
}


def is_tag_text(text: str) -> bool:
    """Letters, separators, numbers and `_ . : / = + - @` (AWS's tag character class)."""
    return all(c in _TAG_EXTRA or unicodedata.category(c)[0] in "LZN" for c in text)


class Violations:
    """Collects shape violations; raise() reports all of them in AWS's format."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: object, field: str, constraint: str) -> None:
        """``value`` None shows as null; LEFT_OUT (a credential) is not shown."""
        self.items.append(violation(field, constraint, value))

    def length(self, value: str, field: str, low: int, high: int, *, show: bool = True) -> bool:
        shown = value if show else LEFT_OUT
        if len(value) < low:
            self.add(shown, field, f"Member must have length greater than or equal to {low}")
            return False
        if len(value) > high:
            self.add(shown, field, f"Member must have length less than or equal to {high}")
            return False
        return True

    def text(
        self, value: str, field: str, low: int, high: int, regex: re.Pattern[str], pattern: str
    ) -> None:
        """An optional text parameter: when given, its length, then its characters."""
        if value and self.length(value, field, low, high):
            self.pattern(value, field, bool(regex.match(value)), PATTERNS[pattern])

    def pattern(self, value: str, field: str, ok: bool, pattern: str) -> None:
        if not ok:
            self.add(value, field, f"Member must satisfy regular expression pattern: {pattern}")

    def count(self, items: Sequence[object], field: str, high: int) -> None:
        if len(items) > high:
            self.add(
                "[" + ", ".join(map(str, items)) + "]",
                field,
                f"Member must have length less than or equal to {high}",
            )

    def raise_if_any(self) -> None:
        if self.items:
            raise validation_errors(self.items)


def check_session_name(v: Violations, name: str, field: str = "roleSessionName") -> None:
    if v.length(name, field, 2, 64):
        v.pattern(name, field, bool(SESSION_NAME.match(name)), PATTERNS["session"])


def check_duration(v: Violations, seconds: int, field: str = "durationSeconds") -> None:
    if seconds == 0:
        return  # not given: the default applies
    if seconds < 900:
        v.add(seconds, field, "Member must have value greater than or equal to 900")
    elif seconds > 43200:
        v.add(seconds, field, "Member must have value less than or equal to 43200")


def check_role_arn(v: Violations, arn: str, field: str = "roleArn") -> None:
    if v.length(arn, field, 20, 2048):
        v.pattern(arn, field, bool(ARN_CHARS.match(arn)), PATTERNS["arn"])


def check_policy(v: Violations, policy: str, field: str = "policy") -> None:
    if not policy:
        return
    if v.length(policy, field, 1, 2048):
        v.pattern(policy, field, bool(POLICY_CHARS.match(policy)), PATTERNS["policy"])


def check_policy_arns(v: Violations, arns: Sequence[str], field: str = "policyArns") -> None:
    v.count(arns, field, 10)
    for n, arn in enumerate(arns, start=1):
        check_role_arn(v, arn, f"{field}.{n}.member.arn")


def check_tags(
    v: Violations, tags: Sequence[tuple[str, str]], keys: Sequence[str], field: str = "tags"
) -> None:
    v.count([k for k, _ in tags], field, 50)
    for n, (key, value) in enumerate(tags, start=1):
        kf, vf = f"{field}.{n}.member.key", f"{field}.{n}.member.value"
        if v.length(key, kf, 1, 128):
            v.pattern(key, kf, is_tag_text(key), PATTERNS["tag_key"])
        if v.length(value, vf, 0, 256):
            v.pattern(value, vf, is_tag_text(value), PATTERNS["tag_value"])
    v.count(list(keys), "transitiveTagKeys", 50)
    for n, key in enumerate(keys, start=1):
        kf = f"transitiveTagKeys.{n}.member"
        if v.length(key, kf, 1, 128):
            v.pattern(key, kf, is_tag_text(key), PATTERNS["tag_key"])
