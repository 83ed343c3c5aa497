"""IAM's naming rules for what the world file declares: account ids, entity names, paths and
tags, and the ARNs IAM builds from them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from sidecar.identity.load.toolkit import Reader, at, kind

MAX_TAGS = 50

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_ENTITY_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)  # role, user, policy and MFA device names
_ENTITY_CHARS = "letters, digits and _+=,.@-"
_INLINE_NAME = re.compile(r"[!-~]+")  # printable ASCII: no whitespace
_INLINE_FORBIDDEN = frozenset("\\/*?")
_IAM_PATH = re.compile(r"/|/[\x21-\x7f]+/")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def iam_arn(partition: str, account: str, kind: str, name: str, path: str = "/") -> str:
    """The ARN of an IAM entity: arn:PARTITION:iam::ACCOUNT:KIND/PATH/NAME."""
    return f"arn:{partition}:iam::{account}:{kind}{path}{name}"


def is_inline_name(name: str) -> bool:
    return (
        len(name) <= 128
        and _INLINE_NAME.fullmatch(name) is not None
        and not _INLINE_FORBIDDEN.intersection(name)
    )


def _is_tag_text(text: str) -> bool:
    """Tag keys and values: letters, separators (spaces), numbers and _.:/=+-@."""
    return all(unicodedata.category(c)[0] in "LZN" or c in _TAG_PUNCTUATION for c in text)


def valid_account_id(r: Reader, value: object, path: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        # No corrected value is suggested: YAML also reads 0-prefixed digits as octal.
        r.issue(
            path,
            "account id must be a quoted 12-digit string: an unquoted YAML number loses "
            "leading zeros",
        )
        return None
    if not isinstance(value, str):
        r.issue(path, f"account id must be a quoted 12-digit string, got {kind(value)}")
        return None
    if not _ACCOUNT_ID.fullmatch(value):
        r.issue(path, f"account id {value!r} must be exactly 12 digits")
        return None
    return value


def entity_name(r: Reader, m: Mapping[Any, Any], path: str, what: str, max_len: int) -> str | None:
    name = r.string(m, "name", path)
    if name is None:
        return None
    if not (len(name) <= max_len and _ENTITY_NAME.fullmatch(name)):
        r.issue(
            at(path, "name"),
            f"{what} name {name!r} must be 1-{max_len} characters of {_ENTITY_CHARS}",
        )
        return None
    return name


def claim_name(
    r: Reader, taken: dict[str, str], name: str, path: str, what: str, group: str
) -> bool:
    """Declare ``name`` in ``taken`` (lowercased -> as written); False (reported) if it is
    already there in any case: IAM names are unique regardless of case."""
    if name.lower() in taken:
        r.issue(at(path, "name"), f"duplicate {what} name {name!r} ({group} are case-insensitive)")
        return False
    taken[name.lower()] = name
    return True


def iam_path(r: Reader, m: Mapping[Any, Any], path: str) -> str:
    value = r.string(m, "path", path)
    if value is None:
        return "/"
    if not (len(value) <= 512 and _IAM_PATH.fullmatch(value)):
        r.issue(
            at(path, "path"),
            f"path {value!r} must be '/' or begin and end with '/' "
            "(at most 512 characters of U+0021-U+007F)",
        )
    return value


def tags(r: Reader, m: Mapping[Any, Any], path: str) -> dict[str, str]:
    value = r.mapping(m, "tags", path, "tag keys to values")
    if value is None:
        return {}
    where = at(path, "tags")
    if len(value) > MAX_TAGS:
        r.issue(where, f"too many tags: {len(value)} (at most {MAX_TAGS})")
    seen: set[str] = set()
    out: dict[str, str] = {}
    for key, tag_value in value.items():
        place = at(where, key)
        if not isinstance(key, str):
            r.issue(place, f"tag key must be a string, got {kind(key)}")
            continue
        if not (1 <= len(key) <= 128 and _is_tag_text(key)):
            r.issue(
                place,
                f"tag key {key!r} must be 1-128 characters of letters, numbers, spaces "
                "and _.:/=+-@",
            )
        elif key.lower().startswith("aws:"):
            r.issue(place, f"tag key {key!r} uses the reserved prefix 'aws:'")
        if key.lower() in seen:
            r.issue(place, f"duplicate tag key {key!r} (tag keys are case-insensitive)")
        seen.add(key.lower())
        if not isinstance(tag_value, str):
            r.issue(place, f"tag value must be a quoted string, got {kind(tag_value)}")
        elif not (len(tag_value) <= 256 and _is_tag_text(tag_value)):
            r.issue(
                place,
                "tag value must be at most 256 characters of letters, numbers, spaces and _.:/=+-@",
            )
        else:
            out[key] = tag_value
    return out
