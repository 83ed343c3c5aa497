"""A bounded, headless locust run against a sidecar started here on 127.0.0.1.

    .venv/bin/python loadtest/run.py --users 20 --spawn-rate 10 --run-time 30s

It generates a session-token key set into a temporary directory, starts ``python -m sidecar
serve`` (the embedded demo world) on free loopback ports, waits for /readyz, runs
``locust --headless -u … -r … --run-time … --csv …`` with loadtest/locustfile.py, scrapes the
sidecar's /metrics, stops the sidecar (SIGTERM, then SIGKILL), and writes into
loadtest/results/<UTC stamp>/: locust's CSVs, the sidecar's log, summary.md and summary.json
(p50/p95/p99, req/s and failures per request name, plus the sidecar's cache and decision
counters). It prints the summary. Every step has a time limit, so the run stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seconds(run_time: str) -> float:
    """locust's --run-time syntax: 30s, 2m, 1h30m, or a bare number of seconds."""
    if re.fullmatch(r"\d+", run_time):
        return float(run_time)
    parts = re.findall(r"(\d+)\s*([hms])", run_time)
    if not parts or "".join(n + u for n, u in parts) != run_time.replace(" ", ""):
        raise argparse.ArgumentTypeError(f"not a run time: {run_time!r} (e.g. 30s, 2m, 1h30m)")
    scale = {"h": 3600, "m": 60, "s": 1}
    return float(sum(int(n) * scale[u] for n, u in parts))


def wait_ready(http_port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sidecar exited with code {proc.returncode} while starting")
        url = f"http://127.0.0.1:{http_port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the sidecar was not ready within {timeout:.0f} s")


