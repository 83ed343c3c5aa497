"""Policies in the world file: documents (errors placed inside them), inline policies, attached
managed policies and boundaries, and an account's managed and resource policies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.errors import LimitExceeded, MalformedPolicyDocument, ValidationError
from sidecar.identity.ids import managed_policy_id
from sidecar.identity.load.naming import (
    claim_name,
    entity_name,
    iam_arn,
    iam_path,
    is_inline_name,
)
from sidecar.identity.load.state import AccountParts, Loader
from sidecar.identity.load.toolkit import at, kind, plain
from sidecar.identity.model import ManagedPolicy, ResourcePolicy
from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.model import Policy, PolicyKind
from sidecar.policy.parse import load_json, parse_policy, policy_size

MAX_ATTACHED_POLICIES = 10  # PoliciesPerRole / PoliciesPerUser


@dataclass(frozen=True, slots=True)
class Parsed:
    policy: Policy
    text: str  # compact JSON


def document(
    ld: Loader, value: object, path: str, policy_kind: PolicyKind, policy_id: str
) -> Parsed | None:
    """Parse a policy written as a map or a JSON string; errors reported at their location
    inside the document."""
    source: str | dict[str, Any]
    if isinstance(value, str):
        source = value
    elif isinstance(value, dict):
        source = plain(value)
    else:
        ld.issue(path, f"expected a policy document (a map or a JSON string), got {kind(value)}")
        return None
    try:
        policy = parse_policy(source, policy_kind, policy_id=policy_id)
    except (MalformedPolicyDocument, LimitExceeded, ValidationError) as err:
        where = path if err.location in ("", "$") else f"{path}.{err.location}"
        ld.issue(where, f"{err.code}: {err.message}")
        return None
    doc = load_json(source) if isinstance(source, str) else source
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if policy_kind in (PolicyKind.TRUST, PolicyKind.RESOURCE):
        _note_principals(ld, policy, path)
    return Parsed(policy, text)


def _note_principals(ld: Loader, policy: Policy, path: str) -> None:
    """Principals are checked against the world in the second pass (references.py)."""
    for st in policy.statements:
        if st.principal is None:
            continue
        element = "NotPrincipal" if st.not_principal else "Principal"
        where = f"{path}.Statement[{st.index}].{element}"
        for arn in st.principal.aws:
            ld.principal_refs.append((f"{where}.AWS", "AWS", arn))
        for arn in st.principal.federated:
            ld.principal_refs.append((f"{where}.Federated", "FEDERATED", arn))


def inline_policies(
    ld: Loader, m: Mapping[Any, Any], path: str, owner: str, limit: int
) -> dict[str, CompiledPolicy] | None:
    """The inline policies of ``owner`` ("role NAME"); None if any is invalid."""
    value = ld.mapping(m, "inline_policies", path, "policy names to documents")
    if value is None:
        return None
    where = at(path, "inline_policies")
    out: dict[str, CompiledPolicy] | None = {}
    total = 0
    for name, doc in value.items():
        place = at(where, name)
        if not isinstance(name, str) or not is_inline_name(name):
            ld.issue(
                place,
                f"inline policy name {name!r} must be 1-128 ASCII characters without "
                "whitespace or \\ / * ?",
            )
            out = None
        parsed = document(ld, doc, place, PolicyKind.IDENTITY, str(name))
        if parsed is None:
            out = None
            continue
        total += policy_size(parsed.text)
        if out is not None:
            out[str(name)] = compile_policy(parsed.policy)
    if total > limit:
        ld.issue(where, f"LimitExceeded: Maximum policy size of {limit} bytes exceeded for {owner}")
    return out


def attachments(
    ld: Loader, m: Mapping[Any, Any], path: str, account: str | None, quota: str
) -> tuple[tuple[str, ...], str | None]:
    """``managed_policy_arns`` and ``permissions_boundary``, resolved in the second pass."""
    where = at(path, "managed_policy_arns")
    arns = ld.strings(m, "managed_policy_arns", path)
    for i, arn in enumerate(arns):
        if arn in arns[:i]:
            ld.issue(f"{where}[{i}]", f"managed policy {arn} is attached twice")
        elif account is not None:
            ld.policy_refs.append((f"{where}[{i}]", account, arn))
    if len(set(arns)) > MAX_ATTACHED_POLICIES:
        ld.issue(where, f"LimitExceeded: Cannot exceed quota for {quota}: {MAX_ATTACHED_POLICIES}")
    boundary = ld.string(m, "permissions_boundary", path, empty=False)
    if boundary is not None and account is not None:
        ld.policy_refs.append((at(path, "permissions_boundary"), account, boundary))
    return tuple(arns), boundary


def read_managed_policy(
    ld: Loader, value: object, path: str, acct: AccountParts, account_id: str | None
) -> None:
    m = ld.fields(value, path, ("name", "path", "document"), ("name", "document"))
    if m is None:
        return
    name = entity_name(ld, m, path, "managed policy", 128)
    policy_path = iam_path(ld, m, path)
    if name is None or not claim_name(
        ld, acct.policy_names, name, path, "managed policy", "policy names"
    ):
        return
    arn = iam_arn(ld.partition, acct.account_id, "policy", name, policy_path)
    if account_id is not None:
        ld.managed_arns[arn] = account_id
    parsed = (
        document(ld, m["document"], at(path, "document"), PolicyKind.MANAGED, arn)
        if "document" in m
        else None
    )
    if parsed is not None:
        acct.managed_policies[arn] = ManagedPolicy(
            arn=arn,
            name=name,
            path=policy_path,
            policy_id=managed_policy_id(ld.partition, acct.account_id, name),
            document=compile_policy(parsed.policy),
            text=parsed.text,
        )


def read_resource_policy(ld: Loader, value: object, path: str, acct: AccountParts) -> None:
    m = ld.fields(value, path, ("resource", "document"), ("resource", "document"))
    if m is None:
        return
    resource = ld.string(m, "resource", path)
    if resource is not None:
        if not resource.startswith("arn:"):
            ld.issue(
                at(path, "resource"), f"resource {resource!r} must be an ARN pattern (arn:...)"
            )
            resource = None
        elif resource in acct.resources:
            ld.issue(at(path, "resource"), f"duplicate resource policy for {resource!r}")
        else:
            acct.resources.add(resource)
    if "document" not in m:
        return
    parsed = document(ld, m["document"], at(path, "document"), PolicyKind.RESOURCE, resource or "")
    if parsed is not None and resource is not None:
        acct.resource_policies.append(
            ResourcePolicy(acct.account_id, resource, compile_policy(parsed.policy))
        )
