"""Where a cached Authorize spends its time in the loaded server, step by step
(docs/BENCHMARKS.md, "Against a bare gRPC server").

    .venv/bin/python benchmarks/authorize_parts.py [--rounds 6] [--duration 3]

One process: the real ``Sidecar`` (demo world, metrics on, as ``serve`` builds it) with extra
methods on the same server, each doing one more step of Authorize than the one before, all
sent Authorize's request bytes:

- ``noop``: returns ``b""``;
- ``parse``: parses the AuthorizeRequest;
- ``peer``: and reads the peer (``transport_keys``: ``context.peer()`` and its parsing);
- ``engine``: and asks ``Engine.authorize`` (a cached decision);
- ``handler``: the whole Authorize handler (``Services.authorize``) and its serialization;
- ``authorize``: the real ``/iamsidecar.v1.Authorizer/Authorize``.

h2load (``-c 4 -m 32 -t 1``) drives each in turn, the order reversed every other round; the
figure is the server's CPU time per call (``getrusage``, every thread), and the difference to
``noop`` in the same round (median over rounds). A step costs several times more here than in
a hot loop (benchmarks/hot_path.py), as each call runs with caches cooled by gRPC's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import resource
import sys
from pathlib import Path
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
    import transport
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit
    from benchmarks import transport

STEPS = ("noop", "parse", "peer", "engine", "handler")


def _steps(box: dict[str, Any]) -> Any:
    import grpc

    from sidecar.api.v1 import authorizer_pb2
    from sidecar.server.servicers import transport_keys

    request = authorizer_pb2.AuthorizeRequest

    async def noop(raw: bytes, context: Any) -> bytes:
        return b""

    async def parse(raw: bytes, context: Any) -> bytes:
        request.FromString(raw)
        return b""

    async def peer(raw: bytes, context: Any) -> bytes:
        request.FromString(raw)
        transport_keys(context, False)
        return b""

    async def engine(raw: bytes, context: Any) -> bytes:
        req = request.FromString(raw)
        keys = transport_keys(context, False)
        box["engine"].authorize(req.session_token, req.action, req.resource, None, keys)
        return b""

    async def handler(raw: bytes, context: Any) -> bytes:
        body: bytes = await box["services"].authorize(raw, context)  # serialized already
        return body

    fns = {"noop": noop, "parse": parse, "peer": peer, "engine": engine, "handler": handler}
    failures = box.setdefault("failures", collections.Counter())

    def counted(name: str, fn: Any) -> Any:  # h2load counts a failed gRPC call as a 200
        async def step(raw: bytes, context: Any) -> bytes:
            try:
                answer: bytes = await fn(raw, context)
            except Exception:
                failures[name] += 1
                raise
            return answer

        return step

    return grpc.method_handlers_generic_handler(
        "bench.Steps",
        {n: grpc.unary_unary_rpc_method_handler(counted(n, f)) for n, f in fns.items()},
    )


async def _h2load(port: int, path: str, body: Path, duration: float) -> tuple[float, float]:
    """(req/s, this process's CPU µs per call) of one h2load run."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    proc = await asyncio.create_subprocess_exec(
        "h2load", "-c", "4", "-m", "32", "-t", "1", "-D", f"{duration:g}", "-d", str(body),
        *(x for h in kit.GRPC_HEADERS for x in ("-H", h)), f"http://127.0.0.1:{port}{path}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=duration + 60)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    text = out.decode()
    line = next(x for x in text.splitlines() if "finished in" in x)
    rps = float(line.split(",")[1].split()[0])
    done = int(text.split(" done,")[0].rsplit(" ", 1)[-1])
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return rps, cpu / max(done, 1) * 1e6


async def _run(a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    from sidecar.server.app import ServeOptions, Sidecar, load_keys, load_world
    from sidecar.server.keyfile import SystemEntropy
    from sidecar.server.servicers import ServerDeps, Services

    opts = ServeOptions(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        keys_file=kit.generate_keys(tmp),
        grace=0.5,
        drain_delay=0.0,
    )
    world = load_world(opts)
    keys, keys_from = load_keys(opts, world)
    box: dict[str, Any] = {}
    sidecar = Sidecar(opts, world, keys, keys_from, extra_handlers=[_steps(box)])
    await sidecar.start()
    box["engine"] = sidecar.engine
    box["services"] = Services(
        ServerDeps(
            engine=sidecar.engine,
            clock=sidecar.clock,
            entropy=SystemEntropy(),
            metrics=sidecar.metrics,
        )
    )
    gc.collect()
    gc.freeze()  # as serve does (app.keep_out_of_collections)
    try:
        token = await asyncio.to_thread(transport.assume_token, sidecar.grpc_port)
        if await asyncio.to_thread(transport.authorize_once, sidecar.grpc_port, token) != 1:
            raise RuntimeError("Authorize precheck failed")
        body = Path(tmp) / "authorize.grpc"
        body.write_bytes(kit.grpc_frame(transport.authorize_body(token)))
        paths = {n: f"/bench.Steps/{n}" for n in STEPS}
        paths["authorize"] = transport.AUTHORIZE
        runs: dict[str, list[float]] = {n: [] for n in paths}
        for r in range(a.rounds):
            for name in list(paths) if r % 2 == 0 else list(paths)[::-1]:
                _, cpu = await _h2load(sidecar.grpc_port, paths[name], body, a.duration)
                runs[name].append(round(cpu, 1))
                print(f"  round {r + 1}: {name:9} {cpu:6.1f} us/call", flush=True)
    finally:
        await sidecar.drain()
    if box["failures"]:
        raise RuntimeError(f"steps failed (calls per step): {dict(box['failures'])}")
    over = {
        n: [round(x - b, 1) for x, b in zip(v, runs["noop"], strict=True)] for n, v in runs.items()
    }
    return {"cpu_us_per_call": runs, "over_noop": over}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=float, default=3.0)
    a = p.parse_args()
    return kit.run_cpu_rounds(
        "authorize_parts.py",
        lambda tmp: _run(a, tmp),
        results="authorize-parts",
        caption=lambda _out: (
            f"Server CPU µs per call, h2load -c 4 -m 32 -t 1 -D {a.duration:g}s, {a.rounds} rounds"
        ),
        baseline_key="over_noop",
        baseline_label="over noop",
    )


if __name__ == "__main__":
    sys.exit(main())
