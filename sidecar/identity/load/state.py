"""What the loader knows while it reads the world file: the problems found (a Reader), and what
each section has declared so far. Later sections check against it (pod identity needs the
roles), and so does the second pass (references to managed policies and principals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.identity.load.toolkit import Reader
from sidecar.identity.model import (
    ManagedPolicy,
    OidcProvider,
    ResourcePolicy,
    Role,
    SamlProvider,
    User,
)

SecretSource = Callable[[str, str], str | None]
"""Looks a secret up: ``secrets("env", NAME)`` or ``secrets("file", PATH)``; None if absent."""


@dataclass(slots=True)
class AccountParts:
    """One account as the first pass found it: the entities built, and every name declared
    (also those of entities with errors, so that references to them are not reported too)."""

    account_id: str
    managed_policies: dict[str, ManagedPolicy] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    oidc_providers: dict[str, OidcProvider] = field(default_factory=dict)
    saml_providers: dict[str, SamlProvider] = field(default_factory=dict)
    resource_policies: list[ResourcePolicy] = field(default_factory=list)
    role_names: dict[str, str] = field(default_factory=dict)  # lowercased -> as written
    user_names: dict[str, str] = field(default_factory=dict)
    policy_names: dict[str, str] = field(default_factory=dict)
    provider_arns: set[str] = field(default_factory=set)  # OIDC and SAML
    mfa_serials: set[str] = field(default_factory=set)
    resources: set[str] = field(default_factory=set)  # resource-policy patterns


class Loader(Reader):
    def __init__(self, secrets: SecretSource) -> None:
        super().__init__()
        self.secrets = secrets
        self.partition = "aws"
        self.accounts: dict[str, AccountParts] = {}
        self.account_paths: dict[str, str] = {}
        self.managed_arns: dict[str, str] = {}  # every managed policy ARN -> its account
        self.role_arns: dict[tuple[str, str], str] = {}  # (account, lowercased name) -> ARN
        self.oidc_urls: set[str] = set()
        self.key_ids: dict[str, str] = {}  # access key id -> where it is first declared
        # Checked once the whole world is known: (path, account of the owner, policy ARN) ...
        self.policy_refs: list[tuple[str, str, str]] = []
        # ... and (path, principal type as IAM prints it, ARN) for trust and resource policies.
        self.principal_refs: list[tuple[str, str, str]] = []
