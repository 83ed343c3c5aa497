"""The second pass: references that need the whole world, noted by the first pass in the
Loader (attached managed policies and boundaries, principals of trust and resource policies)."""

from __future__ import annotations

from sidecar.identity.load.state import Loader
from sidecar.policy.arn import Arn


def check_references(ld: Loader) -> None:
    for path, owner, arn in ld.policy_refs:
        account = ld.managed_arns.get(arn)
        if account is None:
            ld.issue(path, f"no managed policy {arn}")
        elif account != owner:
            ld.issue(path, f"managed policy {arn} belongs to another account")
    for path, label, arn in ld.principal_refs:
        if not _principal_exists(ld, label, arn):
            message = f'Invalid principal in policy: "{label}":"{arn}"'
            ld.issue(path, f"MalformedPolicyDocument: {message}")


def _principal_exists(ld: Loader, label: str, arn: str) -> bool:
    """Does a principal ARN name an entity of the world? Only ARNs in accounts the world
    defines can be checked; role and user names compare exactly, paths ignored."""
    parsed = Arn.parse(arn)
    if parsed is None or parsed.partition != ld.partition or parsed.service != "iam":
        return True
    acct = ld.accounts.get(parsed.account)
    if acct is None:
        return True
    kind, _, rest = parsed.resource.partition("/")
    name = rest.rsplit("/", 1)[-1]
    if label == "AWS" and kind == "role":
        return acct.role_names.get(name.lower()) == name
    if label == "AWS" and kind == "user":
        return acct.user_names.get(name.lower()) == name
    if label == "FEDERATED" and kind in ("oidc-provider", "saml-provider"):
        return arn in acct.provider_arns
    return True
