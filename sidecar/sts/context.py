"""The request context: which keys a caller may give, and the keys the sidecar fills in for a
principal.

A caller of Authorize states facts about the request only: what it asks and what it targets.
Every key that describes the principal, its session, its organization or the network connection
belongs to the sidecar, which sets it or leaves it absent; a caller that sends one is refused.
docs/CONDITION-KEYS.md lists every global condition key with its source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sidecar.errors import ValidationError
from sidecar.identity.model import Organization, Role, User
from sidecar.policy.context import Context
from sidecar.sts.clock import iso8601
from sidecar.sts.session import Session

# The global keys a caller may give (AWS spelling; compared lowercased): the request and its
# target. Every other ``aws:`` key is the sidecar's, known or not.
CALLER_GLOBAL_KEYS = (
    "aws:RequestedRegion",
    "aws:TagKeys",
    "aws:UserAgent",
    "aws:referer",
    "aws:SourceArn",
    "aws:SourceAccount",
)
CALLER_GLOBAL_PREFIXES = ("aws:RequestTag/", "aws:ResourceTag/")

# Service-prefixed keys that AWS lists among the properties of a role session: they describe
# where the credentials were delivered, so a caller cannot state them.
SESSION_SERVICE_KEYS = (
    "ec2:RoleDelivery",
    "ec2:SourceInstanceArn",
    "glue:RoleAssumedBy",
    "glue:CredentialIssuingService",
    "codebuild:BuildArn",
    "codebuild:ProjectArn",
    "lambda:SourceFunctionArn",
    "ssm:SourceInstanceArn",
    "identitystore:UserId",
)
# Prefixes only the sidecar sets: STS's own keys and SAML's. Each identity provider's prefix
# (``accounts.google.com:``, an OIDC issuer) is added per world by the caller of CallerKeys.
SIDECAR_PREFIXES = ("aws:", "sts:", "saml:")

# The other global keys AWS lists ("AWS global condition context keys"), for naming a refused
# key in AWS's spelling; prefix families end with "/".
# fmt: off
SIDECAR_GLOBAL_KEYS = (
    # properties of the principal
    "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalOrgPaths", "aws:PrincipalOrgID",
    "aws:PrincipalTag/", "aws:PrincipalIsAWSService", "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:userid", "aws:username",
    # properties of a role session
    "aws:AssumedRoot", "aws:FederatedProvider", "aws:TokenIssueTime", "aws:SignInSessionArn",
    "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:ChatbotSourceArn",
    "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4", "aws:SourceIdentity",
    # properties of the network
    "aws:SourceIp", "aws:SourceVpc", "aws:SourceVpcArn", "aws:SourceVpce", "aws:VpceAccount",
    "aws:VpceOrgID", "aws:VpceOrgPaths", "aws:VpcSourceIp",
    # properties of the resource (its tags excepted)
    "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
    # properties of the request that the caller does not state
    "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CalledViaAWSMCP",
    "aws:ViaAWSService", "aws:ViaAWSMCPService", "aws:CurrentTime", "aws:EpochTime",
    "aws:SecureTransport", "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:IsMcpServiceAction",
)
# fmt: on

_CALLER_KEYS = frozenset(k.lower() for k in CALLER_GLOBAL_KEYS)
_CALLER_PREFIXES = tuple(p.lower() for p in CALLER_GLOBAL_PREFIXES)
_SESSION_SERVICE_KEYS = frozenset(k.lower() for k in SESSION_SERVICE_KEYS)
_SPELLING = {k.lower(): k for k in (*SIDECAR_GLOBAL_KEYS, *SESSION_SERVICE_KEYS)}


def caller_may_give(key: str, federated_prefixes: tuple[str, ...] = ()) -> bool:
    """May a caller set this context key? ``federated_prefixes`` are the identity providers'
    lowercase key prefixes with their colon (``accounts.google.com:``)."""
    k = key.lower()
    if k.startswith("aws:"):
        return k in _CALLER_KEYS or k.startswith(_CALLER_PREFIXES)
    if k in _SESSION_SERVICE_KEYS or k.startswith(SIDECAR_PREFIXES):
        return False
    return not k.startswith(federated_prefixes)


def spelling(key: str) -> str:
    """A key as AWS spells it where it is a known one (context keys are stored lowercased)."""
    k = key.lower()
    exact = _SPELLING.get(k)
    if exact is not None:
        return exact
    slash = k.find("/")
    family = _SPELLING.get(k[: slash + 1]) if slash > 0 else None
    return family + key[slash + 1 :] if family is not None else key


def refuse_key(key: str) -> ValidationError:
    return ValidationError(
        f"The context key {spelling(key)} is reserved for the sidecar and cannot be given by"
        " the caller: a caller may give only keys that describe the request or its target.",
        location="context",
    )


def check_caller_keys(context: Context, federated_prefixes: tuple[str, ...] = ()) -> None:
    """Refuse (ValidationError naming it) the first key a caller may not give."""
    for key in context.values:
        if not caller_may_give(key, federated_prefixes):
            raise refuse_key(key)


class CallerKeys:
    """check_caller_keys for one world, remembering the keys it accepted: the check runs on
    every Authorize with a context, cache hits included, and callers reuse a few key names.
    The memory is bounded, so a caller inventing names cannot grow it."""

    __slots__ = ("_accepted", "_limit", "federated_prefixes")

    def __init__(self, federated_prefixes: Iterable[str] = (), *, limit: int = 4096) -> None:
        self.federated_prefixes = tuple(p.lower() for p in federated_prefixes)
        self._accepted: set[str] = set()
        self._limit = limit

    def check(self, context: Context) -> None:
        accepted = self._accepted
        for key in context.values:
            if key in accepted:
                continue
            if not caller_may_give(key, self.federated_prefixes):
                raise refuse_key(key)
            if len(accepted) < self._limit:
                accepted.add(key)


def merge_tags(*layers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Later layers win; keys compare case-insensitively and keep the winner's case."""
    by_lower: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for key, value in layer:
            by_lower[key.lower()] = (key, value)
    return dict(by_lower.values())


