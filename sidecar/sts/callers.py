"""Authenticated callers of the STS API (verifying how they authenticated is the server's job)."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.identity.model import ServicePrincipal, User
from sidecar.policy.principals import PrincipalType, RequestPrincipal
from sidecar.sts.session import Session


@dataclass(frozen=True, slots=True)
class UserCaller:
    """An IAM user signing with a long-term access key."""

    user: User
    partition: str = "aws"

    def principal(self) -> RequestPrincipal:
        u = self.user
        return RequestPrincipal(
            type=PrincipalType.USER,
            arn=u.arn,
            account=u.account,
            partition=self.partition,
            name=u.name,
            unique_id=u.user_id,
            identity_arn=u.arn,
        )


@dataclass(frozen=True, slots=True)
class SessionCaller:
    """A role session presenting its session token (role chaining)."""

    session: Session

    def principal(self) -> RequestPrincipal:
        return self.session.principal()


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """A mesh service identified by its mTLS SPIFFE id."""

    service: ServicePrincipal
    spiffe_id: str = ""

    def principal(self) -> RequestPrincipal:
        return RequestPrincipal(
            type=PrincipalType.SERVICE,
            arn=self.service.name,
            name=self.service.name,
            aliases=(self.spiffe_id,) if self.spiffe_id else (),
        )


Caller = UserCaller | SessionCaller | ServiceCaller
