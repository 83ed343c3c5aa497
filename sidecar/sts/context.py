"""The request context the sidecar fills in for a principal (PRODUCT.md §3.2, IAM-SEMANTICS §6).

Callers of Authorize may add their own keys (``s3:prefix``, ``aws:RequestTag/...``), but never
the keys below: those describe who is asking and when, and only the sidecar may set them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sidecar.identity.model import Role, User
from sidecar.policy.context import Context
from sidecar.sts.clock import iso8601
from sidecar.sts.session import Session

RESERVED_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:PrincipalArn",
        "aws:PrincipalAccount",
        "aws:userid",
        "aws:username",
        "aws:PrincipalType",
        "aws:TokenIssueTime",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:MultiFactorAuthPresent",
        "aws:MultiFactorAuthAge",
        "aws:SourceIdentity",
        "aws:FederatedProvider",
        "aws:SourceIp",
        "aws:SecureTransport",
        "aws:PrincipalServiceName",
        "aws:PrincipalIsAWSService",
    )
)
RESERVED_PREFIXES = ("aws:principaltag/", "saml:", "sts:")


def is_reserved(key: str, federated_prefixes: Iterable[str] = ()) -> bool:
    """May a caller not set this key? Federated prefixes are the identity providers' keys
    (e.g. ``kubernetes.default.svc:``), which only a federated session carries."""
    k = key.lower()
    if k in RESERVED_KEYS or k.startswith(RESERVED_PREFIXES):
        return True
    return any(k.startswith(p) for p in federated_prefixes)


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
    for key, value in user.tags.items():
        ctx.set(f"aws:PrincipalTag/{key}", value)
    return ctx


def service_context(ctx: Context, service_name: str, now: float) -> Context:
    ctx.set("aws:PrincipalServiceName", service_name)
    clock_context(ctx, now)
    return ctx


def transport_context(ctx: Context, transport: Mapping[str, str]) -> Context:
    """aws:SourceIp / aws:SecureTransport as the server saw the connection."""
    for key, value in transport.items():
        ctx.set(key, value)
    return ctx
