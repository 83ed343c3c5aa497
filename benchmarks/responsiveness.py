"""Responsiveness under heavy calls (docs/BENCHMARKS.md, "Responsiveness under heavy calls").

    .venv/bin/python benchmarks/responsiveness.py                # about 3 minutes
    .venv/bin/python benchmarks/responsiveness.py --seconds 5 --repeat 1   # a quick look

Parts (``--parts``, comma-separated, default both):

- ``shapes``: in this process, the time of SimulateCustomPolicy requests sized to the work cap
  (MAX_WORK units, sidecar/policy/simulate_limits.py), one per shape of work: what the cap's
  number rests on. The slowest shape whose response fits in the 4 MiB message limit is the
  load of ``latency`` (``--shape`` names another).
- ``latency``: ``python -m sidecar serve`` (the demo world) on 127.0.0.1. A prober (its own
  process) sends a gRPC health Check and then a cached Authorize every 10 ms and records each
  latency; a loader (another process) keeps the server busy. Phases: idle (no loader); the
  largest simulation the limits allow, in a loop; BatchAuthorize with 1,000 uncached items
  (every resource new), in a loop; the two alternating (``--phases``). Each phase lasts
  ``--seconds``; the phases run in turn ``--repeat`` times and the latencies are pooled.
  Reported: p50 / p99 / max of each probe, and what the loader got done.

Prints Markdown tables and writes everything to benchmarks/results/responsiveness-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.client.client import SidecarClient
from sidecar.demo import DEMO_ACCESS_KEY_ID, DEMO_SECRET
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.simulate_limits import MAX_PAIRS, MAX_WORK, estimate_work
from sidecar.server.convert import simulate_custom_policy, simulation_request
from sidecar.server.offload import DEFAULT_MAX_RESPONSE_BYTES
from sidecar.server.servicers import MAX_BATCH

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit

APP_READER = "arn:aws:iam::111111111111:role/apps/app-reader"
Request = authorizer_pb2.SimulateCustomPolicyRequest
PROBE_INTERVAL = 0.010


# -- shapes of work -----------------------------------------------------------------------------


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _actions(n: int) -> list[str]:
    return [f"s3:GetObject{i}" for i in range(n)]


LONG_ARN = "arn:aws:s3:::bucket/" + "k" * 2028
STARS = [f"arn:aws:s3:::b*u*c*k*e*t*/*a*{i}*z" for i in range(2000)]


def _entries(key: str, values: list[str], kind: str) -> list[types_pb2.ContextEntry]:
    kind_number = types_pb2.ContextKeyType.Value(kind)
    return [types_pb2.ContextEntry(key=key, values=values, type=kind_number)]


# name -> (what it stresses, request for n actions)
SHAPES: dict[str, tuple[str, Callable[[int], Request]]] = {
    "stars-short-arns": (
        "2,000 Resource patterns with 9 wildcards each, none matching, 20 short ARNs",
        lambda n: Request(
            policy_input_list=[_policy({"Effect": "Allow", "Action": "*", "Resource": STARS})],
            action_names=_actions(n),
            resource_arns=[f"arn:aws:s3:::bucket/obj{j}" for j in range(20)],
        ),
    ),
    "stars-long-arn": (
        "the same patterns against one 2,048-character ARN",
        lambda n: Request(
            policy_input_list=[_policy({"Effect": "Allow", "Action": "*", "Resource": STARS})],
            action_names=_actions(n),
            resource_arns=[LONG_ARN],
        ),
    ),
    "matching-statements": (
        "200 statements that all allow every pair (each result lists 200 statements)",
        lambda n: Request(
            policy_input_list=[
                _policy(*[{"Effect": "Allow", "Action": "*", "Resource": "*"}] * 200)
            ],
            action_names=_actions(n),
        ),
    ),
    "like-long-value": (
        "20 statements x 100 StringLike values against a 1,000-character context value",
        lambda n: Request(
            policy_input_list=[
                _policy(
                    *[
                        {
                            "Effect": "Allow",
                            "Action": "*",
                            "Resource": "*",
                            "Condition": {
                                "StringLike": {"s3:prefix": [f"x*y{i}*" for i in range(100)]}
                            },
                        }
                    ]
                    * 20
                )
            ],
            action_names=_actions(n),
            context_entries=_entries("s3:prefix", ["x" * 1000], "STRING"),
        ),
    ),
    "notaction-stars": (
        "300 statements x 10 NotAction patterns with 4 wildcards each",
        lambda n: Request(
            policy_input_list=[
                _policy(
                    *[
                        {
                            "Effect": "Allow",
                            "NotAction": [f"s3:*G*e*t*{i}x{j}" for j in range(10)],
                            "Resource": "*",
                        }
                        for i in range(300)
                    ]
                )
            ],
            action_names=_actions(n),
        ),
    ),
    "ip-conditions": (
        "50 statements x 100 IpAddress CIDRs",
        lambda n: Request(
            policy_input_list=[
                _policy(
                    *[
                        {
                            "Effect": "Allow",
                            "Action": "*",
                            "Resource": "*",
                            "Condition": {
                                "IpAddress": {
                                    "aws:SourceIp": [f"192.168.{i % 250}.0/24" for i in range(100)]
                                }
                            },
                        }
                    ]
                    * 50
                )
            ],
            action_names=_actions(n),
            context_entries=_entries("aws:SourceIp", ["10.1.2.3"], "IP"),
        ),
    ),
}


def work_units(request: Request) -> int:
    sim = simulation_request(request)
    texts = [*sim.policies, *sim.boundaries, *sim.session_policies, *sim.scps]
    policies = [parse_policy(t, PolicyKind.IDENTITY, enforce_quota=False) for t in texts]
    return estimate_work(sim.actions, list(sim.resources) or ["*"], sim.context, policies).units


def at_the_cap(make: Callable[[int], Request]) -> Request:
    """The request of this shape with the most actions whose work is within MAX_WORK."""
    per_action = max(len(make(1).resource_arns), 1)
    lo, hi = 1, MAX_PAIRS // per_action
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if work_units(make(mid)) <= MAX_WORK:
            lo = mid
        else:
            hi = mid - 1
    return make(lo)


def shapes_part(rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (what, make) in SHAPES.items():
        request = at_the_cap(make)
        wall, cpu = [], []
        for _ in range(rounds):
            w0, c0 = time.perf_counter(), time.process_time()
            response = simulate_custom_policy(request)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        out[name] = {
            "what": what,
            "actions": len(request.action_names),
            "pairs": len(response.evaluation_results),
            "units": work_units(request),
            "request_bytes": request.ByteSize(),
            "response_bytes": response.ByteSize(),
            "response_fits": response.ByteSize() <= DEFAULT_MAX_RESPONSE_BYTES,
            "wall_s_best": round(min(wall), 3),
            "cpu_s_best": round(min(cpu), 3),
            "cpu_s_all": [round(c, 3) for c in cpu],
        }
        print(f"  {name}: {out[name]['pairs']} pairs, {out[name]['units']:,} units, "
              f"best {min(cpu):.3f} s CPU", flush=True)  # fmt: skip
    return out


# -- the loader (another process) ---------------------------------------------------------------


def _client(port: int, **kw: Any) -> SidecarClient:
    return SidecarClient(
        f"127.0.0.1:{port}",
        access_key_id=DEMO_ACCESS_KEY_ID,
        secret_access_key=DEMO_SECRET,
        timeout=60,
        **kw,
    )


def loader(port: int, mode: str, shape: str, stop: Any, results: Any) -> None:
    """Keep the server busy until ``stop`` is set: simulations, batches, or both in turn."""
    request = at_the_cap(SHAPES[shape][1])
    done: dict[str, list[float]] = {"simulate": [], "batch": []}
    errors: list[str] = []
    with _client(port) as client:
        token = client.assume_role(APP_READER, "loader").credentials.session_token
        n = 0
        while not stop.is_set():
            n += 1
            kinds = {"simulate": ["simulate"], "batch": ["batch"], "both": ["simulate", "batch"]}
            for kind in kinds[mode]:
                start = time.perf_counter()
                try:
                    if kind == "simulate":
                        client.simulate_custom_policy(request)
                    else:
                        items: list[tuple[str, str, dict[str, str]]] = [
                            ("s3:GetObject", f"arn:aws:s3:::reports/{n}/{i}.csv", {})
                            for i in range(MAX_BATCH)
                        ]
                        client.batch_authorize(items, session_token=token)
                except grpc.RpcError as err:
                    details = err.details() if isinstance(err, grpc.Call) else str(err)
                    errors.append(f"{kind}: {details}")
                done[kind].append(time.perf_counter() - start)
    results.put({"done": done, "errors": errors[:20], "error_count": len(errors)})


# -- the prober (a third process) ---------------------------------------------------------------


def probe(port: int, token: str, seconds: float, results: Any) -> None:
    """Health Check, then a cached Authorize, every PROBE_INTERVAL, for ``seconds``. A fresh
    process with its objects frozen, so that its own garbage collection does not show."""
    gc.collect()
    gc.freeze()
    out: dict[str, list[float]] = {"health": [], "authorize": []}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        authorize = channel.unary_unary(
            "/iamsidecar.v1.Authorizer/Authorize",
            request_serializer=authorizer_pb2.AuthorizeRequest.SerializeToString,
            response_deserializer=authorizer_pb2.AuthorizeResponse.FromString,
        )
        request = authorizer_pb2.AuthorizeRequest(
            session_token=token, action="s3:GetObject", resource="arn:aws:s3:::reports/q1.csv"
        )
        authorize(request, timeout=10)  # the decision is cached from here on
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            middle = time.perf_counter()
            authorize(request, timeout=10)
            out["health"].append(middle - start)
            out["authorize"].append(time.perf_counter() - middle)
            time.sleep(max(0.0, PROBE_INTERVAL - (time.perf_counter() - start)))
    results.put(out)


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    p = kit.percentiles(ms, (50, 99))
    return {"n": len(ms), "p50_ms": round(p["p50"], 2), "p99_ms": round(p["p99"], 2),
            "max_ms": round(max(ms), 2)}  # fmt: skip


def run_phase(
    ctx: Any, port: int, token: str, phase: str, shape: str, seconds: float
) -> dict[str, Any]:
    """One phase: the loader (unless idle) keeps the server busy while the prober probes."""
    probed: Any = ctx.Queue()
    loaded: Any = ctx.Queue()
    stop = ctx.Event()
    worker = None
    if phase != "idle":
        worker = ctx.Process(target=loader, args=(port, phase, shape, stop, loaded))
        worker.start()
        time.sleep(2.0)  # the loader is up and busy
    prober = ctx.Process(target=probe, args=(port, token, seconds, probed))
    prober.start()
    out: dict[str, Any] = {"probes": probed.get(timeout=seconds + 120)}
    prober.join(timeout=60)
    stop.set()
    if worker is not None:
        out["loader"] = loaded.get(timeout=120)
        worker.join(timeout=60)
    return out


def latency_part(
    seconds: float, shape: str, phases: list[str], repeat: int, tree: Path = kit.ROOT
) -> dict[str, Any]:
    """Each phase ``repeat`` times, in turn (idle, simulate, ..., idle, simulate, ...), so that
    a noisy spell on the shared machine does not land on one phase only; latencies pooled."""
    out: dict[str, Any] = {"shape": shape, "phase_seconds": seconds, "repeat": repeat}
    ctx = multiprocessing.get_context("spawn")
    pooled: dict[str, dict[str, list[float]]] = {p: {"health": [], "authorize": []} for p in phases}
    loads: dict[str, dict[str, list[float]]] = {p: {"simulate": [], "batch": []} for p in phases}
    errors: dict[str, int] = dict.fromkeys(phases, 0)
    rounds: dict[str, list[dict[str, Any]]] = {p: [] for p in phases}
    cpu: dict[str, float] = dict.fromkeys(phases, 0.0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        kit.sidecar_cli(kit.generate_keys(tmp), tree=tree) as server,
    ):
        with _client(server.grpc_port) as client:
            token = client.assume_role(APP_READER, "prober").credentials.session_token
            client.simulate_custom_policy(Request(action_names=["s3:GetObject"]))  # workers up
        for r in range(repeat):
            for phase in phases:
                cpu0 = server.cpu()
                got = run_phase(ctx, server.grpc_port, token, phase, shape, seconds)
                cpu[phase] += server.cpu() - cpu0
                for kind, values in got["probes"].items():
                    pooled[phase][kind] += values
                rounds[phase].append({k: summary(v) for k, v in got["probes"].items()})
                if "loader" in got:
                    for kind, values in got["loader"]["done"].items():
                        loads[phase][kind] += values
                    errors[phase] += got["loader"]["error_count"]
                    out.setdefault("loader_error_sample", got["loader"]["errors"])
                print(f"  round {r + 1} {phase}: {rounds[phase][-1]}", flush=True)
    for phase in phases:
        row: dict[str, Any] = {k: summary(v) for k, v in pooled[phase].items()}
        row["rounds"] = rounds[phase]
        row["server_main_process_cpu_s"] = round(cpu[phase], 2)
        if phase != "idle":
            row["loader"] = {
                kind: {"calls": len(t), "mean_s": round(sum(t) / len(t), 3) if t else None}
                for kind, t in loads[phase].items()
            }
            row["loader_errors"] = errors[phase]
        out[phase] = row
    return out


# -- report --------------------------------------------------------------------------------------


def print_tables(data: dict[str, Any]) -> None:
    if "shapes" in data:
        print("\n| shape | pairs | units | CPU s (best) | response |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, r in data["shapes"].items():
            refused = "" if r["response_fits"] else " (over 4 MiB: refused)"
            print(f"| {name} | {r['pairs']:,} | {r['units']:,} | {r['cpu_s_best']:.2f} | "
                  f"{r['response_bytes'] / 1024:,.0f} KiB{refused} |")  # fmt: skip
    if "latency" in data:
        lat = data["latency"]
        print(f"\nLoad: {lat['shape']}; {lat['repeat']} x {lat['phase_seconds']:g} s per phase\n")
        print("| phase | health p50 / p99 / max (ms) | Authorize p50 / p99 / max (ms) | "
              "loader calls (mean s) |")  # fmt: skip
        print("| --- | --- | --- | --- |")
        for phase in ("idle", "simulate", "batch", "both"):
            row = lat.get(phase)
            if row is None:
                continue
            h, a = row["health"], row["authorize"]
            loaded = ", ".join(
                f"{k} {v['calls']} ({v['mean_s']})"
                for k, v in row.get("loader", {}).items()
                if v["calls"]
            )
            print(f"| {phase} | {h['p50_ms']} / {h['p99_ms']} / {h['max_ms']} | "
                  f"{a['p50_ms']} / {a['p99_ms']} / {a['max_ms']} | {loaded or '-'} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="shapes,latency")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each shape")
    parser.add_argument("--phases", default="idle,simulate,batch,both")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the phases")
    parser.add_argument("--shape", default=None, help="the load's shape (default: the slowest)")
    parser.add_argument(
        "--tree", type=Path, default=kit.ROOT, help="serve the sidecar package under this path"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    data: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "benchmarks/responsiveness.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": kit.machine(),
        "speed_probe_ms": kit.speed_probe(),
        "loadavg_start": kit.loadavg(),
        "max_work": MAX_WORK,
        "tree": str(args.tree),
    }
    shape = args.shape or "notaction-stars"
    if "shapes" in parts:
        print("shapes (in process):", flush=True)
        data["shapes"] = shapes_part(args.rounds)
        if args.shape is None:  # the slowest whose response the server may send
            allowed = [k for k, v in data["shapes"].items() if v["response_fits"]]
            shape = max(allowed, key=lambda k: data["shapes"][k]["cpu_s_best"])
    if "latency" in parts:
        print(f"latency (load: {shape}):", flush=True)
        data["latency"] = latency_part(
            args.seconds, shape, args.phases.split(","), args.repeat, args.tree
        )
    data["loadavg_end"] = kit.loadavg()
    data["speed_probe_ms_end"] = kit.speed_probe()
    path = kit.write_results("responsiveness", data)
    print_tables(data)
    print(f"\nwritten: {path.relative_to(kit.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
