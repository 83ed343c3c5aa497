"""Policy statements as the report shows them: the elements as written, with the policy that
holds them. Nothing here evaluates; it only describes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.policy.compile import CompiledPolicy
from sidecar.policy.model import ConditionClause, PrincipalBlock, Statement


def statement_ref(policy: str, sid: str, index: int) -> str:
    """How the text names a statement: `policy Sid (#index)` or `policy #index`."""
    return f"{policy} {sid} (#{index})" if sid else f"{policy} #{index}"


@dataclass(frozen=True, slots=True)
class ConditionView:
    operator: str  # as written, e.g. "ForAnyValue:StringLike"
    key: str
    values: tuple[str, ...]

    def text(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else f"[{', '.join(self.values)}]"
        return f"{self.operator} {self.key} = {shown}"

    def as_json(self) -> dict[str, object]:
        return {"operator": self.operator, "key": self.key, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class PrincipalEntry:
    """One value of a Principal (or NotPrincipal) element: ``kind`` is `everyone`, `aws`,
    `service`, `federated` or `canonical-user`."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class StatementView:
    policy: str  # the policy's name (inline), ARN (managed), TrustPolicy, or SCP/RCP name
    sid: str
    index: int
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None  # None: the element is absent (trust policies)
    not_resource: bool
    principals: tuple[PrincipalEntry, ...]  # empty in identity policies
    not_principal: bool
    conditions: tuple[ConditionView, ...]

    @property
    def ref(self) -> str:
        return statement_ref(self.policy, self.sid, self.index)

    def as_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "sid": self.sid,
            "index": self.index,
            "effect": self.effect,
            "actions": list(self.actions),
            "not_action": self.not_action,
            "resources": None if self.resources is None else list(self.resources),
            "not_resource": self.not_resource,
            "principals": [{"kind": p.kind, "value": p.value} for p in self.principals],
            "not_principal": self.not_principal,
            "conditions": [c.as_json() for c in self.conditions],
        }


def condition_views(clauses: Iterable[ConditionClause]) -> tuple[ConditionView, ...]:
    return tuple(ConditionView(c.operator, c.key, c.values) for c in clauses)


def principal_entries(block: PrincipalBlock | None) -> tuple[PrincipalEntry, ...]:
    if block is None:
        return ()
    if block.wildcard:
        return (PrincipalEntry("everyone", "*"),)
    return (
        *(PrincipalEntry("aws", v) for v in block.aws),
        *(PrincipalEntry("service", v) for v in block.service),
        *(PrincipalEntry("federated", v) for v in block.federated),
        *(PrincipalEntry("canonical-user", v) for v in block.canonical_user),
    )


def statement_view(policy_name: str, st: Statement) -> StatementView:
    return StatementView(
        policy=policy_name,
        sid=st.sid,
        index=st.index,
        effect=st.effect,
        actions=st.actions,
        not_action=st.not_action,
        resources=st.resources,
        not_resource=st.not_resource,
        principals=principal_entries(st.principal),
        not_principal=st.not_principal,
        conditions=condition_views(st.conditions),
    )


def split_statements(
    policy_name: str, policy: CompiledPolicy
) -> tuple[tuple[StatementView, ...], tuple[StatementView, ...]]:
    """(Allow statements, Deny statements) of ``policy``, in document order."""
    views = [statement_view(policy_name, st) for st in policy.policy.statements]
    return (
        tuple(v for v in views if v.effect == "Allow"),
        tuple(v for v in views if v.effect == "Deny"),
    )
