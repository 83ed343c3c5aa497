"""`iam-sidecar test`: files and directories, output, exit codes 0/1/2, --junit, and the demo
world's own test file."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sidecar.cli import build_parser, main
from tests.policytest.helpers import ORDERS, WORLD_FILE

ROOT = Path(__file__).resolve().parents[2]
DEMO_WORLD = ROOT / "sidecar" / "demo" / "world.yaml"
DEMO_TESTS = ROOT / "sidecar" / "demo" / "demo.iamtest.yaml"

PASSING = f"""\
tests:
  - name: orders reads its bucket
    principal: {ORDERS}
    action: s3:GetObject
    resource: arn:aws:s3:::orders-data/2026/report.csv
    expect: ALLOWED
"""
FAILING = f"""\
tests:
  - name: orders reads private data
    principal: {ORDERS}
    action: s3:GetObject
    resource: arn:aws:s3:::orders-data/private/x
    expect: ALLOWED
  - name: orders cannot delete
    principal: {ORDERS}
    action: s3:DeleteObject
    resource: arn:aws:s3:::orders-data/x
    expect: IMPLICIT_DENY
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`iam-sidecar test --config world.yaml ARGS` in this process: exit code, stdout, stderr."""
    code = main(["test", "--config", str(WORLD_FILE), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_all_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, write(tmp_path / "a.iamtest.yaml", PASSING))
    assert (code, out) == (0, "1 passed, 0 failed\n")


def test_verbose_lists_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.iamtest.yaml", PASSING)
    code, out, _ = cli(capsys, path, "--verbose")
    assert code == 0
    assert out.splitlines() == [
        f"ok    orders reads its bucket: ALLOWED ({path}: tests[0])",
        "1 passed, 0 failed",
    ]


def test_a_failure_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.iamtest.yaml", FAILING)
    code, out, _ = cli(capsys, path)
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == 2
    assert lines[0].startswith(
        f"FAIL  orders reads private data: expected ALLOWED, got EXPLICIT_DENY ({path}: tests[0]);"
    )
    assert "deciding statements: identity data[NoPrivate]" in lines[0]
    assert lines[1] == "1 passed, 1 failed"


def test_directories_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = tmp_path / "policy-tests"
    (tests / "nested").mkdir(parents=True)
    write(tests / "a.iamtest.yaml", PASSING)
    write(tests / "nested" / "b.iamtest.yaml", FAILING)
    write(tests / "notes.yaml", "not: a test file\n")  # only *.iamtest.yaml files are read
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    code, out, _ = cli(capsys, str(tests), "--junit", str(report))
    assert code == 1
    assert out.splitlines()[-1] == "2 passed, 1 failed"
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        str(tests / "a.iamtest.yaml"),
        str(tests / "nested" / "b.iamtest.yaml"),
    ]
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert failed == ["orders reads private data"]


def test_bad_files_exit_2_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(
        tmp_path / "bad.iamtest.yaml",
        "tests:\n  - {name: x, expect: MAYBE, principal: p, action: a:b, resource: '*', colour: red}\n",
    )
    broken = write(tmp_path / "broken.iamtest.yaml", "tests: [\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = str(tmp_path / "missing.iamtest.yaml")
    good = write(tmp_path / "good.iamtest.yaml", PASSING)
    code, out, err = cli(capsys, bad, broken, str(empty), missing, good)
    assert code == 2
    assert out.splitlines() == [
        f"{empty}: no *.iamtest.yaml file in this directory",
        f"{bad}: tests[0]: unknown key 'colour'",
        f"{bad}: tests[0].expect: expected one of ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, DENIED, got 'MAYBE'",
        f"{broken}: line 2, column 1: expected the node content, but found '<stream end>' (while parsing a flow node)",
        f"{missing}: cannot read the file: No such file or directory",
    ]
    assert err == "5 problem(s) found\n"


def test_setup_problems_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = PASSING.replace("role/apps/orders", "role/orders")
    path = write(tmp_path / "a.iamtest.yaml", text)
    code, out, _ = cli(capsys, path)
    assert code == 2
    assert out == (
        f"{path}: tests[0].principal: no role arn:aws:iam::111111111111:role/orders in the world "
        "(the world has arn:aws:iam::111111111111:role/apps/orders)\n"
    )


def test_a_bad_world_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = write(tmp_path / "world.yaml", "accounts:\n  - id: '1'\n")
    path = write(tmp_path / "a.iamtest.yaml", PASSING)
    code = main(["test", "--config", world, path])
    out = capsys.readouterr().out
    assert code == 2
    assert out.startswith(f"{world}: accounts[0].id: ")


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["test", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for needed in (
        "--config",
        "--junit",
        "--verbose",
        "*.iamtest.yaml",
        "Exit 0",
        "POLICY-TESTS.md",
    ):
        assert needed in text


def test_the_demo_worlds_tests_pass_through_the_command() -> None:
    """The test file shipped beside the demo world, run as a user runs it."""
    out = subprocess.run(
        [sys.executable, "-m", "sidecar", "test", "--config", str(DEMO_WORLD), str(DEMO_TESTS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no IAM_SIDECAR_DEMO_SECRET: `test` reads no secrets
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.endswith(" passed, 0 failed\n")
    assert int(out.stdout.split()[0]) >= 20
