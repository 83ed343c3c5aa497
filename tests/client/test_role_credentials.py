"""Refreshing role credentials against a real sidecar: the windows are checked, a refresh
happens at the window's boundary (injected clock), many threads or tasks at that moment make one
AssumeRole, the advisory window lets others keep the current keys, and botocore gets the same."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials

from sidecar.client import AsyncClient, Client, errors
from sidecar.client.credentials import AsyncRoleCredentials, RoleCredentials
from sidecar.server.app import Sidecar
from tests.server.conftest import APP_READER, DEMO_KEY, OffsetClock

DURATION = 900  # the shortest session AssumeRole issues
ADVISORY = 840
MANDATORY = 660


def move(clock: OffsetClock, to: float) -> None:
    """Move the clock the sidecar and the client share to the instant ``to`` (the windows are
    wide enough that every move stays within SigV4's 5-minute clock skew)."""
    clock.offset += to - clock.now()


def counting(client: Client, gate: threading.Event | None = None) -> list[str]:
    """Count AssumeRole calls; with ``gate``, each waits for it (a slow sidecar)."""
    names: list[str] = []
    assume: Callable[..., Any] = client.assume_role

    def spy(role_arn: str, name: str, **kw: Any) -> Any:
        names.append(name)
        if gate is not None:
            assert gate.wait(10)
        return assume(role_arn, name, **kw)

    client.assume_role = spy  # type: ignore[method-assign,assignment]
    return names


def alice(sidecar: Sidecar) -> Client:
    return Client(
        f"127.0.0.1:{sidecar.grpc_port}", access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
    )


def role(client: Client, clock: OffsetClock, **kw: Any) -> RoleCredentials:
    return client.role_credentials(
        APP_READER,
        "app",
        duration_seconds=DURATION,
        advisory_refresh=ADVISORY,
        mandatory_refresh=MANDATORY,
        clock=clock.now,
        **kw,
    )


def test_windows_must_be_shorter_than_the_session() -> None:
    with Client("127.0.0.1:1") as client:
        for advisory, mandatory in ((900, 60), (1000, 60), (60, 300), (300, -1)):
            with pytest.raises(ValueError, match="advisory_refresh < duration_seconds"):
                client.role_credentials(
                    APP_READER,
                    "app",
                    duration_seconds=900,
                    advisory_refresh=advisory,
                    mandatory_refresh=mandatory,
                )


def boundary(sidecar: Sidecar, clock: OffsetClock) -> None:
    with alice(sidecar) as client:
        calls = counting(client)
        creds = role(client, clock)
        first = creds.get()
        expiry = first.expiration.timestamp()
        move(clock, expiry - ADVISORY - 1)  # just before the advisory window: no refresh
        assert creds.get() is first
        assert len(calls) == 1
        move(clock, expiry - ADVISORY + 1)  # inside it: one caller refreshes
        second = creds.get()
        assert len(calls) == 2
        assert second.access_key_id != first.access_key_id
        assert creds.get() is second  # fresh again until its own advisory window
        assert len(calls) == 2


async def test_refresh_at_the_advisory_boundary(sidecar: Sidecar, clock: OffsetClock) -> None:
    await asyncio.to_thread(boundary, sidecar, clock)


def many_threads(sidecar: Sidecar, clock: OffsetClock) -> None:
    gate = threading.Event()
    with alice(sidecar) as client:
        creds = role(client, clock)
        first = creds.get()
        calls = counting(client, gate)
        move(clock, first.expiration.timestamp() - MANDATORY + 1)  # everyone must wait
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(creds.get())) for _ in range(16)]
        for t in threads:
            t.start()
        while not calls:  # one thread is inside AssumeRole, held at the gate
            threading.Event().wait(0.01)
        threading.Event().wait(0.1)  # the others queue behind it
        gate.set()
        for t in threads:
            t.join(10)
        assert len(calls) == 1
        assert len(results) == 16
        assert {r.access_key_id for r in results} == {creds.get().access_key_id}
        assert first.access_key_id not in {r.access_key_id for r in results}


async def test_many_threads_in_the_mandatory_window_make_one_assume_role(
    sidecar: Sidecar, clock: OffsetClock
) -> None:
    await asyncio.to_thread(many_threads, sidecar, clock)


