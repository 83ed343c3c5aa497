"""Where Check's extra CPU per call goes in a loaded server (docs/BENCHMARKS.md, "Against a
bare gRPC server").

    .venv/bin/python benchmarks/check_gap.py [--rounds 6] [--duration 3] [--only a,b,...]
    .venv/bin/python benchmarks/check_gap.py --solo check_raw --rounds 1 --duration 10
        # one target alone, its pid printed first: attach perf or py-spy from outside

One process, one event loop, one Engine (the demo world plus versus_bare.py's ext_authz
route), two grpc.aio servers:

- *bare*: ``grpc.aio.server()`` with default options and generic handlers only, no metrics;
- *sidecar*: as ``serve`` builds it: the sidecar's options, its handlers and Check behind
  ``MetricsInterceptor.handlers`` (the metrics wrapper), plus two bench methods.

Targets, each sent the request named (h2load -c 4 -m 32 -t 1, in turn, the order reversed
every other round):

- ``noop``: bare, Check's request in, ``b""`` out;
- ``noop_sized``: bare, Check's request in, as many bytes out as Check answers;
- ``noop_code``: bare, the no-op calling ``context.code()`` once (the wrapper does);
- ``noop_wrapped``: bare, the no-op behind the metrics wrapper (a second generic handler);
- ``noop_side``: sidecar, the no-op behind the wrapper on the sidecar's server;
- ``spin``: bare, an empty Python loop as long as Check's handler in a hot loop;
- ``check_fromstring``: bare, ``CheckRequest.FromString`` and nothing else;
- ``check_parse``: bare, Check's first step: the request parsed and its method, host, path
  and headers read;
- ``authorize_parse``: bare, Authorize's request parsed and its token, action and resource read;
- ``check_route``: and its route resolved and its principal (the bearer token) found;
- ``check_decide``: and the cached decision asked (``Services.decide``, counted);
- ``check_raw``: bare, the real ``CheckService.check`` with no metrics wrapper;
- ``authorize_raw``: bare, the real ``Services.authorize`` with no metrics wrapper;
- ``check_twice``: bare, the same awaited twice per call (is its cost linear?);
- ``check_wrapped``: bare, the same behind the metrics wrapper;
- ``check``: sidecar, the real Check (as served);
- ``check_nogc``: the same, with ``gc.disable()`` for the run;
- ``authorize``: sidecar, the real Authorize (its own request, a cached decision).

The figure is the process's CPU time per call (getrusage, every thread), and its difference
to ``noop`` in the same round (median and spread over rounds). One heap and one process for
all, so what differs is the code path alone.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
    import transport
    from authorize_parts import _h2load
    from versus_bare import CHECK, bench_world, check_body
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit
    from benchmarks import transport
    from benchmarks.authorize_parts import _h2load
    from benchmarks.versus_bare import CHECK, bench_world, check_body

TARGETS = (
    "noop",
    "noop_sized",
    "noop_code",
    "noop_wrapped",
    "noop_side",
    "spin",
    "check_fromstring",
    "check_parse",
    "authorize_parse",
    "check_route",
    "check_decide",
    "check_raw",
    "authorize_raw",
    "check_twice",
    "check_wrapped",
    "check",
    "check_nogc",
    "authorize",
)


def _bench_handler(service: str, answers: dict[str, bytes], extra: dict[str, Any]) -> Any:
    import grpc

    def constant(answer: bytes) -> Any:
        async def handler(raw: bytes, context: Any) -> bytes:
            return answer

        return handler

    fns = {name: constant(answer) for name, answer in answers.items()}
    fns.update(extra)
    return grpc.method_handlers_generic_handler(
        service, {n: grpc.unary_unary_rpc_method_handler(f) for n, f in fns.items()}
    )


async def _hot_us(fn: Any, raw: bytes, context: Any, n: int = 20000) -> float:
    """µs per call of ``fn`` awaited in a hot loop (best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            await fn(raw, context)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def _calibrate(us: float) -> int:
    """Iterations of an empty loop that take ``us`` µs."""
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        pass
    per = (time.perf_counter() - start) / n * 1e6
    print(f"hot loop: Check {us:.2f} us; spin {int(us / per)} iterations", flush=True)
    return int(us / per)


async def _run(a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    import grpc

    from sidecar.demo import DEMO_SECRET, DEMO_SECRET_ENV
    from sidecar.engine.engine import Engine
    from sidecar.server.app import ServeOptions, SystemClock, load_keys, load_world
    from sidecar.server.ext_authz import CheckService, check_handler
    from sidecar.server.keyfile import SystemEntropy
    from sidecar.server.metrics import Metrics, MetricsInterceptor
    from sidecar.server.servicers import ServerDeps, Services, generic_handlers
    from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
    from sidecar.sts.callers import UserCaller

    os.environ.setdefault(DEMO_SECRET_ENV, DEMO_SECRET)
    opts = ServeOptions(keys_file=kit.generate_keys(tmp), config=str(bench_world(Path(tmp))))
    world = load_world(opts)
    keys, _ = load_keys(opts, world)
    clock = SystemClock()
    engine = Engine(world, keys, clock)
    user = world.users_by_arn["arn:aws:iam::111111111111:user/alice"]
    token = assume_role(
        StsEnv(world, keys, clock, SystemEntropy()),
        UserCaller(user, world.partition),
        AssumeRoleParams(role_arn=transport.ROLE, role_session_name="gap"),
    ).credentials.session_token
    metrics = Metrics()
    deps = ServerDeps(engine=engine, clock=clock, entropy=SystemEntropy(), metrics=metrics)
    services = Services(deps)
    checks = CheckService(services, local_callers=True)

    class Ctx:  # enough of a context for an allowed Check
        pass

    check_req = check_body(token)
    ok = await checks.check(check_req, Ctx())  # type: ignore[arg-type]

    async def code(raw: bytes, context: Any) -> bytes:
        context.code()  # what the metrics wrapper asks of every call
        return b""

    # Pure Python work as long as Check's handler in a hot loop: does any ~9 µs of work cost
    # as much under load, or is it something of Check's own?
    spins = _calibrate(await _hot_us(checks.check, check_req, Ctx()))

    async def spin(raw: bytes, context: Any) -> bytes:
        for _ in range(spins):
            pass
        return b""

    from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as ext
    from sidecar.api.v1.authorizer_pb2 import AuthorizeRequest
    from sidecar.server.ext_authz import CheckTransportKeys
    from sidecar.server.ext_authz_principal import request_headers, request_principal

    def parsed(raw: bytes) -> tuple[Any, Any, Any, Any]:
        attrs = ext.CheckRequest.FromString(raw).attributes
        http = attrs.request.http
        headers = request_headers(http)
        _ = http.method, http.host, http.path
        return attrs, http, headers, engine.snapshot

    async def parse(raw: bytes, context: Any) -> bytes:
        parsed(raw)
        return b""

    async def fromstring(raw: bytes, context: Any) -> bytes:
        ext.CheckRequest.FromString(raw)
        return b""

    async def authorize_parse(raw: bytes, context: Any) -> bytes:
        req = AuthorizeRequest.FromString(raw)
        _ = req.session_token, req.action, req.resource, req.context
        return b""

    def routed(raw: bytes) -> tuple[Any, Any, Any]:
        attrs, http, headers, snap = parsed(raw)
        target = checks.routes(snap).resolve_fields(http.method, http.host, http.path, headers)
        who = request_principal(http, headers, attrs, engine, snap)
        return attrs, target, who

    async def route(raw: bytes, context: Any) -> bytes:
        routed(raw)
        return b""

    async def decide(raw: bytes, context: Any) -> bytes:
        attrs, target, who = routed(raw)
        keys = CheckTransportKeys(attrs)
        services.decide(who, target.action, target.resource, target.context, keys)
        return b""

    async def twice(raw: bytes, context: Any) -> bytes:
        await checks.check(raw, context)
        return await checks.check(raw, context)

    bare = grpc.aio.server()
    wrapped = [_bench_handler("bench.Wrapped", {"Noop": b""}, {"Check": checks.check})]
    bare.add_generic_rpc_handlers(
        [
            _bench_handler(
                "bench.Bare",
                {"Noop": b"", "Sized": b"\x00" * len(ok)},
                {
                    "Check": checks.check,
                    "Code": code,
                    "Spin": spin,
                    "Twice": twice,
                    "Parse": parse,
                    "Route": route,
                    "Decide": decide,
                    "FromString": fromstring,
                    "AuthorizeParse": authorize_parse,
                    "Authorize": services.authorize,
                },
            ),
            MetricsInterceptor(Metrics()).handlers(wrapped),
        ]
    )
    side = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", opts.max_message_bytes),
            ("grpc.max_send_message_length", opts.max_message_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    inner = [
        *generic_handlers(services),
        check_handler(checks),
        _bench_handler("bench.Side", {"Noop": b""}, {}),
    ]
    side.add_generic_rpc_handlers([MetricsInterceptor(metrics).handlers(inner)])
    ports = {"bare": bare.add_insecure_port("127.0.0.1:0")}
    ports["side"] = side.add_insecure_port("127.0.0.1:0")
    await bare.start()
    await side.start()
    gc.collect()
    gc.freeze()  # as serve does
    bodies = {}
    for name, message in (
        ("check", check_req),
        ("authorize", transport.authorize_body(token)),
    ):
        bodies[name] = Path(tmp) / f"{name}.grpc"
        bodies[name].write_bytes(kit.grpc_frame(message))
    # name -> (server, path, body)
    table = {
        "noop": ("bare", "/bench.Bare/Noop", "check"),
        "noop_sized": ("bare", "/bench.Bare/Sized", "check"),
        "noop_code": ("bare", "/bench.Bare/Code", "check"),
        "noop_wrapped": ("bare", "/bench.Wrapped/Noop", "check"),
        "noop_side": ("side", "/bench.Side/Noop", "check"),
        "spin": ("bare", "/bench.Bare/Spin", "check"),
        "check_fromstring": ("bare", "/bench.Bare/FromString", "check"),
        "check_parse": ("bare", "/bench.Bare/Parse", "check"),
        "authorize_parse": ("bare", "/bench.Bare/AuthorizeParse", "authorize"),
        "check_route": ("bare", "/bench.Bare/Route", "check"),
        "check_decide": ("bare", "/bench.Bare/Decide", "check"),
        "check_raw": ("bare", "/bench.Bare/Check", "check"),
        "authorize_raw": ("bare", "/bench.Bare/Authorize", "authorize"),
        "check_twice": ("bare", "/bench.Bare/Twice", "check"),
        "check_wrapped": ("bare", "/bench.Wrapped/Check", "check"),
        "check": ("side", CHECK, "check"),
        "check_nogc": ("side", CHECK, "check"),
        "authorize": ("side", transport.AUTHORIZE, "authorize"),
    }
    names = [n for n in TARGETS if not a.only or n in a.only.split(",") or n == "noop"]
    if a.solo:  # one target only, e.g. under perf or py-spy started from outside
        names = [a.solo]
        print(f"pid {os.getpid()}", flush=True)
    runs: dict[str, list[float]] = {n: [] for n in names}
    try:
        for r in range(a.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                server, path, body = table[name]
                if name.endswith("_nogc"):
                    gc.disable()
                try:
                    _, cpu = await _h2load(ports[server], path, bodies[body], a.duration)
                finally:
                    gc.enable()
                runs[name].append(round(cpu, 1))
                print(f"  round {r + 1}: {name:12} {cpu:6.1f} us/call", flush=True)
    finally:
        await bare.stop(0)
        await side.stop(0)
    base = runs.get("noop") or [0.0] * a.rounds
    over = {n: [round(x - b, 1) for x, b in zip(v, base, strict=True)] for n, v in runs.items()}
    sizes = {"check_request": len(check_req), "check_answer": len(ok)}
    return {"cpu_us_per_call": runs, "over_noop": over, "bytes": sizes}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--only", help=f"comma-separated of {TARGETS} (noop is always run)")
    p.add_argument("--solo", choices=TARGETS, help="this target alone (for an outside profiler)")
    a = p.parse_args()
    return kit.run_cpu_rounds(
        "check_gap.py",
        lambda tmp: _run(a, tmp),
        results="check-gap",
        caption=lambda out: (
            f"Server CPU µs per call, h2load -c 4 -m 32 -t 1 -D {a.duration:g}s, {a.rounds} "
            f"rounds; bytes {out['bytes']}"
        ),
        baseline_key="over_noop",
        baseline_label="over noop",
    )


if __name__ == "__main__":
    sys.exit(main())
