"""A role session: what a session token carries, and what evaluation reads from it."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.identity.model import Role, World
from sidecar.policy.principals import PrincipalType, RequestPrincipal


@dataclass(frozen=True, slots=True)
class Session:
    partition: str
    account: str
    role_name: str
    role_path: str
    role_id: str  # AROA...
    session_name: str
    access_key_id: str  # ASIA...
    issued_at: int  # epoch seconds
    expires_at: int
    # Session policies as compact JSON texts with their ids (inline "SessionPolicy" first, then
    # the managed ones by ARN). Empty: the session has no session policies.
    session_policies: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()  # session tags, inherited transitive ones included
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str = ""
    mfa_authenticated_at: int | None = None  # None: no MFA when the session was created
    federated_provider: str = ""
    # Condition keys carried from a web identity or SAML assertion (key -> values).
    federated_claims: tuple[tuple[str, tuple[str, ...]], ...] = ()
    chained: bool = False  # created with another role session's credentials
    origin: str = "AssumeRole"

    @property
    def arn(self) -> str:
        return (
            f"arn:{self.partition}:sts::{self.account}:assumed-role/"
            f"{self.role_name}/{self.session_name}"
        )

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{self.role_path}{self.role_name}"

    @property
    def assumed_role_id(self) -> str:
        return f"{self.role_id}:{self.session_name}"

    def principal(self) -> RequestPrincipal:
        return RequestPrincipal(
            type=PrincipalType.ASSUMED_ROLE,
            arn=self.arn,
            account=self.account,
            partition=self.partition,
            name=self.role_name,
            session_name=self.session_name,
            unique_id=self.role_id,
            identity_arn=self.role_arn,
        )


def current_role(world: World, session: Session) -> Role | None:
    """The session's role as it is now in ``world``; None when the session can do nothing: the
    role is gone, or a reload moved the world to another partition (the session's ARNs name the
    old one). The name lookup ignores the partition, hence the explicit check; comparing role ids
    would say no more, as they derive from partition, account and name (identity/ids.py)."""
    if session.partition != world.partition:
        return None
    return world.role_by_name(session.account, session.role_name)
