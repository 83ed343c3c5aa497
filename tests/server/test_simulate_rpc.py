"""SimulateCustomPolicy over the wire: authenticated and authorized as AWS does, AWS's quotas
and the server's caps refused with ValidationError, the deadline and the time cap honoured,
calls beyond the workers throttled, and the server answering health checks and Authorize while
a large simulation runs in a worker process. Also: BatchAuthorize yields to the event loop."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography import x509
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2
from sidecar.demo import DEMO_SECRET, WORLD_FILE
from sidecar.errors import RequestTimeoutException
from sidecar.policy.simulate_limits import MAX_PAIRS, MAX_POLICY_TEXT, MAX_WORK
from sidecar.server import servicers
from sidecar.server.app import ServeOptions, Sidecar
from sidecar.server.keyfile import SystemEntropy
from sidecar.server.metrics import Metrics
from sidecar.server.offload import SimulationPool, run_simulation
from sidecar.server.servicers import ServerDeps, Services
from sidecar.server.world_file import load_world_file
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy
from tests.server.conftest import APP_READER, DEMO_KEY, OffsetClock
from tests.server.process.conftest import make_pki
from tests.server.test_rpc import assume, authorize_req, call, failure, signed

AUTHZ = "/iamsidecar.v1.Authorizer/"
SIMULATE = AUTHZ + "SimulateCustomPolicy"
ACCOUNT = "111111111111"
BOB_KEY = ("AKIABOBNOPERMISSION1", "BobSecretBobSecretBobSecretBobSecret0000")
SIMULATOR = f"arn:aws:iam::{ACCOUNT}:role/apps/simulator"
ORDERS_SPIFFE = "spiffe://cluster.local/ns/orders/sa/orders"
Response = authorizer_pb2.SimulateCustomPolicyResponse


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def small_request(**kw: Any) -> authorizer_pb2.SimulateCustomPolicyRequest:
    fields: dict[str, Any] = {
        "policy_input_list": [policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})],
        "action_names": ["s3:GetObject", "iam:GetUser"],
    }
    fields.update(kw)
    return authorizer_pb2.SimulateCustomPolicyRequest(**fields)


def heavy_request() -> authorizer_pb2.SimulateCustomPolicyRequest:
    """Close to the work cap (about a second of CPU on the reference machine): 2,000 resource
    patterns with many wildcards, none matching, for 240 pairs."""
    patterns = [f"arn:aws:s3:::b*u*c*k*e*t*/*a*{i}*z" for i in range(2000)]
    return small_request(
        policy_input_list=[policy({"Effect": "Allow", "Action": "*", "Resource": patterns})],
        action_names=[f"s3:GetObject{i}" for i in range(12)],
        resource_arns=[f"arn:aws:s3:::bucket/obj{j}" for j in range(20)],
    )


async def simulate(
    channel: grpc.aio.Channel,
    request: Message,
    key: tuple[str, str] = DEMO_KEY,
    timeout: float = 30,
) -> Any:
    from sidecar.client.sigv4 import sign_call

    body = request.SerializeToString()
    md = sign_call(SIMULATE, body, access_key_id=key[0], secret_access_key=key[1])
    method = channel.unary_unary(SIMULATE, request_serializer=None, response_deserializer=None)
    raw = await method(body, metadata=tuple(md), timeout=timeout)
    return Response.FromString(raw)


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- a world with callers that may and may not simulate --------------------------------------


def world_doc() -> dict[str, Any]:
    """The demo world plus bob (no permission) and a role `simulator` (allowed) that alice may
    assume."""
    doc: dict[str, Any] = yaml.safe_load(WORLD_FILE.read_text())
    account = doc["accounts"][0]
    account["users"].append(
        {
            "name": "bob",
            "path": "/",
            "access_keys": [{"id": BOB_KEY[0], "secret_env": "BOB_SECRET"}],
        }
    )
    account["roles"].append(
        {
            "name": "simulator",
            "path": "/apps/",
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "inline_policies": {
                "Simulate": json.loads(
                    policy(
                        {"Effect": "Allow", "Action": "iam:SimulateCustomPolicy", "Resource": "*"}
                    )
                )
            },
        }
    )
    return doc


async def start(
    tmp_path: Path, clock: OffsetClock, pool: SimulationPool | None = None, **opts: Any
) -> Sidecar:
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world_doc(), sort_keys=False))
    env = {"IAM_SIDECAR_DEMO_SECRET": DEMO_SECRET, "BOB_SECRET": BOB_KEY[1]}
    world = load_world_file(str(path), environ=env)
    options = ServeOptions(
        config=str(path),
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        grace=1.0,
        drain_delay=0.0,
        **opts,
    )
    server = Sidecar(options, world, KeyRing.generate(CountingEntropy(11)), None, clock=clock)
    if pool is not None:
        server.simulations = pool
    await server.start()
    return server


@pytest.fixture
async def world_sidecar(tmp_path: Path, clock: OffsetClock) -> AsyncIterator[Sidecar]:
    server = await start(tmp_path, clock)
    try:
        yield server
    finally:
        await server.drain()


@pytest.fixture
async def world_channel(world_sidecar: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{world_sidecar.grpc_port}") as ch:
        yield ch


def denied(who: str, tail: str = "identity-based") -> str:
    return (
        f"User: {who} is not authorized to perform: iam:SimulateCustomPolicy on resource: * "
        f"because no {tail} policy allows the iam:SimulateCustomPolicy action"
    )


class TestWhoMaySimulate:
    async def test_anonymous_is_refused(self, channel: grpc.aio.Channel) -> None:
        """No credentials: UNAUTHENTICATED / MissingAuthenticationToken, even for a request
        that also breaks a quota (authentication comes first)."""
        for request in (small_request(), small_request(action_names=["x" * 200])):
            code, reason, _ = await failure(call(channel, SIMULATE, request, Response))
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "MissingAuthenticationToken")

    async def test_alice_in_the_demo_world_may_simulate(
        self, channel: grpc.aio.Channel, sidecar: Sidecar
    ) -> None:
        """The demo world grants alice iam:SimulateCustomPolicy; the answer comes from a worker
        process started by this first simulation."""
        assert not sidecar.simulations.started
        out = await simulate(channel, small_request())
        assert [r.eval_decision for r in out.evaluation_results] == [
            types_pb2.ALLOWED,
            types_pb2.IMPLICIT_DENY,
        ]
        assert sidecar.simulations.started

    async def test_a_user_without_the_permission_is_denied(
        self, world_channel: grpc.aio.Channel
    ) -> None:
        """bob has no identity-based policy that allows iam:SimulateCustomPolicy."""
        code, reason, message = await failure(simulate(world_channel, small_request(), BOB_KEY))
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AccessDenied")
        assert message == denied(f"arn:aws:iam::{ACCOUNT}:user/bob")

    async def test_role_sessions_use_their_role_and_session_policies(
        self, world_channel: grpc.aio.Channel
    ) -> None:
        """A session of a role allowed to simulate may (bearer token or temporary keys); a
        session policy that does not allow it refuses it; app-reader's sessions may not."""
        only_s3 = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
        for arn, name, session_policy in (
            (SIMULATOR, "sim", ""),
            (SIMULATOR, "narrow", only_s3),
            (APP_READER, "reader", ""),
        ):
            req = sts_pb2.AssumeRoleRequest(
                role_arn=arn, role_session_name=name, policy=session_policy
            )
            creds = (
                await signed(world_channel, "/iamsidecar.v1.SecurityTokenService/AssumeRole",
                             req, sts_pb2.AssumeRoleResponse)
            ).credentials  # fmt: skip
            bearer = [("authorization", f"Bearer {creds.session_token}")]
            attempts = [
                call(world_channel, SIMULATE, small_request(), Response, bearer),
                signed(
                    world_channel, SIMULATE, small_request(), Response,
                    key=(creds.access_key_id, creds.secret_access_key), token=creds.session_token,
                ),
            ]  # fmt: skip
            session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{arn.rsplit('/', 1)[1]}/{name}"
            for attempt in attempts:
                if name == "sim":
                    out = await attempt
                    assert len(out.evaluation_results) == 2
                    continue
                code, reason, message = await failure(attempt)
                assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AccessDenied")
                tail = "session" if name == "narrow" else "identity-based"
                assert message == denied(session_arn, tail)

    async def test_a_service_principal_is_refused(self, tmp_path: Path, clock: OffsetClock) -> None:
        """A mesh service (mTLS SPIFFE id) holds no identity-based policies: nothing allows it."""
        pki = make_pki(tmp_path, {"orders": [x509.UniformResourceIdentifier(ORDERS_SPIFFE)]})
        server = await start(
            tmp_path,
            clock,
            tls_cert=str(pki.server_cert),
            tls_key=str(pki.server_key),
            client_ca=str(pki.ca_path),
        )
        try:
            creds = pki.channel_credentials("orders")
            async with grpc.aio.secure_channel(f"127.0.0.1:{server.grpc_port}", creds) as ch:
                code, reason, message = await failure(call(ch, SIMULATE, small_request(), Response))
        finally:
            await server.drain()
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AccessDenied")
        assert message == denied("orders.mesh.local")


