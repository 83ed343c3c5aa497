"""Before and after this round's Authorize hot-path changes, in one process
(docs/BENCHMARKS.md, "Against a bare gRPC server").

    .venv/bin/python benchmarks/hot_path_ab.py [--rounds 10] [--duration 3]

Three grpc.aio servers on one event loop, over one Engine (the demo world), each serving the
Authorizer as the sidecar does and loaded in turn (h2load -c 4 -m 32 -t 1, Authorize with a
cached decision), the order reversed every other round:

- ``before``: metrics as a grpc interceptor (``MetricsInterceptor`` passed to the server), the
  transport keys read from the peer on every call (the handler as it was, kept below);
- ``wrapper``: metrics kept around the method handlers (``MetricsInterceptor.handlers``, as
  the server now installs them), transport keys still read on every call;
- ``now``: the wrapper and ``LazyTransportKeys`` (the handler as it is).

One process and one heap for all three, so what differs between them is the code alone; the
figure is the process's CPU time per call (getrusage, every thread) and each one's difference
to ``before`` in the same round.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
    import transport
    from authorize_parts import _h2load
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit
    from benchmarks import transport
    from benchmarks.authorize_parts import _h2load

VARIANTS = ("before", "wrapper", "now")


def _servers(engine: Any, clock: Any) -> dict[str, Any]:
    import grpc

    from sidecar.api.v1 import authorizer_pb2
    from sidecar.server.keyfile import SystemEntropy
    from sidecar.server.metrics import Metrics, MetricsInterceptor
    from sidecar.server.servicers import (
        ServerDeps,
        Services,
        _parse,
        generic_handlers,
        transport_keys,
    )

    class Eager(Services):
        """Authorize as it was: the peer read and parsed on every call."""

        async def authorize(self, raw: bytes, context: Any) -> Any:
            try:
                req = _parse(authorizer_pb2.AuthorizeRequest, raw)
                token = self._token(req.session_token, context)
                keys = transport_keys(context, self.deps.secure)
                result, cached = self._decide(token, req.action, req.resource, req.context, keys)
                return self._kept(result, keep=cached)[2]
            except Exception as err:
                await self._refuse(context, err)

    out = {}
    for name in VARIANTS:
        metrics = Metrics()
        deps = ServerDeps(engine=engine, clock=clock, entropy=SystemEntropy(), metrics=metrics)
        services = (Services if name == "now" else Eager)(deps)
        if name == "before":
            server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics)])
            server.add_generic_rpc_handlers(generic_handlers(services))
        else:
            server = grpc.aio.server()
            handlers = generic_handlers(services)
            server.add_generic_rpc_handlers([MetricsInterceptor(metrics).handlers(handlers)])
        out[name] = server
    return out


async def _run(a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    from sidecar.engine.engine import Engine
    from sidecar.server.app import ServeOptions, SystemClock, load_keys, load_world
    from sidecar.server.keyfile import SystemEntropy
    from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
    from sidecar.sts.callers import UserCaller

    opts = ServeOptions(keys_file=kit.generate_keys(tmp))
    world = load_world(opts)
    keys, _ = load_keys(opts, world)
    clock = SystemClock()
    engine = Engine(world, keys, clock)
    user = world.users_by_arn["arn:aws:iam::111111111111:user/alice"]
    token = assume_role(
        StsEnv(world, keys, clock, SystemEntropy()),
        UserCaller(user, world.partition),
        AssumeRoleParams(role_arn=transport.ROLE, role_session_name="ab"),
    ).credentials.session_token
    servers = _servers(engine, clock)
    ports = {}
    for name, server in servers.items():
        ports[name] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
    gc.collect()
    gc.freeze()  # as serve does
    body = Path(tmp) / "authorize.grpc"
    body.write_bytes(kit.grpc_frame(transport.authorize_body(token)))
    runs: dict[str, list[float]] = {n: [] for n in VARIANTS}
    try:
        for name in VARIANTS:  # h2load would count a failing variant's calls as answered
            await _allowed(ports[name], token)
        for r in range(a.rounds):
            for name in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                _, cpu = await _h2load(ports[name], transport.AUTHORIZE, body, a.duration)
                runs[name].append(round(cpu, 1))
                print(f"  round {r + 1}: {name:8} {cpu:6.1f} us/call", flush=True)
    finally:
        for server in servers.values():
            await server.stop(0)
    over = {
        n: [round(x - b, 1) for x, b in zip(v, runs["before"], strict=True)]
        for n, v in runs.items()
    }
    return {"cpu_us_per_call": runs, "minus_before": over}


async def _allowed(port: int, token: str) -> None:
    import grpc

    from sidecar.api.v1 import authorizer_pb2, types_pb2

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = await channel.unary_unary(transport.AUTHORIZE)(
            transport.authorize_body(token), timeout=10
        )
    if authorizer_pb2.AuthorizeResponse.FromString(raw).decision != types_pb2.ALLOWED:
        raise RuntimeError(f"the server on port {port} does not allow the benchmark's request")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--duration", type=float, default=3.0)
    a = p.parse_args()
    return kit.run_cpu_rounds(
        "hot_path_ab.py",
        lambda tmp: _run(a, tmp),
        results="hot-path-ab",
        caption=lambda _out: (
            f"Server CPU µs per Authorize, h2load -c 4 -m 32 -t 1 -D {a.duration:g}s, "
            f"{a.rounds} rounds"
        ),
        baseline_key="minus_before",
        baseline_label="minus before",
    )


if __name__ == "__main__":
    sys.exit(main())
