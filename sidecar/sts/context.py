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
from sidecar.policy.key_owners import caller_may_give, spelling
from sidecar.sts.clock import iso8601
from sidecar.sts.session import Session


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
