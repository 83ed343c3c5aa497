"""AssumeRoleWithWebIdentity (docs/SEMANTICS.md §6.3, §7.1-§7.5).

There is no AWS caller: the OIDC token is the credential. Checks run in this order, and the
first failure is returned:

1. shape of every parameter (ValidationError; the token itself is never echoed);
2. the token (InvalidIdentityToken, ExpiredTokenException, IDPCommunicationError), looked up
   among the OIDC providers of the role's account, then its AWS claims (session tags, source
   identity);
3. session policy syntax (MalformedPolicyDocument);
4. trust (AccessDenied, also when the role does not exist): the trust policy must name the
   provider as ``Federated`` and allow ``sts:AssumeRoleWithWebIdentity`` (plus
   ``sts:TagSession`` when the token carries session tags, ``sts:SetSourceIdentity`` when it
   carries a source identity) under the ``<host/path>:sub``/``:aud``/``:amr`` keys;
5. the role's MaxSessionDuration (never the 1-hour chaining cap) and the packed size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.errors import AccessDenied, InvalidIdentityToken
from sidecar.identity.model import Role, World
from sidecar.policy.context import Context
from sidecar.policy.principals import PrincipalType, RequestPrincipal
from sidecar.sts import validation as shape
from sidecar.sts.assume import (
    AssumeRoleResult,
    StsEnv,
    create_session,
    role_for,
    session_policies_for,
)
from sidecar.sts.context import clock_context, merge_tags
from sidecar.sts.federation.oidc import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_AGE,
    MAX_CHARS,
    MIN_CHARS,
    KeySource,
    ValidatedToken,
    validate_token,
)
from sidecar.sts.trust import (
    first_refusal,
    required_actions,
    role_account_guardrails,
    session_request_context,
)

ACTION = "sts:AssumeRoleWithWebIdentity"
DENIED = f"Not authorized to perform {ACTION}"
ORIGIN = "AssumeRoleWithWebIdentity"
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
# The provider keys that carry past the assume call onto the session (§6.1).
CARRIED_CLAIMS = ("amr", "aud", "id", "sub")


@dataclass(frozen=True, slots=True)
class WebIdentityParams:
    role_arn: str
    role_session_name: str
    web_identity_token: str = field(repr=False)
    provider_id: str = ""
    policy: str = ""
    policy_arns: tuple[str, ...] = ()
    duration_seconds: int = 0


@dataclass(frozen=True, slots=True)
class WebIdentityResult:
    result: AssumeRoleResult
    subject_from_web_identity_token: str  # the token's sub
    audience: str  # the client id: azp when it is one, else aud
    provider: str  # the token's iss (AWS: "the value of the iss field")

    @property
    def source_identity(self) -> str:
        return self.result.session.source_identity


@dataclass(frozen=True, slots=True)
class _AwsClaims:
    """What the token asks for on the session (from the https://aws.amazon.com/ claims)."""

    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str = ""


# -- shape --------------------------------------------------------------------------------------


def _check_shape(p: WebIdentityParams) -> None:
    v = shape.Violations()
    shape.check_role_arn(v, p.role_arn)
    shape.check_session_name(v, p.role_session_name)
    # WebIdentityToken is a sensitive member: AWS leaves its value out of the message.
    v.length(p.web_identity_token, "webIdentityToken", MIN_CHARS, MAX_CHARS, show=False)
    if p.provider_id:
        v.length(p.provider_id, "providerId", 4, 2048)
    shape.check_policy(v, p.policy)
    shape.check_policy_arns(v, p.policy_arns)
    shape.check_duration(v, p.duration_seconds)
    v.raise_if_any()


def _role_account(role_arn: str) -> str:
    parts = role_arn.split(":", 5)
    return parts[4] if len(parts) == 6 else ""


# -- the token's AWS claims ---------------------------------------------------------------------


def _bad_claim(detail: str) -> InvalidIdentityToken:
    return InvalidIdentityToken(
        f"The web identity token carries an invalid AWS claim: {detail}", reason="invalid_claim"
    )


def _aws_claims(claims: Mapping[str, Any]) -> _AwsClaims:
    """Session tags (``principal_tags`` with one-element lists as values, and
    ``transitive_tag_keys``) and the source identity, held to AssumeRole's rules."""
    raw = claims.get(TAGS_CLAIM)
    tags: list[tuple[str, str]] = []
    transitive: list[str] = []
    if raw is not None:
        principal = raw.get("principal_tags", {}) if isinstance(raw, dict) else None
        keys = raw.get("transitive_tag_keys", []) if isinstance(raw, dict) else None
        if not isinstance(principal, dict) or not isinstance(keys, list):
            raise _bad_claim(
                f"{TAGS_CLAIM} must be an object with principal_tags (an object) and "
                "transitive_tag_keys (a list)"
            )
        for key, value in principal.items():
            if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
                raise _bad_claim(
                    f"the value of principal tag {key[:128]!r} must be a list of one string"
                )
            tags.append((key, value[0]))
        if not all(isinstance(k, str) for k in keys):
            raise _bad_claim("transitive_tag_keys must be a list of strings")
        transitive = keys
        v = shape.Violations()
        shape.check_tags(v, tags, transitive, field="principal_tags")
        if v.items:
            raise _bad_claim("; ".join(v.items))
        lowered = [k.lower() for k, _ in tags]
        if len(set(lowered)) != len(lowered):
            raise _bad_claim("duplicate principal tag keys (tag keys are case insensitive)")
        if any(k.startswith("aws:") for k in lowered):
            raise _bad_claim("tag keys starting with 'aws:' are reserved for AWS use")
        missing = [k for k in transitive if k.lower() not in lowered]
        if missing:
            raise _bad_claim(f"transitive tag key {missing[0]!r} is not one of the principal tags")
    source_identity = claims.get(SOURCE_IDENTITY_CLAIM, "")
    if source_identity != "":
        ok = (
            isinstance(source_identity, str)
            and 2 <= len(source_identity) <= 64
            and shape.SESSION_NAME.fullmatch(source_identity) is not None
            and not source_identity.lower().startswith("aws:")
        )
        if not ok:
            raise _bad_claim(f"{SOURCE_IDENTITY_CLAIM} must be 2-64 characters of [\\w+=,.@-]")
    return _AwsClaims(tuple(tags), tuple(dict.fromkeys(transitive)), source_identity)


def provider_keys(token: ValidatedToken) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The ``<host/path>:claim`` condition keys of a validated token: ``:amr`` (when present),
    ``:aud`` (the client id that matched) and ``:sub``."""
    prefix = token.provider.key_prefix
    out: list[tuple[str, tuple[str, ...]]] = []
    amr = token.claims.get("amr")
    amr_values = [amr] if isinstance(amr, str) else amr if isinstance(amr, list) else []
    amr_values = [a for a in amr_values if isinstance(a, str)]
    if amr_values:
        out.append((f"{prefix}:amr", tuple(amr_values)))
    out.append((f"{prefix}:aud", (token.audience,)))
    out.append((f"{prefix}:sub", (token.subject,)))
    return tuple(out)


def carried_claims(
    keys: tuple[tuple[str, tuple[str, ...]], ...], prefix: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The keys a session keeps after the assume call: only :amr, :aud, :id and :sub."""
    wanted = {f"{prefix}:{c}".lower() for c in CARRIED_CLAIMS}
    return tuple((k, v) for k, v in keys if k.lower() in wanted)


# -- trust --------------------------------------------------------------------------------------


def _trust_context(
    now: float,
    role: Role,
    p: WebIdentityParams,
    token: ValidatedToken,
    keys: tuple[tuple[str, tuple[str, ...]], ...],
    aws: _AwsClaims,
) -> Context:
    ctx = Context()
    for key, values in keys:
        if key.endswith(":amr"):
            ctx.set_multi(key, values)  # multivalued (§6.3)
        else:
            ctx.set(key, values[0])
    ctx.set("aws:FederatedProvider", token.provider.arn)  # docs/SEMANTICS.md §6.1
    clock_context(ctx, now)
    return session_request_context(
        ctx,
        role,
        session_name=p.role_session_name,
        tags=aws.tags,
        transitive_tag_keys=aws.transitive_tag_keys,
        source_identity=aws.source_identity,
    )


def _authorize_trust(
    world: World, role: Role, provider_arn: str, ctx: Context, aws: _AwsClaims
) -> None:
    partition = world.partition
    principal = RequestPrincipal(
        type=PrincipalType.WEB_IDENTITY,
        arn="",
        partition=partition,
        federated_provider=provider_arn,
    )
    actions = required_actions(
        ACTION,
        tags=aws.tags,
        transitive_tag_keys=aws.transitive_tag_keys,
        source_identity=aws.source_identity,
    )
    guardrails = role_account_guardrails(world, role, ctx)
    if first_refusal(principal, role, actions, ctx, guardrails) is not None:
        raise AccessDenied(DENIED)


# -- the call -----------------------------------------------------------------------------------


def assume_role_with_web_identity(
    env: StsEnv,
    p: WebIdentityParams,
    key_source: KeySource,
    *,
    leeway: float = DEFAULT_LEEWAY,
    max_age: float = DEFAULT_MAX_AGE,
) -> WebIdentityResult:
    _check_shape(p)
    if p.provider_id:
        raise InvalidIdentityToken(
            "ProviderId is only for the OAuth 2.0 providers www.amazon.com and "
            "graph.facebook.com, which this sidecar does not support; omit it for OpenID "
            "Connect ID tokens",
            reason="unsupported_provider",
        )
    now = env.clock.now()
    token = validate_token(
        p.web_identity_token,
        env.world,
        key_source,
        now,
        leeway=leeway,
        max_age=max_age,
        account=_role_account(p.role_arn),
    )
    aws = _aws_claims(token.claims)
    role = role_for(env.world, p.role_arn)
    session_policies = session_policies_for(env.world, role, p.policy, p.policy_arns)
    if role is None:
        raise AccessDenied(DENIED)
    keys = provider_keys(token)
    ctx = _trust_context(now, role, p, token, keys, aws)
    _authorize_trust(env.world, role, token.provider.arn, ctx, aws)
    result = create_session(
        env,
        role,
        session_name=p.role_session_name,
        duration=p.duration_seconds,
        chained=False,
        session_policies=session_policies,
        tags=merge_tags(aws.tags),
        transitive_tag_keys=aws.transitive_tag_keys,
        source_identity=aws.source_identity,
        federated_provider=token.provider.arn,
        federated_claims=carried_claims(keys, token.provider.key_prefix),
        origin=ORIGIN,
    )
    return WebIdentityResult(
        result,
        subject_from_web_identity_token=token.subject,
        audience=token.audience,
        provider=token.issuer,
    )


__all__ = [
    "WebIdentityParams",
    "WebIdentityResult",
    "assume_role_with_web_identity",
    "provider_keys",
]