def clock_context(ctx: Context, now: float) -> None:
    """aws:CurrentTime and aws:EpochTime at ``now``."""
    ctx.set("aws:CurrentTime", iso8601(now))
    ctx.set("aws:EpochTime", str(int(now)))


def direct_call_context(ctx: Context, *, aws_service: bool = False) -> None:
    """Keys AWS puts on every signed request: whether the principal is a service, and that the
    call did not come through another service on the principal's behalf (callers reach the
    sidecar directly)."""
    ctx.set("aws:PrincipalIsAWSService", "true" if aws_service else "false")
    ctx.set("aws:ViaAWSService", "false")


def principal_tags(session: Session, role: Role | None) -> dict[str, str]:
    """Role tags, then the session's tags (inherited transitive ones included)."""
    role_tags = role.tags.items() if role is not None else ()
    return merge_tags(role_tags, session.tags)


def session_context(ctx: Context, session: Session, role: Role | None, now: float) -> Context:
    """Fill ``ctx`` with the keys of a role-session request (overriding what is there)."""
    role_arn = role.arn if role is not None else session.role_arn
    ctx.set("aws:PrincipalArn", role_arn)
    ctx.set("aws:PrincipalAccount", session.account)
    ctx.set("aws:userid", session.assumed_role_id)
    ctx.set("aws:PrincipalType", "AssumedRole")
    ctx.set("aws:TokenIssueTime", iso8601(session.issued_at))
    clock_context(ctx, now)
    direct_call_context(ctx)
    mfa = session.mfa_authenticated_at
    ctx.set("aws:MultiFactorAuthPresent", "true" if mfa is not None else "false")
    if mfa is not None:
        ctx.set("aws:MultiFactorAuthAge", str(max(0, int(now) - mfa)))
    for key, value in principal_tags(session, role).items():
        ctx.set(f"aws:PrincipalTag/{key}", value)
    if session.source_identity:
        ctx.set("aws:SourceIdentity", session.source_identity)
    if session.federated_provider:
        ctx.set("aws:FederatedProvider", session.federated_provider)
    for key, values in session.federated_claims:
        # amr is multivalued by nature (authenticated + the provider), even with one value.
        if len(values) == 1 and not key.lower().endswith(":amr"):
            ctx.set(key, values[0])
        else:
            ctx.set_multi(key, values)
    return ctx


def user_context(ctx: Context, user: User, now: float) -> Context:
    """Keys of a request signed with a user's long-term key (no MFA keys: they are absent)."""
    ctx.set("aws:PrincipalArn", user.arn)
    ctx.set("aws:PrincipalAccount", user.account)
    ctx.set("aws:userid", user.user_id)
    ctx.set("aws:username", user.name)
    ctx.set("aws:PrincipalType", "User")
    clock_context(ctx, now)
    direct_call_context(ctx)
    for key, value in user.tags.items():
        ctx.set(f"aws:PrincipalTag/{key}", value)
    return ctx


def service_context(ctx: Context, service_name: str, now: float) -> Context:
    ctx.set("aws:PrincipalServiceName", service_name)
    clock_context(ctx, now)
    direct_call_context(ctx, aws_service=True)
    return ctx


def org_context(
    ctx: Context,
    org: Organization | None,
    principal_account: str | None,
    resource_account: str | None = None,
) -> Context:
    """The keys only the world can tell: aws:ResourceAccount when the resource's owner is
    known, and the organization keys of the principal's and the resource's accounts when they
    are members (docs/ORGANIZATIONS.md). Keys the world does not tell stay absent."""
    if resource_account:
        ctx.set("aws:ResourceAccount", resource_account)
    if org is None:
        return ctx
    member = org.member(principal_account)
    if member is not None:
        ctx.set("aws:PrincipalOrgID", org.org_id)
        ctx.set_multi("aws:PrincipalOrgPaths", (member.org_path,))
    member = org.member(resource_account)
    if member is not None:
        ctx.set("aws:ResourceOrgID", org.org_id)
        ctx.set_multi("aws:ResourceOrgPaths", (member.org_path,))
    return ctx


def transport_context(ctx: Context, transport: Mapping[str, str]) -> Context:
    """aws:SourceIp / aws:SecureTransport as the server saw the connection."""
    for key, value in transport.items():
        ctx.set(key, value)
    return ctx
