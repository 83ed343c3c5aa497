"""One account of the world file, and the sections it holds, read in this order."""

from __future__ import annotations

from sidecar.identity.load.naming import valid_account_id
from sidecar.identity.load.policies import read_managed_policy, read_resource_policy
from sidecar.identity.load.providers import read_oidc_provider, read_saml_provider
from sidecar.identity.load.roles import read_role
from sidecar.identity.load.state import AccountParts, Loader
from sidecar.identity.load.toolkit import at
from sidecar.identity.load.users import read_user

_ACCOUNT_KEYS = (
    "id", "managed_policies", "roles", "users", "oidc_providers", "resource_policies",
    "saml_providers",
)  # fmt: skip


def read_account(ld: Loader, value: object, path: str) -> None:
    m = ld.fields(value, path, _ACCOUNT_KEYS, ("id",))
    if m is None:
        return
    account_id = valid_account_id(ld, m["id"], at(path, "id")) if "id" in m else None
    parts = AccountParts(account_id or "")
    if account_id is not None:
        if account_id in ld.accounts:
            ld.issue(
                at(path, "id"),
                f"duplicate account id '{account_id}' (also {ld.account_paths[account_id]})",
            )
            account_id = None  # checked, but references into it are not resolved
        else:
            ld.accounts[account_id] = parts
            ld.account_paths[account_id] = path
    for item, where in ld.each(m, "managed_policies", path):
        read_managed_policy(ld, item, where, parts, account_id)
    for item, where in ld.each(m, "roles", path):
        read_role(ld, item, where, parts, account_id)
    for item, where in ld.each(m, "users", path):
        read_user(ld, item, where, parts, account_id)
    for item, where in ld.each(m, "oidc_providers", path):
        read_oidc_provider(ld, item, where, parts)
    for item, where in ld.each(m, "saml_providers", path):
        read_saml_provider(ld, item, where, parts)
    for item, where in ld.each(m, "resource_policies", path):
        read_resource_policy(ld, item, where, parts)
