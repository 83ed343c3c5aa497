"""EKS Pod Identity: a pod's service-account token becomes a role session (docs/KUBERNETES.md).

The token is validated by the same OIDC code as AssumeRoleWithWebIdentity, against the world's
``pod_identity.issuer`` and ``pod_identity.audience``; its ``kubernetes.io`` claim names the
pod. The (namespace, service account) pair selects the role through an association, and the role
is assumed as EKS does: the trust policy must allow the service principal
``pods.eks.amazonaws.com`` both ``sts:AssumeRole`` and ``sts:TagSession``, and the session carries
EKS's transitive session tags (kubernetes-namespace, kubernetes-service-account,
kubernetes-pod-name, kubernetes-pod-uid, eks-cluster-name and, when configured, eks-cluster-arn).

Refusals: :class:`InvalidIdentityToken` / :class:`ExpiredTokenException` for the token,
:class:`AccessDenied` for an unmapped service account or a trust policy that refuses. No message
names another pod, service account or role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.errors import AccessDenied, InvalidIdentityToken
from sidecar.identity.model import PodIdentity, Role, World
from sidecar.policy.context import Context
from sidecar.policy.principals import PrincipalType, RequestPrincipal
from sidecar.sts.assume import AssumeRoleResult, StsEnv, create_session, role_for
from sidecar.sts.context import clock_context
from sidecar.sts.federation.oidc import DEFAULT_LEEWAY, DEFAULT_MAX_AGE, KeySource, validate_token
from sidecar.sts.trust import (
    first_refusal,
    required_actions,
    role_account_guardrails,
    session_request_context,
)

SERVICE_PRINCIPAL = "pods.eks.amazonaws.com"
ACTION = "sts:AssumeRole"
ORIGIN = "PodIdentity"
TAG_KEYS = (
    "kubernetes-namespace",
    "kubernetes-service-account",
    "kubernetes-pod-name",
    "kubernetes-pod-uid",
    "eks-cluster-name",
    "eks-cluster-arn",
)
NOT_ENABLED = "Pod identity is not configured in this sidecar's world."
UNMAPPED = "No pod identity association for the token's service account."
_NOT_IN_SESSION_NAME = re.compile(r"[^\w+=,.@-]", re.ASCII)


@dataclass(frozen=True, slots=True)
class PodClaims:
    """Who the validated token says the pod is."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str


@dataclass(frozen=True, slots=True)
class PodGrant:
    """A pod allowed to assume its associated role: what the session will be made of."""

    pod: PodClaims
    role: Role
    tags: tuple[tuple[str, str], ...]
    session_name: str
    duration: int


def _bad_token(detail: str) -> InvalidIdentityToken:
    return InvalidIdentityToken(
        f"The service account token is not a pod's token: {detail}", reason="invalid_claim"
    )


def _text(obj: Mapping[str, Any], *keys: str) -> str:
    """``obj[k1][k2]...`` when it is a non-empty string, else ""."""
    cur: Any = obj
    for key in keys:
        cur = cur.get(key) if isinstance(cur, dict) else None
    return cur if isinstance(cur, str) else ""


def pod_claims(claims: Mapping[str, Any]) -> PodClaims:
    """The pod named by a projected token's ``kubernetes.io`` claim (a token not bound to a
    pod, e.g. a legacy secret token, gets nothing: EKS Pod Identity needs the pod)."""
    k8s = claims.get("kubernetes.io")
    if not isinstance(k8s, dict):
        raise _bad_token("it has no kubernetes.io claim")
    pod = PodClaims(
        namespace=_text(k8s, "namespace"),
        service_account=_text(k8s, "serviceaccount", "name"),
        pod_name=_text(k8s, "pod", "name"),
        pod_uid=_text(k8s, "pod", "uid"),
    )
    if not (pod.namespace and pod.service_account):
        raise _bad_token("it names no namespace and service account")
    if not (pod.pod_name and pod.pod_uid):
        raise _bad_token("it is not bound to a pod")
    # The subject must agree with the claim the mapping uses.
    if claims.get("sub") != f"system:serviceaccount:{pod.namespace}:{pod.service_account}":
        raise _bad_token("its sub does not match its kubernetes.io claim")
    return pod


