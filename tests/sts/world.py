"""A small world built directly from the model, for STS and engine tests."""

from __future__ import annotations

import json
from typing import Any

from sidecar.identity import ids
from sidecar.identity.model import (
    AccessKey,
    Account,
    ManagedPolicy,
    MfaDevice,
    ResourcePolicy,
    Role,
    ServicePrincipal,
    User,
    World,
)
from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy

A = "111111111111"
B = "222222222222"
ALICE = f"arn:aws:iam::{A}:user/alice"
BOB = f"arn:aws:iam::{A}:user/bob"
MFA_SEED = b"12345678901234567890"
MFA_SERIAL = f"arn:aws:iam::{A}:mfa/alice-phone"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def trust_stmt(principal: Any, actions: Any = "sts:AssumeRole", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": actions, **extra}


def _compile(d: dict[str, Any], kind: PolicyKind, pid: str) -> CompiledPolicy:
    return compile_policy(parse_policy(d, kind, policy_id=pid))


def role(
    account: str,
    name: str,
    trust: dict[str, Any],
    *,
    path: str = "/",
    inline: dict[str, dict[str, Any]] | None = None,
    managed: tuple[str, ...] = (),
    boundary: str | None = None,
    tags: dict[str, str] | None = None,
    max_session: int = 3600,
) -> Role:
    return Role(
        account=account,
        name=name,
        path=path,
        arn=f"arn:aws:iam::{account}:role{path}{name}",
        role_id=ids.role_id("aws", account, name),
        trust_policy=_compile(trust, PolicyKind.TRUST, "TrustPolicy"),
        inline_policies={k: _compile(v, PolicyKind.IDENTITY, k) for k, v in (inline or {}).items()},
        managed_policy_arns=managed,
        permissions_boundary=boundary,
        tags=tags or {},
        max_session_duration=max_session,
    )


def managed(account: str, name: str, d: dict[str, Any]) -> ManagedPolicy:
    arn = f"arn:aws:iam::{account}:policy/{name}"
    return ManagedPolicy(
        arn=arn,
        name=name,
        path="/",
        policy_id=ids.managed_policy_id("aws", account, name),
        document=_compile(d, PolicyKind.MANAGED, arn),
        text=json.dumps(d, separators=(",", ":")),
    )


def user(
    account: str,
    name: str,
    *,
    inline: dict[str, dict[str, Any]] | None = None,
    tags: dict[str, str] | None = None,
    keys: tuple[AccessKey, ...] = (),
    mfa: tuple[MfaDevice, ...] = (),
    boundary: str | None = None,
) -> User:
    return User(
        account=account,
        name=name,
        path="/",
        arn=f"arn:aws:iam::{account}:user/{name}",
        user_id=ids.user_id("aws", account, name),
        inline_policies={k: _compile(v, PolicyKind.IDENTITY, k) for k, v in (inline or {}).items()},
        managed_policy_arns=(),
        permissions_boundary=boundary,
        tags=tags or {},
        access_keys=keys,
        mfa_devices=mfa,
    )


def account(
    account_id: str,
    roles: list[Role],
    users: list[User] = (),  # type: ignore[assignment]
    policies: list[ManagedPolicy] = (),  # type: ignore[assignment]
    resource_policies: tuple[ResourcePolicy, ...] = (),
) -> Account:
    return Account(
        account_id=account_id,
        managed_policies={p.arn: p for p in policies},
        roles={r.name.lower(): r for r in roles},
        users={u.name.lower(): u for u in users},
        oidc_providers={},
        saml_providers={},
        resource_policies=resource_policies,
    )


def make_world(accounts: list[Account], services: tuple[ServicePrincipal, ...] = ()) -> World:
    roles = {r.arn: r for a in accounts for r in a.roles.values()}
    users = {u.arn: u for a in accounts for u in a.users.values()}
    keys = {k.access_key_id: (u, k) for u in users.values() for k in u.access_keys}
    spiffe = {sid: s for s in services for sid in s.spiffe_ids}
    return World(
        partition="aws",
        accounts={a.account_id: a for a in accounts},
        service_principals=services,
        roles_by_arn=roles,
        users_by_arn=users,
        access_keys=keys,
        services_by_spiffe=spiffe,
    )


ORDERS = ServicePrincipal("orders.mesh.local", ("spiffe://cluster.local/ns/orders/sa/orders",))
ASSUME_ANY = doc(allow("sts:AssumeRole"))


def demo_world() -> World:
    """Roles for every trust shape the STS tests need."""
    s3read = managed(A, "S3Read", doc(allow("s3:GetObject", "arn:aws:s3:::reports/*")))
    s3all = managed(A, "S3All", doc(allow("s3:*")))
    cap = managed(A, "ListOnly", doc(allow("s3:ListBucket")))
    tag_actions = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    roles_a = [
        role(
            A,
            "app-reader",
            doc(trust_stmt({"AWS": ALICE}, tag_actions), trust_stmt({"Service": ORDERS.name})),
            path="/apps/",
            managed=(s3read.arn,),
            tags={"team": "payments"},
            max_session=7200,
        ),
        role(A, "account-trust", doc(trust_stmt({"AWS": A})), managed=(s3read.arn,)),
        role(
            A,
            "chain-b",
            doc(trust_stmt({"AWS": f"arn:aws:iam::{A}:role/apps/app-reader"}, tag_actions)),
            inline={"all": doc(allow(["s3:*", "sts:AssumeRole"]))},
            max_session=7200,
        ),
        role(
            A,
            "chain-c",
            doc(trust_stmt({"AWS": f"arn:aws:iam::{A}:role/chain-b"}, tag_actions)),
            inline={"all": doc(allow("s3:*"))},
        ),
        role(
            A,
            "external",
            doc(
                trust_stmt(
                    {"AWS": ALICE}, Condition={"StringEquals": {"sts:ExternalId": "xyz-123"}}
                )
            ),
        ),
        role(
            A,
            "mfa-role",
            doc(
                trust_stmt(
                    {"AWS": ALICE}, Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}
                )
            ),
        ),
        role(A, "bounded", doc(trust_stmt({"AWS": ALICE})), managed=(s3all.arn,), boundary=cap.arn),
        role(A, "long", doc(trust_stmt({"AWS": ALICE})), max_session=43200),
    ]
    alice = user(
        A,
        "alice",
        inline={"assume": ASSUME_ANY},
        tags={"dept": "eng"},
        keys=(AccessKey("AKIAALICE00000000001", "alice-secret"),),
        mfa=(MfaDevice(MFA_SERIAL, MFA_SEED),),
    )
    bob = user(A, "bob")
    roles_b = [role(B, "cross", doc(trust_stmt({"AWS": A})), inline={"all": doc(allow("s3:*"))})]
    return make_world(
        [
            account(A, roles_a, [alice, bob], [s3read, s3all, cap]),
            account(B, roles_b),
        ],
        (ORDERS,),
    )
