"""The ``organization`` section: an AWS Organizations tree with its SCPs and RCPs
(docs/ORGANIZATIONS.md).

The root, every OU and every account is a target; each may name SCPs and RCPs, by name (from
``policies``, or AWS's managed ``FullAWSAccess`` / ``RCPFullAWSAccess``) or inline. As in AWS
Organizations: a target with no ``scps`` has ``FullAWSAccess`` (a list replaces it);
``RCPFullAWSAccess`` is on every target and cannot be removed; at most 5 policies of each type
per target, OUs at most 5 deep, policies at most 5,120 characters (the parser's quota).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sidecar.identity.load.naming import valid_account_id
from sidecar.identity.load.policies import document
from sidecar.identity.load.state import Loader
from sidecar.identity.load.toolkit import at, kind
from sidecar.identity.model import Organization, OrgLevel, OrgMember
from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy

# Organizations API reference: the id patterns of CreateOrganization, roots and OUs.
_ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")
_ROOT_ID = re.compile(r"r-[0-9a-z]{4,32}")
_OU_ID = re.compile(r"ou-([0-9a-z]{4,32})-[a-z0-9]{8,32}")
MAX_ATTACHED = 5  # Organizations quotas: SCPs (and RCPs) attached to a root, OU or account
MAX_OU_DEPTH = 5  # Organizations quotas: OU nesting in a root
MAX_NAME = 128

FULL_AWS_ACCESS = "FullAWSAccess"
RCP_FULL_AWS_ACCESS = "RCPFullAWSAccess"
_FULL_ACCESS_SCP = compile_policy(
    parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        },
        PolicyKind.SCP,
        policy_id=FULL_AWS_ACCESS,
    )
)
_BUILT_IN = (FULL_AWS_ACCESS, RCP_FULL_AWS_ACCESS)
_TARGET_KEYS = ("scps", "rcps")
_KIND_NAMES = {PolicyKind.SCP: "service control", PolicyKind.RCP: "resource control"}


@dataclass(slots=True)
class _Tree:
    """What reading the tree has gathered so far."""

    ld: Loader
    org_id: str
    root_id: str
    policies: Mapping[Any, Any]
    policies_path: str
    compiled: dict[tuple[str, PolicyKind], CompiledPolicy | None] = field(default_factory=dict)
    placed: dict[str, str] = field(default_factory=dict)  # account -> path where placed
    ou_ids: set[str] = field(default_factory=set)
    members: dict[str, OrgMember] = field(default_factory=dict)


def read_organization(ld: Loader, value: object, path: str) -> Organization | None:
    """The organization, or None when any part of it is wrong (reported)."""
    before = len(ld.issues)
    m = ld.fields(
        value,
        path,
        ("id", "management_account", "root", "units", "policies"),
        ("id", "management_account", "root"),
    )
    if m is None:
        return None
    org_id = ld.string(m, "id", path, empty=False)
    if org_id is not None and not _ORG_ID.fullmatch(org_id):
        ld.issue(at(path, "id"), f"organization id {org_id!r} must match o-[a-z0-9]{{10,32}}")
    management = (
        valid_account_id(ld, m["management_account"], at(path, "management_account"))
        if "management_account" in m
        else None
    )
    policies = ld.mapping(m, "policies", path, "policy names to documents") or {}
    for name in policies:
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            ld.issue(at(at(path, "policies"), name), "policy name must be 1-128 characters")
        elif name in _BUILT_IN:
            ld.issue(
                at(at(path, "policies"), name), f"{name} is AWS-managed: it cannot be redefined"
            )
    root = ld.fields(
        m.get("root", {}), at(path, "root"), ("id", *_TARGET_KEYS, "accounts"), ("id",)
    )
    if root is None:
        return None
    root_path = at(path, "root")
    root_id = ld.string(root, "id", root_path, empty=False)
    if root_id is not None and not _ROOT_ID.fullmatch(root_id):
        ld.issue(at(root_path, "id"), f"root id {root_id!r} must match r-[0-9a-z]{{4,32}}")
    tree = _Tree(ld, org_id or "", root_id or "", policies, at(path, "policies"))
    root_level = _level(tree, root, root_path, root_id or "")
    chain: tuple[OrgLevel, ...] = (root_level,)
    _accounts(tree, root, root_path, chain, ())
    for item, where in ld.each(m, "units", path):
        _unit(tree, item, where, chain, (), 1)
    _unused_policies(tree)
    if management is not None and management not in tree.placed:
        ld.issue(
            at(path, "management_account"),
            f"the management account {management} must be placed in the tree (root or an OU)",
        )
    if len(ld.issues) > before or org_id is None or root_id is None or management is None:
        return None
    return Organization(org_id, management, root_id, MappingProxyType(tree.members))


def _unit(
    tree: _Tree,
    value: object,
    path: str,
    chain: tuple[OrgLevel, ...],
    ous: tuple[str, ...],
    depth: int,
) -> None:
    ld = tree.ld
    m = ld.fields(
        value, path, ("id", "name", *_TARGET_KEYS, "accounts", "children"), ("id", "name")
    )
    if m is None:
        return
    if depth > MAX_OU_DEPTH:
        ld.issue(path, f"OUs nest at most {MAX_OU_DEPTH} deep under the root")
    ou_id = ld.string(m, "id", path, empty=False) or ""
    found = _OU_ID.fullmatch(ou_id)
    if ou_id and found is None:
        ld.issue(at(path, "id"), f"OU id {ou_id!r} must match ou-[0-9a-z]{{4,32}}-[a-z0-9]{{8,32}}")
    elif found is not None and tree.root_id.startswith("r-") and found[1] != tree.root_id[2:]:
        ld.issue(at(path, "id"), f"OU id {ou_id!r} must carry its root's id ({tree.root_id[2:]})")
    if ou_id in tree.ou_ids:
        ld.issue(at(path, "id"), f"duplicate OU id {ou_id!r}")
    tree.ou_ids.add(ou_id)
    name = ld.string(m, "name", path, empty=False)
    if name is not None and len(name) > MAX_NAME:
        ld.issue(at(path, "name"), f"OU name must be at most {MAX_NAME} characters")
    here = (*chain, _level(tree, m, path, ou_id))
    _accounts(tree, m, path, here, (*ous, ou_id))
    for item, where in ld.each(m, "children", path):
        _unit(tree, item, where, here, (*ous, ou_id), depth + 1)


def _accounts(
    tree: _Tree, m: Mapping[Any, Any], path: str, chain: tuple[OrgLevel, ...], ous: tuple[str, ...]
) -> None:
    """The accounts placed directly under this root or OU: an id, or a map with attachments."""
    ld = tree.ld
    org_path = f"{tree.org_id}/{tree.root_id}/" + "".join(f"{ou}/" for ou in ous)
    for item, where in ld.each(m, "accounts", path):
        attached: Mapping[Any, Any] = {}
        id_path = where
        if isinstance(item, dict):
            found = ld.fields(item, where, ("id", *_TARGET_KEYS), ("id",))
            if found is None or "id" not in found:
                continue
            attached, item, id_path = found, found["id"], at(where, "id")
        account = valid_account_id(ld, item, id_path)
        if account is None:
            continue
        if account in tree.placed:
            ld.issue(id_path, f"account {account} is already placed at {tree.placed[account]}")
            continue
        tree.placed[account] = where
        level = _level(tree, attached, where, account)
        tree.members[account] = OrgMember(account, (*chain, level), org_path)


def _level(tree: _Tree, m: Mapping[Any, Any], path: str, target: str) -> OrgLevel:
    scps = _attached(tree, m, path, "scps", PolicyKind.SCP)
    rcps = _attached(tree, m, path, "rcps", PolicyKind.RCP)
    return OrgLevel(target, scps if "scps" in m else (_FULL_ACCESS_SCP,), rcps)


def _attached(
    tree: _Tree, m: Mapping[Any, Any], path: str, key: str, policy_kind: PolicyKind
) -> tuple[CompiledPolicy, ...]:
    ld = tree.ld
    where = at(path, key)
    items = ld.items(m, key, path)
    if len(items) > MAX_ATTACHED:
        ld.issue(where, f"at most {MAX_ATTACHED} policies of a type may be attached to a target")
    out: list[CompiledPolicy] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        place = f"{where}[{i}]"
        if isinstance(item, dict) or (isinstance(item, str) and item.lstrip().startswith("{")):
            parsed = document(ld, item, place, policy_kind, place)
            if parsed is not None:
                out.append(compile_policy(parsed.policy))
            continue
        if not isinstance(item, str) or not item:
            ld.issue(place, f"expected a policy name or an inline document, got {kind(item)}")
            continue
        if item in names:
            ld.issue(place, f"policy {item!r} is attached twice")
            continue
        names.add(item)
        policy = _named(tree, item, place, policy_kind)
        if policy is not None:
            out.append(policy)
    return tuple(out)


def _named(tree: _Tree, name: str, place: str, policy_kind: PolicyKind) -> CompiledPolicy | None:
    """A policy by name, parsed (once per kind) where ``policies`` defines it."""
    ld = tree.ld
    if name in _BUILT_IN:
        wanted = FULL_AWS_ACCESS if policy_kind is PolicyKind.SCP else RCP_FULL_AWS_ACCESS
        if name != wanted:
            ld.issue(place, f"{name} is not a {_KIND_NAMES[policy_kind]} policy")
        # RCPFullAWSAccess allows everything and is always there: nothing to evaluate.
        return _FULL_ACCESS_SCP if name == FULL_AWS_ACCESS == wanted else None
    if name not in tree.policies:
        ld.issue(place, f"unknown policy {name!r} (not defined under organization.policies)")
        return None
    key = (name, policy_kind)
    if key not in tree.compiled:
        where = at(tree.policies_path, name)
        parsed = document(ld, tree.policies[name], where, policy_kind, name)
        tree.compiled[key] = compile_policy(parsed.policy) if parsed is not None else None
    return tree.compiled[key]


def _unused_policies(tree: _Tree) -> None:
    """A policy attached nowhere is still validated, as the kind its statements suggest (an
    RCP names a Principal, an SCP never does)."""
    used = {name for name, _ in tree.compiled}
    for name, doc in tree.policies.items():
        if not isinstance(name, str) or name in used or name in _BUILT_IN:
            continue
        statements = doc.get("Statement") if isinstance(doc, dict) else None
        listed = statements if isinstance(statements, list) else [statements]
        is_rcp = any(isinstance(st, dict) and "Principal" in st for st in listed)
        policy_kind = PolicyKind.RCP if is_rcp else PolicyKind.SCP
        document(tree.ld, doc, at(tree.policies_path, name), policy_kind, name)
