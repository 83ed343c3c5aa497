"""Who is asking, and how a policy's Principal / NotPrincipal names them (docs/SEMANTICS.md §2.3).

The strength of a match matters to evaluation (§5.2): a grant naming the session, the user, a
service, a federated provider or everyone is DIRECT; one naming the role (ARN or unique id) is
ROLE-level, still capped by the boundary and session policies; one naming the account only
delegates (ACCOUNT). Names compare case-sensitively and accounts exactly (§2.3); the role path
in a policy ARN is ignored when matching a session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from sidecar.policy.model import PrincipalBlock

# Web identity providers AWS knows without an IAM OIDC provider (STS API:
# AssumeRoleWithWebIdentity; UG: AWS global condition context keys, aws:FederatedProvider).
BUILT_IN_PROVIDERS = (
    "accounts.google.com",
    "cognito-identity.amazonaws.com",
    "graph.facebook.com",
    "www.amazon.com",
)


class PrincipalType(StrEnum):
    """Values of aws:PrincipalType."""

    USER = "User"
    ASSUMED_ROLE = "AssumedRole"
    ROLE = "Role"  # a role named by its ARN (SimulateCustomPolicy callers)
    FEDERATED_USER = "FederatedUser"
    ACCOUNT = "Account"
    SERVICE = "Service"  # a mesh service principal
    WEB_IDENTITY = "WebIdentityUser"
    SAML = "SAMLUser"
    ANONYMOUS = "Anonymous"


class Match(IntEnum):
    NONE = 0
    ACCOUNT = 1
    ROLE = 2
    DIRECT = 3


@dataclass(frozen=True, slots=True)
class RequestPrincipal:
    """The principal making a request, with every name a policy may use for it."""

    type: PrincipalType
    arn: str  # the request principal ARN (the session ARN for a role session)
    account: str = ""
    partition: str = "aws"
    name: str = ""  # user name, role name, federated user name, service name
    session_name: str = ""
    unique_id: str = ""  # AIDA... for users, AROA... for roles
    identity_arn: str = ""  # aws:PrincipalArn: the user or role ARN (path included)
    federated_provider: str = ""  # for web identity and SAML principals
    aliases: tuple[str, ...] = field(default=())  # further names, e.g. a service's SPIFFE id

    @property
    def is_anonymous(self) -> bool:
        return self.type is PrincipalType.ANONYMOUS

    @property
    def has_identity_policies(self) -> bool:
        """Services, federated users before they assume a role, and anonymous callers have no
        identity policies: only a resource policy naming them can grant them anything."""
        return self.type not in _NO_IDENTITY


_NO_IDENTITY = frozenset(
    {PrincipalType.ANONYMOUS, PrincipalType.SERVICE, PrincipalType.WEB_IDENTITY, PrincipalType.SAML}
)


ANONYMOUS = RequestPrincipal(type=PrincipalType.ANONYMOUS, arn="", account="anonymous")

_ARN = re.compile(r"^arn:([^:]+):(iam|sts)::(\d{12}):(.+)\Z")
_ACCOUNT = re.compile(r"^\d{12}\Z")


def principal_from_arn(arn: str) -> RequestPrincipal | None:
    """A request principal for a caller ARN (user, role, session, federated user, root)."""
    m = _ARN.match(arn)
    if m is None:
        return None
    partition, service, account, resource = m.groups()
    kind, _, rest = resource.partition("/")
    if service == "iam":
        if resource == "root":
            return RequestPrincipal(
                PrincipalType.ACCOUNT, arn, account, partition, identity_arn=arn
            )
        if kind in ("user", "role") and rest:
            name = rest.rsplit("/", 1)[-1]
            ptype = PrincipalType.USER if kind == "user" else PrincipalType.ROLE
            return RequestPrincipal(ptype, arn, account, partition, name=name, identity_arn=arn)
        return None
    if kind == "assumed-role":
        role, _, session = rest.partition("/")
        if not role or not session or "/" in session:
            return None
        return RequestPrincipal(
            PrincipalType.ASSUMED_ROLE,
            arn,
            account,
            partition,
            name=role,
            session_name=session,
            identity_arn=f"arn:{partition}:iam::{account}:role/{role}",
        )
    if kind == "federated-user" and rest:
        return RequestPrincipal(
            PrincipalType.FEDERATED_USER, arn, account, partition, name=rest, identity_arn=arn
        )
    return None


def _aws_entry_match(entry: str, p: RequestPrincipal) -> Match:
    """How one `AWS` principal entry names the request principal."""
    if p.is_anonymous:
        return Match.NONE
    if _ACCOUNT.match(entry):
        return Match.ACCOUNT if entry == p.account else Match.NONE
    if not entry.startswith("arn:"):
        # A unique id: AROA... names the role, AIDA... the user.
        if p.unique_id and entry == p.unique_id:
            return (
                Match.ROLE
                if p.type in (PrincipalType.ASSUMED_ROLE, PrincipalType.ROLE)
                else Match.DIRECT
            )
        return Match.NONE
    parts = entry.split(":", 5)
    if len(parts) != 6 or parts[1] != p.partition or parts[4] != p.account:
        return Match.NONE
    service, resource = parts[2], parts[5]
    if service == "iam":
        if resource == "root":
            return Match.ACCOUNT
        kind, _, rest = resource.partition("/")
        name = rest.rsplit("/", 1)[-1]
        if kind == "role" and p.type in (PrincipalType.ASSUMED_ROLE, PrincipalType.ROLE):
            return Match.ROLE if name == p.name else Match.NONE
        if kind == "user" and p.type is PrincipalType.USER:
            return Match.DIRECT if name == p.name else Match.NONE
        return Match.NONE
    if service == "sts":
        kind, _, rest = resource.partition("/")
        if kind == "assumed-role" and p.type is PrincipalType.ASSUMED_ROLE:
            return Match.DIRECT if rest == f"{p.name}/{p.session_name}" else Match.NONE
        if kind == "federated-user" and p.type is PrincipalType.FEDERATED_USER:
            return Match.DIRECT if rest == p.name else Match.NONE
    return Match.NONE


def match_principal(block: PrincipalBlock, p: RequestPrincipal) -> Match:
    """The strongest way ``block`` names ``p``."""
    if block.wildcard:
        return Match.DIRECT
    best = Match.NONE
    for entry in block.aws:
        m = _aws_entry_match(entry, p)
        if m > best:
            best = m
            if best is Match.DIRECT:
                return best
    if p.type is PrincipalType.SERVICE and (
        p.name in block.service or any(a in block.service for a in p.aliases)
    ):
        return Match.DIRECT
    if p.federated_provider and p.federated_provider in block.federated:
        return Match.DIRECT
    return best


def in_not_principal(block: PrincipalBlock, p: RequestPrincipal) -> bool:
    """Is ``p`` listed in a NotPrincipal element? Its session ARN, its role or user ARN, or its
    account all count (docs/SEMANTICS.md §2.4); an anonymous caller is listed only by `*`."""
    return block.wildcard or match_principal(block, p) is not Match.NONE
