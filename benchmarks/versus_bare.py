"""The sidecar's RPCs against a bare grpc.aio server (docs/BENCHMARKS.md, "Against a bare gRPC
server").

    .venv/bin/python benchmarks/versus_bare.py                         # all parts (~6 min)
    .venv/bin/python benchmarks/versus_bare.py --parts throughput --rounds 5
    .venv/bin/python benchmarks/versus_bare.py --parts workers --workers 1,2,4 \\
        --h2load-cpus 6-7 --server-cpus 0-5                            # on a larger machine

The baseline (*bare*) is its own process: ``grpc.aio.server()`` with default options and one
generic no-op unary handler (``/bench.Bare/Call``, bytes in, ``b""`` out), nothing else: no
interceptor, no other service. The sidecar is ``python -m sidecar serve`` (the embedded demo
world, metrics on as always, on uvloop when installed, as ``serve`` runs by default). h2load
(``-t 1``, gRPC framing as in transport.py) drives:

- ``bare``: the no-op, with an empty message, on asyncio's own event loop (the baseline);
- ``bare_sized``: a second bare server, sent Authorize's request and answering as many bytes
  as Authorize does: what the messages' sizes alone cost;
- ``bare_uvloop``: a third bare server, the no-op on uvloop: what the event loop alone buys;
- ``bare_stack``: the no-op on the stack ``serve`` runs on: uvloop, and gRPC core's iomgr TCP
  listener rather than the EventEngine's (sidecar/server/grpc_listener.py); what the sidecar
  adds is its figure over this one's;
- ``bare_check_sized`` (name it in ``--targets``): a fourth, sent Check's request and answering
  as many bytes as Check does;
- ``authorize``: Authorize with a session token, action and resource (the decision is cached
  after the first call, as in the mesh's steady state);
- ``batch``: BatchAuthorize of ``--batch-size`` cached decisions, counted per decision;
- ``check``: Envoy's ``envoy.service.auth.v3.Authorization/Check`` when the server registers it
  (``check_target`` below; skipped with a message otherwise).

Parts (``--parts``, comma-separated):

- ``throughput``: ``-c 4 -m 32``, every target in each round, the order reversed every other
  round; reported: req/s, the ratio to bare *in the same round* (median and spread), and the
  server's CPU time per call (from /proc, all threads; calls = rps x (duration + warm-up)).
- ``single``: one call at a time (``-c 1 -m 1``): mean time per call and its ratio to bare;
  with ``--perf-stat``, each server's context switches and CPU migrations per call; with
  ``--busy-cpus``, a nice 19 spin loop on every CPU, so that no call waits for an idle CPU to
  wake (on a VM, a halted virtual CPU takes tens of µs to wake).
- ``paced``: bare at 25 / 50 / 90 % of its peak from ``throughput`` with h2load's ``--rps``
  (a constant rate per client), and Authorize at the same offered rates; p50 / p99 from the
  per-request log. A plot is drawn by benchmarks/plots.py.
- ``workers``: ``--workers N`` for each N of ``--workers``, Authorize with the same load, in
  turn; ``--h2load-cpus`` / ``--server-cpus`` pin h2load and the sidecar apart with taskset.
- ``profile``: py-spy records the sidecar under the throughput load (Authorize) and prints the
  top functions by own time (``--profile-seconds``; needs py-spy).

Prints Markdown tables and writes benchmarks/results/versus-bare-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
    import transport
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit
    from benchmarks import transport

BARE = "/bench.Bare/Call"
AUTHORIZE = transport.AUTHORIZE
BATCH = "/iamsidecar.v1.Authorizer/BatchAuthorize"
CHECK = "/envoy.service.auth.v3.Authorization/Check"
PARTS = ("throughput", "single", "paced", "workers", "profile")
DEFAULT_PARTS = "throughput,single,paced,workers"


# -- the bare server (its own process) --------------------------------------------------------


async def _serve_bare(max_seconds: float, reply: int) -> None:
    import grpc

    answer = b"\x00" * reply

    async def noop(request: bytes, context: object) -> bytes:
        return answer

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(
            "bench.Bare", {"Call": grpc.unary_unary_rpc_method_handler(noop)}
        )]
    )  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"grpc_port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):  # never outlive the run
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    await server.stop(1)


@contextlib.contextmanager
def bare_server(
    max_seconds: float,
    cpus: str | None,
    reply: int = 0,
    loop: str = "asyncio",
    iomgr_listener: bool = False,
) -> Iterator[tuple[int, int]]:
    """(port, pid) of a bare server process on 127.0.0.1 answering ``reply`` bytes, on
    asyncio's event loop or uvloop's, on gRPC's default TCP listener or (``iomgr_listener``)
    the one ``serve`` chooses."""
    cmd = [
        sys.executable, __file__, "--serve-bare", "--reply", str(reply),
        "--max-seconds", str(int(max_seconds)), "--bare-loop", loop,
    ]  # fmt: skip
    env = dict(os.environ)
    if iomgr_listener:
        from sidecar.server import grpc_listener

        env[grpc_listener.ENV] = grpc_listener.experiments(env.get(grpc_listener.ENV))
    proc = subprocess.Popen(_pinned(cmd, cpus), stdout=subprocess.PIPE, cwd=kit.ROOT, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the bare server exited with {proc.wait(timeout=10)}")
        yield json.loads(line)["grpc_port"], proc.pid
    finally:
        kit.stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def _twins(names: list[str]) -> list[tuple[str, str]]:
    """(target, target@TREE) for every target also measured on another tree."""
    return [(n.split("@")[0], n) for n in names if "@" in n and n.split("@")[0] in names]


def _pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


@contextlib.contextmanager
def sidecar(
    keys: str, workers: int, cpus: str | None, config: Path | None, tree: Path = kit.ROOT
) -> Iterator[kit.ServerProc]:
    """``python -m sidecar serve`` of ``tree`` (kit.sidecar_cli) with the world ``config``,
    pinned to ``cpus`` when given (the forked workers inherit the affinity)."""
    with kit.sidecar_cli(
        keys,
        workers=workers,
        args=["--config", str(config)] if config else [],
        tree=tree,
        prefix=["taskset", "-c", cpus] if cpus else [],
    ) as srv:
        yield srv


def bench_world(tmp: Path) -> Path:
    """The demo world with one ext_authz route: GET /reports/<key> is s3:GetObject on
    arn:aws:s3:::reports/<key>, so Check asks the decision Authorize asks."""
    from sidecar.demo import WORLD_FILE

    path = tmp / "world.yaml"
    path.write_text(
        WORLD_FILE.read_text()
        + "\next_authz:\n  routes:\n    - method: GET\n      path: /reports/{key+}\n"
        "      action: s3:GetObject\n      resource: arn:aws:s3:::reports/{key}\n"
    )
    return path


# -- requests ------------------------------------------------------------------------------------


def batch_body(token: str, size: int) -> bytes:
    from sidecar.api.v1 import authorizer_pb2

    items = [
        authorizer_pb2.AuthorizeItem(
            action=transport.ACTION, resource=f"arn:aws:s3:::reports/batch-{i}.csv"
        )
        for i in range(size)
    ]
    return authorizer_pb2.BatchAuthorizeRequest(
        session_token=token, requests=items
    ).SerializeToString()


def check_body(token: str) -> bytes:
    """The CheckRequest every Check benchmark sends: GET /reports/q1.csv from 127.0.0.1 with
    the token as a bearer."""
    from sidecar.api.envoy.service.auth.v3 import external_auth_pb2 as ext

    req = ext.CheckRequest()
    http = req.attributes.request.http
    http.method, http.host, http.path = "GET", "reports.example", "/reports/q1.csv"
    http.scheme = "http"
    http.headers["authorization"] = f"Bearer {token}"
    req.attributes.source.address.socket_address.address = "127.0.0.1"
    return req.SerializeToString()


def check_target(port: int, token: str) -> bytes | None:
    """A serialized CheckRequest the sidecar answers OK with the cached decision of
    ``authorize``, or None when the server has no Check (the method is not registered, its
    messages are not generated, or the demo world routes nothing there)."""
    try:
        from sidecar.api.envoy.service.auth.v3 import (  # type: ignore[import-not-found]
            external_auth_pb2 as ext,
        )
    except ImportError:
        return None
    import grpc

    body = check_body(token)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            raw = channel.unary_unary(CHECK)(body, timeout=10)
        except grpc.RpcError as err:
            print(f"  Check not measured: {err.code()} {err.details()}", flush=True)  # type: ignore[attr-defined]
            return None
    resp = ext.CheckResponse.FromString(raw)
    if resp.status.code != 0:
        print(f"  Check not measured: the demo world answers {resp.status.code}", flush=True)
        return None
    return body


def reply_bytes(srv: kit.ServerProc, path: str, body: bytes) -> int:
    """The length of the sidecar's answer to ``body`` on ``path``."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel:
        raw: bytes = channel.unary_unary(path)(body, timeout=10)
    return len(raw)


