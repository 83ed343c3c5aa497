"""Garbage-collection pauses while uncached decisions churn the decision cache, with and
without ``gc.freeze()`` after the world is loaded (docs/BENCHMARKS.md, "Garbage collection").

    .venv/bin/python benchmarks/gc_pauses.py [--decisions 150000] [--rounds 2]

Each run is a fresh process (spawned): the demo world and an Engine as the server builds them,
a session token, then ``--decisions`` calls of ``Engine.authorize`` on resources never asked
before (every call a miss; the 50,000-entry decision cache fills, then evicts), the load of
the *batch* phase of benchmarks/responsiveness.py without the network. A ``gc.callbacks`` hook
times every collection. Variants: ``default`` (as before), ``freeze`` (what
sidecar.server.app.keep_out_of_collections does once the server has started). Rounds
alternate the variants. Reported per variant: collections of each generation, the pause of
the full (generation 2) ones (median, max, total) and the wall time of the loop.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import multiprocessing
import statistics
import sys
import time
from typing import Any

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit

VARIANTS = ("default", "freeze")


def run(variant: str, decisions: int) -> dict[str, Any]:
    import gc

    from sidecar.engine.engine import Engine
    from sidecar.server.app import ServeOptions, SystemClock, keep_out_of_collections, load_world
    from sidecar.server.keyfile import SystemEntropy
    from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
    from sidecar.sts.callers import UserCaller
    from sidecar.sts.keys import KeyRing

    opts = ServeOptions()
    world = load_world(opts)
    clock = SystemClock()
    keys = KeyRing.generate(SystemEntropy(), "bench")
    engine = Engine(world, keys, clock, decision_cache_size=opts.decision_cache_size)
    user = world.users_by_arn["arn:aws:iam::111111111111:user/alice"]
    env = StsEnv(world, keys, clock, SystemEntropy())
    token = assume_role(
        env,
        UserCaller(user, world.partition),
        AssumeRoleParams(role_arn="arn:aws:iam::111111111111:role/apps/app-reader",
                         role_session_name="gc"),
    ).credentials.session_token  # fmt: skip
    if variant == "freeze":
        keep_out_of_collections()
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses[info["generation"]].append(time.perf_counter() - started.pop())

    gc.callbacks.append(timer)
    t0 = time.perf_counter()
    for i in range(decisions):
        engine.authorize(token, "s3:GetObject", f"arn:aws:s3:::reports/gc/{i}.csv")
    wall = time.perf_counter() - t0
    gc.callbacks.remove(timer)
    full = [p * 1000 for p in pauses[2]]
    return {
        "variant": variant,
        "collections": {g: len(v) for g, v in pauses.items()},
        "full_ms": {
            "median": round(statistics.median(full), 2) if full else 0.0,
            "max": round(max(full), 2) if full else 0.0,
            "total": round(sum(full), 1),
        },
        "young_ms_total": round(sum(pauses[0] + pauses[1]) * 1000, 1),
        "wall_s": round(wall, 2),
        "frozen_objects": gc.get_freeze_count(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--decisions", type=int, default=150_000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    results: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool:
        for r in range(a.rounds):
            for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                out = pool.submit(run, variant, a.decisions).result(timeout=900)
                results.append(out)
                print(
                    f"  {variant:8} collections {out['collections']}, full pauses ms "
                    f"{out['full_ms']}, wall {out['wall_s']} s",
                    flush=True,
                )
    data = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/gc_pauses.py", *sys.argv[1:]]),
        "machine": kit.machine(),
        "loadavg": kit.loadavg(),
        "runs": results,
    }
    print(
        f"\n| variant | gen 0 / 1 / 2 collections | full pause median ms | max ms | total ms | "
        f"young total ms | {a.decisions:,} decisions, s |\n|---|---|---:|---:|---:|---:|---:|"
    )
    for out in results:
        c, f = out["collections"], out["full_ms"]
        print(
            f"| {out['variant']} | {c[0]} / {c[1]} / {c[2]} | {f['median']} | {f['max']} | "
            f"{f['total']} | {out['young_ms_total']} | {out['wall_s']} |"
        )
    path = kit.write_results("gc-pauses", data)
    print(f"\nwrote {path.relative_to(kit.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
