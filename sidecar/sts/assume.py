"""AssumeRole and GetCallerIdentity (docs/SEMANTICS.md §5.2, §6.2, §7).

The order of checks is docs/SEMANTICS.md §7.6: the caller is authenticated (by the server) → shape
(ValidationError) → session policy syntax (MalformedPolicyDocument) → trust and identity
(AccessDenied) → duration caps (ValidationError) → packed size (PackedPolicyTooLarge).
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field

from sidecar.errors import (
    AccessDenied,
    PackedPolicyTooLarge,
    ValidationError,
    validation_errors,
    violation,
)
from sidecar.identity.model import Role, World
from sidecar.identity.scope import role_policies, user_policies
from sidecar.policy.compile import SESSION_MEMO_LIMIT, CompiledPolicy, compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import PolicySet, describe
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy, policy_size
from sidecar.sts import validation as shape
from sidecar.sts.callers import Caller, ServiceCaller, SessionCaller, UserCaller
from sidecar.sts.clock import Clock, Entropy
from sidecar.sts.context import (
    merge_tags,
    org_context,
    principal_tags,
    service_context,
    session_context,
    user_context,
)
from sidecar.sts.keys import KeyRing
from sidecar.sts.mfa import verify_totp
from sidecar.sts.session import Session, current_role
from sidecar.sts.tokens import MAX_TOKEN_CHARS, derive_secret, encode_token
from sidecar.sts.trust import (
    first_refusal,
    required_actions,
    role_account_guardrails,
    session_request_context,
)

DEFAULT_DURATION = 3600
CHAIN_LIMIT = 3600
SESSION_POLICY_PLAINTEXT = 2048
PACKED_LIMIT_BYTES = 2048  # compressed size of session policies + tags that is 100 %
INLINE_SESSION_POLICY_ID = "SessionPolicy"
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True, slots=True)
class AssumeRoleParams:
    role_arn: str
    role_session_name: str
    duration_seconds: int = 0
    external_id: str = ""
    policy: str = ""
    policy_arns: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str = ""
    serial_number: str = ""
    token_code: str = ""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: int  # epoch seconds


@dataclass(frozen=True, slots=True)
class AssumeRoleResult:
    credentials: Credentials
    session: Session
    packed_policy_size: int

    @property
    def assumed_role_id(self) -> str:
        return self.session.assumed_role_id

    @property
    def arn(self) -> str:
        return self.session.arn


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    user_id: str
    account: str
    arn: str


@dataclass(frozen=True, slots=True)
class StsEnv:
    """What STS calls need from the outside: the world, the keys, a clock and randomness."""

    world: World
    keys: KeyRing
    clock: Clock
    entropy: Entropy


def new_access_key_id(entropy: Entropy) -> str:
    raw = int.from_bytes(entropy.token_bytes(10), "big")
    chars = [_BASE32[(raw >> (5 * i)) & 31] for i in range(16)]
    return "ASIA" + "".join(chars)


def _caller_arn(caller: Caller) -> str:
    return caller.principal().arn


def denied_error(caller: Caller, role_arn: str, action: str = "sts:AssumeRole") -> AccessDenied:
    return AccessDenied(
        f"User: {_caller_arn(caller)} is not authorized to perform: {action} on resource: "
        f"{role_arn}"
    )


# -- shape ------------------------------------------------------------------------------------


def check_shape(p: AssumeRoleParams) -> None:
    v = shape.Violations()
    shape.check_role_arn(v, p.role_arn)
    shape.check_session_name(v, p.role_session_name)
    shape.check_duration(v, p.duration_seconds)
    v.text(p.external_id, "externalId", 2, 1224, shape.EXTERNAL_ID, "external")
    shape.check_policy(v, p.policy)
    shape.check_policy_arns(v, p.policy_arns)
    shape.check_tags(v, p.tags, p.transitive_tag_keys)
    v.text(p.source_identity, "sourceIdentity", 2, 64, shape.SESSION_NAME, "session")
    v.text(p.serial_number, "serialNumber", 9, 256, shape.SERIAL, "serial")
    v.text(p.token_code, "tokenCode", 6, 6, shape.TOKEN_CODE, "code")
    v.raise_if_any()


def check_tag_rules(p: AssumeRoleParams, inherited: dict[str, str]) -> None:
    """Semantic tag rules that follow the shape checks (still ValidationError)."""
    lowered = [k.lower() for k, _ in p.tags]
    if len(set(lowered)) != len(lowered):
        raise ValidationError(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive."
        )
    for key in lowered:
        if key.startswith("aws:"):
            raise ValidationError("Tag keys starting with 'aws:' are reserved for AWS use.")
        if key in {k.lower() for k in inherited}:
            raise ValidationError(
                f"The tag key '{key}' is set by a transitive tag of the calling session and "
                "cannot be overridden."
            )
    for key in p.transitive_tag_keys:
        if key.lower() not in lowered:
            raise ValidationError(
                f"The transitive tag key '{key}' must be one of the session tags in the request."
            )
    if p.source_identity.lower().startswith("aws:"):
        raise ValidationError("SourceIdentity must not start with 'aws:'.")
    if bool(p.serial_number) != bool(p.token_code):
        raise ValidationError(
            "SerialNumber and TokenCode must be given together for multi-factor authentication."
        )


# -- session policies ---------------------------------------------------------------------------


def session_policies_for(
    world: World, role: Role | None, policy: str, policy_arns: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """(id, compact JSON) of the inline and managed session policies, syntax-checked."""
    out: list[tuple[str, str]] = []
    if policy:
        parse_policy(policy, PolicyKind.SESSION, policy_id=INLINE_SESSION_POLICY_ID, field="policy")
        out.append(
            (INLINE_SESSION_POLICY_ID, json.dumps(json.loads(policy), separators=(",", ":")))
        )
    for n, arn in enumerate(policy_arns, start=1):
        mp = world.managed_policy(arn)
        role_account = role.account if role is not None else None
        if mp is None or (role_account is not None and arn.split(":")[4] != role_account):
            where = f"policyArns.{n}.member.arn"
            missing = violation(where, "the policy does not exist in the role's account", arn)
            raise validation_errors([missing])
        out.append((arn, mp.text))
    return tuple(out)


def compile_session_policies(texts: tuple[tuple[str, str], ...]) -> tuple[CompiledPolicy, ...]:
    return tuple(
        compile_policy(
            parse_policy(text, PolicyKind.SESSION, policy_id=pid, enforce_quota=False),
            SESSION_MEMO_LIMIT,
        )
        for pid, text in texts
    )


def packed_size_percent(policies: tuple[tuple[str, str], ...], tags: dict[str, str]) -> int:
    """Our packed measure, first part: compressed session policies and tags against a fixed
    budget (``create_session`` also measures the token's length against MAX_TOKEN_CHARS)."""
    if not policies and not tags:
        return 0
    blob = json.dumps([[t for _, t in policies], sorted(tags.items())], separators=(",", ":"))
    return math.ceil(100 * len(zlib.compress(blob.encode(), 9)) / PACKED_LIMIT_BYTES)


# -- trust ----------------------------------------------------------------------------------


def caller_scope(env: StsEnv, caller: Caller) -> tuple[PolicySet, Context, dict[str, str]]:
    """The caller's identity-side policies, its context keys and its inheritable tags."""
    now = env.clock.now()
    ctx = Context()
    org = env.world.organization
    if isinstance(caller, UserCaller):
        user_context(ctx, caller.user, now)
        org_context(ctx, org, caller.user.account)
        return user_policies(env.world, caller.user), ctx, {}
    if isinstance(caller, SessionCaller):
        s = caller.session
        role = current_role(env.world, s)
        base = role_policies(env.world, role) if role is not None else PolicySet(boundary=())
        policies = PolicySet(
            identity=base.identity,
            boundary=base.boundary,
            session=compile_session_policies(s.session_policies) if s.session_policies else None,
            scp_levels=base.scp_levels,  # SCPs cap the caller's account (docs/ORGANIZATIONS.md)
        )
        transitive = {k.lower() for k in s.transitive_tag_keys}
        tags = principal_tags(s, role)
        inherited = {k: v for k, v in tags.items() if k.lower() in transitive}
        session_context(ctx, s, role, now)
        org_context(ctx, org, s.account)
        return policies, ctx, inherited
    return PolicySet(), service_context(ctx, caller.service.name, now), {}


# -- the calls --------------------------------------------------------------------------------


def role_for(world: World, role_arn: str) -> Role | None:
    parts = role_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or parts[1] != world.partition:
        return None
    kind, _, rest = parts[5].partition("/")
    if kind != "role" or not rest:
        return None
    return world.role_by_name(parts[4], rest.rsplit("/", 1)[-1])


def assume_role(env: StsEnv, caller: Caller, p: AssumeRoleParams) -> AssumeRoleResult:
    check_shape(p)
    policies, ctx, inherited = caller_scope(env, caller)
    check_tag_rules(p, inherited)
    chained = isinstance(caller, SessionCaller)
    parent = caller.session if isinstance(caller, SessionCaller) else None
    if parent and parent.source_identity and p.source_identity not in ("", parent.source_identity):
        raise ValidationError(
            "SourceIdentity cannot be changed: the calling session has SourceIdentity "
            f"'{parent.source_identity}'."
        )
    role = role_for(env.world, p.role_arn)
    session_policies = session_policies_for(env.world, role, p.policy, p.policy_arns)
    if role is None:
        raise denied_error(caller, p.role_arn)
    now = env.clock.now()
    mfa_ok = False
    if p.serial_number:
        mfa_ok = _verify_mfa(caller, p.serial_number, p.token_code, now)
        if not mfa_ok:
            raise AccessDenied(
                "MultiFactorAuthentication failed with invalid MFA one time pass code."
            )
    session_request_context(
        ctx,
        role,
        session_name=p.role_session_name,
        tags=p.tags,
        transitive_tag_keys=p.transitive_tag_keys,
        source_identity=p.source_identity,
        external_id=p.external_id,
        inherited=inherited,
    )
    if mfa_ok:
        ctx.set("aws:MultiFactorAuthPresent", "true")
        ctx.set("aws:MultiFactorAuthAge", "0")
    actions = required_actions(
        "sts:AssumeRole",
        tags=p.tags,
        transitive_tag_keys=p.transitive_tag_keys,
        source_identity=p.source_identity,
    )
    principal = caller.principal()
    policies = role_account_guardrails(env.world, role, ctx, policies)
    refused = first_refusal(principal, role, actions, ctx, policies)
    if refused is not None:
        action, ev = refused
        raise AccessDenied(
            describe(ev, principal.arn, action, role.arn, resource_label="role trust")
        )

    transitive = tuple(dict.fromkeys([*(k for k in inherited), *p.transitive_tag_keys]).keys())
    return create_session(
        env,
        role,
        session_name=p.role_session_name,
        duration=p.duration_seconds,
        chained=chained,
        session_policies=session_policies,
        tags=merge_tags(inherited.items(), p.tags),
        transitive_tag_keys=transitive,
        source_identity=(parent.source_identity if parent else "") or p.source_identity,
        mfa_authenticated_at=int(now) if mfa_ok else None,
    )


def create_session(
    env: StsEnv,
    role: Role,
    *,
    session_name: str,
    duration: int,
    chained: bool = False,
    session_policies: tuple[tuple[str, str], ...] = (),
    tags: dict[str, str] | None = None,
    transitive_tag_keys: tuple[str, ...] = (),
    source_identity: str = "",
    mfa_authenticated_at: int | None = None,
    federated_provider: str = "",
    federated_claims: tuple[tuple[str, tuple[str, ...]], ...] = (),
    origin: str = "AssumeRole",
    not_after: int | None = None,
) -> AssumeRoleResult:
    """The checks that follow authorization (duration caps, then packed size), then the new
    session and its credentials. ``duration`` 0 means the default; ``not_after`` caps the
    expiration (SAML's SessionNotOnOrAfter)."""
    duration = duration or DEFAULT_DURATION
    if duration > role.max_session_duration:
        raise ValidationError(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    if chained and duration > CHAIN_LIMIT:
        raise ValidationError(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by "
            "role chaining."
        )
    tags = tags or {}
    plaintext = sum(policy_size(text) for _, text in session_policies)
    packed = packed_size_percent(session_policies, tags)
    if plaintext > SESSION_POLICY_PLAINTEXT or packed > 100:
        raise _packed_too_large(packed)
    issued = int(env.clock.now())
    expires = issued + duration
    if not_after is not None:
        expires = min(expires, not_after)
    session = Session(
        partition=env.world.partition,
        account=role.account,
        role_name=role.name,
        role_path=role.path,
        role_id=role.role_id,
        session_name=session_name,
        access_key_id=new_access_key_id(env.entropy),
        issued_at=issued,
        expires_at=expires,
        session_policies=session_policies,
        tags=tuple(tags.items()),
        transitive_tag_keys=transitive_tag_keys,
        source_identity=source_identity,
        mfa_authenticated_at=mfa_authenticated_at,
        federated_provider=federated_provider,
        federated_claims=federated_claims,
        chained=chained,
        origin=origin,
    )
    credentials = issue_credentials(env.keys, session)
    # The token itself is part of the allotted space: one the sidecar (or gRPC's metadata
    # limit) would refuse is never issued. Compressible tags pass the measure above but not this.
    by_length = math.ceil(100 * len(credentials.session_token) / MAX_TOKEN_CHARS)
    if by_length > 100:
        raise _packed_too_large(by_length)
    if session_policies or tags:
        packed = max(packed, by_length)
    return AssumeRoleResult(credentials, session, packed)


def _packed_too_large(percent: int) -> PackedPolicyTooLarge:
    return PackedPolicyTooLarge(
        f"Packed policy consumes {max(percent, 101)}% of allotted space, please use smaller "
        "policy for session."
    )


def issue_credentials(keys: KeyRing, session: Session) -> Credentials:
    token = encode_token(session, keys)
    secret = derive_secret(keys.active, session.access_key_id)
    return Credentials(session.access_key_id, secret, token, session.expires_at)


def _verify_mfa(caller: Caller, serial: str, code: str, now: float) -> bool:
    if not isinstance(caller, UserCaller):
        return False
    for device in caller.user.mfa_devices:
        if device.serial_number == serial:
            return verify_totp(device.seed, code, now)
    return False


def get_caller_identity(caller: Caller) -> CallerIdentity:
    """Who is calling. Needs no permission, even under an explicit Deny."""
    if isinstance(caller, UserCaller):
        u = caller.user
        return CallerIdentity(u.user_id, u.account, u.arn)
    if isinstance(caller, SessionCaller):
        s = caller.session
        return CallerIdentity(s.assumed_role_id, s.account, s.arn)
    assert isinstance(caller, ServiceCaller)
    return CallerIdentity(caller.service.name, "", caller.spiffe_id or caller.service.name)


__all__ = [
    "AssumeRoleParams",
    "AssumeRoleResult",
    "CallerIdentity",
    "Credentials",
    "StsEnv",
    "assume_role",
    "get_caller_identity",
]
