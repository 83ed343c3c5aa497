"""An account's users, with their access keys and MFA devices (credentials.py)."""

from __future__ import annotations

from types import MappingProxyType

from sidecar.identity.ids import user_id
from sidecar.identity.load.credentials import read_access_key, read_mfa_device
from sidecar.identity.load.naming import claim_name, entity_name, iam_arn, iam_path, tags
from sidecar.identity.load.policies import attachments, inline_policies
from sidecar.identity.load.state import AccountParts, Loader
from sidecar.identity.model import User

USER_INLINE_LIMIT = 2048  # sum of a user's inline policies, whitespace not counted

_USER_KEYS = (
    "name", "path", "inline_policies", "managed_policy_arns", "permissions_boundary", "tags",
    "access_keys", "mfa_devices",
)  # fmt: skip


def read_user(
    ld: Loader, value: object, path: str, acct: AccountParts, account_id: str | None
) -> None:
    m = ld.fields(value, path, _USER_KEYS, ("name",))
    if m is None:
        return
    name = entity_name(ld, m, path, "user", 64)
    user_path = iam_path(ld, m, path)
    if name is not None and not claim_name(ld, acct.user_names, name, path, "user", "user names"):
        name = None
    inline = inline_policies(ld, m, path, f"user {m.get('name')}", USER_INLINE_LIMIT)
    managed, boundary = attachments(ld, m, path, account_id, "PoliciesPerUser")
    user_tags = tags(ld, m, path)
    keys = [read_access_key(ld, item, where) for item, where in ld.each(m, "access_keys", path)]
    devices = [
        read_mfa_device(ld, item, where, acct) for item, where in ld.each(m, "mfa_devices", path)
    ]
    if name is None or inline is None:
        return
    acct.users[name.lower()] = User(
        account=acct.account_id,
        name=name,
        path=user_path,
        arn=iam_arn(ld.partition, acct.account_id, "user", name, user_path),
        user_id=user_id(ld.partition, acct.account_id, name),
        inline_policies=MappingProxyType(inline),
        managed_policy_arns=managed,
        permissions_boundary=boundary,
        tags=MappingProxyType(user_tags),
        access_keys=tuple(k for k in keys if k is not None),
        mfa_devices=tuple(d for d in devices if d is not None),
    )
