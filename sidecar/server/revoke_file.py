"""`iam-sidecar revoke-sessions`: add AWSRevokeOlderSessions to a role in the world file, in
place, keeping the file's comments, order and formatting (ruamel.yaml round trip)."""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.util import load_yaml_guess_indent

from sidecar.errors import NoSuchEntity, ValidationError
from sidecar.sts.revoke import REVOKE_POLICY_NAME, revocation_policy


def _yaml(text: str) -> YAML:
    """A round-trip YAML that writes ``text``'s own indentation back (ruamel's default would
    re-indent every list, so the change's diff would touch the whole file)."""
    y = YAML()  # round-trip mode
    y.preserve_quotes = True
    y.width = 4096
    _doc, indent, block_seq_indent = load_yaml_guess_indent(text)
    if indent is not None:
        offset = block_seq_indent or 0
        y.indent(mapping=indent - offset if offset else indent, sequence=indent, offset=offset)
    return y


def _find_role(doc: Any, role_arn: str) -> CommentedMap:
    parts = role_arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
        raise ValidationError(f"'{role_arn}' is not a role ARN")
    account_id, name = parts[4], parts[5].rsplit("/", 1)[-1]
    for account in (doc or {}).get("accounts") or []:
        if str(account.get("id")) != account_id:
            continue
        for role in account.get("roles") or []:
            if str(role.get("name", "")).lower() == name.lower():
                return role  # type: ignore[no-any-return]
    raise NoSuchEntity(f"The role with name {name} cannot be found in account {account_id}.")


def revoke_sessions(path: str | Path, role_arn: str, before_iso: str) -> tuple[str, str]:
    """Return (old text, new text) of the world file with the revocation policy set on the
    role (replacing an earlier one: revoking again moves the time forward)."""
    source = Path(path)
    old = source.read_text()
    y = _yaml(old)
    doc = y.load(old)
    role = _find_role(doc, role_arn)
    policies = role.get("inline_policies")
    if policies is None or not isinstance(policies, dict):
        policies = CommentedMap()
        role["inline_policies"] = policies
    policies[REVOKE_POLICY_NAME] = revocation_policy(before_iso)
    out = io.StringIO()
    y.dump(doc, out)
    return old, out.getvalue()


def unified_diff(old: str, new: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), name, name + " (revoked)"
        )
    )


def write_atomically(path: str | Path, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)
