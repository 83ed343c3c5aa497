"""The Python SDK for iam-sidecar (docs/SDK.md): `Client` and `AsyncClient` with every RPC and
plain-Python results, typed errors in `sidecar.client.errors`, retries on UNAVAILABLE,
refreshing role credentials, and SigV4 signing of gRPC calls. `SidecarClient` (client.py) is the
older protobuf-returning client, kept for the CLI."""

from sidecar.client.aio import AsyncClient
from sidecar.client.client import SidecarClient
from sidecar.client.results import (
    AssumedRoleUser,
    AssumeRoleResult,
    AuthorizeResult,
    CallerIdentity,
    Credentials,
    EvaluationResult,
    SAMLResult,
    StatementRef,
    WebIdentityResult,
)
from sidecar.client.retry import RetryPolicy
from sidecar.client.sync import Client

__all__ = [
    "AssumeRoleResult",
    "AssumedRoleUser",
    "AsyncClient",
    "AuthorizeResult",
    "CallerIdentity",
    "Client",
    "Credentials",
    "EvaluationResult",
    "RetryPolicy",
    "SAMLResult",
    "SidecarClient",
    "StatementRef",
    "WebIdentityResult",
]
