"""Who can assume a role: its trust policy's statements, what each principal means, and for
the AWS principals the world's identities they reach, each with the engine's verdict for
sts:AssumeRole (sidecar/inspect_role/verdict.py).

What a principal means follows docs/SEMANTICS.md §2.3 and §5.2: a trust policy must always
name the caller; naming a user (or one session) in the role's account grants with no identity
policy; naming a role in the role's account grants as an identity policy would, so the caller
role's permissions boundary must still allow; naming an account only delegates, so each of its
identities needs its own allow; a caller from another account needs its own allow in any case.
SCPs of the caller's account and RCPs of the role's account cap every call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.identity.model import Role, User, World
from sidecar.identity.scope import rcps
from sidecar.inspect_role.statements import PrincipalEntry, StatementView, statement_view
from sidecar.inspect_role.verdict import AssumeChecker, Verdict

# The actions a trust policy may allow (docs/SEMANTICS.md §1.5), in the report's order.
TRUST_ACTIONS = (
    "sts:AssumeRole",
    "sts:AssumeRoleWithWebIdentity",
    "sts:AssumeRoleWithSAML",
    "sts:TagSession",
    "sts:SetSourceIdentity",
    "sts:SetContext",
)
_ACCOUNT_ID = re.compile(r"\d{12}")


@dataclass(frozen=True, slots=True)
class PrincipalReport:
    entry: PrincipalEntry
    kind: str  # everyone, account, user, role, role-session, federated-user, unique-id,
    #            service, federated, canonical-user
    account: str  # the account it belongs to, when it names one
    note: str
    identities: tuple[Verdict, ...]  # the world identities it names (AWS principals only)


@dataclass(frozen=True, slots=True)
class GrantReport:
    statement: StatementView
    covers: tuple[str, ...]  # which of TRUST_ACTIONS its Action/NotAction allows
    principals: tuple[PrincipalReport, ...]


@dataclass(frozen=True, slots=True)
class WhoReport:
    grants: tuple[GrantReport, ...]
    limits: tuple[StatementView, ...]  # trust Denys, then RCP Denys that cover assume calls
    notes: tuple[str, ...]


def who_can_assume(world: World, role: Role, checker: AssumeChecker) -> WhoReport:
    trust = role.trust_policy
    # The engine's own action matching says which statements each trust action reaches.
    reach = {a: {st.ref.index for st in trust.candidates(a.lower())} for a in TRUST_ACTIONS}
    grants, limits = [], []
    for st in trust.policy.statements:
        view = statement_view(trust.policy_id, st)
        if st.effect == "Deny":
            limits.append(view)
            continue
        principals = tuple(
            _principal(world, role, entry, checker, not_principal=st.not_principal)
            for entry in view.principals
        )
        covers = tuple(a for a in TRUST_ACTIONS if st.index in reach[a])
        grants.append(GrantReport(view, covers, principals))
    for rcp in rcps(world, role.account):
        for st in rcp.policy.statements:
            hits = any(
                st.index == c.ref.index for a in TRUST_ACTIONS for c in rcp.candidates(a.lower())
            )
            if st.effect == "Deny" and hits:
                limits.append(statement_view(rcp.policy_id, st))
    notes = (
        "Conditions on keys only a request carries (time, network, MFA, the sts: parameters, "
        "request and session tags) are open: `allowed if` names them; keys the world decides "
        "are evaluated.",
        "A role identity is checked as any session of it, without session policies (they can "
        "only narrow).",
    )
    return WhoReport(tuple(grants), tuple(limits), notes)


def _principal(
    world: World, role: Role, entry: PrincipalEntry, checker: AssumeChecker, *, not_principal: bool
) -> PrincipalReport:
    if not_principal:
        # Trust policies refuse NotPrincipal when loaded (docs/SEMANTICS.md §1.5); kept readable.
        return PrincipalReport(entry, "not-principal", "", "everyone except this", ())
    if entry.kind == "everyone":
        note = "everyone: any account, anonymous callers too; only the conditions narrow it"
        return PrincipalReport(entry, "everyone", "", note, ())
    if entry.kind == "service":
        note = (
            "a service principal: the trust policy alone grants (services have no identity "
            "policies)"
        )
        return PrincipalReport(entry, "service", "", note, ())
    if entry.kind == "federated":
        known = any(
            entry.value in (*a.oidc_providers, *a.saml_providers) for a in world.accounts.values()
        )
        where = "" if known or not entry.value.startswith("arn:") else " (not in this world)"
        note = (
            "callers federated by this provider, through AssumeRoleWithWebIdentity or "
            f"AssumeRoleWithSAML{where}: the trust policy alone grants"
        )
        return PrincipalReport(entry, "federated", "", note, ())
    if entry.kind == "canonical-user":
        return PrincipalReport(
            entry, "canonical-user", "", "an S3 canonical user: never matches here", ()
        )
    return _aws_principal(world, role, entry, checker)


def _aws_principal(
    world: World, role: Role, entry: PrincipalEntry, checker: AssumeChecker
) -> PrincipalReport:
    value = entry.value
    same = "in the role's account"
    if value == "*":
        note = "everyone: any account, anonymous callers too; only the conditions narrow it"
        return PrincipalReport(entry, "everyone", "", note, ())
    parts = value.split(":", 5)
    if _ACCOUNT_ID.fullmatch(value) or (len(parts) == 6 and parts[5] == "root"):
        account = value if _ACCOUNT_ID.fullmatch(value) else parts[4]
        acct = world.accounts.get(account)
        found: list[User | Role] = []
        if acct is not None:
            found = [*acct.users.values(), *acct.roles.values()]
        note = (
            "the account delegates: each of its identities needs its own allow of "
            "sts:AssumeRole on this role"
            + ("" if acct is not None else " (the account is not in this world)")
        )
        return PrincipalReport(entry, "account", account, note, _verdicts(checker, found))
    if len(parts) == 6 and parts[2] == "iam":
        kind, _, rest = parts[5].partition("/")
        name = rest.rsplit("/", 1)[-1]
        account = parts[4]
        acct = world.accounts.get(account)
        match: User | Role | None = None
        if acct is not None and kind in ("user", "role"):
            table = acct.users if kind == "user" else acct.roles
            candidate = table.get(name.lower())
            match = candidate if candidate is not None and candidate.name == name else None
        if account == role.account and kind == "user":
            note = f"a user {same}, named by ARN: the trust policy alone grants"
        elif account == role.account and kind == "role":
            note = (
                f"a role {same}, named by ARN: the trust policy grants as an identity policy "
                "would; the caller role's permissions boundary must still allow sts:AssumeRole"
            )
        else:
            note = f"a {kind} of another account: its own policies must also allow sts:AssumeRole"
        return PrincipalReport(
            entry, kind, account, note, _verdicts(checker, [match] if match else [])
        )
    if len(parts) == 6 and parts[2] == "sts":
        kind = parts[5].partition("/")[0]
        label = "role-session" if kind == "assumed-role" else "federated-user"
        note = "one session of a role only" if label == "role-session" else "a federated user"
        return PrincipalReport(entry, label, parts[4], note, ())
    # A unique id (AROA…, AIDA…) names the role or user that has it.
    for acct in world.accounts.values():
        identities: list[User | Role] = [*acct.users.values(), *acct.roles.values()]
        for ident in identities:
            uid = ident.user_id if isinstance(ident, User) else ident.role_id
            if uid == value:
                note = f"the unique id of {ident.arn}"
                found_one = _verdicts(checker, [ident])
                return PrincipalReport(entry, "unique-id", acct.account_id, note, found_one)
    return PrincipalReport(entry, "unique-id", "", "a unique id of no identity in this world", ())


def _verdicts(checker: AssumeChecker, identities: list[User | Role]) -> tuple[Verdict, ...]:
    ordered = sorted(identities, key=lambda i: (isinstance(i, Role), i.arn))
    return tuple(checker.verdict(i) for i in ordered)
