"""The world model: what the world file describes, validated and compiled.

Everything here is immutable once built; a reload builds a new World and the engine swaps the
whole snapshot at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sidecar.policy.compile import CompiledPolicy


@dataclass(frozen=True, slots=True)
class ManagedPolicy:
    arn: str
    name: str
    path: str
    policy_id: str  # ANPA...
    document: CompiledPolicy
    text: str  # the document as compact JSON (session PolicyArns count its size)


@dataclass(frozen=True, slots=True)
class Role:
    account: str
    name: str
    path: str
    arn: str
    role_id: str  # AROA..., stable for the same account and name
    trust_policy: CompiledPolicy
    inline_policies: Mapping[str, CompiledPolicy]
    managed_policy_arns: tuple[str, ...]
    permissions_boundary: str | None
    tags: Mapping[str, str]
    max_session_duration: int = 3600
    description: str = ""


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str  # AKIA...
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MfaDevice:
    serial_number: str  # arn:aws:iam::ACCT:mfa/NAME
    seed: bytes = field(repr=False)  # the TOTP secret (RFC 6238)


@dataclass(frozen=True, slots=True)
class User:
    account: str
    name: str
    path: str
    arn: str
    user_id: str  # AIDA...
    inline_policies: Mapping[str, CompiledPolicy]
    managed_policy_arns: tuple[str, ...]
    permissions_boundary: str | None
    tags: Mapping[str, str]
    access_keys: tuple[AccessKey, ...] = ()
    mfa_devices: tuple[MfaDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class OidcProvider:
    account: str
    url: str  # the issuer, https://...
    arn: str  # arn:aws:iam::ACCT:oidc-provider/<host/path>
    client_ids: tuple[str, ...]
    jwks_file: str = ""
    jwks_url: str = ""

    @property
    def key_prefix(self) -> str:
        """Condition-key prefix: the issuer without https:// (e.g. `host/path:sub`)."""
        return self.arn.split("oidc-provider/", 1)[1]


@dataclass(frozen=True, slots=True)
class SamlProvider:
    account: str
    name: str
    arn: str  # arn:aws:iam::ACCT:saml-provider/NAME
    metadata_file: str
    recipient: str = "https://signin.aws.amazon.com/saml"
    audience: str = "urn:amazon:webservices"


@dataclass(frozen=True, slots=True)
class ResourcePolicy:
    account: str
    resource: str  # an ARN pattern: the resources this policy is attached to
    document: CompiledPolicy


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    managed_policies: Mapping[str, ManagedPolicy]  # by ARN
    roles: Mapping[str, Role]  # by lowercased name (names are case-insensitively unique)
    users: Mapping[str, User]  # by lowercased name
    oidc_providers: Mapping[str, OidcProvider]  # by ARN
    saml_providers: Mapping[str, SamlProvider]  # by ARN
    resource_policies: tuple[ResourcePolicy, ...] = ()


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    name: str  # e.g. orders.mesh.local
    spiffe_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PodIdentityAssociation:
    namespace: str
    service_account: str
    role_arn: str


@dataclass(frozen=True, slots=True)
class PodIdentity:
    issuer: str
    audience: str
    cluster_name: str
    associations: tuple[PodIdentityAssociation, ...]
    cluster_arn: str = ""  # the eks-cluster-arn session tag and aws:SourceArn, when given
    duration_seconds: int = 3600  # of each session issued to a pod


@dataclass(frozen=True, slots=True)
class OrgLevel:
    """One level of an account's path in the organization: the root, an OU or the account, with
    the SCPs and RCPs attached there (RCPFullAWSAccess left out: it allows everything)."""

    target_id: str  # r-..., ou-... or the account id
    scps: tuple[CompiledPolicy, ...]
    rcps: tuple[CompiledPolicy, ...]


@dataclass(frozen=True, slots=True)
class OrgMember:
    """An account in the organization: its levels, root first and the account last."""

    account: str
    levels: tuple[OrgLevel, ...]
    org_path: str  # aws:PrincipalOrgPaths form: o-.../r-.../ou-.../ (down to its parent)

    @property
    def scp_levels(self) -> tuple[tuple[CompiledPolicy, ...], ...]:
        return tuple(level.scps for level in self.levels)

    @property
    def rcps(self) -> tuple[CompiledPolicy, ...]:
        return tuple(p for level in self.levels for p in level.rcps)


@dataclass(frozen=True, slots=True)
class Organization:
    org_id: str  # o-...
    management_account: str
    root_id: str  # r-...
    members: Mapping[str, OrgMember]  # by account id; accounts not here are outside

    def member(self, account: str | None) -> OrgMember | None:
        return self.members.get(account) if account else None

    def guarded(self, account: str | None) -> OrgMember | None:
        """The member whose SCPs and RCPs apply: None for the management account (exempt)
        and for accounts outside the organization."""
        if account == self.management_account:
            return None
        return self.member(account)


@dataclass(frozen=True, slots=True)
class World:
    """Everything the world file describes, resolved and indexed."""

    partition: str
    accounts: Mapping[str, Account]
    service_principals: tuple[ServicePrincipal, ...] = ()
    pod_identity: PodIdentity | None = None
    ext_authz: Mapping[str, object] | None = None  # interpreted by the server's ext_authz
    signing_keys_file: str = ""
    generation: int = 0  # increases with every successful reload
    # Indexes built once: ARN -> entity.
    roles_by_arn: Mapping[str, Role] = field(default_factory=dict)
    users_by_arn: Mapping[str, User] = field(default_factory=dict)
    access_keys: Mapping[str, tuple[User, AccessKey]] = field(default_factory=dict)
    services_by_spiffe: Mapping[str, ServicePrincipal] = field(default_factory=dict)
    organization: Organization | None = None

    def role(self, arn: str) -> Role | None:
        """A role by ARN; the path in ``arn`` must be the role's path."""
        return self.roles_by_arn.get(arn)

    def role_by_name(self, account: str, name: str) -> Role | None:
        acct = self.accounts.get(account)
        return acct.roles.get(name.lower()) if acct else None

    def managed_policy(self, arn: str) -> ManagedPolicy | None:
        parts = arn.split(":", 5)
        acct = self.accounts.get(parts[4]) if len(parts) == 6 else None
        return acct.managed_policies.get(arn) if acct else None
