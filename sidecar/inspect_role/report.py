"""The access report of one role: built from the world, rendered as text or as JSON.

The JSON shape is documented in docs/ACCESS.md; ``FORMAT_VERSION`` changes when it does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.errors import NoSuchEntity, ValidationError
from sidecar.identity.model import Role, World
from sidecar.inspect_role.statements import StatementView
from sidecar.inspect_role.verdict import AssumeChecker, OpenStatement, Outcome, Verdict
from sidecar.inspect_role.what import PolicyReport, WhatReport, what_it_may_do
from sidecar.inspect_role.who import WhoReport, who_can_assume
from sidecar.sts.assume import role_for

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RoleReport:
    role: Role
    who: WhoReport
    what: WhatReport


def inspect_role(world: World, role_arn: str) -> RoleReport:
    """The report for ``role_arn``; ValidationError when it is no role ARN, NoSuchEntity when
    the world has no such role (the role is found as STS finds it: by account and name)."""
    parts = role_arn.split(":", 5)
    if (
        len(parts) != 6
        or parts[0] != "arn"
        or parts[2] != "iam"
        or not parts[5].startswith("role/")
    ):
        raise ValidationError(f"{role_arn!r} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    role = role_for(world, role_arn)
    if role is None:
        name = parts[5].rsplit("/", 1)[-1]
        raise NoSuchEntity(f"The role with name {name} cannot be found.")
    return RoleReport(
        role, who_can_assume(world, role, AssumeChecker(world, role)), what_it_may_do(world, role)
    )


# -- JSON -------------------------------------------------------------------------------------


def _open(st: OpenStatement) -> dict[str, Any]:
    return st.as_json()


def _verdict_json(v: Verdict) -> dict[str, Any]:
    return {
        "arn": v.identity_arn,
        "type": v.identity_type,
        "outcome": v.outcome.value,
        "conditions": [{"any_of": [_open(s) for s in group]} for group in v.conditions],
        "unless": [_open(s) for s in v.unless],
        "reason": v.reason,
    }


def _policy_json(p: PolicyReport) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "arn": p.arn,
        "allows": [s.as_json() for s in p.allows],
        "denies": [s.as_json() for s in p.denies],
    }


def to_json(report: RoleReport) -> dict[str, Any]:
    role, who, what = report.role, report.who, report.what
    org = what.organization
    return {
        "format_version": FORMAT_VERSION,
        "role": {
            "arn": role.arn,
            "account": role.account,
            "name": role.name,
            "path": role.path,
            "role_id": role.role_id,
            "max_session_duration": role.max_session_duration,
            "permissions_boundary": role.permissions_boundary,
        },
        "who_can_assume": {
            "grants": [
                {
                    **g.statement.as_json(),
                    "covers": list(g.covers),
                    "principal_reports": [
                        {
                            "kind": p.kind,
                            "value": p.entry.value,
                            "account": p.account,
                            "note": p.note,
                            "identities": [_verdict_json(v) for v in p.identities],
                        }
                        for p in g.principals
                    ],
                }
                for g in who.grants
            ],
            "limits": [s.as_json() for s in who.limits],
            "notes": list(who.notes),
        },
        "what_it_may_do": {
            "policies": [_policy_json(p) for p in what.policies],
            "permissions_boundary": None if what.boundary is None else _policy_json(what.boundary),
            "organization": {
                "status": org.status,
                "note": org.note,
                "levels": [
                    {
                        "target": level.target,
                        "scps": [_policy_json(p) for p in level.scps],
                        "rcps": [_policy_json(p) for p in level.rcps],
                    }
                    for level in org.levels
                ],
            },
            "session_policies": what.session_note,
        },
    }


# -- text -------------------------------------------------------------------------------------

_LABEL = 13  # width of the element names in a statement block
_ELEMENT = {
    "aws": "AWS",
    "service": "Service",
    "federated": "Federated",
    "canonical-user": "CanonicalUser",
}


def _statement_lines(st: StatementView, indent: str) -> list[str]:
    pad = indent + "  "
    lines = [f"{indent}{st.effect} {st.ref}"]

    def row(label: str, values: tuple[str, ...]) -> None:
        lines.append(f"{pad}{label:<{_LABEL}}{', '.join(values)}")

    if st.principals:
        named = tuple(
            p.value if p.kind == "everyone" else f"{_ELEMENT[p.kind]} {p.value}"
            for p in st.principals
        )
        row("NotPrincipal" if st.not_principal else "Principal", named)
    row("NotAction" if st.not_action else "Action", st.actions)
    if st.resources is not None:
        row("NotResource" if st.not_resource else "Resource", st.resources)
    for i, c in enumerate(st.conditions):
        lines.append(f"{pad}{'Condition' if i == 0 else '':<{_LABEL}}{c.text()}")
    return lines


def _open_text(st: OpenStatement) -> str:
    return f"{' and '.join(c.text() for c in st.conditions)} [{st.ref}]"


def _verdict_line(v: Verdict, indent: str) -> list[str]:
    head = f"{indent}{v.identity_type:<5} {v.identity_arn}  "
    if v.outcome is Outcome.ALLOWED:
        lines = [head + "allowed"]
    elif v.outcome is Outcome.DENIED:
        return [head + "denied", f"{indent}      {v.reason}"]
    else:
        lines = [head + "allowed if"]
        for n, group in enumerate(v.conditions):
            joiner = "and " if n else ""
            alternatives = " or ".join(f"({_open_text(s)})" for s in group)
            lines.append(f"{indent}      {joiner}{alternatives}")
    for st in v.unless:
        lines.append(f"{indent}      unless {_open_text(st)}")
    return lines


def _policy_lines(p: PolicyReport, indent: str) -> list[str]:
    title = f"{indent}{p.kind} policy {p.name}" + (f" ({p.arn})" if p.arn else "")
    lines = [title]
    for st in p.allows:
        lines += _statement_lines(st, indent + "  ")
    if p.denies:
        lines.append(f"{indent}  limits (Deny):")
        for st in p.denies:
            lines += _statement_lines(st, indent + "    ")
    if not p.allows and not p.denies:
        lines.append(f"{indent}  (no statements)")
    return lines


def to_text(report: RoleReport) -> str:
    role, who, what = report.role, report.who, report.what
    out = [
        f"Role {role.arn}",
        f"  account {role.account}, path {role.path}, max session {role.max_session_duration} s, "
        f"permissions boundary: {role.permissions_boundary or 'none'}",
        "",
        "WHO CAN ASSUME IT (trust policy)",
    ]
    if not who.grants:
        out.append("  no Allow statement: nobody")
    for g in who.grants:
        out += _statement_lines(g.statement, "  ")
        out.append(f"    {'grants':<{_LABEL}}{', '.join(g.covers) or 'no assume action'}")
        for pr in g.principals:
            out.append(f"    - {pr.kind} {pr.entry.value}")
            out.append(f"        {pr.note}")
            for v in pr.identities:
                out += _verdict_line(v, "        ")
    out.append("  limits:")
    if not who.limits:
        out.append("    none")
    for st in who.limits:
        out += _statement_lines(st, "    ")
    out += [f"  note: {n}" for n in who.notes]
    out += ["", "WHAT IT MAY DO"]
    if not what.policies:
        out.append("  no identity policy: nothing")
    for p in what.policies:
        out += _policy_lines(p, "  ")
    out += ["", "GUARDRAILS"]
    if what.boundary is None:
        out.append("  permissions boundary: none")
    else:
        out.append("  permissions boundary: the role may do only what it also allows")
        out += _policy_lines(what.boundary, "    ")
    org = what.organization
    out.append(f"  organization: {org.note}")
    for level in org.levels:
        out.append(f"    level {level.target}")
        for p in level.scps:
            out += _policy_lines(p, "      ")
        for p in level.rcps:
            out += _policy_lines(p, "      ")
    out.append(f"  session policies: {what.session_note}")
    return "\n".join(out) + "\n"