def _batch_check(port: int, token: str, size: int) -> None:
    import grpc

    from sidecar.api.v1 import authorizer_pb2

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary(BATCH)(batch_body(token, size), timeout=10)
    got = authorizer_pb2.BatchAuthorizeResponse.FromString(raw).results
    if len(got) != size or any(r.decision != transport.ALLOWED for r in got):
        raise RuntimeError("BatchAuthorize precheck failed")


# -- the run -------------------------------------------------------------------------------------


class Run:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.a = args
        self.tmp = tmp
        self.keys = kit.generate_keys(str(tmp))
        self.results: dict[str, Any] = {}
        self.tables: list[str] = []

    def body(self, name: str, message: bytes) -> Path:
        path = self.tmp / f"{name}.grpc"
        path.write_bytes(kit.grpc_frame(message))
        return path

    def h2(
        self, port: int, path: str, body: Path, clients: int, streams: int, **kw: Any
    ) -> kit.H2Result:
        a = self.a
        return _h2load_pinned(
            a.h2load_cpus, port, path, body, clients=clients, streams=streams,
            duration=kw.pop("duration", a.duration), warmup=kw.pop("warmup", a.warmup), **kw,
        )  # fmt: skip

    def targets(
        self,
        srv: kit.ServerProc,
        bare_ports: tuple[int, int, int, int | None, int],
        token: str,
        others: dict[str, kit.ServerProc],
    ) -> dict[str, Any]:
        """name -> (port, path, body file, decisions per call). ``bare_ports``: the bare
        server's, the sized bare server's (Authorize's request in, as many bytes out as
        Authorize answers), the bare server's on uvloop, (when Check is served) the bare
        server's answering as many bytes as Check does, and the bare server's on the sidecar's
        stack (bare_stack). ``others``: sidecars of other trees, each measured with Authorize
        as ``authorize@<name>`` and Check as ``check@<name>``."""
        a = self.a
        out: dict[str, Any] = {"bare": (bare_ports[0], BARE, self.body("bare", b""), 1)}
        sized = self.body("bare-sized", transport.authorize_body(token))
        out["bare_sized"] = (bare_ports[1], BARE, sized, 1)
        out["bare_uvloop"] = (bare_ports[2], BARE, self.body("bare", b""), 1)
        out["bare_stack"] = (bare_ports[4], BARE, self.body("bare", b""), 1)
        check = check_target(srv.grpc_port, token)
        if bare_ports[3] is not None and check is not None:
            out["bare_check_sized"] = (bare_ports[3], BARE, self.body("bare-check", check), 1)
        for name, server in {"": srv, **others}.items():
            tok = token if not name else transport.assume_token(server.grpc_port, f"b-{name}")
            transport.authorize_once(server.grpc_port, tok)  # cached from here on
            if transport.authorize_once(server.grpc_port, tok) != transport.ALLOWED:
                raise RuntimeError(f"Authorize precheck failed ({name or 'this tree'})")
            at = f"@{name}" if name else ""
            body = self.body(f"authz-{name}", transport.authorize_body(tok))
            out[f"authorize{at}"] = (server.grpc_port, AUTHORIZE, body, 1)
            check = check_target(server.grpc_port, tok)
            if check is not None:
                out[f"check{at}"] = (server.grpc_port, CHECK, self.body(f"check-{name}", check), 1)
        _batch_check(srv.grpc_port, token, a.batch_size)
        out["batch"] = (
            srv.grpc_port, BATCH, self.body("batch", batch_body(token, a.batch_size)),
            a.batch_size,
        )  # fmt: skip
        return out

    # throughput ------------------------------------------------------------------------------

    def throughput(self, targets: dict[str, Any], pids: dict[str, int], srv: Any) -> None:
        a = self.a
        names = list(targets)
        runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        before = srv.scrape()
        for r in range(a.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                port, path, body, per_call = targets[name]
                pid = pids[name]
                cpu0 = kit.cpu_seconds([pid])
                res = self.h2(port, path, body, a.clients, a.streams)
                cpu = kit.cpu_seconds([pid]) - cpu0
                calls = res.done + res.rps * a.warmup  # h2load counts no warm-up call
                run = {
                    "rps": round(res.rps, 1),
                    "decisions_per_s": round(res.rps * per_call, 1),
                    "cpu_us_per_call": round(cpu / max(calls, 1) * 1e6, 1),
                    "failed": res.failed + res.errored + res.timeout,
                }
                runs[name].append(run)
                print(
                    f"  round {r + 1}: {name:9} {run['decisions_per_s']:8,.0f}/s "
                    f"(cpu {run['cpu_us_per_call']:4.0f} us/call)",
                    flush=True,
                )
        after = srv.scrape()
        codes = {
            m: transport._delta(before.codes(m), after.codes(m))
            for m in ("Authorize", "BatchAuthorize", "Check")
        }
        ratios = {
            n: [
                round(x["decisions_per_s"] / b["rps"], 3)
                for x, b in zip(runs[n], runs["bare"], strict=True)
            ]
            for n in names
            if n != "bare"
        }
        med = {n: statistics.median(x["decisions_per_s"] for x in runs[n]) for n in names}
        cpu = {n: statistics.median(x["cpu_us_per_call"] for x in runs[n]) for n in names}
        # bare's CPU per call over the target's (per decision), in the same round
        cpu_ratios = {
            n: [
                round(b["cpu_us_per_call"] / (x["cpu_us_per_call"] / targets[n][3]), 3)
                for x, b in zip(runs[n], runs["bare"], strict=True)
            ]
            for n in ratios
        }
        self.results["throughput"] = {
            "runs": runs,
            "ratios_per_round": ratios,
            "median_ratio": {n: statistics.median(v) for n, v in ratios.items()},
            "median_per_s": med,
            "median_cpu_us_per_call": cpu,
            "cpu_ratios_per_round": cpu_ratios,
            "median_cpu_ratio": {n: statistics.median(v) for n, v in cpu_ratios.items()},
            "grpc_codes": codes,
        }
        lines = [
            f"Throughput, h2load -c {a.clients} -m {a.streams} -t 1 -D {a.duration:g}s "
            f"--warm-up-time {a.warmup:g}s, {a.rounds} rounds (order reversed every other "
            f"round); BatchAuthorize of {a.batch_size} counted per decision",
            "",
            "| target | median /s | ratio to bare, per round (min-max) | median ratio | server "
            "CPU µs per call (median) | CPU ratio: bare's µs / target's µs per decision, "
            "median (min-max) |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for n in names:
            rs, cs = ratios.get(n), cpu_ratios.get(n)
            cpu_cell = (
                f"**{statistics.median(cs):.3f}** ({min(cs):.3f}-{max(cs):.3f})" if cs else ""
            )
            lines.append(
                f"| {n} | {med[n]:,.0f} | {_spread(rs)} | "
                f"{f'**{statistics.median(rs):.3f}**' if rs else ''} | {cpu[n]:.0f} | "
                f"{cpu_cell} |"
            )
        twins = _twins(names)
        if twins:  # this tree against another in the same rounds: the A/B a change needs
            lines += ["", "| this tree over another, same round | per round (min-max) | median |",
                      "|---|---|---:|"]  # fmt: skip
            paired = {}
            for here, there in twins:
                paired[f"{here}/{there}"] = pr = [
                    round(x["decisions_per_s"] / y["decisions_per_s"], 3)
                    for x, y in zip(runs[here], runs[there], strict=True)
                ]
                lines.append(
                    f"| {here} / {there} | {_spread(pr)} | **{statistics.median(pr):.3f}** |"
                )
            self.results["throughput"]["paired_per_round"] = paired
        lines.append(f"\ngRPC codes on the sidecar over these runs: {codes}")
        self.tables.append("\n".join(lines))

    # single ------------------------------------------------------------------------------------

    def single(self, targets: dict[str, Any], pids: dict[str, int]) -> None:
        a = self.a
        names = [n for n in targets if n != "batch"]
        runs: dict[str, list[float]] = {n: [] for n in names}
        sched: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for r in range(a.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                port, path, body, _ = targets[name]
                with _perf_stat(pids[name] if a.perf_stat else None) as counts:
                    res = self.h2(port, path, body, 1, 1)
                runs[name].append(round(1e6 / res.rps, 1))  # mean µs per call
                per_call = {k: round(v / max(res.done, 1), 2) for k, v in counts.items()}
                if per_call:
                    sched[name].append(per_call)
                print(
                    f"  single {r + 1}: {name:9} {1e6 / res.rps:6.1f} us/call {per_call or ''}",
                    flush=True,
                )
        ratios = {
            n: [round(x / b, 3) for x, b in zip(runs[n], runs["bare"], strict=True)]
            for n in names
            if n != "bare"
        }
        med = {n: statistics.median(v) for n, v in runs.items()}
        self.results["single"] = {
            "scheduler_events_per_call": sched,
            "mean_us_per_call": runs,
            "median_us": med,
            "ratios_per_round": ratios,
            "median_ratio": {n: statistics.median(v) for n, v in ratios.items()},
        }
        lines = [
            f"One call at a time (h2load -c 1 -m 1 -t 1 -D {a.duration:g}s), mean µs per call "
            f"(1 / req/s), {a.rounds} rounds",
            "",
            "| target | µs per call, per round | median | ratio to bare (median) | µs over bare |",
            "|---|---|---:|---:|---:|",
        ]
        for n in names:
            rs = ratios.get(n)
            lines.append(
                f"| {n} | {', '.join(f'{x:.0f}' for x in runs[n])} | {med[n]:.0f} | "
                f"{f'**{statistics.median(rs):.3f}**' if rs else ''} | "
                f"{med[n] - med['bare']:+.0f} |"
            )
        if any(sched.values()):
            lines += [
                "",
                "The server's scheduler events per call (perf stat, every thread), median:",
                "",
                f"| target | {' | '.join(PERF_EVENTS)} |",
                f"|---|{'---:|' * len(PERF_EVENTS)}",
            ]
            for n in names:
                cells = [statistics.median(c.get(e, 0.0) for c in sched[n]) for e in PERF_EVENTS]
                lines.append(f"| {n} | {' | '.join(f'{x:.2f}' for x in cells)} |")
        self.tables.append("\n".join(lines))

    # paced -------------------------------------------------------------------------------------

    def paced(self, targets: dict[str, Any]) -> None:
        a = self.a
        peak = self.results.get("throughput", {}).get("median_per_s", {}).get("bare")
        if peak is None:
            raise RuntimeError("the paced part needs the throughput part (bare's peak)")
        names = [n for n in ("bare", "authorize", "check") if n in targets]
        out: dict[str, Any] = {}
        for r in range(a.paced_rounds):
            for share in a.shares:
                for name in names if r % 2 == 0 else names[::-1]:
                    port, path, body, _ = targets[name]
                    rate = peak * share
                    res = self.h2(
                        port, path, body, a.clients, a.streams,
                        rps_per_client=rate / a.clients, latencies=True,
                    )  # fmt: skip
                    s = res.summary()
                    key = f"{name}@{share:g}"
                    out.setdefault(key, {"offered_rps": round(rate, 1), "runs": []})
                    out[key]["runs"].append({"rps": s["rps"], "latency_ms": s["latency_ms"]})
                    lat = s["latency_ms"]
                    print(
                        f"  paced {r + 1}: {name:9} at {share:.0%} ({rate:,.0f}/s): "
                        f"{res.rps:7,.0f}/s p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} ms",
                        flush=True,
                    )
        for v in out.values():
            for p in ("p50", "p90", "p99", "p100"):
                v[p] = statistics.median(run["latency_ms"][p] for run in v["runs"])
            v["rps"] = statistics.median(run["rps"] for run in v["runs"])
        self.results["paced"] = {"bare_peak": peak, "shares": a.shares, "runs": out}
        lines = [
            f"Paced (h2load --rps per client, -c {a.clients} -m {a.streams}, -D "
            f"{a.duration:g}s), offered rates as shares of bare's peak ({peak:,.0f} req/s); "
            f"medians of {a.paced_rounds} rounds",
            "",
            "| target | share | offered /s | measured /s | p50 ms | p90 ms | p99 ms | max ms | "
            "p99 / bare's |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for share in a.shares:
            base = out[f"bare@{share:g}"]["p99"]
            for name in names:
                v = out[f"{name}@{share:g}"]
                lines.append(
                    f"| {name} | {share:.0%} | {v['offered_rps']:,.0f} | {v['rps']:,.0f} | "
                    f"{v['p50']:.2f} | {v['p90']:.2f} | {v['p99']:.2f} | {v['p100']:.2f} | "
                    f"{v['p99'] / base:.2f} |"
                )
        self.tables.append("\n".join(lines))

    # workers -----------------------------------------------------------------------------------

    def workers(self) -> None:
        a = self.a
        counts = [int(x) for x in a.workers.split(",")]
        runs: dict[int, list[float]] = {n: [] for n in counts}
        h2_cores: dict[int, list[float]] = {n: [] for n in counts}  # h2load's CPU, in cores
        srv_cores: dict[int, list[float]] = {n: [] for n in counts}  # the workers' CPU
        with contextlib.ExitStack() as stack:
            servers = {
                n: stack.enter_context(sidecar(self.keys, n, a.server_cpus, None)) for n in counts
            }
            bodies = {}
            for n, srv in servers.items():
                token = transport.assume_token(srv.grpc_port, f"bench-w{n}")
                if transport.authorize_once(srv.grpc_port, token) != transport.ALLOWED:
                    raise RuntimeError(f"--workers {n}: Authorize precheck failed")
                bodies[n] = self.body(f"authz-w{n}", transport.authorize_body(token))
            for r in range(a.worker_rounds):
                for n in counts if r % 2 == 0 else counts[::-1]:
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu0 = servers[n].cpu()
                    res = self.h2(
                        servers[n].grpc_port, AUTHORIZE, bodies[n], a.worker_clients, a.streams
                    )
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                    h2_cores[n].append(round(used / (a.duration + a.warmup), 2))
                    busy = servers[n].cpu() - cpu0
                    srv_cores[n].append(round(busy / (a.duration + a.warmup), 2))
                    runs[n].append(round(res.rps, 1))
                    print(f"  workers {r + 1}: --workers {n}: {res.rps:8,.0f}/s", flush=True)
        med = {n: statistics.median(v) for n, v in runs.items()}
        one = med[counts[0]] / counts[0]
        eff = {n: round(med[n] / (n * one), 3) for n in counts}
        self.results["workers"] = {
            "runs_rps": runs,
            "median_rps": med,
            "efficiency": eff,
            "h2load_cores": h2_cores,
            "server_cores": srv_cores,
            "h2load_cpus": a.h2load_cpus,
            "server_cpus": a.server_cpus,
        }
        pin = (
            f"h2load on CPUs {a.h2load_cpus}, sidecar on {a.server_cpus}"
            if a.h2load_cpus or a.server_cpus
            else "nothing pinned: h2load shares the cores"
        )
        lines = [
            f"Workers: Authorize (cached), h2load -c {a.worker_clients} -m {a.streams} -t 1 -D "
            f"{a.duration:g}s, {a.worker_rounds} rounds in turn; {pin}",
            "",
            "| --workers | runs req/s | median req/s | x one worker | efficiency "
            "(req/s per worker / one worker's) | h2load's CPU, cores | the sidecar's CPU, cores |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for n in counts:
            lines.append(
                f"| {n} | {', '.join(f'{x:,.0f}' for x in runs[n])} | {med[n]:,.0f} | "
                f"{med[n] / med[counts[0]]:.2f} | {eff[n]:.2f} | "
                f"{statistics.median(h2_cores[n]):.2f} | {statistics.median(srv_cores[n]):.2f} |"
            )
        self.tables.append("\n".join(lines))

    # profile -----------------------------------------------------------------------------------

    def profile(self, targets: dict[str, Any], pid: int) -> None:
        a = self.a
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            print("SKIP profile: py-spy not found (pip install py-spy)")
            return
        port, path, body, _ = targets[a.profile_target]
        out = kit.RESULTS / f"pyspy-{a.profile_target}.txt"
        kit.RESULTS.mkdir(parents=True, exist_ok=True)
        rec = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(int(a.profile_seconds)),
             "--rate", "997", "--format", "raw", "--output", str(out),
             *(["--native"] if a.profile_native else ["--nonblocking"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        self.h2(port, path, body, a.clients, a.streams, duration=a.profile_seconds, warmup=0)
        rec.wait(timeout=a.profile_seconds + 60)
        top = _own_time(out)
        self.results["profile"] = {"target": a.profile_target, "file": str(out), "top": top}
        lines = [
            f"py-spy samples of the loaded sidecar ({a.profile_target}), own time by function:",
            "",
            "| share | function |",
            "|---:|---|",
            *[f"| {share:.1%} | `{fn}` |" for fn, share in top[:25]],
        ]
        self.tables.append("\n".join(lines))


@contextlib.contextmanager
def _busy_cpus(seconds: float) -> Iterator[None]:
    """One spin loop per CPU at nice 19 for at most ``seconds`` (none when 0): a CPU that never
    idles wakes nothing. The servers, at nice 0, take the CPU from them whenever they run."""
    if not seconds:
        yield
        return
    spin = "import time\nend = time.monotonic() + %d\nwhile time.monotonic() < end: pass"
    procs = [
        subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", spin % int(seconds)])
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


PERF_EVENTS = ("context-switches", "cpu-migrations")


@contextlib.contextmanager
def _perf_stat(pid: int | None) -> Iterator[dict[str, float]]:
    """Counts of PERF_EVENTS in process ``pid`` (every thread) while the block runs, filled
    in when it ends; nothing when ``pid`` is None."""
    counts: dict[str, float] = {}
    if pid is None:
        yield counts
        return
    with tempfile.NamedTemporaryFile(suffix=".csv") as out:
        cmd = ["perf", "stat", "-x", ",", "-e", ",".join(PERF_EVENTS), "-p", str(pid)]
        proc = subprocess.Popen([*cmd, "-o", out.name], stderr=subprocess.DEVNULL)
        time.sleep(0.2)  # attached before the load starts
        try:
            yield counts
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            for line in Path(out.name).read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[2] in PERF_EVENTS and fields[0].isdigit():
                    counts[fields[2]] = float(fields[0])


def _spread(values: list[float] | None) -> str:
    if not values:
        return ""
    return f"{', '.join(f'{x:.3f}' for x in values)} ({min(values):.3f}-{max(values):.3f})"


def _own_time(raw: Path) -> list[tuple[str, float]]:
    """Own (leaf) time by function from py-spy's raw (collapsed stacks) output."""
    leaf: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        fn = stack.split(";")[-1]
        leaf[fn] = leaf.get(fn, 0) + int(n)
        total += int(n)
    return sorted(((f, c / total) for f, c in leaf.items()), key=lambda x: -x[1])


def _h2load_pinned(cpus: str | None, *args: Any, **kw: Any) -> kit.H2Result:
    """kit.h2load, under taskset when ``cpus`` is given (h2load found first on PATH)."""
    if not cpus:
        return kit.h2load(*args, **kw)
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "h2load"
        real = shutil.which("h2load")
        wrapper.write_text(f'#!/bin/sh\nexec taskset -c {cpus} {real} "$@"\n')
        wrapper.chmod(0o755)
        saved = os.environ["PATH"]
        os.environ["PATH"] = f"{tmp}:{saved}"
        try:
            return kit.h2load(*args, **kw)
        finally:
            os.environ["PATH"] = saved


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default=DEFAULT_PARTS, help=f"comma-separated of {PARTS}")
    p.add_argument("--clients", type=int, default=4, help="h2load -c")
    p.add_argument("--streams", type=int, default=32, help="h2load -m")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per h2load run")
    p.add_argument("--warmup", type=float, default=0.0, help="h2load --warm-up-time seconds")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument(
        "--targets", help="targets to measure, comma-separated (plus the four bare ones)"
    )
    p.add_argument("--shares", type=float, nargs="+", default=[0.25, 0.5, 0.9])
    p.add_argument("--paced-rounds", type=int, default=2)
    p.add_argument("--workers", default="1,2", help="comma-separated --workers values")
    p.add_argument("--worker-rounds", type=int, default=3)
    p.add_argument("--worker-clients", type=int, default=8, help="h2load -c for workers")
    p.add_argument("--h2load-cpus", help="taskset -c list for h2load")
    p.add_argument("--server-cpus", help="taskset -c list for the servers")
    p.add_argument(
        "--perf-stat",
        action="store_true",
        help="single: count each server's context switches and CPU migrations (needs perf)",
    )
    p.add_argument(
        "--busy-cpus",
        action="store_true",
        help="keep every CPU busy with a nice 19 spin loop during the run (no CPU ever idles: "
        "what waking an idle CPU costs, which on a VM can be tens of µs, drops out)",
    )
    p.add_argument("--profile-target", default="authorize")
    p.add_argument("--profile-seconds", type=float, default=8.0)
    p.add_argument("--profile-native", action="store_true", help="py-spy --native")
    p.add_argument("--max-seconds", type=float, default=1200, help="a server's longest life")
    p.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also measure Authorize and Check on the sidecar package under PATH (e.g. a copy "
        "before a change), as authorize@NAME and check@NAME (name them in --targets too); "
        "repeatable",
    )
    p.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--reply", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--bare-loop", default="asyncio", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = tuple(x.strip() for x in args.parts.split(","))
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts: {sorted(unknown)}")
    if args.perf_stat and shutil.which("perf") is None:
        p.error("--perf-stat needs perf on PATH (Debian: linux-perf)")
    return args


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.serve_bare:
        if a.bare_loop == "uvloop":
            import uvloop

            uvloop.run(_serve_bare(a.max_seconds, a.reply))
        else:
            asyncio.run(_serve_bare(a.max_seconds, a.reply))
        return 0
    if shutil.which("h2load") is None:
        print("SKIP: h2load not found (apt-get install nghttp2-client)")
        return 0
    from sidecar.demo import DEMO_SECRET, DEMO_SECRET_ENV

    os.environ.setdefault(DEMO_SECRET_ENV, DEMO_SECRET)  # the world file's alice, as the demo
    began = time.monotonic()
    header: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/versus_bare.py", *sys.argv[1:]]),
        "machine": kit.machine(),
        "settings": {k: v for k, v in vars(a).items() if k != "serve_bare"},
        "loadavg_start": kit.loadavg(),
        "speed_probe_ms_start": kit.speed_probe(),
    }
    print(f"versus bare: {a.parts}; load average {header['loadavg_start']}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="versus-bare-") as tmp,
        _busy_cpus(a.max_seconds if a.busy_cpus else 0),
    ):
        run = Run(a, Path(tmp))
        if {"throughput", "single", "paced", "profile"} & set(a.parts):
            world = bench_world(Path(tmp))
            with contextlib.ExitStack() as stack:
                bare_port, bare_pid = stack.enter_context(bare_server(a.max_seconds, a.server_cpus))
                srv = stack.enter_context(sidecar(run.keys, 1, a.server_cpus, world))
                token = transport.assume_token(srv.grpc_port)
                sized_port, sized_pid = stack.enter_context(
                    bare_server(
                        a.max_seconds,
                        a.server_cpus,
                        reply_bytes(srv, AUTHORIZE, transport.authorize_body(token)),
                    )
                )
                others = {
                    name: stack.enter_context(
                        sidecar(run.keys, 1, a.server_cpus, world, Path(tree))
                    )
                    for name, tree in (t.split("=", 1) for t in a.tree)
                }
                uv_port, uv_pid = stack.enter_context(
                    bare_server(a.max_seconds, a.server_cpus, loop="uvloop")
                )
                check = check_target(srv.grpc_port, token)
                check_sized_port, check_sized_pid = (None, None)
                if check is not None:
                    check_sized_port, check_sized_pid = stack.enter_context(
                        bare_server(a.max_seconds, a.server_cpus, reply_bytes(srv, CHECK, check))
                    )
                stack_port, stack_pid = stack.enter_context(
                    bare_server(a.max_seconds, a.server_cpus, loop="uvloop", iomgr_listener=True)
                )
                ports = (bare_port, sized_port, uv_port, check_sized_port, stack_port)
                targets = run.targets(srv, ports, token, others)
                if a.targets:
                    keep = {"bare", "bare_sized", "bare_uvloop", "bare_stack"}
                    keep.update(a.targets.split(","))
                    targets = {n: t for n, t in targets.items() if n in keep}
                pids = dict.fromkeys(targets, srv.proc.pid)
                pids["bare"], pids["bare_sized"] = bare_pid, sized_pid
                pids["bare_uvloop"], pids["bare_stack"] = uv_pid, stack_pid
                if check_sized_pid is not None:
                    pids["bare_check_sized"] = check_sized_pid
                for n, o in others.items():
                    pids[f"authorize@{n}"] = pids[f"check@{n}"] = o.proc.pid
                if "check" not in targets:
                    print("  Check: not measured (not served by this build)", flush=True)
                run.results["targets"] = {n: t[1] for n, t in targets.items()}
                if "profile" in a.parts:
                    run.profile(targets, srv.proc.pid)
                if "throughput" in a.parts or "paced" in a.parts:
                    run.throughput(targets, pids, srv)
                if "single" in a.parts:
                    run.single(targets, pids)
                if "paced" in a.parts:
                    run.paced(targets)
        if "workers" in a.parts:
            run.workers()
    header["loadavg_end"] = kit.loadavg()
    header["speed_probe_ms_end"] = kit.speed_probe()
    header["elapsed_s"] = round(time.monotonic() - began, 1)
    path = kit.write_results("versus-bare", {**header, **run.results, "tables": run.tables})
    m = header["machine"]
    dirty = " with uncommitted changes under sidecar/" if m["sidecar_uncommitted"] else ""
    print(
        f"\n{header['date']}  {m['cpu']} ({m['nproc']} cores), Python {m['python']}, grpcio "
        f"{m['grpcio']}, {m['h2load']}, commit {m['commit']}{dirty}; load average "
        f"{header['loadavg_start']} -> {header['loadavg_end']}\n"
    )
    print("\n\n".join(run.tables))
    print(f"\n{header['elapsed_s']} s; wrote {path.relative_to(kit.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
