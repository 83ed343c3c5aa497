"""How much one SimulateCustomPolicy call may ask for (docs/SERVER.md, "Limits").

First AWS's parameter quotas (IAM API Reference, SimulateCustomPolicy): each policy document
1-131,072 characters, resource ARNs (and CallerArn, ResourceOwner) 1-2,048, action names
3-128, and at most 7 organization levels of SCPs (and of RCPs), refused as AWS does: a
ValidationError listing every violation. SCP and RCP texts count like every other policy
below. Then the sidecar's caps, each refused with a sentence naming it: pairs, characters of
policy text, and work.

Work estimates the evaluation's cost before it starts, in units of 0.2-0.9 microseconds of CPU
on the reference machine (docs/BENCHMARKS.md, "Responsiveness under heavy calls"):

    units = pair size x policy size + wildcard actions

- pair size: the sum over (action, resource) pairs of 1 + the resource ARN's length // 256;
- policy size: the sum over statements of 1 + its Resource/NotResource and Principal entries +
  its condition values, each condition value counted once per value the request gives for its
  key; an entry or value counts 1 + its length // 256;
- wildcard actions: for each distinct action, the Action entries with `*` or `?` it is tried
  against (those of its service, those with a wildcard service, every NotAction entry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.errors import ValidationError, validation_errors, violation
from sidecar.policy.context import Context
from sidecar.policy.model import Policy, Statement
from sidecar.policy.parse import API_MAX_CHARS

if TYPE_CHECKING:
    from sidecar.policy.simulate import SimulationRequest

# AWS's parameter quotas.
ACTION_NAME_CHARS = (3, 128)
RESOURCE_NAME_CHARS = (1, 2048)  # resource ARNs, CallerArn, ResourceOwner
POLICY_CHARS = (1, API_MAX_CHARS)  # each policy document
MAX_LEVELS = 7  # organization levels: the root, OUs at most 5 deep, the account
# The sidecar's caps on one call.
MAX_PAIRS = 10_000  # (action, resource) pairs
MAX_POLICY_TEXT = 524_288  # characters of all policy documents together
MAX_WORK = 500_000  # units, as above: under half a second of CPU, measured
_CHUNK = 256  # characters that count as one more unit


def _member_lengths(values: Sequence[str], field_name: str, low: int, high: int) -> str | None:
    """AWS's violation for a list whose members must be ``low``-``high`` characters long."""
    if all(low <= len(v) <= high for v in values):
        return None
    return violation(
        field_name,
        f"Member must satisfy constraint: [Member must have length less than or equal to "
        f"{high}, Member must have length greater than or equal to {low}]",
    )


def _length(value: str, field_name: str, high: int) -> str | None:
    if len(value) <= high:
        return None
    return violation(field_name, f"Member must have length less than or equal to {high}")


# Organization levels: (policy id prefix, parameter name, the level's inner list).
SCP_LEVEL_NAMES = (
    "OrderedOrganizationPolicyInputList",
    "orderedOrganizationPolicyInputList",
    "serviceControlPolicyInputList",
)
RCP_LEVEL_NAMES = (
    "OrderedResourceControlPolicyInputList",
    "orderedResourceControlPolicyInputList",
    "resourceControlPolicyInputList",
)
BOTH_SCP_FORMS = (
    "Give service control policies either as ServiceControlPolicyInputList (one level) or as "
    "OrderedOrganizationPolicyInputList (by level), not both"
)


def policy_lists(req: SimulationRequest) -> tuple[tuple[Sequence[str], str], ...]:
    """The request's lists of policy documents, with their parameter names (one per
    organization level)."""
    levels = tuple(
        (texts, f"{names[1]}.{n}.{names[2]}")
        for all_levels, names in (
            (req.scp_levels, SCP_LEVEL_NAMES),
            (req.rcp_levels, RCP_LEVEL_NAMES),
        )
        for n, texts in enumerate(all_levels, start=1)
    )
    return (
        (req.policies, "policyInputList"),
        (req.boundaries, "permissionsBoundaryPolicyInputList"),
        (req.session_policies, "sessionPolicyInputList"),
        (req.scps, "serviceControlPolicyInputList"),
        *levels,
    )


