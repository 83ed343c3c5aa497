"""The world file, section by section: ``build_world`` reads the top-level keys in order, runs
the second pass, and only then assembles the World.

A new top-level section is a module with a ``read_<section>`` function (like
``read_pod_identity``: the Loader, the section's value and its path); it gets its key in
``_TOP_KEYS``, a call in ``_read`` (after the sections it refers to), a field in
``_WorldParts`` and its place in ``_assemble``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sidecar.errors import WorldError
from sidecar.identity.load.accounts import read_account
from sidecar.identity.load.ext_authz import read_ext_authz
from sidecar.identity.load.organization import read_organization
from sidecar.identity.load.pod_identity import read_pod_identity
from sidecar.identity.load.references import check_references
from sidecar.identity.load.services import read_service_principals
from sidecar.identity.load.signing import read_signing
from sidecar.identity.load.state import Loader, SecretSource
from sidecar.identity.model import (
    AccessKey,
    Account,
    Organization,
    PodIdentity,
    Role,
    ServicePrincipal,
    User,
    World,
)
from sidecar.policy.arn import PARTITIONS

_TOP_KEYS = (
    "partition",
    "accounts",
    "organization",
    "service_principals",
    "pod_identity",
    "ext_authz",
    "signing",
)


@dataclass(slots=True)
class _WorldParts:
    service_principals: list[ServicePrincipal]
    pod_identity: PodIdentity | None
    ext_authz: dict[str, object] | None
    signing_keys_file: str
    organization: Organization | None


def build_world(doc: Any, *, source: str, secrets: SecretSource, generation: int = 0) -> World:
    """Validate the parsed world file ``doc`` completely, then build the World.

    Raises WorldError naming ``source`` with every problem found.
    """
    ld = Loader(secrets)
    parts = _read(ld, doc)
    if parts is None or ld.issues:  # _read() reports why whenever it returns None
        raise WorldError(source, ld.issues)
    return _assemble(ld, parts, generation)


def _read(ld: Loader, doc: object) -> _WorldParts | None:
    if doc is None:
        ld.issue("", "the world file is empty")
        return None
    m = ld.fields(doc, "", _TOP_KEYS, ("accounts",))
    if m is None:
        return None
    partition = ld.string(m, "partition", "")
    if partition is not None:
        if partition in PARTITIONS:
            ld.partition = partition  # before the accounts: every ARN they build names it
        else:
            ld.issue(
                "partition",
                f"unknown partition {partition!r} (expected one of {', '.join(PARTITIONS)})",
            )
    for item, path in ld.each(m, "accounts", ""):
        read_account(ld, item, path)
    services = read_service_principals(ld, m, "")
    pod_identity = (
        read_pod_identity(ld, m["pod_identity"], "pod_identity") if "pod_identity" in m else None
    )
    ext_authz = read_ext_authz(ld, m["ext_authz"], "ext_authz") if "ext_authz" in m else None
    keys_file = read_signing(ld, m["signing"], "signing") if "signing" in m else ""
    organization = (
        read_organization(ld, m["organization"], "organization") if "organization" in m else None
    )
    check_references(ld)
    return _WorldParts(services, pod_identity, ext_authz, keys_file, organization)


def _assemble(ld: Loader, parts: _WorldParts, generation: int) -> World:
    accounts: dict[str, Account] = {}
    roles_by_arn: dict[str, Role] = {}
    users_by_arn: dict[str, User] = {}
    access_keys: dict[str, tuple[User, AccessKey]] = {}
    for account_id, acct in ld.accounts.items():
        accounts[account_id] = Account(
            account_id=account_id,
            managed_policies=MappingProxyType(acct.managed_policies),
            roles=MappingProxyType(acct.roles),
            users=MappingProxyType(acct.users),
            oidc_providers=MappingProxyType(acct.oidc_providers),
            saml_providers=MappingProxyType(acct.saml_providers),
            resource_policies=tuple(acct.resource_policies),
        )
        roles_by_arn.update((role.arn, role) for role in acct.roles.values())
        for user in acct.users.values():
            users_by_arn[user.arn] = user
            access_keys.update((key.access_key_id, (user, key)) for key in user.access_keys)
    services = tuple(parts.service_principals)
    return World(
        partition=ld.partition,
        accounts=MappingProxyType(accounts),
        service_principals=services,
        pod_identity=parts.pod_identity,
        ext_authz=parts.ext_authz,
        signing_keys_file=parts.signing_keys_file,
        generation=generation,
        roles_by_arn=MappingProxyType(roles_by_arn),
        users_by_arn=MappingProxyType(users_by_arn),
        access_keys=MappingProxyType(access_keys),
        services_by_spiffe=MappingProxyType({sid: sp for sp in services for sid in sp.spiffe_ids}),
        organization=parts.organization,
    )
