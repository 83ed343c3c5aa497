"""The sidecar's RPCs as data (method path, request, response type, converter), shared by the
sync and asyncio clients so both send exactly the same requests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.client import results

STS = "/iamsidecar.v1.SecurityTokenService/"
AUTHORIZER = "/iamsidecar.v1.Authorizer/"

ContextValue = str | Sequence[str] | tuple[Sequence[str], str]


def context_entries(context: Mapping[str, ContextValue]) -> list[types_pb2.ContextEntry]:
    """{key: "v"} → STRING, {key: ["a", "b"]} → STRING_LIST, {key: (["10.0.0.1"], "IP")}."""
    out = []
    for key, value in context.items():
        if isinstance(value, str):
            out.append(types_pb2.ContextEntry(key=key, values=[value], type=types_pb2.STRING))
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
            values, type_name = value
            out.append(
                types_pb2.ContextEntry(
                    key=key, values=list(values), type=types_pb2.ContextKeyType.Value(type_name)
                )
            )
        else:
            out.append(
                types_pb2.ContextEntry(key=key, values=list(value), type=types_pb2.STRING_LIST)
            )
    return out


@dataclass(frozen=True)
class Call:
    path: str
    request: Message
    response: type[Message]
    convert: Callable[[Any], Any]
    sign: bool = True  # Authorize/BatchAuthorize carry the session token in the request


def _descriptors(arns: Sequence[str]) -> list[types_pb2.PolicyDescriptor]:
    return [types_pb2.PolicyDescriptor(arn=a) for a in arns]


def assume_role(
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
) -> Call:
    req = sts_pb2.AssumeRoleRequest(
        role_arn=role_arn,
        role_session_name=role_session_name,
        duration_seconds=duration_seconds,
        external_id=external_id,
        policy=policy,
        policy_arns=_descriptors(policy_arns),
        tags=[types_pb2.Tag(key=k, value=v) for k, v in (tags or {}).items()],
        transitive_tag_keys=list(transitive_tag_keys),
        source_identity=source_identity,
        serial_number=serial_number,
        token_code=token_code,
    )
    return Call(STS + "AssumeRole", req, sts_pb2.AssumeRoleResponse, results.assume_role)


def assume_role_with_web_identity(
    role_arn: str,
    role_session_name: str,
    web_identity_token: str,
    *,
    provider_id: str = "",
    policy: str = "",
    policy_arns: Sequence[str] = (),
    duration_seconds: int = 0,
) -> Call:
    req = sts_pb2.AssumeRoleWithWebIdentityRequest(
        role_arn=role_arn,
        role_session_name=role_session_name,
        web_identity_token=web_identity_token,
        provider_id=provider_id,
        policy=policy,
        policy_arns=_descriptors(policy_arns),
        duration_seconds=duration_seconds,
    )
    response = sts_pb2.AssumeRoleWithWebIdentityResponse
    # Unsigned, as in AWS: the web identity token is the credential.
    return Call(STS + "AssumeRoleWithWebIdentity", req, response, results.web_identity, False)


def assume_role_with_saml(
    role_arn: str,
    principal_arn: str,
    saml_assertion: str,
    *,
    policy: str = "",
    policy_arns: Sequence[str] = (),
    duration_seconds: int = 0,
) -> Call:
    req = sts_pb2.AssumeRoleWithSAMLRequest(
        role_arn=role_arn,
        principal_arn=principal_arn,
        saml_assertion=saml_assertion,
        policy=policy,
        policy_arns=_descriptors(policy_arns),
        duration_seconds=duration_seconds,
    )
    response = sts_pb2.AssumeRoleWithSAMLResponse
    return Call(STS + "AssumeRoleWithSAML", req, response, results.saml, False)


def get_caller_identity() -> Call:
    return Call(
        STS + "GetCallerIdentity",
        sts_pb2.GetCallerIdentityRequest(),
        sts_pb2.GetCallerIdentityResponse,
        results.caller_identity,
    )


def authorize(
    action: str, resource: str, session_token: str, context: Mapping[str, ContextValue] | None
) -> Call:
    req = authorizer_pb2.AuthorizeRequest(
        session_token=session_token,
        action=action,
        resource=resource,
        context=context_entries(context or {}),
    )
    response = authorizer_pb2.AuthorizeResponse
    return Call(AUTHORIZER + "Authorize", req, response, results.authorize, False)


AuthorizeItem = tuple[str, str] | tuple[str, str, Mapping[str, ContextValue]]


def batch_authorize(requests: Sequence[AuthorizeItem], session_token: str) -> Call:
    items = []
    for item in requests:
        context: Mapping[str, ContextValue] = item[2] if len(item) == 3 else {}
        items.append(
            authorizer_pb2.AuthorizeItem(
                action=item[0], resource=item[1], context=context_entries(context)
            )
        )
    req = authorizer_pb2.BatchAuthorizeRequest(session_token=session_token, requests=items)
    response = authorizer_pb2.BatchAuthorizeResponse
    return Call(AUTHORIZER + "BatchAuthorize", req, response, results.batch_authorize, False)


def simulate_custom_policy(
    policy_input_list: Sequence[str],
    action_names: Sequence[str],
    *,
    resource_arns: Sequence[str] = (),
    resource_policy: str = "",
    resource_owner: str = "",
    caller_arn: str = "",
    context: Mapping[str, ContextValue] | None = None,
    permissions_boundary_policy_input_list: Sequence[str] = (),
    session_policy_input_list: Sequence[str] = (),
    service_control_policy_input_list: Sequence[str] = (),
) -> Call:
    req = authorizer_pb2.SimulateCustomPolicyRequest(
        policy_input_list=list(policy_input_list),
        action_names=list(action_names),
        resource_arns=list(resource_arns),
        resource_policy=resource_policy,
        resource_owner=resource_owner,
        caller_arn=caller_arn,
        context_entries=context_entries(context or {}),
        permissions_boundary_policy_input_list=list(permissions_boundary_policy_input_list),
        session_policy_input_list=list(session_policy_input_list),
        service_control_policy_input_list=list(service_control_policy_input_list),
    )
    response = authorizer_pb2.SimulateCustomPolicyResponse
    return Call(AUTHORIZER + "SimulateCustomPolicy", req, response, results.simulate)
