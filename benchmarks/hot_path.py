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
  front of the handlers, as the server does);
- ``CheckService.check``: Envoy's Check for versus_bare.py's request (GET /reports/q1.csv
  with the token as a bearer, routed to the same decision), and each of its steps.

These are hot-loop figures: inside the loaded server the same handler took 2.6 times as long
per call on 2026-11-28 (34.8 µs median against 13.2 µs; ``transport.py`` part ``handler``), since
each call there runs with cold caches between gRPC's own work. Use them to compare changes, not
as the server's cost.
``--profile`` prints a cProfile of the Authorize handler loop, ``--profile-check`` of Check's.
Results go to benchmarks/results/hot-path-<stamp>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
    from versus_bare import bench_world, check_body
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit
    from benchmarks.versus_bare import bench_world, check_body

import grpc

from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as ext
from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.demo import DEMO_SECRET, DEMO_SECRET_ENV
from sidecar.engine.engine import Engine
from sidecar.server.app import ServeOptions, load_world
from sidecar.server.convert import context_from_pb, statement_ref_pb
from sidecar.server.ext_authz import CheckService, CheckTransportKeys
from sidecar.server.ext_authz_principal import request_headers, request_principal
from sidecar.server.ext_authz_responses import forged_spellings
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
    parser.add_argument("--profile", action="store_true", help="cProfile Authorize's handler")
    parser.add_argument("--profile-check", action="store_true", help="cProfile Check's handler")
    args = parser.parse_args()

    os.environ.setdefault(DEMO_SECRET_ENV, DEMO_SECRET)  # the world file's alice, as the demo
    with tempfile.TemporaryDirectory() as tmp:  # the demo world and one ext_authz route
        world = load_world(ServeOptions(config=str(bench_world(Path(tmp)))))
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
    first = authorizer_pb2.AuthorizeResponse.FromString(drive(services.authorize(raw, ctx)))
    if first.decision != types_pb2.ALLOWED:
        raise SystemExit(f"unexpected decision {first.decision}")
    req = authorizer_pb2.AuthorizeRequest.FromString(raw)
    transport = transport_keys(ctx, False)
    empty = context_from_pb(req.context, field="context")
    result, _cached = engine.authorize(token, ACTION, RESOURCE, empty, transport)
    fresh = (f"arn:aws:s3:::reports/hot/{i}.csv" for i in itertools.count())

    async def noop(request: bytes, context: object) -> bytes:
        return b""

    def front(fn: Any) -> Any:  # as the server installs it: in front of the generic handlers
        # One interceptor each: an interceptor remembers the wrapped handler per method name,
        # and both are installed as Authorize.
        return MetricsInterceptor(metrics).handlers(
            [grpc.method_handlers_generic_handler(
                "iamsidecar.v1.Authorizer", {"Authorize": grpc.unary_unary_rpc_method_handler(fn)}
            )]
        )  # fmt: skip

    to_authorize, to_noop = front(services.authorize), front(noop)

    def through(generic: Any) -> Any:
        handler = generic.service(Details)
        return drive(handler.unary_unary(raw, ctx))

    if through(to_noop) != b"" or through(to_authorize) != drive(services.authorize(raw, ctx)):
        raise SystemExit("a handler behind MetricsInterceptor is not the one installed")

    cases: dict[str, Callable[[], object]] = {
        "Engine.authorize, cached decision": lambda: engine.authorize(
            token, ACTION, RESOURCE, empty, transport
        ),
        "Engine.authorize, uncached (new resource each call)": lambda: engine.authorize(
            token, ACTION, next(fresh), empty, transport
        ),
        "Services.authorize (whole handler, serialized answer)": lambda: drive(
            services.authorize(raw, ctx)
        ),
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
        **check_cases(services, engine, token, ctx),
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
            drive(services.authorize(raw, ctx))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    if args.profile_check:
        check = CheckService(services).check
        body = check_body(token)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(100_000):
            drive(check(body, ctx))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


def check_cases(
    services: Services, engine: Engine, token: str, ctx: StubContext
) -> dict[str, Callable[[], object]]:
    """Check's whole handler and its steps, for the request versus_bare.py sends."""
    service = CheckService(services)
    body = check_body(token)
    answer = ext.CheckResponse.FromString(drive(service.check(body, ctx)))
    if answer.status.code != 0:
        raise SystemExit(f"unexpected Check answer {answer.status}")
    req = ext.CheckRequest.FromString(body)
    attrs = req.attributes
    http = attrs.request.http
    headers = request_headers(http)
    snap = engine.snapshot
    table = service.routes(snap)
    target = table.resolve_fields(http.method, http.host, http.path, headers)
    assert target is not None
    transport = CheckTransportKeys(attrs)
    return {
        "CheckService.check (whole handler, serialized answer)": lambda: drive(
            service.check(body, ctx)
        ),
        "  parse CheckRequest": lambda: ext.CheckRequest.FromString(body),
        "  request_headers": lambda: request_headers(http),
        "  RouteTable.resolve_fields": lambda: table.resolve_fields(
            http.method, http.host, http.path, headers
        ),
        "  request_principal (bearer)": lambda: request_principal(
            http, headers, attrs, engine, snap
        ),
        "  Services.decide (cached)": lambda: services.decide(
            token, target.action, target.resource, target.context, transport
        ),
        "  forged_spellings": lambda: forged_spellings(headers),
    }


if __name__ == "__main__":
    sys.exit(main())