def validate_pod_token(
    world: World,
    config: PodIdentity,
    token: str,
    key_source: KeySource,
    now: float,
    *,
    leeway: float = DEFAULT_LEEWAY,
    max_age: float = DEFAULT_MAX_AGE,
) -> PodClaims:
    """The pod of a valid token from ``config.issuer`` for ``config.audience``."""
    validated = validate_token(
        token,
        world,
        key_source,
        now,
        leeway=leeway,
        max_age=max_age,
        audiences=(config.audience,),
    )
    if validated.provider.url.rstrip("/") != config.issuer.rstrip("/"):
        raise InvalidIdentityToken(
            "The token was not issued by the cluster's service account issuer.",
            reason="unknown_issuer",
        )
    return pod_claims(validated.claims)


def session_tags(config: PodIdentity, pod: PodClaims) -> tuple[tuple[str, str], ...]:
    values = (
        pod.namespace,
        pod.service_account,
        pod.pod_name,
        pod.pod_uid,
        config.cluster_name,
        config.cluster_arn,
    )
    return tuple((k, v) for k, v in zip(TAG_KEYS, values, strict=True) if v)


def session_name(config: PodIdentity, pod: PodClaims) -> str:
    """``eks-<cluster>-<pod>``, held to RoleSessionName's characters and 64-character limit."""
    return _NOT_IN_SESSION_NAME.sub("-", f"eks-{config.cluster_name}-{pod.pod_name}")[:64]


def _trust_context(
    now: float,
    role: Role,
    config: PodIdentity,
    grant_tags: tuple[tuple[str, str], ...],
    name: str,
) -> Context:
    ctx = Context()
    clock_context(ctx, now)
    # EKS calls STS on the cluster's behalf: trust policies guard with these two keys.
    if config.cluster_arn:
        ctx.set("aws:SourceArn", config.cluster_arn)
        ctx.set("aws:SourceAccount", config.cluster_arn.split(":")[4])
    ctx.set("aws:PrincipalIsAWSService", "true")
    keys = tuple(k for k, _ in grant_tags)
    return session_request_context(
        ctx, role, session_name=name, tags=grant_tags, transitive_tag_keys=keys
    )


def authorize_pod(env: StsEnv, config: PodIdentity, pod: PodClaims) -> PodGrant:
    """Map the pod's service account to its role and evaluate the role's trust policy."""
    assoc = next(
        (
            a
            for a in config.associations
            if a.namespace == pod.namespace and a.service_account == pod.service_account
        ),
        None,
    )
    role = role_for(env.world, assoc.role_arn) if assoc is not None else None
    if role is None:
        raise AccessDenied(UNMAPPED)
    tags = session_tags(config, pod)
    name = session_name(config, pod)
    ctx = _trust_context(env.clock.now(), role, config, tags, name)
    principal = RequestPrincipal(
        type=PrincipalType.SERVICE, arn=SERVICE_PRINCIPAL, name=SERVICE_PRINCIPAL
    )
    actions = required_actions(
        ACTION, tags=tags, transitive_tag_keys=[k for k, _ in tags], source_identity=""
    )
    guardrails = role_account_guardrails(env.world, role, ctx)
    refused = first_refusal(principal, role, actions, ctx, guardrails)
    if refused is not None:
        raise AccessDenied(
            f"The trust policy of the associated role does not allow {SERVICE_PRINCIPAL} to "
            f"perform {refused[0]}."
        )
    # EKS sessions do not depend on MaxSessionDuration; here the role's cap still holds.
    duration = min(config.duration_seconds, role.max_session_duration)
    return PodGrant(pod, role, tags, name, duration)


def issue_pod_session(env: StsEnv, grant: PodGrant) -> AssumeRoleResult:
    """A new session for an authorized pod, with the tags transitive as in EKS."""
    return create_session(
        env,
        grant.role,
        session_name=grant.session_name,
        duration=grant.duration,
        tags=dict(grant.tags),
        transitive_tag_keys=tuple(k for k, _ in grant.tags),
        origin=ORIGIN,
    )


def pod_identity_config(world: World) -> PodIdentity:
    if world.pod_identity is None:
        raise AccessDenied(NOT_ENABLED)
    return world.pod_identity


__all__ = [
    "SERVICE_PRINCIPAL",
    "TAG_KEYS",
    "PodClaims",
    "PodGrant",
    "authorize_pod",
    "issue_pod_session",
    "pod_claims",
    "pod_identity_config",
    "session_tags",
    "validate_pod_token",
]
