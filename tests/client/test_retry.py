"""Retries: UNAVAILABLE only (never a refusal), with backoff and jitter, within the call's
deadline; a call made while the sidecar restarts on the same port succeeds."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager

import grpc
import pytest

from sidecar.client import AsyncClient, Client, Credentials, RetryPolicy, errors
from sidecar.client.calls import Call
from sidecar.server.app import ServeOptions, Sidecar, load_world
from sidecar.sts.keys import KeyRing
from tests.client.test_errors import free_port
from tests.fakes import CountingEntropy
from tests.server.conftest import APP_READER, DEMO_KEY

SERVICE = "iamsidecar.v1.SecurityTokenService"


@asynccontextmanager
async def running_sidecar(port: int) -> AsyncIterator[Sidecar]:
    opts = ServeOptions(
        listen=f"127.0.0.1:{port}", http_listen="127.0.0.1:0", grace=0.5, drain_delay=0.0
    )
    server = Sidecar(opts, load_world(opts), KeyRing.generate(CountingEntropy(11)), None)
    await server.start()
    try:
        yield server
    finally:
        await server.drain()


def counting(client: Client | AsyncClient) -> list[str]:
    """Record each attempt (the client signs every attempt afresh)."""
    attempts: list[str] = []
    sign = client.metadata

    def spy(
        call: Call, body: bytes, creds: Credentials | None = None
    ) -> tuple[tuple[str, str], ...]:
        attempts.append(call.path)
        return sign(call, body, creds)

    client.metadata = spy  # type: ignore[method-assign]
    return attempts


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.4, multiplier=2.0, max_attempts=6)
    delays = list(policy.delays(random.Random(7)))
    assert len(delays) == 5  # waits between 6 attempts
    for delay, nominal in zip(delays, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert nominal / 2 <= delay <= nominal
    assert len(set(delays)) == 5  # jittered, not a fixed schedule
    with pytest.raises(ValueError, match="initial_backoff"):
        RetryPolicy(initial_backoff=0)


async def test_a_call_made_while_the_sidecar_restarts_succeeds() -> None:
    """The sidecar stops, the client calls, the sidecar comes back on the same port 1 s later:
    the call (default retries, 10 s timeout) gets its answer."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    client = Client(addr, access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1])
    attempts = counting(client)
    try:
        async with running_sidecar(port):
            assert (await asyncio.to_thread(client.get_caller_identity)).account
        # Down now: the call starts before the new process listens.
        call = asyncio.create_task(asyncio.to_thread(client.assume_role, APP_READER, "s1"))
        await asyncio.sleep(1.0)
        assert not call.done()
        async with running_sidecar(port):
            out = await asyncio.wait_for(call, 15)
        assert out.assumed_role_user.arn.endswith("assumed-role/app-reader/s1")
        assert attempts.count("/iamsidecar.v1.SecurityTokenService/AssumeRole") > 2
    finally:
        client.close()


async def test_async_client_rides_out_a_restart_too() -> None:
    port = free_port()
    async with AsyncClient(f"127.0.0.1:{port}", access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]) as client:  # fmt: skip
        call = asyncio.create_task(client.get_caller_identity())
        await asyncio.sleep(1.0)
        assert not call.done()
        async with running_sidecar(port):
            me = await asyncio.wait_for(call, 15)
    assert me.arn == "arn:aws:iam::111111111111:user/alice"


async def test_a_refusal_is_never_retried(sidecar: Sidecar) -> None:
    async with AsyncClient(f"127.0.0.1:{sidecar.grpc_port}", access_key_id=DEMO_KEY[0], secret_access_key="wrong") as client:  # fmt: skip
        attempts = counting(client)
        with pytest.raises(errors.SignatureDoesNotMatch):
            await client.get_caller_identity()
    assert len(attempts) == 1


@contextmanager
def hanging_sidecar() -> Iterator[int]:
    """A gRPC server on 127.0.0.1 whose GetCallerIdentity never answers (until the test ends)."""
    release = threading.Event()

    def hang(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        release.wait(10)
        return b""

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(hang)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"GetCallerIdentity": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        release.set()
        server.stop(None)


def test_timeout_is_the_whole_call_deadline() -> None:
    """The sidecar never answers: the call ends with SidecarTimeout at its deadline, retries included."""
    with hanging_sidecar() as port, Client(f"127.0.0.1:{port}", timeout=0.5) as client:
        start = time.monotonic()
        with pytest.raises(errors.SidecarTimeout) as info:
            client.get_caller_identity()
        took = time.monotonic() - start
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert took < 5  # a generous guard: the deadline, not retries on top of it


def test_retries_stop_at_the_deadline_when_nothing_listens() -> None:
    with Client(f"127.0.0.1:{free_port()}", timeout=0.6) as client:
        attempts = counting(client)
        start = time.monotonic()
        with pytest.raises((errors.SidecarUnavailable, errors.SidecarTimeout)):
            client.get_caller_identity()
        took = time.monotonic() - start
    assert len(attempts) > 1
    assert took < 5