def stop(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def scrape(http_port: int) -> dict[str, float]:
    """The sidecar's decision and cache counters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    wanted = (
        "iam_sidecar_decisions_total",
        "iam_sidecar_cache_events_total",
        "iam_sidecar_credentials_issued_total",
        "iam_sidecar_token_validation_failures_total",
    )
    out: dict[str, float] = {}
    for line in text.splitlines():
        refused = line.startswith("grpc_server_handled_total{") and 'grpc_code="OK"' not in line
        if line.startswith(wanted) or refused:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def percentile(response_times: dict[float, int], count: int, share: float) -> float:
    """As locust's ``calculate_response_time_percentile`` (its histogram keeps times rounded
    to 2 significant digits, so a 1-9 ms figure is whole milliseconds)."""
    wanted = int(count * share)
    seen = 0
    for rt in sorted(response_times, reverse=True):
        seen += response_times[rt]
        if count - seen <= wanted:
            return rt
    return 0.0


def row(name: str, kind: str, entries: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    times: dict[float, int] = {}
    for e in entries:
        for rt, n in e["response_times"].items():
            times[float(rt)] = times.get(float(rt), 0) + n
    count = sum(e["num_requests"] for e in entries)
    return {
        "name": name,
        "type": kind,
        "requests": count,
        "failures": sum(e["num_failures"] for e in entries),
        "rps": round(count / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": percentile(times, count, 0.50),
        "p95_ms": percentile(times, count, 0.95),
        "p99_ms": percentile(times, count, 0.99),
        "max_ms": round(max((e["max_response_time"] for e in entries), default=0), 1),
        "mean_ms": round(sum(e["total_response_time"] for e in entries) / max(count, 1), 2),
    }


def summarize(prefix: Path, args: argparse.Namespace, counters: dict[str, float]) -> dict[str, Any]:
    """From locust's final JSON (written at exit); the CSVs are its periodic writes (the last
    one can miss the final second of the run)."""
    entries: list[dict[str, Any]] = json.loads(prefix.with_suffix(".json").read_text())
    start = min(e["start_time"] for e in entries)
    last = max(e["last_request_timestamp"] or start for e in entries)
    rows = [
        row(e["name"], e["method"], [e], last - start)
        for e in sorted(entries, key=lambda e: (e["name"], e["method"]))
    ]
    rows.append(row("Aggregated", "", entries, last - start))
    failures = read_csv(prefix.with_name(prefix.name + "_failures.csv"))
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "loadtest/run.py", *sys.argv[1:]]),
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "run_time": args.run_time,
        "user_rps": args.user_rps,
        "nproc": os.cpu_count(),
        "measured_seconds": round(last - start, 2),
        "requests": rows,
        "failures": [
            {"name": f["Name"], "error": f["Error"], "occurrences": int(f["Occurrences"])}
            for f in failures
        ],
        "sidecar_counters": counters,
    }


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"locust run of {summary['date']}: {summary['users']} users (spawn rate "
        f"{summary['spawn_rate']}/s), {summary['run_time']}, {summary['user_rps']:g} tasks/s "
        f"per user (0 = no pause), {summary['nproc']} cores",
        "",
        "| request | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms | mean ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["requests"]:
        label = f"**{r['name']}**" if r["name"] == "Aggregated" else f"{r['type']} {r['name']}"
        lines.append(
            f"| {label} | {r['requests']:,} | {r['failures']:,} | {r['rps']:,.1f} | "
            f"{r['p50_ms']:g} | {r['p95_ms']:g} | {r['p99_ms']:g} | {r['max_ms']:g} | "
            f"{r['mean_ms']:g} |"
        )
    if any(r["failures"] for r in summary["requests"]):
        lines += ["", "Failures (from locust's failures CSV):", ""]
        lines += [f"- {f['name']}: {f['error']} ({f['occurrences']}x)" for f in summary["failures"]]
    else:
        lines += ["", "No failures: every answer was the expected one."]
    c = summary["sidecar_counters"]
    if c:
        lines += ["", "Sidecar counters at the end of the run:", ""]
        lines += [f"- `{k}` {v:,.0f}" for k, v in sorted(c.items())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", "-u", type=int, default=20)
    parser.add_argument("--spawn-rate", "-r", type=float, default=10)
    parser.add_argument("--run-time", "-t", default="30s", help="locust syntax: 30s, 2m")
    parser.add_argument(
        "--user-rps", type=float, default=50.0, help="tasks/s per user; 0 = no pause"
    )
    parser.add_argument("--workers", type=int, default=1, help="sidecar --workers")
    parser.add_argument("--out", type=Path, default=None, help="default loadtest/results/<stamp>")
    args = parser.parse_args()
    duration = seconds(args.run_time)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out: Path = args.out or RESULTS / stamp
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"

    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="iam-sidecar-load-") as tmp:
        keys = Path(tmp) / "keys.json"
        subprocess.run(
            [sys.executable, "-m", "sidecar", "keys", "generate", "--out", str(keys)],
            check=True, capture_output=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        serve = [
            sys.executable, "-m", "sidecar", "serve",
            "--listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}",
            "--keys", str(keys), "--workers", str(args.workers), "--log-level", "warning",
            "--grace", "5",
        ]  # fmt: skip
        with (out / "sidecar.log").open("wb") as log:
            sidecar = subprocess.Popen(serve, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            try:
                wait_ready(http_port, sidecar)
                print(
                    f"sidecar ready on 127.0.0.1:{grpc_port} (pid {sidecar.pid}); locust: "
                    f"{args.users} users, {args.run_time}",
                    flush=True,
                )
                locust = [
                    sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"),
                    "--headless", "-u", str(args.users), "-r", f"{args.spawn_rate:g}",
                    "--run-time", args.run_time, "--stop-timeout", "5",
                    "--host", f"127.0.0.1:{grpc_port}", "--csv", str(prefix),
                    "--json-file", str(prefix), "--only-summary", "--loglevel", "WARNING",
                    "--exit-code-on-error", "0",
                    "--user-rps", f"{args.user_rps:g}",
                ]  # fmt: skip
                with (out / "locust.log").open("wb") as llog:
                    done = subprocess.run(
                        locust,
                        stdout=llog,
                        stderr=subprocess.STDOUT,
                        cwd=HERE,
                        timeout=duration + 90,
                        check=False,
                    )
                if done.returncode != 0:
                    tail = (out / "locust.log").read_text(errors="replace")[-3000:]
                    print(f"locust exited with {done.returncode}:\n{tail}", file=sys.stderr)
                    return 1
                counters = scrape(http_port)
            finally:
                stop(sidecar)
    summary = summarize(prefix, args, counters)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
