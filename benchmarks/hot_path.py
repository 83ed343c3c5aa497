"""In-process cost of the Authorize hot path, piece by piece (no network, no h2load).

    .venv/bin/python benchmarks/hot_path.py [--profile]

The demo world, a real session token (AssumeRole in process) and the cached decision
``s3:GetObject`` on ``arn:aws:s3:::reports/2026/q1.csv``. Each figure is the median (and min)
of timed loops with the garbage collector on, in µs per call:

- ``Engine.authorize``, cached and uncached (a new resource every call): the
  docs/BENCHMARKS.md target for a cached decision in process is <= 2 µs;
- ``Services.authorize``: the whole gRPC handler for a serialized request, with a stub servicer
  context (peer 127.0.0.1, insecure), and each of its steps;
- a no-op handler and Authorize behind the server's ``MetricsInterceptor`` (installed in
  front of the handlers, as the server does).

These are hot-loop figures: inside the loaded server the same handler took 2.6 times as long
per call on 2026-11-28 (34.8 µs median against 13.2 µs; ``transport.py`` part ``handler``), since
each call there runs with cold caches between gRPC's own work. Use them to compare changes, not
as the server's cost.
``--profile`` prints a cProfile of the handler loop. Results go to
benchmarks/results/hot-path-<stamp>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit

import grpc

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.engine.engine import Engine
from sidecar.server.app import ServeOptions, load_world
from sidecar.server.convert import context_from_pb, statement_ref_pb
from sidecar.server.keyfile import SystemEntropy
from sidecar.server.metrics import Metrics, MetricsInterceptor
from sidecar.server.servicers import ServerDeps, Services, transport_keys
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.keys import KeyRing

ROLE = "arn:aws:iam::111111111111:role/apps/app-reader"
ACTION = "s3:GetObject"
RESOURCE = "arn:aws:s3:::reports/2026/q1.csv"
AUTHORIZE = "/iamsidecar.v1.Authorizer/Authorize"


class WallClock:
    def now(self) -> float:
        return time.time()


class StubContext:
    """What the Authorize handler asks of a grpc.aio servicer context on success."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"transport_security_type": [b"insecure"]}

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def code(self) -> None:
        return None


class Details:
    method = AUTHORIZE


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (the handlers on their success path)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def measure(fn: Callable[[], object], repeats: int, target_s: float) -> dict[str, float]:
    timer = timeit.Timer(fn, setup="gc.enable()")  # timeit turns the collector off otherwise
    number = 1
    while timer.timeit(number) < target_s / 4:
        number *= 2
    runs = [timer.timeit(number) / number * 1e6 for _ in range(repeats)]
    return {"median_us": round(statistics.median(runs), 3), "min_us": round(min(runs), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--target", type=float, default=0.05, help="seconds per timed loop")
    parser.add_argument("--profile", action="store_true", help="cProfile the handler loop")
    args = parser.parse_args()

    world = load_world(ServeOptions())
    keys = KeyRing.generate(SystemEntropy(), "bench")
    clock = WallClock()
    engine = Engine(world, keys, clock)
    metrics = Metrics()
    services = Services(
        ServerDeps(engine=engine, clock=clock, entropy=SystemEntropy(), metrics=metrics)
    )
    user, _key = world.access_keys["AKIADEMOALICE0000001"]
    env = StsEnv(world, keys, clock, SystemEntropy())
    token = assume_role(
        env,
        UserCaller(user, world.partition),
        AssumeRoleParams(role_arn=ROLE, role_session_name="hot-path"),
    ).credentials.session_token
    raw = authorizer_pb2.AuthorizeRequest(
        session_token=token, action=ACTION, resource=RESOURCE
    ).SerializeToString()
    ctx = StubContext()
    first = drive(services.authorize(raw, ctx))
    if first.decision != types_pb2.ALLOWED:
        raise SystemExit(f"unexpected decision {first.decision}")
    req = authorizer_pb2.AuthorizeRequest.FromString(raw)
    transport = transport_keys(ctx, False)
    empty = context_from_pb(req.context, field="context")
    result, _cached = engine.authorize(token, ACTION, RESOURCE, empty, transport)
    fresh = (f"arn:aws:s3:::reports/hot/{i}.csv" for i in itertools.count())
    interceptor = MetricsInterceptor(metrics)

    async def noop(request: bytes, context: object) -> bytes:
        return b""

    def front(fn: Any) -> Any:  # as the server installs it: in front of the generic handlers
        return interceptor.handlers(
            [grpc.method_handlers_generic_handler(
                "iamsidecar.v1.Authorizer", {"Authorize": grpc.unary_unary_rpc_method_handler(fn)}
            )]
        )  # fmt: skip

    to_authorize, to_noop = front(services.authorize), front(noop)

    def through(generic: Any) -> Any:
        handler = generic.service(Details)
        return drive(handler.unary_unary(raw, ctx))

    cases: dict[str, Callable[[], object]] = {
        "Engine.authorize, cached decision": lambda: engine.authorize(
            token, ACTION, RESOURCE, empty, transport
        ),
        "Engine.authorize, uncached (new resource each call)": lambda: engine.authorize(
            token, ACTION, next(fresh), empty, transport
        ),
        "Services.authorize (whole handler) + SerializeToString": lambda: drive(
            services.authorize(raw, ctx)
        ).SerializeToString(),
        "  parse AuthorizeRequest": lambda: authorizer_pb2.AuthorizeRequest.FromString(raw),
        "  transport_keys (stub context)": lambda: transport_keys(ctx, False),
        "  context_from_pb (no entries)": lambda: context_from_pb(req.context, field="context"),
        "  decisions counter .labels().inc()": lambda: metrics.decisions.labels("ALLOWED").inc(),
        "  build AuthorizeResponse": lambda: authorizer_pb2.AuthorizeResponse(
            decision=int(result.decision),  # type: ignore[arg-type]
            principal_arn=result.principal_arn,
            matched_statements=[statement_ref_pb(m) for m in result.evaluation.matched],
            reason=result.reason,
        ),
        "  AuthorizeResponse.SerializeToString": lambda: first.SerializeToString(),
        "no-op handler behind MetricsInterceptor": lambda: through(to_noop),
        "Authorize handler behind MetricsInterceptor": lambda: through(to_authorize),
    }
    out: dict[str, dict[str, float]] = {}
    print(f"{'µs/call median':>15} {'(min)':>8}  case")
    for name, fn in cases.items():
        out[name] = measure(fn, args.repeats, args.target)
        print(f"{out[name]['median_us']:15.2f} {out[name]['min_us']:8.2f}  {name}")
    data = {
        "machine": kit.machine(),
        "speed_probe_ms": kit.speed_probe(),
        "settings": {"repeats": args.repeats, "target_s": args.target},
        "cases": out,
    }
    path = kit.write_results("hot-path", data)
    print(f"speed probe {data['speed_probe_ms']} ms; wrote {path.relative_to(kit.ROOT)}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(100_000):
            drive(services.authorize(raw, ctx)).SerializeToString()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
