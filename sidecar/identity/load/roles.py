"""An account's roles."""

from __future__ import annotations

from types import MappingProxyType

from sidecar.identity.ids import role_id
from sidecar.identity.load.naming import claim_name, entity_name, iam_arn, iam_path, tags
from sidecar.identity.load.policies import attachments, document, inline_policies
from sidecar.identity.load.state import AccountParts, Loader
from sidecar.identity.load.toolkit import at
from sidecar.identity.model import Role
from sidecar.policy.compile import compile_policy
from sidecar.policy.model import PolicyKind

ROLE_INLINE_LIMIT = 10240  # sum of a role's inline policies, whitespace not counted
MAX_DESCRIPTION = 1000
MIN_SESSION, MAX_SESSION = 3600, 43200
TRUST_POLICY_ID = "TrustPolicy"

_ROLE_KEYS = (
    "name", "path", "description", "max_session_duration", "trust_policy", "inline_policies",
    "managed_policy_arns", "permissions_boundary", "tags",
)  # fmt: skip


def read_role(
    ld: Loader, value: object, path: str, acct: AccountParts, account_id: str | None
) -> None:
    m = ld.fields(value, path, _ROLE_KEYS, ("name", "trust_policy"))
    if m is None:
        return
    name = entity_name(ld, m, path, "role", 64)
    role_path = iam_path(ld, m, path)
    arn = ""
    if name is not None:
        if not claim_name(ld, acct.role_names, name, path, "role", "role names"):
            name = None
        else:
            arn = iam_arn(ld.partition, acct.account_id, "role", name, role_path)
            if account_id is not None:
                ld.role_arns[(account_id, name.lower())] = arn
    description = ld.string(m, "description", path) or ""
    if len(description) > MAX_DESCRIPTION:
        ld.issue(
            at(path, "description"),
            f"description is {len(description)} characters (at most {MAX_DESCRIPTION})",
        )
    duration = m.get("max_session_duration", MIN_SESSION)
    if (
        not isinstance(duration, int)
        or isinstance(duration, bool)
        or not MIN_SESSION <= duration <= MAX_SESSION
    ):
        ld.issue(
            at(path, "max_session_duration"),
            f"max_session_duration must be an integer from {MIN_SESSION} to {MAX_SESSION} "
            f"seconds, got {duration!r}",
        )
    trust = (
        document(ld, m["trust_policy"], at(path, "trust_policy"), PolicyKind.TRUST, TRUST_POLICY_ID)
        if "trust_policy" in m
        else None
    )
    inline = inline_policies(ld, m, path, f"role {m.get('name')}", ROLE_INLINE_LIMIT)
    managed, boundary = attachments(ld, m, path, account_id, "PoliciesPerRole")
    role_tags = tags(ld, m, path)
    if name is None or trust is None or inline is None:
        return
    acct.roles[name.lower()] = Role(
        account=acct.account_id,
        name=name,
        path=role_path,
        arn=arn,
        role_id=role_id(ld.partition, acct.account_id, name),
        trust_policy=compile_policy(trust.policy),
        inline_policies=MappingProxyType(inline),
        managed_policy_arns=managed,
        permissions_boundary=boundary,
        tags=MappingProxyType(role_tags),
        max_session_duration=duration,
        description=description,
    )
