"""The server figures of docs/BENCHMARKS.md (issue 6): Authorize against the transport's own limit,
AssumeRole, memory under a long run, and --workers.

    .venv/bin/python benchmarks/transport.py                  # all but memory (~2.5 min)
    .venv/bin/python benchmarks/transport.py --parts memory   # 200k Authorize, 5k tokens
    .venv/bin/python benchmarks/transport.py --parts adversarial  # 2k big tokens, 60k Authorize

Parts (``--parts``, comma-separated; ``all`` runs every one):

- ``ratio``: one grpc.aio server, the real ``Sidecar`` with a no-op unary method
  (``/bench.Noop/Call``) added to the same server (same interceptors, same options). h2load
  drives ``Authorize`` (a real session token in the body; the decision is cached after the first
  call), the no-op method with an empty message and the no-op method with Authorize's request
  bytes, with the same settings, in rounds whose order reverses every other round. Reported:
  peak req/s of each, the ratio Authorize / no-op (target >= 0.85), and the server's CPU time
  per call (from /proc, all threads), which host noise moves far less than throughput.
- ``handler``: the Authorize handler's own time per call inside the loaded server: h2load
  drives ``/bench.Probe/Authorize``, the same handler wrapped in perf_counter.
- ``latency``: p50/p90/p99 of each method with h2load's ``--rps`` (a fixed request rate per
  client) at 50% and 90% of that method's peak from ``ratio``; percentiles come from h2load's
  per-request ``--log-file``.
- ``assume``: AssumeRole signed with SigV4. (a) h2load replays one signed request (a signature
  is valid for 5 minutes, and the server keeps no replay cache, as AWS), for the peak and the
  p99 at 50% of it; (b) Python client processes sign every request afresh (distinct session
  names) in a batch before the timed phase, then send them; their tokens feed ``memory``.
- ``memory``: RSS of the server process (/proc/PID/status) sampled while Python clients send
  Authorize with many distinct tokens and resources (every resource distinct, so every decision
  is a cache miss and the decision cache fills, then evicts).
- ``adversarial``: RSS while every cache is filled with its largest entries (docs/SERVER.md,
  "Memory bounds"): tokens of nearly the maximum length, each with its own session policy,
  then Authorize calls with distinct maximum-length resources and context values the policies
  read, each twice; at the end the caches' entries and estimated bytes (``/bench.Probe/Caches``).
- ``workers``: ``python -m sidecar serve --workers 1`` and ``--workers 2``, both running, driven
  in turn by the same h2load load.

Prints Markdown tables and writes everything to benchmarks/results/transport-<stamp>.json.
Needs h2load (Debian nghttp2-client); without it the h2load parts are skipped with a message.
Every server is on 127.0.0.1 and stops when the script ends (or after --max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import multiprocessing
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit

NOOP = "/bench.Noop/Call"
AUTHORIZE = "/iamsidecar.v1.Authorizer/Authorize"
ASSUME_ROLE = "/iamsidecar.v1.SecurityTokenService/AssumeRole"
ROLE = "arn:aws:iam::111111111111:role/apps/app-reader"
ACTION = "s3:GetObject"
RESOURCE = "arn:aws:s3:::reports/q1.csv"
ALLOWED = 1  # iamsidecar.v1.Decision.ALLOWED
PARTS = ("ratio", "handler", "latency", "assume", "workers", "memory", "adversarial")
DEFAULT_PARTS = "ratio,handler,latency,assume,workers"


# -- the bench server (runs in its own process) -----------------------------------------------


async def _noop(request: bytes, context: object) -> bytes:
    return b""


def _probe_handler(box: dict[str, Any]) -> Any:
    """``/bench.Probe/Authorize``: the real Authorize handler (a second ``Services`` over the
    sidecar's own engine and metrics) timed with perf_counter, serialization included;
    ``/bench.Probe/Stats`` returns the timings as JSON and clears them."""
    import json

    import grpc

    timings: collections.deque[float] = collections.deque(maxlen=500_000)

    async def authorize(raw: bytes, context: Any) -> bytes:
        start = time.perf_counter()
        body: bytes = await box["services"].authorize(raw, context)  # serialized already
        timings.append(time.perf_counter() - start)
        return body

    async def stats(raw: bytes, context: Any) -> bytes:
        us = [t * 1e6 for t in timings]
        timings.clear()
        pct = kit.percentiles(us, (50, 90, 99))
        mean = statistics.fmean(us) if us else 0.0
        return json.dumps({"calls": len(us), "mean_us": mean, **pct}).encode()

    async def caches(raw: bytes, context: Any) -> bytes:
        return json.dumps(cache_sizes(box["sidecar"])).encode()

    return grpc.method_handlers_generic_handler(
        "bench.Probe",
        {
            "Authorize": grpc.unary_unary_rpc_method_handler(authorize),
            "Stats": grpc.unary_unary_rpc_method_handler(stats),
            "Caches": grpc.unary_unary_rpc_method_handler(caches),
        },
    )


def cache_sizes(sidecar: Any) -> dict[str, dict[str, int]]:
    """Entries and weight (estimated bytes) of the sidecar's caches. The servicers' response
    cache is found among live objects (the server keeps no other reference to it)."""
    import gc

    from sidecar.server.servicers import Services

    engine = sidecar.engine
    authorizer = engine.snapshot.authorizer
    out = {
        "decision": {"entries": len(engine.decisions), "bytes": engine.decisions.weight},
        "token": {"entries": len(engine.tokens), "bytes": engine.tokens.weight},
        "session_scope": {
            "entries": len(authorizer._sessions),
            "bytes": authorizer._sessions.weight,
        },
        "resource_scope": {
            "entries": len(authorizer._resources),
            "bytes": authorizer._resources.weight,
        },
    }
    for obj in gc.get_objects():
        if isinstance(obj, Services) and len(obj._responses):
            out["response"] = {"entries": len(obj._responses), "bytes": obj._responses.currsize}
    return out


async def _serve(keys_file: str, max_seconds: float) -> None:
    import json

    import grpc

    from sidecar.server.app import ServeOptions, Sidecar, load_keys, load_world
    from sidecar.server.keyfile import SystemEntropy
    from sidecar.server.servicers import ServerDeps, Services

    opts = ServeOptions(
        listen="127.0.0.1:0", http_listen="127.0.0.1:0", keys_file=keys_file, grace=2.0
    )
    world = load_world(opts)
    keys, keys_from = load_keys(opts, world)
    noop = grpc.method_handlers_generic_handler(
        "bench.Noop", {"Call": grpc.unary_unary_rpc_method_handler(_noop)}
    )
    box: dict[str, Any] = {}
    sidecar = Sidecar(opts, world, keys, keys_from, extra_handlers=[noop, _probe_handler(box)])
    box["sidecar"] = sidecar
    box["services"] = Services(
        ServerDeps(
            engine=sidecar.engine,
            clock=sidecar.clock,
            entropy=SystemEntropy(),
            metrics=sidecar.metrics,
        )
    )
    await sidecar.start()
    print(json.dumps({"grpc_port": sidecar.grpc_port, "http_port": sidecar.http_port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):  # never outlive the run
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    await sidecar.drain()


def serve(keys_file: str, max_seconds: float) -> int:
    from sidecar.server.logs import configure

    configure("warning")
    asyncio.run(_serve(keys_file, max_seconds))
    return 0


# -- requests -----------------------------------------------------------------------------------


def assume_token(port: int, session_name: str = "bench") -> str:
    from sidecar.client.client import SidecarClient
    from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET

    with SidecarClient(
        f"127.0.0.1:{port}", access_key_id=DEMO_ACCESS_KEY_ID, secret_access_key=DEMO_SECRET
    ) as client:
        token: str = client.assume_role(ROLE, session_name).credentials.session_token
    return token


def authorize_once(port: int, token: str) -> int:
    from sidecar.client.client import SidecarClient

    with SidecarClient(f"127.0.0.1:{port}") as client:
        return int(client.authorize(ACTION, RESOURCE, session_token=token).decision)


def authorize_body(token: str, resource: str = RESOURCE) -> bytes:
    from sidecar.api.v1 import authorizer_pb2

    return authorizer_pb2.AuthorizeRequest(
        session_token=token, action=ACTION, resource=resource
    ).SerializeToString()


def signed_assume_role(session_name: str, **fields: Any) -> tuple[bytes, list[tuple[str, str]]]:
    """A serialized AssumeRoleRequest and the SigV4 metadata that signs it now."""
    from sidecar.api.v1 import sts_pb2
    from sidecar.client.sigv4 import sign_call
    from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET

    raw = sts_pb2.AssumeRoleRequest(
        role_arn=ROLE, role_session_name=session_name, **fields
    ).SerializeToString()
    metadata = sign_call(
        ASSUME_ROLE, raw, access_key_id=DEMO_ACCESS_KEY_ID, secret_access_key=DEMO_SECRET
    )
    return raw, metadata


# -- Python client processes (spawned: no gRPC state is shared across a fork) ------------------


def _wait_until(epoch: float) -> None:
    delay = epoch - time.time()
    if delay > 0:
        time.sleep(delay)


def _assume_client(port: int, index: int, count: int, concurrency: int, start: float) -> dict:
    import grpc

    from sidecar.api.v1 import sts_pb2

    t0 = time.perf_counter()
    calls = [signed_assume_role(f"bench-{index}-{i}") for i in range(count)]
    sign_s = time.perf_counter() - t0
    latencies: list[float] = []
    tokens: list[str] = []
    errors: collections.Counter[str] = collections.Counter()

    async def run() -> tuple[float, float]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.channel_ready()
            call = channel.unary_unary(
                ASSUME_ROLE,
                request_serializer=None,
                response_deserializer=sts_pb2.AssumeRoleResponse.FromString,
            )
            pending = iter(calls)

            async def loop() -> None:
                for raw, metadata in pending:
                    t = time.perf_counter()
                    try:
                        resp = await call(raw, metadata=tuple(metadata), timeout=30)
                    except grpc.aio.AioRpcError as err:
                        errors[err.code().name] += 1
                        continue
                    latencies.append(time.perf_counter() - t)
                    tokens.append(resp.credentials.session_token)

            _wait_until(start)
            began = time.time()
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return began, time.time()

    began, ended = asyncio.run(run())
    return {
        "began": began,
        "ended": ended,
        "latencies": latencies,
        "tokens": tokens,
        "errors": dict(errors),
        "sign_us_per_call": sign_s / max(count, 1) * 1e6,
    }


def _authorize_client(
    port: int, tokens: list[str], index: int, procs: int, total: int, concurrency: int
) -> dict:
    """Authorize request i (i = index, index + procs, ...) with token i % len(tokens) and the
    resource reports/mem/<i>.csv: all distinct, all allowed. Every 50th answer is decoded."""
    import grpc

    from sidecar.api.v1 import authorizer_pb2

    counts: collections.Counter[str] = collections.Counter()

    async def run() -> float:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.channel_ready()
            call = channel.unary_unary(
                AUTHORIZE, request_serializer=None, response_deserializer=None
            )
            numbers = iter(range(index, total, procs))

            async def loop() -> None:
                for i in numbers:
                    body = authorize_body(
                        tokens[i % len(tokens)], f"arn:aws:s3:::reports/mem/{i}.csv"
                    )
                    try:
                        raw = await call(body, timeout=30)
                    except grpc.aio.AioRpcError as err:
                        counts[err.code().name] += 1
                        continue
                    counts["ok"] += 1
                    if i % 50 == 0:
                        decision = authorizer_pb2.AuthorizeResponse.FromString(raw).decision
                        counts["checked"] += 1
                        counts["checked_allowed"] += decision == ALLOWED

            began = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return time.perf_counter() - began

    elapsed = asyncio.run(run())
    return {"elapsed_s": elapsed, "counts": dict(counts)}


# -- the adversarial memory run ----------------------------------------------------------------

ADV_KEYS = ("ex:a", "ex:b", "ex:c")  # context keys the adversarial session policies read
MAX_RESOURCE = 2048  # the longest resource and context value Authorize takes


def adversarial_policy(i: int) -> str:
    """A session policy of about 1,560 characters, distinct for each ``i``, that reads the three
    ADV_KEYS (so their values key the cached decisions) and allows whatever they hold."""
    import json

    values = ["*"] + [f"p{i:06d}-{j:03d}" for j in range(100)]
    condition = {"StringLike": {ADV_KEYS[0]: values, ADV_KEYS[1]: "*", ADV_KEYS[2]: "*"}}
    statement = {
        "Sid": f"Adv{i:06d}",
        "Effect": "Allow",
        "Action": ACTION,
        "Resource": "*",
        "Condition": condition,
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def adversarial_tags(chars: int) -> list[Any]:
    """50 session tags holding ``chars`` characters of (compressible) values in all."""
    from sidecar.api.v1 import types_pb2

    return [
        types_pb2.Tag(key=f"t{i:02d}", value="v" * max(0, min(256, chars - 256 * i)))
        for i in range(50)
    ]


def adversarial_session(n: int) -> str:
    return f"adv-{n:06d}"  # fixed width: every token has the same length


def largest_tag_chars(port: int) -> int:
    """The most tag characters AssumeRole accepts beside adversarial_policy (bisection over the
    wire: PackedPolicyTooLarge above it), less a small margin."""
    import grpc

    from sidecar.api.v1 import sts_pb2

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            ASSUME_ROLE,
            request_serializer=None,
            response_deserializer=sts_pb2.AssumeRoleResponse.FromString,
        )

        def issued(chars: int) -> bool:
            raw, md = signed_assume_role(
                adversarial_session(0), policy=adversarial_policy(0), tags=adversarial_tags(chars)
            )
            try:
                call(raw, metadata=tuple(md), timeout=30)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.INVALID_ARGUMENT:  # type: ignore[attr-defined]
                    raise
                return False
            return True

        low, high = 0, 50 * 256
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if issued(mid) else (low, mid)
    return max(0, low - 8)


def _assume_adversarial_client(
    port: int, first: int, count: int, concurrency: int, tag_chars: int
) -> dict:
    """AssumeRole ``count`` times, each with its own session policy and 50 tags: tokens of
    nearly the maximum length, each with a distinct session policy to compile."""
    import grpc

    from sidecar.api.v1 import sts_pb2

    tags = adversarial_tags(tag_chars)
    calls = [
        signed_assume_role(adversarial_session(n), policy=adversarial_policy(n), tags=tags)
        for n in range(first, first + count)
    ]
    tokens: list[str] = []
    errors: collections.Counter[str] = collections.Counter()

    async def run() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                ASSUME_ROLE,
                request_serializer=None,
                response_deserializer=sts_pb2.AssumeRoleResponse.FromString,
            )
            pending = iter(calls)

            async def loop() -> None:
                for raw, metadata in pending:
                    try:
                        resp = await call(raw, metadata=tuple(metadata), timeout=30)
                    except grpc.aio.AioRpcError as err:
                        errors[err.code().name] += 1
                        continue
                    tokens.append(resp.credentials.session_token)

            await asyncio.gather(*(loop() for _ in range(concurrency)))

    asyncio.run(run())
    return {"tokens": tokens, "errors": dict(errors)}


def adversarial_body(token: str, n: int, *, over: bool = False) -> bytes:
    """Authorize with a distinct resource of the maximum length (one character more with
    ``over``) and a distinct maximum-length value for each of ADV_KEYS."""
    from sidecar.api.v1 import authorizer_pb2, types_pb2

    head = f"arn:aws:s3:::reports/adv/{n}/"
    resource = head + "x" * (MAX_RESOURCE - len(head) + (1 if over else 0))
    context = [
        types_pb2.ContextEntry(
            key=key, values=[f"{n}:{key}:".ljust(MAX_RESOURCE, "v")], type=types_pb2.STRING
        )
        for key in ADV_KEYS
    ]
    return authorizer_pb2.AuthorizeRequest(
        session_token=token, action=ACTION, resource=resource, context=context
    ).SerializeToString()


def _adversarial_client(
    port: int, tokens: list[str], index: int, procs: int, total: int, concurrency: int
) -> dict:
    """Call i (i = index, index + procs, ...) sends request n = i // 2 (each twice, so the
    second answer comes from the decision cache and its wire response is cached too) with
    token n % len(tokens); every 100th call also sends a request one character over the
    resource limit, which must be refused (INVALID_ARGUMENT)."""
    import grpc

    from sidecar.api.v1 import authorizer_pb2

    counts: collections.Counter[str] = collections.Counter()

    async def run() -> float:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.channel_ready()
            call = channel.unary_unary(
                AUTHORIZE, request_serializer=None, response_deserializer=None
            )
            numbers = iter(range(index, total, procs))

            async def send(body: bytes, label: str) -> bytes | None:
                try:
                    raw: bytes = await call(body, timeout=60)
                except grpc.aio.AioRpcError as err:
                    counts[f"{label}_{err.code().name}"] += 1
                    return None
                counts[f"{label}_OK"] += 1
                return raw

            async def loop() -> None:
                for i in numbers:
                    n = i // 2
                    token = tokens[n % len(tokens)]
                    raw = await send(adversarial_body(token, n), "max_size")
                    if raw is not None and i % 50 == 0:
                        decision = authorizer_pb2.AuthorizeResponse.FromString(raw).decision
                        counts["checked"] += 1
                        counts["checked_allowed"] += decision == ALLOWED
                    if i % 100 == 0:
                        await send(adversarial_body(token, n, over=True), "over_limit")

            began = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return time.perf_counter() - began

    elapsed = asyncio.run(run())
    return {"elapsed_s": elapsed, "counts": dict(counts)}


def _spawn_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )


def _drive_clients(
    a: argparse.Namespace,
    client: Callable[..., Any],
    port: int,
    tokens: list[str],
    requests: int,
    sample: Callable[[], None],
    t0: float,
    part: str,
) -> list[Any]:
    """Run ``client`` in a.client_procs spawned processes, sampling until all are done."""
    with _spawn_pool(a.client_procs) as pool:
        futures = [
            pool.submit(client, port, tokens, i, a.client_procs, requests, a.client_concurrency)
            for i in range(a.client_procs)
        ]
        while not all(f.done() for f in futures):
            if time.monotonic() - t0 > a.max_seconds:
                raise RuntimeError(f"the {part} part ran out of time")
            time.sleep(a.sample_every)
            sample()
        return [f.result() for f in futures]


# -- parts --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.keys = kit.generate_keys(str(tmp))
        self.results: dict[str, Any] = {}
        self.tables: list[str] = []
        self.tokens: list[str] = []

    def body(self, name: str, message: bytes) -> Path:
        path = self.tmp / f"{name}.grpc"
        path.write_bytes(kit.grpc_frame(message))
        return path

    def h2(self, srv: kit.ServerProc, path: str, body: Path, **kw: Any) -> kit.H2Result:
        a = self.args
        return kit.h2load(
            srv.grpc_port,
            path,
            body,
            clients=a.clients,
            streams=a.streams,
            duration=kw.pop("duration", a.duration),
            warmup=kw.pop("warmup", a.warmup),
            **kw,
        )

    # ratio -------------------------------------------------------------------------------

    def ratio(self, srv: kit.ServerProc, token: str) -> None:
        a = self.args
        authz_body = authorize_body(token)
        targets = {
            "noop": (NOOP, "Call", self.body("noop", b"")),
            "noop_same_bytes": (NOOP, "Call", self.body("authorize", authz_body)),
            "authorize": (AUTHORIZE, "Authorize", self.body("authorize", authz_body)),
        }
        # The decision is right, and the second identical call is served from the cache.
        before = srv.scrape().value("iam_sidecar_cache_events_total", cache="decision", event="hit")
        first, second = authorize_once(srv.grpc_port, token), authorize_once(srv.grpc_port, token)
        after = srv.scrape().value("iam_sidecar_cache_events_total", cache="decision", event="hit")
        if first != ALLOWED or second != ALLOWED or after - before < 1:
            raise RuntimeError(
                f"precheck failed: decisions {first}/{second}, hits {after - before}"
            )
        start = srv.scrape()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for r in range(a.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                path, method, body = targets[name]
                cpu0, handled0 = srv.cpu(), srv.scrape().codes(method).get("OK", 0.0)
                res = self.h2(srv, path, body)
                cpu1, handled1 = srv.cpu(), srv.scrape().codes(method).get("OK", 0.0)
                run = res.summary()
                # Server CPU (all threads) per call answered OK, warm-up included: host noise
                # moves throughput far more than it moves this.
                run["server_cpu_us_per_call"] = round(
                    (cpu1 - cpu0) / max(handled1 - handled0, 1) * 1e6, 1
                )
                runs[name].append(run)
                print(
                    f"  ratio round {r + 1}: {name:15} {res.rps:7,.0f} req/s, server CPU "
                    f"{run['server_cpu_us_per_call']:5.0f} us/call",
                    flush=True,
                )
        end = srv.scrape()
        rps = {k: [run["rps"] for run in v] for k, v in runs.items()}
        cpu = {k: [run["server_cpu_us_per_call"] for run in v] for k, v in runs.items()}
        med = {k: statistics.median(v) for k, v in rps.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        per_round = [round(x / n, 3) for x, n in zip(rps["authorize"], rps["noop"], strict=True)]
        authz_codes = _delta(start.codes("Authorize"), end.codes("Authorize"))
        checks = {
            "authorize_grpc_codes": authz_codes,
            "noop_grpc_codes": _delta(start.codes("Call"), end.codes("Call")),
            "allowed": _d(start, end, "iam_sidecar_decisions_total", decision="ALLOWED"),
            "decision_cache_hits": _d(
                start, end, "iam_sidecar_cache_events_total", cache="decision", event="hit"
            ),
            "decision_cache_misses": _d(
                start, end, "iam_sidecar_cache_events_total", cache="decision", event="miss"
            ),
            "h2load_authorize_done": sum(run["done"] for run in runs["authorize"]),
        }
        self.results["ratio"] = {
            "runs": runs,
            "median_rps": med,
            "median_server_cpu_us_per_call": med_cpu,
            "ratio_of_medians": round(med["authorize"] / med["noop"], 3),
            "ratio_per_round": per_round,
            "median_ratio_per_round": round(statistics.median(per_round), 3),
            "ratio_vs_noop_same_bytes": round(med["authorize"] / med["noop_same_bytes"], 3),
            "cpu_ratio": round(med_cpu["noop"] / med_cpu["authorize"], 3),
            "server_counters": checks,
        }
        lines = [
            f"Transport ratio ({a.rounds} rounds, order reversed every other round; h2load "
            f"-c {a.clients} -m {a.streams} -t 1 -D {a.duration:g}s --warm-up-time "
            f"{a.warmup:g}s). *no-op (same bytes)* is the no-op method sent Authorize's request.",
            "",
            "| round | no-op req/s | no-op (same bytes) req/s | Authorize req/s | "
            "Authorize / no-op |",
            "|---:|---:|---:|---:|---:|",
        ]
        for i in range(a.rounds):
            n, nb, x = rps["noop"][i], rps["noop_same_bytes"][i], rps["authorize"][i]
            lines.append(f"| {i + 1} | {n:,.0f} | {nb:,.0f} | {x:,.0f} | {x / n:.3f} |")
        lines.append(
            f"| **median** | {med['noop']:,.0f} | {med['noop_same_bytes']:,.0f} | "
            f"{med['authorize']:,.0f} | **{med['authorize'] / med['noop']:.3f}** |"
        )
        lines.append(
            f"| server CPU µs per call (median) | {med_cpu['noop']:.0f} | "
            f"{med_cpu['noop_same_bytes']:.0f} | {med_cpu['authorize']:.0f} | "
            f"{med_cpu['noop'] / med_cpu['authorize']:.3f} (CPU ratio) |"
        )
        lines.append(
            f"\nMedian of the per-round ratios: {statistics.median(per_round):.3f}. Authorize / "
            f"no-op (same bytes): {med['authorize'] / med['noop_same_bytes']:.3f}. Server "
            f"counters over these runs: Authorize codes {authz_codes}, ALLOWED "
            f"{checks['allowed']:,.0f}, decision cache hits {checks['decision_cache_hits']:,.0f} "
            f"/ misses {checks['decision_cache_misses']:,.0f}."
        )
        self.tables.append("\n".join(lines))

    # handler -----------------------------------------------------------------------------

    def handler(self, srv: kit.ServerProc, token: str) -> None:
        """The Authorize handler's own time per call inside the loaded server."""
        import json

        import grpc

        body = self.body("authorize", authorize_body(token))
        with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel:
            stats = channel.unary_unary("/bench.Probe/Stats")
            stats(b"", timeout=10)  # clears
            res = self.h2(srv, "/bench.Probe/Authorize", body)
            timed = json.loads(stats(b"", timeout=10))
        if timed["calls"] < res.done:  # a failed call is still a 200 to h2load
            raise RuntimeError(f"the probed handler answered {timed['calls']} of {res.done} calls")
        self.results["handler"] = {"h2load": res.summary(), "handler_us": timed}
        print(
            f"  handler: {res.rps:,.0f} req/s; Authorize handler {timed['p50']:.1f} us median, "
            f"{timed['mean_us']:.1f} us mean per call ({timed['calls']:,} calls)",
            flush=True,
        )
        self.tables.append(
            "Authorize handler's own time inside the loaded server (perf_counter around "
            "Services.authorize (it answers serialized bytes), every call of one h2load run at "
            f"{res.rps:,.0f} req/s, warm-up included): median {timed['p50']:.1f} µs, mean "
            f"{timed['mean_us']:.1f} µs, p90 {timed['p90']:.1f} µs, p99 {timed['p99']:.1f} µs "
            f"over {timed['calls']:,} calls."
        )

    # latency -----------------------------------------------------------------------------

    def latency(self, srv: kit.ServerProc, token: str) -> None:
        a = self.args
        ratio = self.results.get("ratio")
        if ratio is None:
            raise RuntimeError("the latency part needs the ratio part (for the peaks)")
        bodies = {
            "noop": (NOOP, self.body("noop", b"")),
            "authorize": (AUTHORIZE, self.body("authorize", authorize_body(token))),
        }
        out: dict[str, Any] = {}
        start = srv.scrape()
        for share in a.shares:
            for name, (path, body) in bodies.items():
                target = ratio["median_rps"][name] * share
                res = self.h2(srv, path, body, rps_per_client=target / a.clients, latencies=True)
                summary = res.summary()
                summary["target_rps"] = round(target, 1)
                summary["share_of_peak"] = share
                out[f"{name}@{share:g}"] = summary
                lat = summary["latency_ms"]
                print(
                    f"  latency {name:9} at {share:.0%} of peak: {res.rps:7,.0f} req/s, "
                    f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms",
                    flush=True,
                )
        end = srv.scrape()
        self.results["latency"] = {
            "runs": out,
            "authorize_grpc_codes": _delta(start.codes("Authorize"), end.codes("Authorize")),
        }
        lines = [
            f"Latency at a fixed rate (h2load --rps per client, -c {a.clients} -m {a.streams}, "
            f"-D {a.duration:g}; percentiles of every request of the timed part)",
            "",
            "| method | share of its peak | target req/s | measured req/s | p50 ms | p90 ms | "
            "p99 ms | p99.9 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, s in out.items():
            name = key.split("@")[0]
            lat = s["latency_ms"]
            lines.append(
                f"| {name} | {s['share_of_peak']:.0%} | {s['target_rps']:,.0f} | "
                f"{s['rps']:,.0f} | {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | "
                f"{lat['p99.9']:.2f} | {lat['p100']:.2f} |"
            )
        self.tables.append("\n".join(lines))

    # assume ------------------------------------------------------------------------------

    def assume_h2load(self, srv: kit.ServerProc) -> None:
        a = self.args
        raw, metadata = signed_assume_role("bench-h2load")
        body = self.body("assume", raw)
        headers = [f"{k}: {v}" for k, v in metadata]
        start = srv.scrape()
        peak = self.h2(srv, ASSUME_ROLE, body, headers=headers)
        print(f"  AssumeRole (h2load replay) peak: {peak.rps:,.0f} req/s", flush=True)
        half = self.h2(
            srv,
            ASSUME_ROLE,
            body,
            headers=headers,
            rps_per_client=peak.rps * 0.5 / a.clients,
            latencies=True,
        )
        end = srv.scrape()
        codes = _delta(start.codes("AssumeRole"), end.codes("AssumeRole"))
        lat = half.summary()["latency_ms"]
        print(
            f"  AssumeRole at 50% of peak: {half.rps:,.0f} req/s, p50 {lat['p50']:.2f} ms, "
            f"p99 {lat['p99']:.2f} ms",
            flush=True,
        )
        self.results["assume_h2load"] = {
            "peak": peak.summary(),
            "half_peak": {**half.summary(), "target_rps": round(peak.rps * 0.5, 1)},
            "grpc_codes": codes,
            "credentials_issued": _d(
                start, end, "iam_sidecar_credentials_issued_total", api="AssumeRole"
            ),
        }

    def assume_python(self, srv: kit.ServerProc) -> None:
        a = self.args
        per_proc = a.assume_calls // a.client_procs
        start_at = time.time() + 2.0 + per_proc * 0.0002  # after every process has signed
        before = srv.scrape()
        with _spawn_pool(a.client_procs) as pool:
            futures = [
                pool.submit(
                    _assume_client, srv.grpc_port, i, per_proc, a.client_concurrency, start_at
                )
                for i in range(a.client_procs)
            ]
            outs = [f.result(timeout=300) for f in futures]
        after = srv.scrape()
        lat_ms = [x * 1000 for o in outs for x in o["latencies"]]
        self.tokens = [t for o in outs for t in o["tokens"]]
        errors: collections.Counter[str] = collections.Counter()
        for o in outs:
            errors.update(o["errors"])
        wall = max(o["ended"] for o in outs) - min(o["began"] for o in outs)
        rps = len(lat_ms) / wall if wall > 0 else 0.0
        pct = kit.percentiles(lat_ms, (50, 90, 99, 99.9, 100))
        self.results["assume_python"] = {
            "client_processes": a.client_procs,
            "concurrency_per_process": a.client_concurrency,
            "calls": per_proc * a.client_procs,
            "ok": len(lat_ms),
            "errors": dict(errors),
            "distinct_tokens": len(set(self.tokens)),
            "wall_s": round(wall, 3),
            "rps": round(rps, 1),
            "latency_ms": {k: round(v, 3) for k, v in pct.items()},
            "client_sign_us_per_call": round(
                statistics.mean(o["sign_us_per_call"] for o in outs), 1
            ),
            "grpc_codes": _delta(before.codes("AssumeRole"), after.codes("AssumeRole")),
        }
        print(
            f"  AssumeRole (Python clients, fresh signatures): {rps:,.0f} req/s, "
            f"p50 {pct['p50']:.2f} ms, p99 {pct['p99']:.2f} ms, errors {dict(errors)}",
            flush=True,
        )

    def assume_table(self) -> None:
        a = self.args
        lines = [
            "AssumeRole (SigV4-signed by the demo user alice, role apps/app-reader)",
            "",
            "| method | req/s | p50 ms | p90 ms | p99 ms | max ms | gRPC codes on the server |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        h2 = self.results.get("assume_h2load")
        if h2:
            lines.append(
                f"| h2load replay of one signed request, -c {a.clients} -m {a.streams} "
                f"(peak, closed loop) | {h2['peak']['rps']:,.0f} | | | | | |"
            )
            lat = h2["half_peak"]["latency_ms"]
            lines.append(
                f"| h2load replay at 50% of that peak (--rps) | {h2['half_peak']['rps']:,.0f} | "
                f"{lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['p100']:.2f} | "
                f"{h2['grpc_codes']} (both runs) |"
            )
        py = self.results.get("assume_python")
        if py:
            lat = py["latency_ms"]
            lines.append(
                f"| Python clients, every call signed afresh ({py['client_processes']} processes "
                f"x {py['concurrency_per_process']} in flight, {py['calls']:,} calls) | "
                f"{py['rps']:,.0f} | {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | "
                f"{lat['p100']:.2f} | {py['grpc_codes']} |"
            )
        self.tables.append("\n".join(lines))

    # memory ------------------------------------------------------------------------------

    def memory(self, srv: kit.ServerProc) -> None:
        a = self.args
        if len(self.tokens) < a.memory_tokens:
            raise RuntimeError(f"only {len(self.tokens)} tokens for the memory part")
        tokens = self.tokens[: a.memory_tokens]
        samples: list[dict[str, float]] = []

        def sample(t0: float) -> None:
            s = srv.scrape()
            samples.append(
                {
                    "t_s": round(time.monotonic() - t0, 2),
                    "authorize_ok": s.codes("Authorize").get("OK", 0.0),
                    **srv.rss(),
                }
            )

        t0 = time.monotonic()
        sample(t0)
        start = srv.scrape()
        outs = _drive_clients(
            a, _authorize_client, srv.grpc_port, tokens, a.memory_requests,
            lambda: sample(t0), t0, "memory",
        )  # fmt: skip
        sample(t0)
        end = srv.scrape()
        counts: collections.Counter[str] = collections.Counter()
        for o in outs:
            counts.update(o["counts"])
        elapsed = max(o["elapsed_s"] for o in outs)

        def cache(name: str, event: str) -> float:
            return end.value("iam_sidecar_cache_events_total", cache=name, event=event)

        caches = {
            name: {
                "hits": cache(name, "hit"),
                "misses": cache(name, "miss"),
                "evictions": cache(name, "eviction"),
                "entries_now": cache(name, "miss") - cache(name, "eviction"),
            }
            for name in ("decision", "token")
        }
        self.results["memory"] = {
            "requests": a.memory_requests,
            "tokens": len(tokens),
            "distinct_resources": a.memory_requests,
            "client_processes": a.client_procs,
            "concurrency_per_process": a.client_concurrency,
            "elapsed_s": round(elapsed, 1),
            "rps": round(a.memory_requests / elapsed, 1),
            "client_counts": dict(counts),
            "authorize_grpc_codes": _delta(start.codes("Authorize"), end.codes("Authorize")),
            "allowed": _d(start, end, "iam_sidecar_decisions_total", decision="ALLOWED"),
            "caches": caches,
            "cache_sizes": _default_cache_sizes(),
            "samples": samples,
        }
        first, last = samples[0], samples[-1]
        mid = min(samples, key=lambda s: abs(s["authorize_ok"] - (a.memory_requests / 2)))
        print(
            f"  memory: {a.memory_requests:,} requests in {elapsed:.0f} s; RSS "
            f"{first['rss_mib']} -> {mid['rss_mib']} (half) -> {last['rss_mib']} MiB",
            flush=True,
        )
        lines = [
            f"Memory: {a.memory_requests:,} Authorize calls, {len(tokens):,} tokens, every "
            f"resource distinct ({a.client_procs} Python client process(es) x "
            f"{a.client_concurrency} in flight, {a.memory_requests / elapsed:,.0f} req/s)",
            "",
            "| Authorize calls served | RSS MiB | peak RSS MiB |",
            "|---:|---:|---:|",
        ]
        step = max(1, len(samples) // 10)
        shown = samples[::step]
        if shown[-1] is not samples[-1]:
            shown.append(samples[-1])
        for s in shown:
            lines.append(f"| {s['authorize_ok']:,.0f} | {s['rss_mib']} | {s['peak_rss_mib']} |")
        lines.append(
            f"\nCaches at the end: decision {caches['decision']}, token {caches['token']}. "
            f"Authorize codes {self.results['memory']['authorize_grpc_codes']}, ALLOWED "
            f"{self.results['memory']['allowed']:,.0f}, client counts {dict(counts)}."
        )
        self.tables.append("\n".join(lines))

    # adversarial memory --------------------------------------------------------------------

    def adversarial(self, srv: kit.ServerProc) -> None:
        """RSS under requests built to fill every cache with its largest entries: tokens of
        nearly MAX_TOKEN_CHARS, each with its own session policy; maximum-length resources and
        context values, all distinct; each request twice (the response cache fills too)."""
        a = self.args
        tag_chars = largest_tag_chars(srv.grpc_port)
        per_proc = a.adv_tokens // a.client_procs
        t0 = time.monotonic()
        with _spawn_pool(a.client_procs) as pool:
            futures = [
                pool.submit(
                    _assume_adversarial_client,
                    srv.grpc_port,
                    i * per_proc,
                    per_proc,
                    a.client_concurrency,
                    tag_chars,
                )
                for i in range(a.client_procs)
            ]
            assumed = [f.result(timeout=600) for f in futures]
        tokens = [t for o in assumed for t in o["tokens"]]
        assume_errors: collections.Counter[str] = collections.Counter()
        for o in assumed:
            assume_errors.update(o["errors"])
        if not tokens:
            raise RuntimeError(f"no adversarial tokens: {dict(assume_errors)}")
        lengths = sorted(len(t) for t in tokens)
        print(
            f"  adversarial: {len(tokens):,} tokens of {lengths[0]:,}-{lengths[-1]:,} characters "
            f"in {time.monotonic() - t0:.0f} s (errors {dict(assume_errors)})",
            flush=True,
        )
        samples: list[dict[str, float]] = []

        def sample() -> None:
            s = srv.scrape()
            samples.append(
                {
                    "t_s": round(time.monotonic() - t0, 2),
                    "authorize_calls": sum(s.codes("Authorize").values()),
                    **srv.rss(),
                }
            )

        sample()
        start = srv.scrape()
        outs = _drive_clients(
            a, _adversarial_client, srv.grpc_port, tokens, a.adv_requests, sample, t0,
            "adversarial",
        )  # fmt: skip
        sample()
        end = srv.scrape()
        counts: collections.Counter[str] = collections.Counter()
        for o in outs:
            counts.update(o["counts"])
        elapsed = max(o["elapsed_s"] for o in outs)
        caches = probe_caches(srv.grpc_port)
        self.results["adversarial"] = {
            "tokens": len(tokens),
            "token_chars": [lengths[0], lengths[-1]],
            "tag_chars": tag_chars,
            "assume_errors": dict(assume_errors),
            "requests": a.adv_requests,
            "distinct_requests": (a.adv_requests + 1) // 2,
            "elapsed_s": round(elapsed, 1),
            "rps": round(a.adv_requests / elapsed, 1),
            "client_counts": dict(counts),
            "authorize_grpc_codes": _delta(start.codes("Authorize"), end.codes("Authorize")),
            "allowed": _d(start, end, "iam_sidecar_decisions_total", decision="ALLOWED"),
            "caches_at_end": caches,
            "samples": samples,
        }
        first, last = samples[0], samples[-1]
        print(
            f"  adversarial: {a.adv_requests:,} requests in {elapsed:.0f} s; RSS "
            f"{first['rss_mib']} -> {last['rss_mib']} MiB (peak {last['peak_rss_mib']})",
            flush=True,
        )
        lines = [
            f"Adversarial memory: {len(tokens):,} tokens of {lengths[0]:,}-{lengths[-1]:,} "
            f"characters (each with its own session policy), then {a.adv_requests:,} Authorize "
            f"calls: {(a.adv_requests + 1) // 2:,} distinct requests, each twice, with a "
            f"{MAX_RESOURCE:,}-character resource and three {MAX_RESOURCE:,}-character context "
            "values the policies read, all distinct; every 100th call also one character over "
            f"({a.client_procs} client process(es) x {a.client_concurrency} in flight, "
            f"{a.adv_requests / elapsed:,.0f} req/s)",
            "",
            "| s | Authorize calls served | RSS MiB | peak RSS MiB |",
            "|---:|---:|---:|---:|",
        ]
        step = max(1, len(samples) // 12)
        shown = samples[::step]
        if shown[-1] is not samples[-1]:
            shown.append(samples[-1])
        for s in shown:
            lines.append(
                f"| {s['t_s']:.0f} | {s['authorize_calls']:,.0f} | {s['rss_mib']} | "
                f"{s['peak_rss_mib']} |"
            )
        cache_lines = ", ".join(
            f"{name} {c['entries']:,} entries / {c['bytes'] / 2**20:.1f} MiB"
            for name, c in caches.items()
        )
        lines.append(
            f"\nCaches at the end (entries / estimated bytes): {cache_lines}. Authorize codes "
            f"{self.results['adversarial']['authorize_grpc_codes']}, client counts {dict(counts)}."
        )
        self.tables.append("\n".join(lines))

    # workers -----------------------------------------------------------------------------

    def workers(self) -> None:
        a = self.args
        with (
            kit.sidecar_cli(self.keys, workers=1) as w1,
            kit.sidecar_cli(self.keys, workers=2) as w2,
        ):
            servers = {1: w1, 2: w2}
            bodies = {}
            for n, srv in servers.items():
                token = assume_token(srv.grpc_port, f"bench-w{n}")
                if authorize_once(srv.grpc_port, token) != ALLOWED:
                    raise RuntimeError(f"--workers {n}: Authorize precheck failed")
                bodies[n] = self.body(f"authorize-w{n}", authorize_body(token))
            runs: dict[int, list[float]] = {1: [], 2: []}
            for r in range(a.worker_rounds):
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for n in order:
                    res = self.h2(servers[n], AUTHORIZE, bodies[n])
                    runs[n].append(round(res.rps, 1))
                    print(
                        f"  workers round {r + 1}: --workers {n}: {res.rps:9,.0f} req/s", flush=True
                    )
            pids = {n: servers[n].pids for n in servers}
        med = {n: statistics.median(v) for n, v in runs.items()}
        self.results["workers"] = {
            "runs_rps": runs,
            "median_rps": med,
            "speedup": round(med[2] / med[1], 3),
            "serving_pids": pids,
        }
        lines = [
            f"Workers: Authorize (cached decision), h2load -c {a.clients} -m {a.streams} -t 1 "
            f"-D {a.duration:g}, {a.worker_rounds} rounds in turn",
            "",
            "| --workers | runs req/s | median req/s |",
            "|---:|---|---:|",
            *[
                f"| {n} | {', '.join(f'{x:,.0f}' for x in runs[n])} | {med[n]:,.0f} |"
                for n in (1, 2)
            ],
            f"\n2 workers / 1 worker: {med[2] / med[1]:.2f}",
        ]
        self.tables.append("\n".join(lines))


def probe_caches(port: int) -> dict[str, Any]:
    """The bench server's cache sizes (``/bench.Probe/Caches``)."""
    import json

    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary("/bench.Probe/Caches")(b"", timeout=60)
    caches: dict[str, Any] = json.loads(raw)
    return caches


def _default_cache_sizes() -> dict[str, int]:
    """The cache sizes the bench server runs with (the sidecar's defaults)."""
    from sidecar.server.app import ServeOptions

    opts = ServeOptions()
    return {"decision": opts.decision_cache_size, "token": opts.token_cache_size}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0)}


def _d(before: kit.Scrape, after: kit.Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default=DEFAULT_PARTS, help=f"comma-separated of {PARTS} or all")
    p.add_argument("--clients", type=int, default=8, help="h2load -c")
    p.add_argument("--streams", type=int, default=16, help="h2load -m")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per h2load run (-D)")
    p.add_argument("--warmup", type=float, default=1.0, help="h2load --warm-up-time seconds")
    p.add_argument("--rounds", type=int, default=4, help="ratio rounds (3 runs each)")
    p.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.9], help="of the peak")
    p.add_argument("--worker-rounds", type=int, default=3)
    p.add_argument("--assume-calls", type=int, default=6000, help="Python AssumeRole calls")
    p.add_argument("--client-procs", type=int, default=1, help="Python client processes")
    p.add_argument("--client-concurrency", type=int, default=32, help="calls in flight each")
    p.add_argument("--memory-requests", type=int, default=200_000)
    p.add_argument("--memory-tokens", type=int, default=5_000)
    p.add_argument("--adv-tokens", type=int, default=2_000, help="adversarial part's tokens")
    p.add_argument("--adv-requests", type=int, default=60_000, help="its Authorize calls")
    p.add_argument("--sample-every", type=float, default=2.0, help="RSS sampling period, s")
    p.add_argument("--max-seconds", type=float, default=600, help="hard limit of a server's life")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--keys", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    parts = PARTS if args.parts == "all" else tuple(x.strip() for x in args.parts.split(","))
    unknown = set(parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts: {sorted(unknown)}")
    args.parts = parts
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args.keys, args.max_seconds)
    parts = list(args.parts)
    if "memory" in parts and args.memory_tokens > args.assume_calls:
        args.assume_calls = args.memory_tokens
    if shutil.which("h2load") is None:
        skipped = [p for p in parts if p in ("ratio", "handler", "latency", "workers")]
        print(f"SKIP {skipped}: h2load not found (apt-get install nghttp2-client)")
        parts = [p for p in parts if p not in skipped]
    began = time.monotonic()
    header: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/transport.py", *sys.argv[1:]]),
        "machine": kit.machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("serve", "keys")},
        "loadavg_start": kit.loadavg(),
        "speed_probe_ms_start": kit.speed_probe(),
    }
    print(
        f"transport benchmark: parts {parts}; load average {header['loadavg_start']}, speed "
        f"probe {header['speed_probe_ms_start']} ms",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="transport-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        if {"ratio", "handler", "latency", "assume", "memory", "adversarial"} & set(parts):
            with kit.sidecar_bench(__file__, bench.keys, args.max_seconds) as srv:
                token = assume_token(srv.grpc_port)
                bench.results["server_rss_at_start"] = srv.rss()
                if "ratio" in parts or "latency" in parts:
                    bench.ratio(srv, token)
                if "handler" in parts:
                    bench.handler(srv, token)
                if "latency" in parts:
                    bench.latency(srv, token)
                if "assume" in parts and shutil.which("h2load"):
                    bench.assume_h2load(srv)
                if "assume" in parts or "memory" in parts:
                    bench.assume_python(srv)
                if "assume" in parts:
                    bench.assume_table()
                if "memory" in parts:
                    bench.memory(srv)
                if "adversarial" in parts:
                    bench.adversarial(srv)
                bench.results["server_rss_at_end"] = srv.rss()
        if "workers" in parts:
            bench.workers()
    header["loadavg_end"] = kit.loadavg()
    header["speed_probe_ms_end"] = kit.speed_probe()
    header["elapsed_s"] = round(time.monotonic() - began, 1)
    data = {**header, **bench.results, "tables_markdown": bench.tables}
    path = kit.write_results("transport", data)
    m = header["machine"]
    print(
        f"\n{header['date']}  {m['cpu']} ({m['nproc']} cores), Python {m['python']}, grpcio "
        f"{m['grpcio']}, {m['h2load']}, commit {m['commit']}"
        f"{' (sidecar/ modified)' if m['sidecar_uncommitted'] else ''}; load average "
        f"{header['loadavg_start']} -> {header['loadavg_end']}; speed probe "
        f"{header['speed_probe_ms_start']} -> {header['speed_probe_ms_end']} ms\n"
    )
    print("\n\n".join(bench.tables))
    print(f"\n{header['elapsed_s']} s; wrote {path.relative_to(kit.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
