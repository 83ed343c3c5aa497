"""AssumeRoleWithSAML (docs/SEMANTICS.md §6.4, §7.1-§7.5). Pure: time comes from ``env.clock``.

Order of checks: request shape (ValidationError) → the SAML provider named by PrincipalArn
(InvalidIdentityToken) → the assertion (signature, issuer, recipient, audience, times:
InvalidIdentityToken / ExpiredTokenException) → AWS attributes (the requested role and provider
must be a listed pair: AccessDenied; RoleSessionName, SessionDuration, session tags,
SourceIdentity: InvalidIdentityToken ``bad_attribute``) → session policy syntax
(MalformedPolicyDocument) → trust (AccessDenied) → duration caps (ValidationError) → packed size
(PackedPolicyTooLarge). Never role chaining: no one-hour cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.errors import AccessDenied, InvalidIdentityToken
from sidecar.identity.model import Role, SamlProvider, World
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
from sidecar.sts.context import clock_context
from sidecar.sts.federation.saml import MAX_CHARS, MetadataLookup, ValidatedAssertion
from sidecar.sts.federation.saml import validate_assertion as _validate
from sidecar.sts.trust import (
    first_refusal,
    required_actions,
    role_account_guardrails,
    session_request_context,
)

ACTION = "sts:AssumeRoleWithSAML"
ORIGIN = "AssumeRoleWithSAML"
DENIED = f"Not authorized to perform {ACTION}"
AWS_ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ROLE_ATTRIBUTE = AWS_ATTRIBUTES + "Role"
SESSION_NAME_ATTRIBUTE = AWS_ATTRIBUTES + "RoleSessionName"
SESSION_DURATION_ATTRIBUTE = AWS_ATTRIBUTES + "SessionDuration"
PRINCIPAL_TAG_PREFIX = AWS_ATTRIBUTES + "PrincipalTag:"
TRANSITIVE_ATTRIBUTE = AWS_ATTRIBUTES + "TransitiveTagKeys"
SOURCE_IDENTITY_ATTRIBUTE = AWS_ATTRIBUTES + "SourceIdentity"
CARRIED_KEYS = ("saml:namequalifier", "saml:sub", "saml:sub_type")  # §6.1
MAX_TAGS = 50

_SAML_PROVIDER_ARN = re.compile(r"^arn:([\w-]+):iam::(\d{12}):saml-provider/([\w.-]{1,128})\Z")
_BUILTIN = frozenset({"aud", "sub", "sub_type", "iss", "doc", "namequalifier"})
_EDUPERSON = "urn:oid:1.3.6.1.4.1.5923.1.1.1."
_EDUORG = "urn:oid:1.3.6.1.4.1.5923.1.2.1."
# Attribute names (OIDs) AWS maps to named saml: keys, and whether the key is multivalued
# (AWS's list marks those with []). Any other attribute is saml:<Name>, multivalued.
KNOWN_ATTRIBUTES: dict[str, tuple[str, bool]] = {
    _EDUPERSON + "1": ("edupersonaffiliation", True),
    _EDUPERSON + "2": ("edupersonnickname", True),
    _EDUPERSON + "3": ("edupersonorgdn", False),
    _EDUPERSON + "4": ("edupersonorgunitdn", True),
    _EDUPERSON + "5": ("edupersonprimaryaffiliation", False),
    _EDUPERSON + "6": ("edupersonprincipalname", False),
    _EDUPERSON + "7": ("edupersonentitlement", True),
    _EDUPERSON + "8": ("edupersonprimaryorgunitdn", False),
    _EDUPERSON + "9": ("edupersonscopedaffiliation", True),
    _EDUPERSON + "10": ("edupersontargetedid", True),
    _EDUPERSON + "11": ("edupersonassurance", True),
    _EDUORG + "2": ("eduorghomepageuri", True),
    _EDUORG + "3": ("eduorgidentityauthnpolicyuri", True),
    _EDUORG + "4": ("eduorglegalname", True),
    _EDUORG + "5": ("eduorgsuperioruri", True),
    _EDUORG + "6": ("eduorgwhitepagesuri", True),
    "urn:oid:2.5.4.3": ("cn", True),
    "urn:oid:2.5.4.4": ("surname", True),
    "urn:oid:2.5.4.41": ("name", True),
    "urn:oid:2.5.4.42": ("givenName", True),
    "urn:oid:2.5.4.45": ("x500UniqueIdentifier", True),
    "urn:oid:0.9.2342.19200300.100.1.1": ("uid", True),
    "urn:oid:0.9.2342.19200300.100.1.3": ("mail", True),
    "urn:oid:0.9.2342.19200300.100.1.45": ("organizationStatus", True),
}


@dataclass(frozen=True, slots=True)
class SamlParams:
    role_arn: str
    principal_arn: str  # the SAML provider ARN
    saml_assertion: str  # the base64 SAML Response
    policy: str = ""
    policy_arns: tuple[str, ...] = ()
    duration_seconds: int = 0


@dataclass(frozen=True, slots=True)
class SamlResult:
    result: AssumeRoleResult
    subject: str
    subject_type: str
    issuer: str
    audience: str  # the Recipient (AWS's response field Audience)
    name_qualifier: str

    @property
    def source_identity(self) -> str:
        return self.result.session.source_identity


@dataclass(frozen=True, slots=True)
class AwsAttributes:
    """What the assertion asks of AWS."""

    role_session_name: str
    session_duration: int | None
    tags: tuple[tuple[str, str], ...]
    transitive_tag_keys: tuple[str, ...]
    source_identity: str


def _bad(message: str) -> InvalidIdentityToken:
    return InvalidIdentityToken(message, reason="bad_attribute")


# -- shape ------------------------------------------------------------------------------------


def _check_shape(p: SamlParams) -> None:
    v = shape.Violations()
    shape.check_role_arn(v, p.role_arn)
    shape.check_role_arn(v, p.principal_arn, "principalArn")
    # The assertion is not echoed back: it is large and it is a credential.
    v.length(p.saml_assertion, "sAMLAssertion", 4, MAX_CHARS, show=False)
    shape.check_policy(v, p.policy)
    shape.check_policy_arns(v, p.policy_arns)
    shape.check_duration(v, p.duration_seconds)
    v.raise_if_any()


# -- provider and attributes ------------------------------------------------------------------


def saml_provider_for(world: World, arn: str) -> SamlProvider | None:
    m = _SAML_PROVIDER_ARN.match(arn)
    if m is None or m.group(1) != world.partition:
        return None
    account = world.accounts.get(m.group(2))
    return account.saml_providers.get(arn) if account is not None else None


def role_pairs(values: list[str]) -> set[tuple[str, str]]:
    """(role ARN, provider ARN) pairs of the Role attribute; each value holds the two ARNs
    separated by a comma, in either order."""
    pairs = set()
    for value in values:
        parts = [part.strip() for part in value.split(",")]
        if len(parts) != 2:
            continue
        a, b = parts
        if ":saml-provider/" in a and ":role/" in b:
            a, b = b, a
        pairs.add((a, b))
    return pairs


def _single(attributes: dict[str, list[str]], name: str) -> str | None:
    values = attributes.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise _bad(f"The SAML attribute {name} must have exactly one value")
    return values[0]


def aws_attributes(attributes: dict[str, list[str]]) -> AwsAttributes:
    """RoleSessionName, SessionDuration, PrincipalTag:*, TransitiveTagKeys, SourceIdentity."""
    name = _single(attributes, SESSION_NAME_ATTRIBUTE)
    if name is None:
        raise _bad(f"The SAML assertion has no {SESSION_NAME_ATTRIBUTE} attribute")
    if not (2 <= len(name) <= 64 and shape.SESSION_NAME.match(name)):
        raise _bad(f"RoleSessionName {name!r} must be 2-64 characters of [\\w+=,.@-]")

    duration_text = _single(attributes, SESSION_DURATION_ATTRIBUTE)
    duration = None
    if duration_text is not None:
        if not duration_text.isdigit() or not 900 <= int(duration_text) <= 43200:
            raise _bad(f"SessionDuration {duration_text!r} must be an integer 900-43200")
        duration = int(duration_text)

    tags: list[tuple[str, str]] = []
    for attr_name in attributes:
        if attr_name.startswith(PRINCIPAL_TAG_PREFIX):
            key = attr_name.removeprefix(PRINCIPAL_TAG_PREFIX)
            value = _single(attributes, attr_name)
            assert value is not None
            tags.append((key, value))
    if len(tags) > MAX_TAGS:
        raise _bad(f"The SAML assertion passes more than {MAX_TAGS} session tags")
    lowered: set[str] = set()
    for key, value in tags:
        if not (1 <= len(key) <= 128 and shape.is_tag_text(key)):
            raise _bad(f"Session tag key {key!r} is not a valid tag key")
        if not (len(value) <= 256 and shape.is_tag_text(value)):
            raise _bad(f"Session tag value {value!r} of {key!r} is not a valid tag value")
        if key.lower().startswith("aws:"):
            raise _bad("Tag keys starting with 'aws:' are reserved for AWS use.")
        if key.lower() in lowered:
            raise _bad("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
        lowered.add(key.lower())

    transitive = tuple(attributes.get(TRANSITIVE_ATTRIBUTE, ()))
    if len(transitive) > MAX_TAGS:
        raise _bad(f"The SAML assertion passes more than {MAX_TAGS} transitive tag keys")
    for key in transitive:
        if key.lower() not in lowered:
            raise _bad(f"The transitive tag key '{key}' must be one of the session tags.")

    source = _single(attributes, SOURCE_IDENTITY_ATTRIBUTE) or ""
    if source and not (2 <= len(source) <= 64 and shape.SESSION_NAME.match(source)):
        raise _bad(f"SourceIdentity {source!r} must be 2-64 characters of [\\w+=,.@-]")
    if source.lower().startswith("aws:"):
        raise _bad("SourceIdentity must not start with 'aws:'.")
    return AwsAttributes(name, duration, tuple(tags), transitive, source)


# -- trust ------------------------------------------------------------------------------------


def saml_keys(
    assertion: ValidatedAssertion, provider: SamlProvider
) -> list[tuple[str, tuple[str, ...], bool]]:
    """The saml:* condition keys (key, values, multivalued) of an assertion (§6.4)."""
    keys: list[tuple[str, tuple[str, ...], bool]] = []
    for name, values in assertion.attributes.items():
        if name.startswith(AWS_ATTRIBUTES):
            continue
        suffix, multi = KNOWN_ATTRIBUTES.get(name, (name, True))
        if suffix.lower() in _BUILTIN:
            continue  # an attribute never replaces a key the assertion itself defines
        keys.append((f"saml:{suffix}", tuple(values), multi or len(values) != 1))
    keys += [
        ("saml:aud", (assertion.recipient,), False),
        ("saml:sub", (assertion.subject,), False),
        ("saml:sub_type", (assertion.subject_type,), False),
        ("saml:iss", (assertion.issuer,), False),
        ("saml:doc", (f"{provider.account}/{provider.name}",), False),
        ("saml:namequalifier", (assertion.name_qualifier,), False),
    ]
    return keys


def _trust_context(
    role: Role,
    provider: SamlProvider,
    assertion: ValidatedAssertion,
    attrs: AwsAttributes,
    now: float,
) -> Context:
    ctx = Context()
    for key, values, multi in saml_keys(assertion, provider):
        if multi:
            ctx.set_multi(key, values)
        else:
            ctx.set(key, values[0])
    ctx.set("aws:FederatedProvider", provider.arn)
    clock_context(ctx, now)
    return session_request_context(
        ctx,
        role,
        session_name=attrs.role_session_name,
        tags=attrs.tags,
        transitive_tag_keys=attrs.transitive_tag_keys,
        source_identity=attrs.source_identity,
    )


def _authorize(
    world: World, role: Role, provider: SamlProvider, ctx: Context, attrs: AwsAttributes
) -> None:
    principal = RequestPrincipal(
        type=PrincipalType.SAML,
        arn="",
        account=provider.account,
        partition=provider.arn.split(":")[1],
        federated_provider=provider.arn,
    )
    actions = required_actions(
        ACTION,
        tags=attrs.tags,
        transitive_tag_keys=attrs.transitive_tag_keys,
        source_identity=attrs.source_identity,
    )
    guardrails = role_account_guardrails(world, role, ctx)
    if first_refusal(principal, role, actions, ctx, guardrails) is not None:
        raise AccessDenied(DENIED)


def _duration(requested: int, session_duration: int | None, role: Role) -> int:
    """DurationSeconds, else SessionDuration, the smaller when both are given (0: default).
    DurationSeconds above the role's maximum is refused (by create_session); SessionDuration,
    a hint from the IdP, is capped at it."""
    if requested > role.max_session_duration:
        return requested
    given = [d for d in (requested, session_duration) if d]
    return min(min(given), role.max_session_duration) if given else 0


# -- the call ---------------------------------------------------------------------------------


def assume_role_with_saml(
    env: StsEnv, p: SamlParams, metadata_source: MetadataLookup
) -> SamlResult:
    _check_shape(p)
    provider = saml_provider_for(env.world, p.principal_arn)
    if provider is None:
        raise InvalidIdentityToken(
            f"No SAML provider found in your account for {p.principal_arn}",
            reason="unknown_provider",
        )
    metadata = metadata_source.get(provider)
    now = env.clock.now()
    assertion = _validate(p.saml_assertion, provider, metadata, now)

    roles = assertion.attributes.get(ROLE_ATTRIBUTE)
    if not roles:
        raise _bad(f"The SAML assertion has no {ROLE_ATTRIBUTE} attribute")
    if (p.role_arn, p.principal_arn) not in role_pairs(roles):
        raise AccessDenied(DENIED)
    attrs = aws_attributes(assertion.attributes)

    role = role_for(env.world, p.role_arn)
    session_policies = session_policies_for(env.world, role, p.policy, p.policy_arns)
    if role is None or role.arn != p.role_arn:
        raise AccessDenied(DENIED)
    ctx = _trust_context(role, provider, assertion, attrs, now)
    _authorize(env.world, role, provider, ctx, attrs)

    keys = {k: v for k, v, _ in saml_keys(assertion, provider)}
    result = create_session(
        env,
        role,
        session_name=attrs.role_session_name,
        duration=_duration(p.duration_seconds, attrs.session_duration, role),
        session_policies=session_policies,
        tags=dict(attrs.tags),
        transitive_tag_keys=attrs.transitive_tag_keys,
        source_identity=attrs.source_identity,
        federated_provider=provider.arn,
        federated_claims=tuple((k, keys[k]) for k in CARRIED_KEYS),
        origin=ORIGIN,
        not_after=assertion.not_on_or_after,
    )
    return SamlResult(
        result=result,
        subject=assertion.subject,
        subject_type=assertion.subject_type,
        issuer=assertion.issuer,
        audience=assertion.recipient,
        name_qualifier=assertion.name_qualifier,
    )


__all__ = [
    "SamlParams",
    "SamlResult",
    "assume_role_with_saml",
    "aws_attributes",
    "role_pairs",
    "saml_keys",
    "saml_provider_for",
]
