"""The Python SDK: a small synchronous client for a running sidecar.

    from sidecar.client.client import SidecarClient
    with SidecarClient("127.0.0.1:50051", access_key_id=..., secret_access_key=...) as c:
        creds = c.assume_role("arn:aws:iam::111111111111:role/apps/app-reader", "s1")
        answer = c.authorize("s3:GetObject", "arn:aws:s3:::reports/q1.csv",
                             session_token=creds.credentials.session_token)

STS calls are signed with SigV4 when an access key is given (a session token too for temporary
credentials), or sent with `authorization: Bearer <session token>` when only a token is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from sidecar.api.v1 import authorizer_pb2, sts_pb2
from sidecar.client import calls
from sidecar.client.calls import AUTHORIZER, STS, ContextValue
from sidecar.client.sigv4 import sign_call

R = TypeVar("R", bound=Message)


class SidecarClient:
    def __init__(
        self,
        target: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str = "us-east-1",
        channel_credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.region = region
        self.timeout = timeout
        if channel_credentials is not None:
            self.channel = grpc.secure_channel(target, channel_credentials)
        else:
            self.channel = grpc.insecure_channel(target)

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _auth(self, path: str, body: bytes) -> list[tuple[str, str]]:
        if self.access_key_id and self.secret_access_key:
            return sign_call(
                path,
                body,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                session_token=self.session_token,
                region=self.region,
            )
        if self.session_token:
            return [("authorization", f"Bearer {self.session_token}")]
        return []

    def _call(self, path: str, request: Message, response: type[R], *, sign: bool = True) -> R:
        body = request.SerializeToString()
        method = self.channel.unary_unary(
            path, request_serializer=None, response_deserializer=response.FromString
        )
        metadata = self._auth(path, body) if sign else []
        result: R = method(body, metadata=tuple(metadata), timeout=self.timeout)
        return result

    # -- SecurityTokenService -------------------------------------------------------------------

    def assume_role(
        self,
        role_arn: str,
        role_session_name: str,
        *,
        duration_seconds: int = 0,
        external_id: str = "",
        policy: str = "",
        policy_arns: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        transitive_tag_keys: Sequence[str] = (),
        source_identity: str = "",
        serial_number: str = "",
        token_code: str = "",
    ) -> sts_pb2.AssumeRoleResponse:
        call = calls.assume_role(
            role_arn,
            role_session_name,
            duration_seconds=duration_seconds,
            external_id=external_id,
            policy=policy,
            policy_arns=policy_arns,
            tags=tags,
            transitive_tag_keys=transitive_tag_keys,
            source_identity=source_identity,
            serial_number=serial_number,
            token_code=token_code,
        )
        return self._call(call.path, call.request, sts_pb2.AssumeRoleResponse)

    def get_caller_identity(self) -> sts_pb2.GetCallerIdentityResponse:
        return self._call(
            STS + "GetCallerIdentity",
            sts_pb2.GetCallerIdentityRequest(),
            sts_pb2.GetCallerIdentityResponse,
        )

    # -- Authorizer ---------------------------------------------------------------------------

    def authorize(
        self,
        action: str,
        resource: str,
        *,
        session_token: str | None = None,
        context: Mapping[str, ContextValue] | None = None,
    ) -> authorizer_pb2.AuthorizeResponse:
        token = session_token or self.session_token or ""
        call = calls.authorize(action, resource, token, context)
        return self._call(call.path, call.request, authorizer_pb2.AuthorizeResponse, sign=False)

    def batch_authorize(
        self,
        requests: Sequence[tuple[str, str, Mapping[str, ContextValue]]],
        *,
        session_token: str | None = None,
    ) -> authorizer_pb2.BatchAuthorizeResponse:
        call = calls.batch_authorize(requests, session_token or self.session_token or "")
        return self._call(
            call.path, call.request, authorizer_pb2.BatchAuthorizeResponse, sign=False
        )

    def simulate_custom_policy(
        self, request: authorizer_pb2.SimulateCustomPolicyRequest
    ) -> authorizer_pb2.SimulateCustomPolicyResponse:
        """Signed (or sent with the bearer token) like the STS calls: the caller needs
        iam:SimulateCustomPolicy."""
        response = authorizer_pb2.SimulateCustomPolicyResponse
        return self._call(AUTHORIZER + "SimulateCustomPolicy", request, response)
