"""Plain-Python results of the sidecar's RPCs (dataclasses, not protobuf messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime  # timezone-aware, UTC


@dataclass(frozen=True)
class AssumedRoleUser:
    assumed_role_id: str
    arn: str


@dataclass(frozen=True)
class AssumeRoleResult:
    credentials: Credentials
    assumed_role_user: AssumedRoleUser
    packed_policy_size: int
    source_identity: str


@dataclass(frozen=True)
class WebIdentityResult(AssumeRoleResult):
    subject_from_web_identity_token: str
    audience: str
    provider: str


@dataclass(frozen=True)
class SAMLResult(AssumeRoleResult):
    subject: str
    subject_type: str
    issuer: str
    audience: str
    name_qualifier: str


@dataclass(frozen=True)
class CallerIdentity:
    user_id: str
    account: str
    arn: str


@dataclass(frozen=True)
class StatementRef:
    policy_id: str
    sid: str
    index: int
    effect: str
    policy_type: str


@dataclass(frozen=True)
class AuthorizeResult:
    decision: str  # "ALLOWED", "IMPLICIT_DENY" or "EXPLICIT_DENY"
    principal_arn: str
    matched_statements: tuple[StatementRef, ...]
    reason: str

    @property
    def allowed(self) -> bool:
        return self.decision == "ALLOWED"


@dataclass(frozen=True)
class EvaluationResult:
    action: str
    resource: str
    decision: str
    matched_statements: tuple[StatementRef, ...]
    missing_context_values: tuple[str, ...]
    reason: str

    @property
    def allowed(self) -> bool:
        return self.decision == "ALLOWED"


def credentials(msg: types_pb2.Credentials) -> Credentials:
    return Credentials(
        msg.access_key_id,
        msg.secret_access_key,
        msg.session_token,
        msg.expiration.ToDatetime(tzinfo=UTC),
    )


def _base(
    msg: sts_pb2.AssumeRoleResponse
    | sts_pb2.AssumeRoleWithWebIdentityResponse
    | sts_pb2.AssumeRoleWithSAMLResponse,
) -> tuple[Credentials, AssumedRoleUser, int, str]:
    user = AssumedRoleUser(msg.assumed_role_user.assumed_role_id, msg.assumed_role_user.arn)
    return credentials(msg.credentials), user, msg.packed_policy_size, msg.source_identity


def assume_role(msg: sts_pb2.AssumeRoleResponse) -> AssumeRoleResult:
    return AssumeRoleResult(*_base(msg))


def web_identity(msg: sts_pb2.AssumeRoleWithWebIdentityResponse) -> WebIdentityResult:
    return WebIdentityResult(
        *_base(msg), msg.subject_from_web_identity_token, msg.audience, msg.provider
    )


def saml(msg: sts_pb2.AssumeRoleWithSAMLResponse) -> SAMLResult:
    return SAMLResult(
        *_base(msg), msg.subject, msg.subject_type, msg.issuer, msg.audience, msg.name_qualifier
    )


def caller_identity(msg: sts_pb2.GetCallerIdentityResponse) -> CallerIdentity:
    return CallerIdentity(msg.user_id, msg.account, msg.arn)


def _statements(refs: object) -> tuple[StatementRef, ...]:
    return tuple(
        StatementRef(r.policy_id, r.sid, r.index, r.effect, r.policy_type)
        for r in refs  # type: ignore[attr-defined]
    )


def authorize(msg: authorizer_pb2.AuthorizeResponse) -> AuthorizeResult:
    return AuthorizeResult(
        types_pb2.Decision.Name(msg.decision),
        msg.principal_arn,
        _statements(msg.matched_statements),
        msg.reason,
    )


def batch_authorize(msg: authorizer_pb2.BatchAuthorizeResponse) -> list[AuthorizeResult]:
    return [authorize(r) for r in msg.results]


def simulate(msg: authorizer_pb2.SimulateCustomPolicyResponse) -> list[EvaluationResult]:
    return [
        EvaluationResult(
            r.eval_action_name,
            r.eval_resource_name,
            types_pb2.Decision.Name(r.eval_decision),
            _statements(r.matched_statements),
            tuple(r.missing_context_values),
            r.reason,
        )
        for r in msg.evaluation_results
    ]