# -- limits -----------------------------------------------------------------------------------

DENY_ALL = policy({"Effect": "Deny", "Action": "*", "Resource": "*"})


def length_violation(field: str, high: int, low: int) -> str:
    return (
        f"Value at '{field}' failed to satisfy constraint: Member must satisfy constraint: "
        f"[Member must have length less than or equal to {high}, Member must have length "
        f"greater than or equal to {low}]"
    )


ACTIONS = length_violation("actionNames", 128, 3)
RESOURCES = length_violation("resourceArns", 2048, 1)
POLICIES = length_violation("policyInputList", 131072, 1)


class TestLimits:
    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"action_names": ["s3:" + "G" * 126]}, f"1 validation error detected: {ACTIONS}"),
            ({"action_names": ["s3"]}, f"1 validation error detected: {ACTIONS}"),
            ({"resource_arns": ["arn:aws:s3:::" + "k" * 2036]}, f"1 validation error detected: {RESOURCES}"),
            ({"policy_input_list": [DENY_ALL + " " * (131073 - len(DENY_ALL))]}, f"1 validation error detected: {POLICIES}"),
            (
                {"action_names": ["s3"], "resource_arns": ["a" * 2049]},
                f"2 validation errors detected: {ACTIONS}; {RESOURCES}",
            ),
            (
                {"action_names": [f"s3:Get{i}" for i in range(MAX_PAIRS // 2 + 1)], "resource_arns": ["a", "b"]},
                f"SimulateCustomPolicy takes at most 10,000 action and resource pairs per call; "
                f"this request has {MAX_PAIRS + 2:,}. Split it into smaller simulations.",
            ),
            (
                {"policy_input_list": [DENY_ALL + " " * (131072 - len(DENY_ALL))] * 5},
                f"SimulateCustomPolicy takes at most {MAX_POLICY_TEXT:,} characters of policy "
                f"documents per call, all lists together; this request has {5 * 131072:,}.",
            ),
        ],
        ids=["action-too-long", "action-too-short", "arn-too-long", "policy-too-long",
             "two-violations", "pairs", "policy-text"],
    )  # fmt: skip
    async def test_inputs_beyond_the_limits_are_validation_errors(
        self, channel: grpc.aio.Channel, fields: dict[str, Any], message: str
    ) -> None:
        """AWS's quotas in AWS's words; the server's caps in a sentence naming them."""
        code, reason, got = await failure(simulate(channel, small_request(**fields)))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        assert got == message

    async def test_exactly_at_the_quotas_is_accepted(self, channel: grpc.aio.Channel) -> None:
        """128-character actions, 2,048-character ARNs and 131,072-character policies pass."""
        request = small_request(
            action_names=["s3:" + "G" * 125, "s3:"],
            resource_arns=["arn:aws:s3:::" + "k" * 2035],
            policy_input_list=[DENY_ALL + " " * (131072 - len(DENY_ALL))],
        )
        out = await simulate(channel, request)
        assert [r.eval_decision for r in out.evaluation_results] == [types_pb2.EXPLICIT_DENY] * 2

    async def test_work_beyond_the_cap_is_refused(self, channel: grpc.aio.Channel) -> None:
        """The estimated work (pairs x policy entries) is checked after parsing, before any
        evaluation."""
        statements = [
            {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::b{i}/*"}
            for i in range(1000)
        ]
        request = small_request(
            policy_input_list=[policy(*statements)],
            action_names=[f"s3:Get{i}" for i in range(300)],
        )
        code, reason, got = await failure(simulate(channel, request))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
        assert got == (
            f"SimulateCustomPolicy is limited to {MAX_WORK:,} units of work per call; this "
            "request needs 600,000 (300 for the action and resource pairs x 2,000 for the "
            "policies' statements and entries, plus 0 for wildcard actions; docs/SERVER.md, "
            "Limits). Simulate fewer pairs or smaller policies."
        )


# -- time and concurrency -------------------------------------------------------------------


class TestTime:
    def test_the_worker_checks_its_stop_time_between_pairs(self) -> None:
        """run_simulation (what a worker runs) stops with RequestTimeoutException once its stop
        time has passed; the same request without a stop time completes."""
        raw = heavy_request().SerializeToString()
        body, error = run_simulation(raw, time.monotonic() - 1, "cap", 5.0, 1 << 30)
        assert body is None
        assert error is not None
        assert error[0] == RequestTimeoutException.code
        assert "stopped after 5 seconds" in error[1]
        small = small_request().SerializeToString()
        body, error = run_simulation(small, time.monotonic() + 60, "cap", 5.0, 1 << 30)
        assert error is None
        assert body is not None
        assert len(Response.FromString(body).evaluation_results) == 2

    async def test_the_deadline_and_the_cap_stop_a_simulation(
        self, tmp_path: Path, clock: OffsetClock
    ) -> None:
        """A call whose deadline passes ends DEADLINE_EXCEEDED and its worker stops (freeing
        its place); with a server cap shorter than the work, the call is refused with
        RequestTimeoutException. A small simulation still answers afterwards."""
        pool = SimulationPool(workers=1, max_seconds=30)
        server = await start(tmp_path, clock, pool=pool)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
                await simulate(ch, small_request())  # the worker is started
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await simulate(ch, heavy_request(), timeout=0.1)
                assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                await eventually(lambda: pool.running == 0)
                pool.max_seconds = 0.05
                code, reason, message = await failure(simulate(ch, heavy_request()))
                assert (code, reason) == (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "RequestTimeoutException",
                )
                assert message.startswith(
                    "SimulateCustomPolicy was stopped after 0.05 seconds, the server's limit"
                )
                pool.max_seconds = 30
                out = await simulate(ch, small_request())
                assert len(out.evaluation_results) == 2
        finally:
            await server.drain()

    async def test_draining_stops_the_workers(self, tmp_path: Path, clock: OffsetClock) -> None:
        """The worker processes start with the first simulation and are gone after drain."""
        before = {p.pid for p in multiprocessing.active_children()}
        server = await start(tmp_path, clock)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            assert {p.pid for p in multiprocessing.active_children()} == before
            await simulate(ch, small_request())
        workers = [p for p in multiprocessing.active_children() if p.pid not in before]
        assert workers
        await server.drain()
        assert not any(p.is_alive() for p in workers)

    async def test_calls_beyond_the_workers_and_the_queue_are_throttled(
        self, tmp_path: Path, clock: OffsetClock
    ) -> None:
        """One worker and no waiting room: a second simulation while one runs is refused at
        once with ThrottlingException (RESOURCE_EXHAUSTED)."""
        pool = SimulationPool(workers=1, max_waiting=0)
        server = await start(tmp_path, clock, pool=pool)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
                await simulate(ch, small_request())
                first = asyncio.create_task(simulate(ch, heavy_request()))
                await eventually(lambda: pool.running == 1)
                code, reason, message = await failure(simulate(ch, small_request()))
                assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ThrottlingException")
                assert message.startswith("Rate exceeded")
                assert len((await first).evaluation_results) == 240
        finally:
            await server.drain()


class TestResponsiveness:
    async def test_health_and_authorize_answer_while_a_large_simulation_runs(
        self, channel: grpc.aio.Channel, sidecar: Sidecar
    ) -> None:
        """While a simulation near the work cap runs, gRPC health and a cached Authorize are
        answered, many times over and each well within half a second (a generous guard, not a
        performance claim: docs/BENCHMARKS.md has the figures)."""
        await simulate(channel, small_request())  # the worker is started
        token = (await assume(channel)).credentials.session_token
        authorize = authorize_req(token, "s3:GetObject", "arn:aws:s3:::reports/q1.csv")
        await call(channel, AUTHZ + "Authorize", authorize, authorizer_pb2.AuthorizeResponse)
        health = health_pb2_grpc.HealthStub(channel)
        running = asyncio.create_task(simulate(channel, heavy_request()))
        await eventually(lambda: sidecar.simulations.running == 1)
        probes: list[float] = []
        while not running.done():
            start = time.perf_counter()
            status = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            answer = await call(
                channel, AUTHZ + "Authorize", authorize, authorizer_pb2.AuthorizeResponse
            )
            probes.append(time.perf_counter() - start)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            assert answer.decision == types_pb2.ALLOWED
        assert len((await running).evaluation_results) == 240
        # Served on the same event loop, a simulation would hold every probe until it ended.
        assert len(probes) >= 20, probes
        assert max(probes) < 0.5, probes


class _Context:
    """Just enough of a grpc.aio servicer context for a BatchAuthorize call."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"


class TestBatchAuthorize:
    async def test_a_large_batch_yields_to_the_event_loop(
        self, monkeypatch: pytest.MonkeyPatch, sidecar: Sidecar, channel: grpc.aio.Channel
    ) -> None:
        """With a slice of zero, a 1,000-item batch lets other tasks run between its items
        (normally every ~2 ms of work) and still answers every item in order."""
        token = (await assume(channel)).credentials.session_token
        services = Services(
            ServerDeps(
                engine=sidecar.engine,
                clock=sidecar.clock,
                entropy=SystemEntropy(),
                metrics=Metrics(),
            )
        )
        items = [
            authorizer_pb2.AuthorizeItem(
                action="s3:GetObject", resource=f"arn:aws:s3:::reports/{i}"
            )
            for i in range(servicers.MAX_BATCH)
        ]
        raw = authorizer_pb2.BatchAuthorizeRequest(session_token=token, requests=items)
        monkeypatch.setattr(servicers, "SLICE_SECONDS", 0.0)
        monkeypatch.setattr(servicers, "PAUSE_SECONDS", 0.0)
        turns = 0
        done = False

        async def other_task() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        out = await services.batch_authorize(raw.SerializeToString(), _Context())  # type: ignore[arg-type]
        done = True
        await ticker
        assert [r.decision for r in out.results] == [types_pb2.ALLOWED] * len(items)
        assert turns >= len(items) - 1

    async def test_one_refused_item_refuses_the_whole_batch(
        self, channel: grpc.aio.Channel
    ) -> None:
        """An invalid item anywhere in a sliced batch still refuses the call."""
        token = (await assume(channel)).credentials.session_token
        items = [
            authorizer_pb2.AuthorizeItem(
                action="s3:GetObject", resource=f"arn:aws:s3:::reports/{i}"
            )
            for i in range(servicers.MAX_BATCH - 1)
        ]
        items.append(authorizer_pb2.AuthorizeItem(action="", resource="arn:aws:s3:::reports/x"))
        batch = authorizer_pb2.BatchAuthorizeRequest(session_token=token, requests=items)
        code, reason, _ = await failure(
            call(channel, AUTHZ + "BatchAuthorize", batch, authorizer_pb2.BatchAuthorizeResponse)
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ValidationError")
