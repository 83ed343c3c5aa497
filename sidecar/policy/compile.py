"""Compile parsed policies once into matchers, with statements indexed by action.

Evaluating a request never parses JSON or builds a pattern from policy text: actions, resources,
principals and conditions are closures made here. Each policy indexes its statements by exact
action and by ``service:*``; the few remaining patterns are tried per action, and the statements
found for an action are remembered (bounded), so the cost of a request follows the statements
that can apply to its action, not the size of the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sidecar.policy.arn import ResourceMatcher, compile_resource
from sidecar.policy.conditions import Predicate, compile_conditions, referenced_keys
from sidecar.policy.context import Context
from sidecar.policy.model import Policy, PrincipalBlock, Statement
from sidecar.policy.variables import Var, parse_template
from sidecar.policy.wildcard import compile_glob

# Distinct actions remembered per policy (a full memo forgets its older half). Bounded so that
# a policy's memo holds at most limit x (~512 + 8 x statements) bytes (docs/SERVER.md); session
# policies, compiled per session and cached by the thousand, take the smaller limit.
MEMO_LIMIT = 256
SESSION_MEMO_LIMIT = 32


@dataclass(frozen=True, slots=True)
class StatementRef:
    """Names one statement of one policy in a decision."""

    policy_id: str
    sid: str
    index: int
    effect: str


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    ref: StatementRef
    deny: bool
    resource: ResourceMatcher | None  # None: every resource (Resource "*", or none at all)
    principal: PrincipalBlock | None
    not_principal: bool
    condition: Predicate | None
    condition_keys: frozenset[str]  # every context key it reads: conditions and variables
    source: Statement


def _resource_matcher(st: Statement, variables: bool) -> ResourceMatcher | None:
    if st.resources is None or (not st.not_resource and "*" in st.resources):
        return None
    matchers = [compile_resource(r, variables=variables) for r in st.resources]
    if st.not_resource:
        if "*" in st.resources:
            return lambda _r, _p, _c: False

        def not_resource(r: str, parts: list[str], ctx: Context) -> bool:
            return not any(m(r, parts, ctx) for m in matchers)

        return not_resource
    if len(matchers) == 1:
        return matchers[0]

    def any_resource(r: str, parts: list[str], ctx: Context) -> bool:
        return any(m(r, parts, ctx) for m in matchers)

    return any_resource


def _resource_variable_keys(st: Statement, variables: bool) -> set[str]:
    """Context keys that policy variables in (Not)Resource read."""
    if not variables or not st.resources:
        return set()
    keys: set[str] = set()
    for pattern in st.resources:
        segments = pattern.split(":", 5)
        if len(segments) == 6:
            keys.update(p.key for p in parse_template(segments[5]) if isinstance(p, Var))
    return keys


def compile_statement(policy: Policy, st: Statement) -> CompiledStatement:
    variables = policy.variables_enabled
    return CompiledStatement(
        ref=StatementRef(policy.policy_id, st.sid, st.index, st.effect),
        deny=st.effect == "Deny",
        resource=_resource_matcher(st, variables),
        principal=st.principal,
        not_principal=st.not_principal,
        condition=compile_conditions(st.conditions, variables=variables),
        condition_keys=frozenset(
            referenced_keys(st.conditions, variables=variables)
            | _resource_variable_keys(st, variables)
        ),
        source=st,
    )


class CompiledPolicy:
    """A policy ready to evaluate: compiled statements and an action index."""

    __slots__ = (
        "_by_service",
        "_exact",
        "_memo",
        "_memo_limit",
        "_patterns",
        "_service_patterns",
        "policy",
        "statements",
    )

    def __init__(self, policy: Policy, memo_limit: int = MEMO_LIMIT) -> None:
        self.policy = policy
        self._memo_limit = memo_limit
        self.statements = tuple(compile_statement(policy, st) for st in policy.statements)
        self._exact: dict[str, list[CompiledStatement]] = {}
        self._by_service: dict[str, list[CompiledStatement]] = {}
        # Wildcard actions whose service is literal (`s3:Get*`), tried only for that service;
        # the rest (`*:Get*`, NotAction) are tried for every action.
        self._service_patterns: dict[str, list[tuple[Callable[[str], bool], CompiledStatement]]]
        self._service_patterns = {}
        self._patterns: list[tuple[Callable[[str], bool], CompiledStatement]] = []
        for cst in self.statements:
            st = cst.source
            if st.not_action:
                globs = [compile_glob(a.lower(), ignore_case=True) for a in st.actions]

                def not_action(action: str, globs: list[Callable[[str], bool]] = globs) -> bool:
                    return not any(g(action) for g in globs)

                self._patterns.append((not_action, cst))
                continue
            for a in dict.fromkeys(x.lower() for x in st.actions):
                service, _, name = a.partition(":")
                literal_service = "*" not in service and "?" not in service
                if "*" not in a and "?" not in a:
                    self._exact.setdefault(a, []).append(cst)
                elif literal_service and name == "*":
                    self._by_service.setdefault(service, []).append(cst)
                elif literal_service and a != "*":
                    matcher = compile_glob(a, ignore_case=True)
                    self._service_patterns.setdefault(service, []).append((matcher, cst))
                else:
                    self._patterns.append((compile_glob(a, ignore_case=True), cst))
        self._memo: dict[str, tuple[CompiledStatement, ...]] = {}

    @property
    def policy_id(self) -> str:
        return self.policy.policy_id

    def candidates(self, action: str) -> tuple[CompiledStatement, ...]:
        """Statements whose Action/NotAction matches ``action`` (lowercased), in order."""
        try:
            return self._memo[action]
        except KeyError:
            pass
        found: dict[int, CompiledStatement] = {}
        for cst in self._exact.get(action, ()):
            found[cst.ref.index] = cst
        service = action.partition(":")[0]
        for cst in self._by_service.get(service, ()):
            found[cst.ref.index] = cst
        for match, cst in (*self._service_patterns.get(service, ()), *self._patterns):
            if cst.ref.index not in found and match(action):
                found[cst.ref.index] = cst
        result = tuple(found[i] for i in sorted(found))
        if len(self._memo) >= self._memo_limit:
            # Forget the older half (dicts keep insertion order), not everything at once.
            for stale in list(self._memo)[: self._memo_limit // 2]:
                self._memo.pop(stale, None)
        self._memo[action] = result
        return result

    def __repr__(self) -> str:
        return f"CompiledPolicy({self.policy.policy_id!r}, {len(self.statements)} statements)"


def compile_policy(policy: Policy, memo_limit: int = MEMO_LIMIT) -> CompiledPolicy:
    return CompiledPolicy(policy, memo_limit)
