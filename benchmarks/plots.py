"""Plots for docs/BENCHMARKS.md (matplotlib, Agg backend, PNG) from the latest results.

    .venv/bin/python benchmarks/plots.py

- docs/plots/engine-scaling.png: µs per decision against statements in the world, ours against
  cedarpy and moto, from the latest benchmarks/results/engine-*.json (engine_bench.py);
- docs/plots/transport-latency.png: latency percentiles of Authorize, the no-op method and
  AssumeRole at a fixed share of their peaks, from the latest transport-*.json with a latency
  part (transport.py);
- docs/plots/memory-rss.png: the server's RSS against Authorize calls served, from the latest
  transport-*.json with a memory part (transport.py --parts memory);
- docs/plots/versus-bare-latency.png: p50 and p99 against the offered rate, the sidecar's
  Authorize (and Check) beside a bare grpc.aio no-op, from the latest versus-bare-*.json with a
  paced part (versus_bare.py).

A plot whose results are missing is skipped with a message. ``--engine``/``--transport``/
``--memory``/``--versus`` pick other result files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

try:  # run as a script (benchmarks/ is on sys.path) or as a module
    import serverkit as kit
except ImportError:  # pragma: no cover
    from benchmarks import serverkit as kit

PLOTS = kit.ROOT / "docs" / "plots"
PERCENTILES = ("p50", "p90", "p99", "p99.9", "p100")


def latest_with(part: str) -> Path | None:
    found = sorted(kit.RESULTS.glob("transport-*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        if part in json.loads(path.read_text()):
            return path
    return None


def _caption(data: dict[str, Any], path: Path) -> str:
    m = data.get("machine", {})
    return (
        f"{path.name} · {str(data.get('date', ''))[:16]} UTC · commit {m.get('commit', '?')} · "
        f"{m.get('nproc', '?')} cores {m.get('cpu', '')}"
    )


def engine_scaling(path: Path, out: Path) -> None:
    data = json.loads(path.read_text())
    sizes = sorted(data["sizes"], key=int)
    xs = [int(s) for s in sizes]

    def series(get: Any) -> tuple[list[int], list[float], list[float], list[float]]:
        x, med, lo, hi = [], [], [], []
        for s, n in zip(sizes, xs, strict=True):
            fig = get(data["sizes"][s])
            if fig:
                x.append(n)
                med.append(fig["median_us"])
                lo.append(fig["median_us"] - fig["min_us"])
                hi.append(fig["max_us"] - fig["median_us"])
        return x, med, lo, hi

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    lines = [
        ("ours, uncached (Context + evaluate)", lambda d: d["ours"].get("uncached"), "o", "C0"),
        ("ours, action never seen (per-action memo misses)",
         lambda d: d["ours"].get("unseen_action"), "s", "C9"),
        ("cedarpy is_authorized", lambda d: d.get("cedar", {}).get("per_call"), "^", "C1"),
        ("moto IAMPolicy (identity check)", lambda d: d.get("moto", {}).get("full"), "v", "C3"),
    ]  # fmt: skip
    for label, get, marker, color in lines:
        x, med, lo, hi = series(get)
        if x:
            ax.errorbar(x, med, yerr=[lo, hi], marker=marker, color=color, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [f"{n:,}" for n in xs])
    ax.set_xlabel("statements in the role's policies")
    ax.set_ylabel("µs per decision (median; bars: min-max)")
    ax.set_title("Engine: cost of one decision as the world grows", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(0.01, 0.01, _caption(data, path), fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out)
    plt.close(fig)


def transport_latency(path: Path, out: Path) -> None:
    data = json.loads(path.read_text())
    runs = data["latency"]["runs"]
    shares = sorted({r["share_of_peak"] for r in runs.values()})
    fig, axes = plt.subplots(1, len(shares), figsize=(4.2 * len(shares), 4.6), dpi=120, sharey=True)
    if len(shares) == 1:
        axes = [axes]
    xs = list(range(len(PERCENTILES)))
    labels = [p.replace("p100", "max") for p in PERCENTILES]
    styles = {"noop": ("o", "C7", "no-op"), "authorize": ("s", "C0", "Authorize")}
    for ax, share in zip(axes, shares, strict=True):
        for key, r in runs.items():
            name = key.split("@")[0]
            if r["share_of_peak"] != share:
                continue
            marker, color, label = styles[name]
            ys = [r["latency_ms"][p] for p in PERCENTILES]
            ax.plot(xs, ys, marker=marker, color=color, label=f"{label}, {r['rps']:,.0f} req/s")
        assume = data.get("assume_h2load", {}).get("half_peak")
        if assume and abs(share - 0.5) < 1e-9:
            ys = [assume["latency_ms"][p] for p in PERCENTILES]
            ax.plot(xs, ys, marker="^", color="C1", label=f"AssumeRole, {assume['rps']:,.0f} req/s")
        ax.set_xticks(xs, labels)
        ax.set_yscale("log")
        ax.set_title(f"at {share:.0%} of each method's peak", fontsize=10)
        ax.set_xlabel("percentile")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("latency, ms (h2load, per request)")
    fig.suptitle("gRPC latency at a fixed request rate (h2load --rps)", fontsize=11)
    fig.text(0.01, 0.01, _caption(data, path), fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out)
    plt.close(fig)


def memory_rss(path: Path, out: Path) -> None:
    data = json.loads(path.read_text())
    mem = data["memory"]
    xs = [s["authorize_ok"] - mem["samples"][0]["authorize_ok"] for s in mem["samples"]]
    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=120)
    ax.plot(xs, [s["rss_mib"] for s in mem["samples"]], marker=".", label="RSS (VmRSS)")
    ax.plot(xs, [s["peak_rss_mib"] for s in mem["samples"]], ls="--", label="peak RSS (VmHWM)")
    # The capacity the server reported when full, else the configured size.
    size = int(mem["caches"]["decision"].get("entries_now") or mem["cache_sizes"]["decision"])
    ax.axvline(size, color="0.5", ls=":", label=f"decision cache full ({size:,} entries)")
    ax.set_xlabel(f"Authorize calls served (each a new resource; {mem['tokens']:,} session tokens)")
    ax.set_ylabel("server RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title("Memory of the sidecar process under distinct requests", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.text(0.01, 0.01, _caption(data, path), fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out)
    plt.close(fig)


def versus_bare_latency(path: Path, out: Path) -> None:
    """p50 and p99 against the offered rate (share of the bare server's peak)."""
    data = json.loads(path.read_text())
    paced = data["paced"]
    runs, peak = paced["runs"], paced["bare_peak"]
    styles = {"bare": ("o", "C7", "bare grpc.aio no-op"), "authorize": ("s", "C0", "Authorize"),
              "check": ("^", "C2", "Check (Envoy ext_authz)")}  # fmt: skip
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for name, (marker, color, label) in styles.items():
        keys = sorted(
            (k for k in runs if k.split("@")[0] == name), key=lambda k: runs[k]["offered_rps"]
        )
        if not keys:
            continue
        xs = [runs[k]["offered_rps"] for k in keys]
        ax.plot(xs, [runs[k]["p50"] for k in keys], marker=marker, color=color, ls="--",
                label=f"{label}, p50")  # fmt: skip
        ax.plot(xs, [runs[k]["p99"] for k in keys], marker=marker, color=color,
                label=f"{label}, p99")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel(f"offered req/s (h2load --rps; bare's peak {peak:,.0f} req/s)")
    ax.set_ylabel("latency, ms (median of rounds)")
    ax.set_title(
        "Latency against offered load: the sidecar and a bare grpc.aio server", fontsize=11
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(0.01, 0.01, _caption(data, path), fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out)
    plt.close(fig)


def latest_versus(part: str) -> Path | None:
    found = sorted(kit.RESULTS.glob("versus-bare-*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        if part in json.loads(path.read_text()):
            return path
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", type=Path, default=kit.latest_result("engine-*.json"))
    parser.add_argument("--transport", type=Path, default=latest_with("latency"))
    parser.add_argument("--memory", type=Path, default=latest_with("memory"))
    parser.add_argument("--versus", type=Path, default=latest_versus("paced"))
    parser.add_argument("--only", help="comma-separated plot file names to draw")
    args = parser.parse_args()
    PLOTS.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("engine-scaling.png", args.engine, engine_scaling, "make bench"),
        ("transport-latency.png", args.transport, transport_latency, "transport.py"),
        ("memory-rss.png", args.memory, memory_rss, "transport.py --parts memory"),
        ("versus-bare-latency.png", args.versus, versus_bare_latency, "versus_bare.py"),
    ]
    for name, source, draw, command in jobs:
        if args.only and name not in args.only.split(","):
            continue
        if source is None or not source.exists():
            print(f"skip {name}: no results (run {command} first)")
            continue
        draw(source, PLOTS / name)
        print(f"wrote docs/plots/{name} from {source.resolve().relative_to(kit.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
