"""Reloads survive any world file (docs/SERVER.md, "Reloads"): a recursive alias, a `!!binary`
value, an alias bomb or an oversized file is a failed reload (logged, counted) that keeps the
last good world and the file watch; the next good edit is applied; SIGTERM stops the process
promptly whatever a reload is doing."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import time
from pathlib import Path

import grpc
import pytest

from sidecar.server import app
from sidecar.server.app import ServeOptions, Sidecar, load_keys, load_world
from sidecar.server.status import error_info

from .conftest import (
    DEMO_ACCESS_KEY,
    DEMO_SECRET,
    DEMO_WORLD,
    SidecarFactory,
    SidecarProcess,
    account,
    child_env,
    demo_world,
    dump_world,
    wait_until,
    write_atomically,
)

READS_REPORTS = (
    '          Version: "2012-10-17"\n'
    "          Statement:\n"
    "            - Sid: ReadReports\n"
    "              Effect: Allow\n"
    "              Action: [s3:GetObject, s3:ListBucket]\n"
)


def demo_text_with(old: str, new: str, prefix: str = "") -> str:
    """The demo world file's text with ``old`` replaced by ``new`` (once) and ``prefix`` first."""
    text = DEMO_WORLD.read_text()
    assert text.count(old) == 1, old
    return prefix + text.replace(old, new)


# In the ReportsRead policy document, where the world builder copies the document as a tree.
RECURSIVE_ALIAS = demo_text_with(
    READS_REPORTS, READS_REPORTS + "              Loop: &loop [*loop]\n"
)
BINARY = demo_text_with("[s3:GetObject, s3:ListBucket]", "[s3:GetObject, !!binary aGVsbG8=]")
LAUGHS = (
    "x-laughs:\n  l0: &l0 ["
    + ", ".join(["lol"] * 9)
    + "]\n"
    + "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 10))
)
ALIAS_BOMB = demo_text_with(
    READS_REPORTS,
    READS_REPORTS
    + "              Condition:\n"
    + "                StringEquals: {aws:PrincipalTag/x: *l9}\n",
    prefix=LAUGHS,
)


def start(sidecars: SidecarFactory, config: Path, *args: str) -> SidecarProcess:
    if not config.exists():
        config.write_text(DEMO_WORLD.read_text())
    return sidecars.start(
        "--config", str(config), "--reload-interval", "0.2", "--grace", "2",
        "--drain-delay", "0.1", *args,
        env=child_env(IAM_SIDECAR_DEMO_SECRET=DEMO_SECRET),
    )  # fmt: skip


def reloads(sidecar: SidecarProcess, result: str) -> float:
    return sidecar.metric("iam_sidecar_reloads_total", result=result)


def failed_reloads(sidecar: SidecarProcess) -> list[dict[str, object]]:
    return [
        r for r in sidecar.log() if r["msg"] == "reload failed; still serving the last good world"
    ]


def alice_is_known(sidecar: SidecarProcess) -> bool:
    """Whether alice's access key still signs (GetCallerIdentity answers)."""
    with sidecar.alice() as client:
        try:
            client.get_caller_identity()
        except grpc.RpcError as err:
            refused = err
        else:
            return True
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, refused
    info = error_info(refused)
    assert info is not None, refused
    assert info.reason == "InvalidClientTokenId", refused
    return False


def without_alices_key() -> str:
    doc = demo_world()
    account(doc)["users"][0]["access_keys"] = []
    return dump_world(doc)


