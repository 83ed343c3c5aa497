"""What a role may do: the Allow statements of its inline and managed policies as written, and
the guardrails that cap them (docs/SEMANTICS.md §5.1): its permissions boundary, the SCPs on the
path from the organization root to its account, and the RCPs there (they cap what is done to the
account's resources, whoever does it). Session policies exist only per session and can only
narrow. No action catalogue: patterns are shown as written."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.identity.model import Role, World
from sidecar.inspect_role.statements import StatementView, split_statements


@dataclass(frozen=True, slots=True)
class PolicyReport:
    name: str  # the inline policy's name, or the managed policy's name
    kind: str  # "inline", "managed", "permissions-boundary", "scp" or "rcp"
    arn: str  # a managed policy's ARN; "" otherwise
    allows: tuple[StatementView, ...]
    denies: tuple[StatementView, ...]


@dataclass(frozen=True, slots=True)
class OrgLevelReport:
    target: str  # r-…, ou-… or the account id
    scps: tuple[PolicyReport, ...]
    rcps: tuple[PolicyReport, ...]


@dataclass(frozen=True, slots=True)
class OrganizationReport:
    status: str  # "none", "outside", "management" or "member"
    note: str
    levels: tuple[OrgLevelReport, ...]  # root first, the account last (members only)


@dataclass(frozen=True, slots=True)
class WhatReport:
    policies: tuple[PolicyReport, ...]
    boundary: PolicyReport | None
    organization: OrganizationReport
    session_note: str


SESSION_NOTE = (
    "A session's policies (AssumeRole Policy and PolicyArns) can only narrow this: a session may "
    "do what both the role and its session policies allow."
)


def what_it_may_do(world: World, role: Role) -> WhatReport:
    policies = [
        PolicyReport(name, "inline", "", *split_statements(name, doc))
        for name, doc in role.inline_policies.items()
    ]
    for arn in role.managed_policy_arns:
        mp = world.managed_policy(arn)
        if mp is not None:  # the loader guarantees it exists
            policies.append(
                PolicyReport(mp.name, "managed", arn, *split_statements(mp.name, mp.document))
            )
    boundary = None
    if role.permissions_boundary is not None:
        mp = world.managed_policy(role.permissions_boundary)
        if mp is not None:
            boundary = PolicyReport(
                mp.name, "permissions-boundary", mp.arn, *split_statements(mp.name, mp.document)
            )
    return WhatReport(tuple(policies), boundary, _organization(world, role), SESSION_NOTE)


def _organization(world: World, role: Role) -> OrganizationReport:
    org = world.organization
    if org is None:
        return OrganizationReport(
            "none", "the world has no organization: no SCP or RCP applies", ()
        )
    if role.account == org.management_account:
        note = (
            f"{role.account} is the management account of {org.org_id}: SCPs and RCPs do not apply"
        )
        return OrganizationReport("management", note, ())
    member = org.member(role.account)
    if member is None:
        return OrganizationReport("outside", f"{role.account} is not in {org.org_id}", ())
    levels = tuple(
        OrgLevelReport(
            level.target_id,
            tuple(
                PolicyReport(p.policy_id, "scp", "", *split_statements(p.policy_id, p))
                for p in level.scps
            ),
            tuple(
                PolicyReport(p.policy_id, "rcp", "", *split_statements(p.policy_id, p))
                for p in level.rcps
            ),
        )
        for level in member.levels
    )
    note = (
        f"{role.account} is in {org.org_id}: every level must have an SCP that allows an action "
        "and no SCP may deny it; RCPs (RCPFullAWSAccess implied) only deny, for actions on this "
        "account's resources of the services that support them"
    )
    return OrganizationReport("member", note, levels)
