"""EKS Pod Identity, pure: token → pod → association → trust → session with EKS's tags."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sidecar.errors import AccessDenied, ExpiredTokenException, InvalidIdentityToken
from sidecar.identity.model import PodIdentity, PodIdentityAssociation, World
from sidecar.sts.assume import StsEnv
from sidecar.sts.keys import KeyRing
from sidecar.sts.pod_identity import (
    SERVICE_PRINCIPAL,
    authorize_pod,
    issue_pod_session,
    pod_claims,
    validate_pod_token,
)
from sidecar.sts.tokens import verify_token
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.conftest import START
from tests.sts.federation.oidc_world import (
    K8S_ISSUER,
    StaticKeys,
    k8s_claims,
    k8s_token,
    oidc_world,
    sign,
)
from tests.sts.world import A, doc, make_world, role, trust_stmt

CLUSTER_ARN = f"arn:aws:eks:eu-west-1:{A}:cluster/prod"
POD_TAGS = ["sts:AssumeRole", "sts:TagSession"]


# Reads orders' objects only for sessions of pods in namespace shop (ABAC on EKS's tags).
READ_BY_NAMESPACE = doc(
    {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::orders/*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "shop"}},
    }
)


def pod_world(
    trust: dict[str, Any],
    *,
    namespace: str = "shop",
    sa: str = "orders",
    max_session: int = 3600,
    duration: int = 900,
    jwks_file: str = "/var/run/oidc/jwks.json",
) -> World:
    """The OIDC world plus role pod-orders, associated with ``namespace``/``sa``."""
    base = oidc_world(jwks_file=jwks_file)
    pod_role = role(
        A, "pod-orders", trust, max_session=max_session, inline={"read": READ_BY_NAMESPACE}
    )
    acct = base.accounts[A]
    acct = dataclasses.replace(acct, roles={**acct.roles, "pod-orders": pod_role})
    world = make_world([acct, *(a for k, a in base.accounts.items() if k != A)])
    config = PodIdentity(
        issuer=K8S_ISSUER,
        audience="pods.eks.amazonaws.com",
        cluster_name="prod",
        associations=(PodIdentityAssociation(namespace, sa, pod_role.arn),),
        cluster_arn=CLUSTER_ARN,
        duration_seconds=duration,
    )
    return dataclasses.replace(world, pod_identity=config)


def _env(world: World) -> StsEnv:
    return StsEnv(
        world, KeyRing.generate(CountingEntropy(1), "k1"), FixedClock(START), CountingEntropy(9)
    )


def _pod_token(**overrides: Any) -> str:
    return k8s_token(START, aud=["pods.eks.amazonaws.com"], **overrides)


EKS_TRUST = doc(trust_stmt({"Service": SERVICE_PRINCIPAL}, POD_TAGS))


def _assume(world: World, token: str) -> Any:
    env = _env(world)
    assert world.pod_identity is not None
    pod = validate_pod_token(world, world.pod_identity, token, StaticKeys(), START)
    return issue_pod_session(env, authorize_pod(env, world.pod_identity, pod))


def test_session_carries_the_six_transitive_eks_tags() -> None:
    world = pod_world(EKS_TRUST)
    result = _assume(world, _pod_token())
    s = result.session
    assert dict(s.tags) == {
        "kubernetes-namespace": "shop",
        "kubernetes-service-account": "orders",
        "kubernetes-pod-name": "orders-7d9f8c6b5-x2x7q",
        "kubernetes-pod-uid": "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b",
        "eks-cluster-name": "prod",
        "eks-cluster-arn": CLUSTER_ARN,
    }
    assert set(s.transitive_tag_keys) == set(dict(s.tags))
    assert s.arn == f"arn:aws:sts::{A}:assumed-role/pod-orders/eks-prod-orders-7d9f8c6b5-x2x7q"
    assert s.expires_at - s.issued_at == 900  # pod_identity.duration_seconds
    assert s.origin == "PodIdentity"
    # The token carries the session: it decodes with the same tags.
    decoded, _ = verify_token(result.credentials.session_token, _env(world).keys, START)
    assert dict(decoded.tags) == dict(s.tags)
    assert set(decoded.transitive_tag_keys) == set(dict(s.tags))


def test_trust_without_tag_session_refuses() -> None:
    world = pod_world(doc(trust_stmt({"Service": SERVICE_PRINCIPAL}, "sts:AssumeRole")))
    with pytest.raises(AccessDenied, match="sts:TagSession"):
        _assume(world, _pod_token())


def test_trust_for_another_principal_refuses() -> None:
    world = pod_world(doc(trust_stmt({"Service": "ec2.amazonaws.com"}, POD_TAGS)))
    with pytest.raises(AccessDenied, match="sts:AssumeRole"):
        _assume(world, _pod_token())


def test_trust_conditions_see_source_arn_and_request_tags() -> None:
    trust = doc(
        trust_stmt(
            {"Service": SERVICE_PRINCIPAL},
            POD_TAGS,
            Condition={
                "ArnEquals": {"aws:SourceArn": CLUSTER_ARN},
                "StringEquals": {
                    "aws:SourceAccount": A,
                    "aws:RequestTag/kubernetes-namespace": "shop",
                },
            },
        )
    )
    assert _assume(pod_world(trust), _pod_token()).session.role_name == "pod-orders"
    other = doc(
        trust_stmt(
            {"Service": SERVICE_PRINCIPAL},
            POD_TAGS,
            Condition={"StringEquals": {"aws:RequestTag/kubernetes-namespace": "billing"}},
        )
    )
    with pytest.raises(AccessDenied):
        _assume(pod_world(other), _pod_token())


def test_unmapped_service_account_is_refused_without_naming_others() -> None:
    world = pod_world(EKS_TRUST, sa="payments")
    with pytest.raises(AccessDenied) as err:
        _assume(world, _pod_token())
    assert "payments" not in err.value.message
    assert "pod-orders" not in err.value.message


def test_role_max_session_caps_the_duration() -> None:
    world = pod_world(EKS_TRUST)
    assert world.pod_identity is not None
    world = dataclasses.replace(
        world, pod_identity=dataclasses.replace(world.pod_identity, duration_seconds=7200)
    )
    s = _assume(world, _pod_token()).session
    assert s.expires_at - s.issued_at == 3600


def test_wrong_audience_is_refused() -> None:
    with pytest.raises(InvalidIdentityToken, match="Incorrect token audience"):
        _assume(pod_world(EKS_TRUST), k8s_token(START))  # aud sts.amazonaws.com


def test_expired_token_is_refused() -> None:
    with pytest.raises(ExpiredTokenException):
        _assume(pod_world(EKS_TRUST), _pod_token(exp=START - 3600, iat=START - 7200, nbf=None))


def test_forged_token_is_refused() -> None:
    from tests.sts.federation.oidc_world import rsa_key

    forged = sign(k8s_claims(START, aud=["pods.eks.amazonaws.com"]), key=rsa_key("attacker"))
    with pytest.raises(InvalidIdentityToken):
        _assume(pod_world(EKS_TRUST), forged)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kubernetes.io": None}, "no kubernetes.io"),
        ({"kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "orders"}}}, "bound"),
        ({"sub": "system:serviceaccount:shop:admin"}, "sub"),
    ],
)
def test_token_must_name_its_pod(change: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidIdentityToken, match=why):
        pod_claims(k8s_claims(START, **change))


# -- the world file's pod_identity block --------------------------------------------------------


def _loaded(**extra: Any) -> Any:
    from sidecar.identity.load import build_world

    doc_ = {
        "accounts": [
            {
                "id": A,
                "roles": [{"name": "app", "trust_policy": EKS_TRUST}],
                "oidc_providers": [
                    {"url": K8S_ISSUER, "client_ids": ["sts.amazonaws.com"], "jwks_file": "/j"}
                ],
            }
        ],
        "pod_identity": {
            "issuer": K8S_ISSUER,
            "audience": "pods.eks.amazonaws.com",
            "cluster_name": "prod",
            "associations": [
                {
                    "namespace": "shop",
                    "service_account": "orders",
                    "role_arn": f"arn:aws:iam::{A}:role/app",
                }
            ],
            **extra,
        },
    }
    return build_world(doc_, source="world.yaml", secrets=lambda kind, ref: None)


def test_loader_reads_cluster_arn_and_duration_with_defaults() -> None:
    default = _loaded().pod_identity
    assert (default.cluster_arn, default.duration_seconds) == ("", 3600)
    given = _loaded(cluster_arn=CLUSTER_ARN, duration_seconds=900).pod_identity
    assert (given.cluster_arn, given.duration_seconds) == (CLUSTER_ARN, 900)


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"cluster_arn": f"arn:aws:iam::{A}:role/app"}, "pod_identity.cluster_arn"),
        ({"duration_seconds": 60}, "pod_identity.duration_seconds"),
        ({"duration_seconds": "3600"}, "pod_identity.duration_seconds"),
    ],
)
def test_loader_refuses_bad_cluster_arn_and_duration(extra: dict[str, Any], where: str) -> None:
    from sidecar.errors import WorldError

    with pytest.raises(WorldError) as err:
        _loaded(**extra)
    assert [path for path, _ in err.value.issues] == [where]