def check_limits(req: SimulationRequest) -> None:
    """Refuse, before anything is parsed, a request beyond AWS's quotas (every violation
    listed, as AWS does) or beyond the sidecar's caps on pairs and policy text."""
    found: list[str | None] = []
    if not req.actions:
        found.append(violation("actionNames", "Member must not be null", None))
    found.append(_member_lengths(req.actions, "actionNames", *ACTION_NAME_CHARS))
    found.append(_member_lengths(req.resources, "resourceArns", *RESOURCE_NAME_CHARS))
    for texts, name in policy_lists(req):
        found.append(_member_lengths(texts, name, *POLICY_CHARS))
    for levels, names in ((req.scp_levels, SCP_LEVEL_NAMES), (req.rcp_levels, RCP_LEVEL_NAMES)):
        if len(levels) > MAX_LEVELS:
            found.append(
                violation(names[1], f"Member must have length less than or equal to {MAX_LEVELS}")
            )
    found.append(_length(req.resource_policy, "resourcePolicy", POLICY_CHARS[1]))
    found.append(_length(req.caller_arn, "callerArn", RESOURCE_NAME_CHARS[1]))
    found.append(_length(req.resource_owner, "resourceOwner", RESOURCE_NAME_CHARS[1]))
    violations = [v for v in found if v is not None]
    if violations:
        raise validation_errors(violations)
    if req.scps and req.scp_levels:
        raise ValidationError(BOTH_SCP_FORMS)
    pairs = len(req.actions) * max(len(req.resources), 1)
    if pairs > MAX_PAIRS:
        raise ValidationError(
            f"SimulateCustomPolicy takes at most {MAX_PAIRS:,} action and resource pairs per "
            f"call; this request has {pairs:,}. Split it into smaller simulations."
        )
    text = sum(len(t) for texts, _ in policy_lists(req) for t in texts)
    text += len(req.resource_policy)
    if text > MAX_POLICY_TEXT:
        raise ValidationError(
            f"SimulateCustomPolicy takes at most {MAX_POLICY_TEXT:,} characters of policy "
            f"documents per call, all lists together; this request has {text:,}."
        )


def _units(entries: Iterable[str]) -> int:
    return sum(1 + len(e) // _CHUNK for e in entries)


def statement_size(st: Statement, ctx: Context) -> int:
    """One statement's share of the policy size (see the module's docstring)."""
    p = st.principal
    principals: tuple[str, ...] = ()
    if p is not None:
        principals = (*p.aws, *p.service, *p.federated, *p.canonical_user)
    size = 1 + _units(st.resources or ()) + _units(principals)
    for clause in st.conditions:
        # Each condition value is compared with each value the request gives for the key.
        size += _units(clause.values) * max(1, _units(ctx.values.get(clause.key.lower(), ())))
    return size


def _action_patterns(statements: Sequence[Statement]) -> tuple[int, dict[str, int]]:
    """Units of the wildcard Action entries every action is tried against, and of those tried
    only for actions of one service (`s3:Get*`), as the compiled action index does."""
    everywhere = 0
    by_service: dict[str, int] = {}
    for st in statements:
        for entry in st.actions:
            service, _, name = entry.lower().partition(":")
            cost = 1 + len(entry) // _CHUNK
            if st.not_action or "*" in service or "?" in service:
                everywhere += cost
            elif name != "*" and ("*" in name or "?" in name):
                by_service[service] = by_service.get(service, 0) + cost
    return everywhere, by_service


@dataclass(frozen=True, slots=True)
class Work:
    pair_size: int
    policy_size: int
    patterns: int

    @property
    def units(self) -> int:
        return self.pair_size * self.policy_size + self.patterns


def estimate_work(
    actions: Sequence[str], resources: Sequence[str], ctx: Context, policies: Iterable[Policy]
) -> Work:
    """The work of simulating ``policies`` for every (action, resource) pair."""
    statements = [st for p in policies for st in p.statements]
    everywhere, by_service = _action_patterns(statements)
    return Work(
        pair_size=len(actions) * sum(1 + len(r) // _CHUNK for r in resources),
        policy_size=sum(statement_size(st, ctx) for st in statements),
        patterns=sum(
            everywhere + by_service.get(a.partition(":")[0], 0)
            for a in {a.lower() for a in actions}
        ),
    )


def check_work(work: Work) -> None:
    """Refuse a simulation whose estimated work is over MAX_WORK (a sentence with the sums)."""
    if work.units > MAX_WORK:
        raise ValidationError(
            f"SimulateCustomPolicy is limited to {MAX_WORK:,} units of work per call; this "
            f"request needs {work.units:,} ({work.pair_size:,} for the action and resource "
            f"pairs x {work.policy_size:,} for the policies' statements and entries, plus "
            f"{work.patterns:,} for wildcard actions; docs/SERVER.md, Limits). Simulate fewer "
            "pairs or smaller policies."
        )
