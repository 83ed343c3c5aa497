"""Typed errors: a subclass per AWS code the sidecar returns, raised from real refusals over the
wire, and SidecarUnavailable / SidecarTimeout for statuses without an AWS code."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from sidecar.client import AsyncClient, Client, RetryPolicy, errors
from sidecar.errors import SidecarError as ServerError
from sidecar.server.app import Sidecar
from sidecar.server.status import CODES, to_status
from tests.server.conftest import APP_READER, DEMO_KEY, OffsetClock


class FakeCall(grpc.RpcError):
    """A failed call carrying the status exactly as the sidecar's server builds it."""

    def __init__(self, status: grpc.Status) -> None:
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status.code

    def details(self) -> str:
        return self.status.details

    def trailing_metadata(self) -> Any:
        return self.status.trailing_metadata


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_the_sidecar_returns_has_its_class(code: str) -> None:
    server_error = ServerError("what went wrong")
    server_error.code = code
    err = errors.from_rpc_error(FakeCall(to_status(server_error)))
    assert type(err) is errors.BY_CODE[code]
    assert type(err).__name__ == code
    assert isinstance(err, errors.SidecarError)
    assert getattr(errors, code) is type(err)
    assert (err.code, err.message, err.grpc_status) == (code, "what went wrong", CODES[code].name)


def refusal(fn: Callable[[], Any]) -> errors.SidecarError:
    with pytest.raises(errors.SidecarError) as info:
        fn()
    return info.value


def sync_refusals(addr: str) -> list[errors.SidecarError]:
    out = []
    with Client(addr, access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]) as alice:
        out.append(refusal(lambda: alice.assume_role(APP_READER, "a")))
        out.append(refusal(lambda: alice.assume_role(APP_READER, "s1", policy='{"Statement": []}')))
        out.append(refusal(lambda: alice.assume_role("arn:aws:iam::111111111111:role/nope", "s1")))
    with Client(addr, access_key_id=DEMO_KEY[0], secret_access_key="wrong") as wrong:
        out.append(refusal(wrong.get_caller_identity))
    with Client(addr, access_key_id="AKIAUNKNOWN000000000", secret_access_key="x") as unknown:
        out.append(refusal(unknown.get_caller_identity))
    with Client(addr) as anonymous:
        out.append(refusal(anonymous.get_caller_identity))
        out.append(refusal(lambda: anonymous.authorize("s3:GetObject", "*", session_token="junk")))
    return out


async def test_refusals_over_the_wire_raise_their_class(sidecar: Sidecar) -> None:
    got = await asyncio.to_thread(sync_refusals, f"127.0.0.1:{sidecar.grpc_port}")
    assert [(type(e), e.grpc_status) for e in got] == [
        (errors.ValidationError, "INVALID_ARGUMENT"),
        (errors.MalformedPolicyDocument, "INVALID_ARGUMENT"),
        (errors.AccessDenied, "PERMISSION_DENIED"),
        (errors.SignatureDoesNotMatch, "UNAUTHENTICATED"),
        (errors.InvalidClientTokenId, "UNAUTHENTICATED"),
        (errors.MissingAuthenticationToken, "UNAUTHENTICATED"),
        (errors.InvalidClientTokenId, "UNAUTHENTICATED"),
    ]
    assert got[0].message.startswith("1 validation error detected")
    assert "is not authorized to perform: sts:AssumeRole" in got[2].message


async def test_async_client_raises_typed_errors(sidecar: Sidecar, clock: OffsetClock) -> None:
    addr = f"127.0.0.1:{sidecar.grpc_port}"
    async with AsyncClient(addr, access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]) as c:
        token = (await c.assume_role(APP_READER, "s1", duration_seconds=900)).credentials
        with pytest.raises(errors.AccessDenied) as denied:
            await c.assume_role("arn:aws:iam::111111111111:role/nope", "s1")
        assert denied.value.code == "AccessDenied"
        clock.offset = 901
        with pytest.raises(errors.ExpiredToken):
            await c.authorize("s3:GetObject", "*", session_token=token.session_token)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_nothing_listening_is_sidecar_unavailable_without_retries() -> None:
    with Client(f"127.0.0.1:{free_port()}", retries=RetryPolicy(max_attempts=1)) as c:
        err = refusal(c.get_caller_identity)
    assert type(err) is errors.SidecarUnavailable
    assert (err.code, err.grpc_status) == ("UNAVAILABLE", "UNAVAILABLE")


async def test_async_nothing_listening_is_unavailable() -> None:
    async with AsyncClient(f"127.0.0.1:{free_port()}", retries=RetryPolicy(max_attempts=1)) as c:
        with pytest.raises(errors.SidecarUnavailable):
            await c.get_caller_identity()
