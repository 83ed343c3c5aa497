"""`serve --workers 2` supervises its workers: a worker killed from outside (SIGKILL, as the
OOM killer does) is reaped, logged, counted in every worker's /metrics and replaced by a
worker that serves the world file as it is now (or the last good world when the file no longer
loads); SIGTERM afterwards still drains every worker and the parent exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import (
    DEMO_SECRET,
    SidecarFactory,
    SidecarProcess,
    child_env,
    free_port,
    local_channel,
    metric_value,
    run_cli,
    wait_until,
    write_atomically,
)
from .test_process import (
    ALLOWED,
    IMPLICIT_DENY,
    NEW_OBJECT,
    alice_token,
    decision,
    world_text,
)

GRACE = 2.0
EXITS = "iam_sidecar_worker_exits_total"
REPLACED = "worker exited; replacing it"


def children(pid: int) -> set[int]:
    """The live (or zombie) child processes of ``pid``, from /proc."""
    out: set[int] = set()
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out |= {int(p) for p in path.read_text().split()}
    return out


def proc_state(pid: int) -> str | None:
    """The process state letter in /proc (Z for a zombie), or None once the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def serving_pids(sidecar: SidecarProcess) -> set[int]:
    return {int(r["pid"]) for r in sidecar.log() if r["msg"] == "serving"}


def put_decisions(
    sidecar: SidecarProcess, token: str, want: set[int], tries: int = 200
) -> set[int]:
    """s3:PutObject decisions over fresh connections (SO_REUSEPORT spreads them over the
    workers) until every decision in ``want`` has been seen or ``tries`` calls were made."""
    seen: set[int] = set()
    for _ in range(tries):
        with local_channel(sidecar.target) as channel:
            seen.add(decision(channel, token, "s3:PutObject", NEW_OBJECT))
        if want <= seen:
            break
    return seen


def kill_and_wait_for_replacement(sidecar: SidecarProcess, victim: int) -> int:
    """SIGKILL ``victim``; assert it is reaped (no zombie) and a new worker serves; its pid."""
    parent = sidecar.proc.pid
    before = children(parent)
    assert victim in before, (victim, before)
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: proc_state(victim) is None, 5), (
        f"worker {victim} was not reaped: state {proc_state(victim)}\n{sidecar.log_text()}"
    )

    def replacement() -> set[int]:
        return (children(parent) - before) & serving_pids(sidecar)

    new = wait_until(replacement, 10)
    assert len(new) == 1, f"no new worker serving:\n{sidecar.log_text()}"
    assert len(children(parent)) == 2
    logged = [r for r in sidecar.log() if r["msg"] == REPLACED and r.get("pid") == victim]
    assert len(logged) == 1, sidecar.log_text()
    assert logged[0]["signal"] == "SIGKILL"
    assert logged[0]["level"] == "error"
    pid: int = new.pop()
    return pid


def test_a_killed_worker_is_reaped_counted_and_replaced_with_the_current_world(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    config = tmp_path / "world.yaml"
    config.write_text(world_text(put_allowed=False))
    keys = tmp_path / "keys.json"
    assert run_cli("keys", "generate", "--out", str(keys)).returncode == 0
    # Workers never look at the file themselves (an hour between checks): a worker serving the
    # edited world can only have loaded it when it was forked.
    sidecar = sidecars.start(
        "--config", str(config), "--keys", str(keys), "--workers", "2",
        "--grace", str(GRACE), "--reload-interval", "3600",
        env=child_env(IAM_SIDECAR_DEMO_SECRET=DEMO_SECRET), workers=2,
    )  # fmt: skip
    parent = sidecar.proc.pid
    started = next(r["workers"] for r in sidecar.log() if r["msg"] == "workers started")
    assert set(started) == children(parent) == serving_pids(sidecar)
    token = alice_token(sidecar)  # verifies on every worker: one --keys file

    write_atomically(config, world_text(put_allowed=True))  # the edit, after start-up
    assert put_decisions(sidecar, token, set(), tries=20) == {IMPLICIT_DENY}

    # Kill the worker forked last: a parent that waits on its workers in order never reaps it.
    first = kill_and_wait_for_replacement(sidecar, started[-1])
    survivor = started[0]
    assert children(parent) == {survivor, first}

    # Every worker's /metrics shows the parent's count (20 scrapes on fresh connections).
    for _ in range(20):
        text = sidecar.metrics()
        assert metric_value(text, EXITS, cause="signal") == 1, text
        assert metric_value(text, EXITS, cause="exit") == 0, text

    # The survivor still serves the start-up world, the new worker the edited one.
    assert put_decisions(sidecar, token, {ALLOWED, IMPLICIT_DENY}) == {ALLOWED, IMPLICIT_DENY}
    for _ in range(10):
        with local_channel(sidecar.target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

    # A file that no longer loads: the next worker gets the last good world, with a log line.
    write_atomically(config, "accounts:\n  - id: '111111111111'\n    roles: [\n")
    second = kill_and_wait_for_replacement(sidecar, first)
    assert children(parent) == {survivor, second}
    stale = [r for r in sidecar.log() if r["msg"].startswith("the world no longer loads")]
    assert len(stale) == 1, sidecar.log_text()
    assert str(config) in stale[0]["error"]
    assert put_decisions(sidecar, token, {ALLOWED, IMPLICIT_DENY}) == {ALLOWED, IMPLICIT_DENY}
    assert wait_until(lambda: sidecar.metric(EXITS, cause="signal") == 2, 5)

    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(timeout=GRACE + 5) == 0, sidecar.log_text()
    assert sidecar.messages().count("stopped") == 2, sidecar.log_text()
    for pid in (survivor, second):
        assert proc_state(pid) is None


def test_workers_that_cannot_start_stop_the_sidecar(tmp_path: Path) -> None:
    """A port held by a socket without SO_REUSEPORT: the first workers fail to start and the
    parent exits 1 (as a single process does) instead of replacing them for ever."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_cli(
            "serve", "--workers", "2", "--listen", f"127.0.0.1:{port}",
            "--http-listen", f"127.0.0.1:{free_port()}", "--grace", "1",
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "a worker could not start; stopping" in result.stderr
    assert "worker exited; replacing it" not in result.stderr
