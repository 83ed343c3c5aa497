"""`serve --workers 2`: /metrics describes the whole process group whichever worker answers the
scrape (prometheus_client's multiprocess mode, sidecar/server/multiproc_metrics.py); a killed
worker's counts stay in the totals while its live gauges go; the directory is emptied at
start and cleaned at exit. `--workers 1` keeps the in-process registry and writes no file."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from sidecar.server.metrics import Metrics
from sidecar.server.multiproc_metrics import ENV, MetricsDir, single_process
from tests.server.process.conftest import (
    SidecarFactory,
    SidecarProcess,
    child_env,
    local_channel,
    metric_value,
    wait_until,
)
from tests.server.process.test_process import ALLOWED, ALLOWED_OBJECT, alice_token, decision
from tests.server.process.test_supervisor import children, kill_and_wait_for_replacement

DECISIONS = "iam_sidecar_decisions_total"
AUTHORIZE_OK = {"grpc_method": "Authorize", "grpc_code": "OK"}
SCRAPES = 20  # fresh connections each: SO_REUSEPORT hands them to both workers
QUICK_STOP = ("--grace", "2", "--drain-delay", "0")


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[SidecarFactory]:
    factory = SidecarFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


def file_counts(directory: Path, name: str) -> dict[int, float]:
    """The per-worker values of counter ``name`` (summed over labels), read from the files."""
    out: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if key.startswith(f'["{name[: -len("_total")]}"'):
                out[pid] = out.get(pid, 0.0) + value
    return out


def authorize_on_both(sidecar: SidecarProcess, token: str, directory: Path, least: int) -> int:
    """Authorize calls over fresh connections until ``least`` were made and both workers
    answered some (bounded); how many were made."""
    made = 0
    while made < 200:
        with local_channel(sidecar.target) as channel:
            assert decision(channel, token, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED
        made += 1
        if made >= least and len(file_counts(directory, DECISIONS)) >= 2:
            break
    return made


def generation_pids(text: str) -> set[int]:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name.endswith("generation")]
    return {int(s.labels["pid"]) for s in family.samples}


def test_two_workers_show_the_group_totals_on_every_scrape(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = child_env(TMPDIR=str(tmpdir))
    env.pop(ENV, None)
    sidecar = sidecars.start("--workers", "2", *QUICK_STOP, env=env, workers=2)
    # No --metrics-dir: a fresh directory under $TMPDIR, named in the log.
    (logged,) = [r["metrics_dir"] for r in sidecar.log() if "metrics_dir" in r]
    directory = Path(logged)
    assert directory.parent == tmpdir
    started = next(r["workers"] for r in sidecar.log() if r["msg"] == "workers started")

    token = alice_token(sidecar)
    k = authorize_on_both(sidecar, token, directory, least=30)
    per_worker = file_counts(directory, DECISIONS)
    assert set(per_worker) == set(started), per_worker
    assert all(per_worker.values()), per_worker
    assert sum(per_worker.values()) == k

    for _ in range(SCRAPES):
        text = sidecar.metrics()
        assert metric_value(text, DECISIONS, decision="ALLOWED") == k, text
        assert metric_value(text, "grpc_server_handled_total", **AUTHORIZE_OK) == k
        assert metric_value(text, "iam_sidecar_credentials_issued_total") == 1
        assert metric_value(text, "iam_sidecar_ready") == 1
        assert generation_pids(text) == set(started)

    # The caches' counts: the answering worker copies its own at the scrape, the other within
    # a second; one decision-cache lookup per Authorize.
    def cache_lookups() -> float:
        text = sidecar.metrics()
        return sum(
            metric_value(text, "iam_sidecar_cache_events_total", cache="decision", event=e)
            for e in ("hit", "miss")
        )

    assert wait_until(lambda: cache_lookups() == k, 5), cache_lookups()

    # SIGKILL one worker: replaced; its counts stay in the totals, its live gauges go.
    victim, survivor = started[-1], started[0]
    new = kill_and_wait_for_replacement(sidecar, victim)
    assert not list(directory.glob(f"gauge_*_{victim}.db"))
    assert (directory / f"counter_{victim}.db").exists()
    for _ in range(SCRAPES):
        text = sidecar.metrics()
        assert metric_value(text, DECISIONS, decision="ALLOWED") == k, text
        assert metric_value(text, "iam_sidecar_worker_exits_total", cause="signal") == 1
        assert metric_value(text, "iam_sidecar_ready") == 1
        assert generation_pids(text) == {survivor, new}

    # The replacement starts from zero and adds to the totals.
    more = 0
    while new not in file_counts(directory, DECISIONS) and more < 200:
        with local_channel(sidecar.target) as channel:
            assert decision(channel, token, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED
        more += 1
    assert new in file_counts(directory, DECISIONS)
    for _ in range(SCRAPES // 2):
        assert sidecar.metric(DECISIONS, decision="ALLOWED") == k + more

    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(timeout=10) == 0, sidecar.log_text()
    assert not children(sidecar.proc.pid)
    assert not directory.exists()  # the temporary directory is removed at exit


def test_metrics_dir_is_emptied_at_start_and_at_exit(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    """An emptyDir outlives a container restart, and pids restart with the container: a file
    left by the last run must not be summed into (or resumed by) this one."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = MmapedDict(str(directory / "counter_1.db"))
    key = mmap_key(
        "iam_sidecar_decisions", DECISIONS, ["decision"], ["ALLOWED"],
        "Authorization decisions by result.",
    )  # fmt: skip
    stale.write_value(key, 1000.0, 0.0)
    stale.close()
    (directory / "keep.txt").write_text("not ours")

    sidecar = sidecars.start(
        "--workers", "2", *QUICK_STOP, "--metrics-dir", str(directory), workers=2
    )
    assert not (directory / "counter_1.db").exists()
    token = alice_token(sidecar)
    with local_channel(sidecar.target) as channel:
        assert decision(channel, token, "s3:GetObject", ALLOWED_OBJECT) == ALLOWED
    assert sidecar.metric(DECISIONS, decision="ALLOWED") == 1

    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(timeout=10) == 0, sidecar.log_text()
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_one_worker_ignores_the_multiprocess_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # as if imported so
    single_process()
    assert ENV not in os.environ
    metrics = Metrics()
    metrics.decisions.labels("ALLOWED").inc()
    assert list(tmp_path.iterdir()) == []
    text = generate_latest(metrics.registry).decode()
    assert metric_value(text, DECISIONS, decision="ALLOWED") == 1


def test_a_dead_workers_live_gauges_go_and_its_counters_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)  # MetricsDir sets it; restored after the test
    metrics_dir = MetricsDir(str(tmp_path))
    assert os.environ[ENV] == str(tmp_path)  # what the forked workers inherit
    for name in ("counter_41.db", "histogram_41.db", "gauge_livemax_41.db",
                 "gauge_liveall_41.db", "gauge_livemax_42.db"):  # fmt: skip
        MmapedDict(str(tmp_path / name)).close()
    metrics_dir.worker_died(41)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_41.db",
        "gauge_livemax_42.db",
        "histogram_41.db",
    ]
