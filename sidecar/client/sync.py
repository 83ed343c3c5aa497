"""`Client`: the synchronous SDK client (every RPC, plain results, typed errors, retries)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from sidecar.client import calls
from sidecar.client.base import CHANNEL_OPTIONS, ClientBase, channel_target
from sidecar.client.calls import AuthorizeItem, Call, ContextValue
from sidecar.client.credentials import (
    DEFAULT_ADVISORY,
    DEFAULT_DURATION,
    DEFAULT_MANDATORY,
    RoleCredentials,
)
from sidecar.client.errors import SidecarTimeout, from_rpc_error, is_transient
from sidecar.client.results import (
    AssumeRoleResult,
    AuthorizeResult,
    CallerIdentity,
    Credentials,
    EvaluationResult,
    SAMLResult,
    WebIdentityResult,
)
from sidecar.client.retry import RetryPolicy


class Client(ClientBase):
    """A client of one sidecar. ``timeout`` is each call's whole deadline, retries included.

    Thread-safe: one client (one channel) can serve every thread of an application.
    """

    def __init__(
        self,
        target: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
        retries: RetryPolicy | None = None,
        region: str = "us-east-1",
        credentials: RoleCredentials | None = None,
    ) -> None:
        super().__init__(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            region=region,
            timeout=timeout,
            retries=retries or RetryPolicy(),
            refreshing=credentials is not None,
        )
        self.credentials = credentials
        target = channel_target(target)
        if channel_credentials is not None:
            self.channel = grpc.secure_channel(target, channel_credentials, CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(target, CHANNEL_OPTIONS)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def invoke(self, call: Call) -> Any:
        """Send ``call``, retrying UNAVAILABLE with backoff until the deadline."""
        body = call.request.SerializeToString()
        method = self.channel.unary_unary(
            call.path, request_serializer=None, response_deserializer=call.response.FromString
        )
        deadline = time.monotonic() + self.timeout
        delays = self.retries.delays()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SidecarTimeout(f"no answer within {self.timeout} s")
            try:
                response = method(
                    body, metadata=self.metadata(call, body, self._current()), timeout=remaining
                )
                return call.convert(response)
            except grpc.RpcError as err:
                delay = next(delays, None)
                if not is_transient(err) or delay is None:
                    raise from_rpc_error(err) from None
                if delay >= deadline - time.monotonic():
                    raise from_rpc_error(err) from None
                time.sleep(delay)

    def _current(self) -> Credentials | None:
        return self.credentials.get() if self.credentials is not None else None

    def _token(self) -> str:
        """The session token of Authorize calls: the refreshing credentials' current session,
        else the client's own session_token."""
        creds = self._current()
        return creds.session_token if creds is not None else self.session_token or ""

    # -- SecurityTokenService -------------------------------------------------------------------

    def assume_role(self, role_arn: str, role_session_name: str, **params: Any) -> AssumeRoleResult:
        """Keyword arguments: duration_seconds, external_id, policy, policy_arns, tags,
        transitive_tag_keys, source_identity, serial_number, token_code."""
        result: AssumeRoleResult = self.invoke(
            calls.assume_role(role_arn, role_session_name, **params)
        )
        return result

    def assume_role_with_web_identity(
        self, role_arn: str, role_session_name: str, web_identity_token: str, **params: Any
    ) -> WebIdentityResult:
        call = calls.assume_role_with_web_identity(
            role_arn, role_session_name, web_identity_token, **params
        )
        result: WebIdentityResult = self.invoke(call)
        return result

    def assume_role_with_saml(
        self, role_arn: str, principal_arn: str, saml_assertion: str, **params: Any
    ) -> SAMLResult:
        call = calls.assume_role_with_saml(role_arn, principal_arn, saml_assertion, **params)
        result: SAMLResult = self.invoke(call)
        return result

    def get_caller_identity(self) -> CallerIdentity:
        result: CallerIdentity = self.invoke(calls.get_caller_identity())
        return result

    def role_credentials(
        self,
        role_arn: str,
        role_session_name: str,
        *,
        duration_seconds: int = DEFAULT_DURATION,
        advisory_refresh: float = DEFAULT_ADVISORY,
        mandatory_refresh: float = DEFAULT_MANDATORY,
        clock: Callable[[], float] = time.time,
        **assume_role_params: Any,
    ) -> RoleCredentials:
        """Credentials of ``role_arn`` that refresh themselves (credentials.py); the other
        keyword arguments go to each AssumeRole."""

        def assume(duration: int) -> AssumeRoleResult:
            return self.assume_role(
                role_arn, role_session_name, duration_seconds=duration, **assume_role_params
            )

        return RoleCredentials(
            assume,
            duration_seconds=duration_seconds,
            advisory_refresh=advisory_refresh,
            mandatory_refresh=mandatory_refresh,
            clock=clock,
        )

    # -- Authorizer ---------------------------------------------------------------------------

    def authorize(
        self,
        action: str,
        resource: str,
        *,
        session_token: str | None = None,
        context: Mapping[str, ContextValue] | None = None,
    ) -> AuthorizeResult:
        call = calls.authorize(action, resource, session_token or self._token(), context)
        result: AuthorizeResult = self.invoke(call)
        return result

    def batch_authorize(
        self, requests: Sequence[AuthorizeItem], *, session_token: str | None = None
    ) -> list[AuthorizeResult]:
        """``requests``: (action, resource) or (action, resource, context) tuples."""
        result: list[AuthorizeResult] = self.invoke(
            calls.batch_authorize(requests, session_token or self._token())
        )
        return result

    def simulate_custom_policy(
        self, policy_input_list: Sequence[str], action_names: Sequence[str], **params: Any
    ) -> list[EvaluationResult]:
        """Signed like the STS calls: the caller needs iam:SimulateCustomPolicy."""
        call = calls.simulate_custom_policy(policy_input_list, action_names, **params)
        result: list[EvaluationResult] = self.invoke(call)
        return result