def test_bad_files_never_end_the_watch_and_the_next_good_edit_applies(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    """A recursive alias, then (also through SIGHUP) a `!!binary` value: each is a failed
    reload with a log line and a count, the last good world keeps serving; then deleting
    alice's access key is applied by the same watch."""
    config = tmp_path / "world.yaml"
    sidecar = start(sidecars, config)
    assert alice_is_known(sidecar)
    failures = reloads(sidecar, "failure")

    steps = [
        (RECURSIVE_ALIAS, None, "line 17, column 21: a recursive alias"),
        (BINARY, None, "line 16, column 38: !!binary is not allowed"),
        (BINARY, signal.SIGHUP, "line 16, column 38: !!binary is not allowed"),
    ]
    for n, (text, signum, error) in enumerate(steps, 1):
        if signum is None:
            write_atomically(config, text)
        else:
            sidecar.signal(signum)

        def failed_n_times(n: int = n) -> bool:
            return reloads(sidecar, "failure") >= failures + n

        assert wait_until(failed_n_times, 5), sidecar.log_text()
        logged = failed_reloads(sidecar)
        assert len(logged) == n, sidecar.log_text()
        assert logged[-1]["level"] == "error"
        assert logged[-1]["why"] == ("SIGHUP" if signum else "file changed")
        assert f"{config}: {error}" in str(logged[-1]["error"]), logged[-1]
        assert "exception" not in logged[-1]  # an expected problem, not a traceback
        assert alice_is_known(sidecar)
    assert reloads(sidecar, "success") == 0

    write_atomically(config, without_alices_key())
    assert wait_until(lambda: reloads(sidecar, "success") == 1, 5), sidecar.log_text()
    assert not alice_is_known(sidecar)
    assert sidecar.alive()


def proc_status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status (VmRSS: resident now, VmHWM: the peak)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith(" kB"):
            out[name] = int(value.split()[0])
    return out


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_an_alias_bomb_is_refused_at_once_in_bounded_memory(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    """A 1 KB "billion laughs" (3.5 billion nodes once expanded) in a policy document is
    refused naming the limit, and the process's peak memory does not grow by more than 32 MiB;
    SIGHUP reloads of it are refused the same way, and SIGTERM then stops the process at once."""
    config = tmp_path / "world.yaml"
    sidecar = start(sidecars, config)
    pid = sidecar.proc.pid
    before = proc_status(pid)
    baseline = max(before["VmRSS"], before["VmHWM"])
    failures = reloads(sidecar, "failure")
    assert len(LAUGHS) < 1024

    write_atomically(config, ALIAS_BOMB)
    written = time.monotonic()

    def refused_or_swelling() -> bool:
        # the old code grew by tens of MiB a second: stop waiting once it is clearly swelling
        swelling = proc_status(pid)["VmRSS"] > baseline + 256 * 1024
        return swelling or reloads(sidecar, "failure") > failures

    assert wait_until(refused_or_swelling, 10), sidecar.log_text()
    assert reloads(sidecar, "failure") == failures + 1, proc_status(pid)
    assert time.monotonic() - written < 5  # a generous guard: it takes milliseconds
    after = proc_status(pid)
    assert after["VmHWM"] - baseline < 32 * 1024, (before, after)
    (logged,) = failed_reloads(sidecar)
    assert str(logged["error"]) == (
        f"InvalidWorld: {config}: YAML aliases expand the document by more than 100,000 nodes "
        "(the limit for aliases)"
    )
    assert alice_is_known(sidecar)

    for n in range(1, 6):  # SIGHUP takes the same path
        sidecar.signal(signal.SIGHUP)

        def failed_once_more(n: int = n) -> bool:
            return reloads(sidecar, "failure") == failures + 1 + n

        assert wait_until(failed_once_more, 5)
    assert proc_status(pid)["VmHWM"] - baseline < 32 * 1024
    sidecar.signal(signal.SIGHUP)  # one more in flight as SIGTERM arrives
    signalled = time.monotonic()
    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(timeout=10) == 0, sidecar.log_text()
    assert time.monotonic() - signalled < 5
    assert "stopped" in sidecar.messages()


def open_writer(fifo: Path) -> int | None:
    """A write end of ``fifo`` once a reader is blocked opening it, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno != errno.ENXIO:  # ENXIO: no reader yet
            raise
        return None


def test_sigterm_stops_promptly_while_a_reload_is_stuck(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    """A reload blocked reading a secret file (a FIFO nobody writes: like a hung mount) does
    not keep SIGTERM from stopping the process: it drains and exits 0 within the grace
    period instead of waiting for the reload's thread."""
    config = tmp_path / "world.yaml"
    sidecar = start(sidecars, config)
    fifo = tmp_path / "alice.secret"
    os.mkfifo(fifo)
    doc = demo_world()
    key = account(doc)["users"][0]["access_keys"][0]
    assert key["id"] == DEMO_ACCESS_KEY
    del key["secret_env"]
    key["secret_file"] = str(fifo)
    write_atomically(config, dump_world(doc))

    writer = wait_until(lambda: open_writer(fifo), 5)
    assert writer is not None, "the reload never opened the secret file"
    try:  # the reload now waits in read(), for bytes that never come
        time.sleep(0.2)
        assert sidecar.alive()
        signalled = time.monotonic()
        sidecar.signal(signal.SIGTERM)
        try:
            code = sidecar.proc.wait(timeout=10)
        except Exception:
            pytest.fail(f"still running 10 s after SIGTERM:\n{sidecar.log_text()}")
        elapsed = time.monotonic() - signalled
    finally:
        os.close(writer)
    assert code == 0, sidecar.log_text()
    assert elapsed < 2 + 3, elapsed  # --grace 2, plus room for a busy machine
    messages = sidecar.messages()
    assert "stopped" in messages, messages
    assert "reloaded" not in messages


def test_an_oversized_file_is_refused_naming_the_limit(
    sidecars: SidecarFactory, tmp_path: Path
) -> None:
    """`serve --max-world-bytes N`: a world file over N bytes is a failed reload naming N (the
    last good world keeps serving); one within N is applied."""
    config = tmp_path / "world.yaml"
    demo = DEMO_WORLD.read_text()
    limit = len(demo.encode()) + 64
    sidecar = start(sidecars, config, "--max-world-bytes", str(limit))
    padded = demo + "#" * 100 + "\n"
    write_atomically(config, padded)
    assert wait_until(lambda: reloads(sidecar, "failure") == 1, 5), sidecar.log_text()
    (logged,) = failed_reloads(sidecar)
    assert str(logged["error"]) == (
        f"InvalidWorld: {config}: the file is {len(padded.encode()):,} bytes, over the limit of {limit:,} "
        "bytes (--max-world-bytes raises it)"
    )
    assert alice_is_known(sidecar)
    write_atomically(config, without_alices_key())
    assert len(without_alices_key().encode()) <= limit
    assert wait_until(lambda: reloads(sidecar, "success") == 1, 5), sidecar.log_text()
    assert not alice_is_known(sidecar)


# -- in-process: errors no world file produces today ----------------------------------------------


def test_the_watch_survives_any_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever loading raises (a bug's RecursionError, TypeError, MemoryError), the reload
    fails with a log line carrying the traceback and a count, and the watch goes on to apply
    the next change."""
    config = tmp_path / "world.yaml"
    config.write_text(DEMO_WORLD.read_text())
    monkeypatch.setenv("IAM_SIDECAR_DEMO_SECRET", DEMO_SECRET)
    errors: list[BaseException] = [RecursionError("deep"), TypeError("bytes"), MemoryError()]
    real_load_world = app.load_world

    def flaky_load_world(opts: ServeOptions, generation: int = 0) -> object:
        if errors:
            raise errors.pop(0)
        return real_load_world(opts, generation)

    async def scenario() -> tuple[list[float], float]:
        opts = ServeOptions(config=str(config), reload_interval=0.01)
        world = load_world(opts)
        keys, keys_from = load_keys(opts, world)
        sidecar = Sidecar(opts, world, keys, keys_from)
        sample = sidecar.metrics.registry.get_sample_value

        def count(result: str) -> float:
            return sample("iam_sidecar_reloads_total", {"result": result}) or 0.0

        monkeypatch.setattr(app, "load_world", flaky_load_world)
        watch = asyncio.create_task(sidecar._watch())
        seen = []
        try:
            for n in range(1, 5):
                config.write_text(DEMO_WORLD.read_text() + "#" * n + "\n")  # a new size
                for _ in range(500):
                    if count("failure") + count("success") >= n or watch.done():
                        break
                    await asyncio.sleep(0.01)
                seen.append(count("failure"))
            assert not watch.done()
            return seen, count("success")
        finally:
            watch.cancel()

    caplog.set_level("ERROR", logger="iam_sidecar")
    failures, successes = asyncio.run(scenario())
    assert failures == [1, 2, 3, 3]
    assert successes == 1
    logged = [r for r in caplog.records if r.getMessage().startswith("reload failed")]
    assert [r.exc_info[0] for r in logged if r.exc_info] == [RecursionError, TypeError, MemoryError]
