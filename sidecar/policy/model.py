"""Parsed, validated policy documents: the shapes the compiler works from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PolicyKind(StrEnum):
    """Where a document is used; the kind decides which validation rules apply."""

    IDENTITY = "identity"  # inline identity policy (user or role)
    MANAGED = "managed"  # customer managed policy
    BOUNDARY = "permissions-boundary"
    SESSION = "session"
    TRUST = "trust"  # a role's trust policy (a resource-based policy on the role)
    RESOURCE = "resource"
    SCP = "scp"
    RCP = "rcp"  # resource control policy: Deny only, Principal "*"


# Kinds that must say Version 2012-10-17 (docs/SEMANTICS.md §1.2).
STRICT_VERSION_KINDS = frozenset(
    {PolicyKind.IDENTITY, PolicyKind.MANAGED, PolicyKind.BOUNDARY, PolicyKind.SCP, PolicyKind.RCP}
)
# Kinds whose statements name a Principal.
PRINCIPAL_KINDS = frozenset({PolicyKind.TRUST, PolicyKind.RESOURCE, PolicyKind.RCP})

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"


@dataclass(frozen=True, slots=True)
class PrincipalBlock:
    """A Principal or NotPrincipal element. ``wildcard`` is `"*"` (or `{"AWS": "*"}`)."""

    wildcard: bool = False
    aws: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()
    canonical_user: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConditionClause:
    """One key under one operator: ``ForAnyValue:StringLikeIfExists: {key: values}``."""

    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    base: str  # e.g. "StringLike"
    qualifier: str  # "", "ForAllValues" or "ForAnyValue"
    if_exists: bool
    key: str  # as written
    values: tuple[str, ...]  # JSON numbers and booleans turned into their text


@dataclass(frozen=True, slots=True)
class Statement:
    index: int  # zero-based position in the Statement list
    sid: str
    effect: str  # "Allow" or "Deny"
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None  # None when the statement has no (Not)Resource (trust)
    not_resource: bool
    principal: PrincipalBlock | None
    not_principal: bool
    conditions: tuple[ConditionClause, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    policy_id: str
    kind: PolicyKind
    version: str  # "" when the document has none
    statements: tuple[Statement, ...]

    @property
    def variables_enabled(self) -> bool:
        """Policy variables are substituted only under Version 2012-10-17."""
        return self.version == VERSION_2012