def advisory_does_not_block(sidecar: Sidecar, clock: OffsetClock) -> None:
    gate = threading.Event()
    with alice(sidecar) as client:
        creds = role(client, clock)
        first = creds.get()
        calls = counting(client, gate)
        move(clock, first.expiration.timestamp() - ADVISORY + 1)
        refresher = threading.Thread(target=creds.get)
        refresher.start()
        while not calls:  # the refresher is inside AssumeRole, held at the gate
            threading.Event().wait(0.01)
        assert creds.get() is first  # another caller keeps the current keys without waiting
        gate.set()
        refresher.join(10)
        assert len(calls) == 1
        assert creds.get().access_key_id != first.access_key_id


async def test_the_advisory_window_refreshes_in_one_caller_only(
    sidecar: Sidecar, clock: OffsetClock
) -> None:
    await asyncio.to_thread(advisory_does_not_block, sidecar, clock)


def failed_refreshes(sidecar: Sidecar, clock: OffsetClock) -> None:
    with alice(sidecar) as client:
        creds = role(client, clock)
        first = creds.get()
        client.access_key_id, client.secret_access_key = DEMO_KEY[0], "wrong"
        move(clock, first.expiration.timestamp() - ADVISORY + 1)
        assert creds.get() is first  # an advisory refresh that fails keeps the current keys
        move(clock, first.expiration.timestamp() - MANDATORY + 1)
        with pytest.raises(errors.SignatureDoesNotMatch):
            creds.get()


async def test_a_failed_refresh_is_kept_quiet_only_in_the_advisory_window(
    sidecar: Sidecar, clock: OffsetClock
) -> None:
    await asyncio.to_thread(failed_refreshes, sidecar, clock)


def via_botocore(sidecar: Sidecar, clock: OffsetClock) -> None:
    with alice(sidecar) as client:
        calls = counting(client)
        creds = role(client, clock)
        boto = creds.botocore()
        assert isinstance(boto, RefreshableCredentials)
        first = boto.get_frozen_credentials()
        assert (first.access_key, first.token) == (
            creds.get().access_key_id,
            creds.get().session_token,
        )
        move(clock, creds.get().expiration.timestamp() - MANDATORY + 1)
        second = boto.get_frozen_credentials()
        assert second.access_key != first.access_key
        assert second.access_key == creds.get().access_key_id  # one refresh, shared
        assert len(calls) == 2


async def test_botocore_credentials_refresh_through_the_same_sessions(
    sidecar: Sidecar, clock: OffsetClock
) -> None:
    await asyncio.to_thread(via_botocore, sidecar, clock)


async def test_many_tasks_make_one_assume_role(sidecar: Sidecar, clock: OffsetClock) -> None:
    async with AsyncClient(
        f"127.0.0.1:{sidecar.grpc_port}", access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
    ) as client:
        names: list[str] = []
        assume = client.assume_role

        async def spy(role_arn: str, name: str, **kw: Any) -> Any:
            names.append(name)
            await asyncio.sleep(0.05)  # the others ask while this one is in flight
            return await assume(role_arn, name, **kw)

        client.assume_role = spy  # type: ignore[method-assign,assignment]
        creds = client.role_credentials(
            APP_READER,
            "app",
            duration_seconds=DURATION,
            advisory_refresh=ADVISORY,
            mandatory_refresh=MANDATORY,
            clock=clock.now,
        )
        assert isinstance(creds, AsyncRoleCredentials)
        got = await asyncio.gather(*(creds.get() for _ in range(20)))
        assert len(names) == 1
        assert len({c.access_key_id for c in got}) == 1
        move(clock, got[0].expiration.timestamp() - ADVISORY + 1)
        again = await asyncio.gather(*(creds.get() for _ in range(20)))
        assert len(names) == 2  # one advisory refresh; the other tasks kept the current keys
        assert {c.access_key_id for c in again} <= {got[0].access_key_id, creds.current().access_key_id}  # type: ignore[union-attr]  # fmt: skip


async def test_a_client_built_from_role_credentials_authorizes_as_their_session(
    sidecar: Sidecar, clock: OffsetClock
) -> None:
    async with AsyncClient(
        f"127.0.0.1:{sidecar.grpc_port}", access_key_id=DEMO_KEY[0], secret_access_key=DEMO_KEY[1]
    ) as client:
        creds = client.role_credentials(APP_READER, "app")
        async with AsyncClient(f"127.0.0.1:{sidecar.grpc_port}", credentials=creds) as app:
            me = await app.get_caller_identity()  # signed with the session's temporary keys
            ok = await app.authorize("s3:GetObject", "arn:aws:s3:::reports/a.csv")
    assert me.arn == "arn:aws:sts::111111111111:assumed-role/app-reader/app"
    assert ok.allowed
    assert ok.principal_arn == me.arn
