"""`iam-sidecar access`: the demo world by default, text and JSON, and the exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sidecar.cli import main

WORLD_FILE = str(Path(__file__).with_name("world.yaml"))
APP_READER = "arn:aws:iam::111111111111:role/apps/app-reader"
ORDERS_WRITER = "arn:aws:iam::111111111111:role/apps/orders-writer"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["access", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_world_is_used_without_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, APP_READER, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["format_version"] == 1
    assert report["role"]["arn"] == APP_READER
    (grant,) = report["who_can_assume"]["grants"]
    assert grant["covers"] == ["sts:AssumeRole", "sts:TagSession"]
    alice, service = grant["principal_reports"]
    assert (alice["kind"], service["kind"]) == ("user", "service")
    assert [(v["arn"], v["outcome"]) for v in alice["identities"]] == [
        ("arn:aws:iam::111111111111:user/alice", "allowed")
    ]
    assert "trust policy alone grants" in alice["note"]
    what = report["what_it_may_do"]
    assert [(p["name"], len(p["allows"]), len(p["denies"])) for p in what["policies"]] == [
        ("NoSecrets", 0, 1),
        ("ReportsRead", 1, 0),
    ]
    assert what["permissions_boundary"] is None
    assert what["organization"]["status"] == "none"


def test_demo_account_principal_delegates_to_identity_policies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, ORDERS_WRITER, "--json")
    assert code == 0
    (grant,) = json.loads(out)["who_can_assume"]["grants"]
    (account,) = grant["principal_reports"]
    assert account["kind"] == "account"
    outcomes = {v["arn"]: v["outcome"] for v in account["identities"]}
    assert outcomes == {
        "arn:aws:iam::111111111111:user/alice": "allowed",  # AssumeAppRoles allows role/apps/*
        "arn:aws:iam::111111111111:role/apps/app-reader": "denied",
        "arn:aws:iam::111111111111:role/apps/orders-writer": "denied",
    }


def test_text_report_has_sections_and_aligned_elements(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "arn:aws:iam::111111111111:role/target", "--config", WORLD_FILE)
    assert code == 0
    for heading in ("WHO CAN ASSUME IT (trust policy)", "WHAT IT MAY DO", "GUARDRAILS"):
        assert f"\n{heading}\n" in out
    assert "user  arn:aws:iam::222222222222:user/allowed  allowed\n" in out
    assert "user  arn:aws:iam::222222222222:user/withmfa  allowed if\n" in out
    assert "(Bool aws:MultiFactorAuthPresent = true [AssumeWithMfa OnlyWithMfa (#0)])" in out
    assert "unless StringEquals aws:PrincipalTag/blocked = yes" in out
    assert "permissions boundary: the role may do only what it also allows" in out
    # The values of a statement's elements start in one column.
    block = out.split("Allow Queues SendOrders (#0)\n", 1)[1].splitlines()[:2]
    assert [re.match(r"\s*(NotAction|NotResource)\s+", line) is not None for line in block] == [
        True,
        True,
    ]
    columns = {len(re.match(r"\s*\w+\s+", line).group(0)) for line in block}  # type: ignore[union-attr]
    assert len(columns) == 1


def test_unknown_role_exits_2_with_the_aws_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "arn:aws:iam::111111111111:role/ghost")
    assert (code, out) == (2, "")
    assert json.loads(err) == {
        "code": "NoSuchEntity",
        "message": "The role with name ghost cannot be found.",
    }
    code, _, err = _run(capsys, "not-an-arn")
    assert code == 2
    assert json.loads(err)["code"] == "ValidationError"


def test_bad_world_exits_2_listing_every_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    # Two problems: NotPrincipal, which trust policies refuse, and an account id that is not one.
    bad.write_text(
        'accounts:\n  - id: "111111111111"\n    roles:\n      - name: r\n'
        "        trust_policy:\n"
        '          Version: "2012-10-17"\n'
        "          Statement: [{Effect: Deny, NotPrincipal: {AWS: '111111111111'}, "
        "Action: sts:AssumeRole}]\n"
        '  - id: "12"\n'
    )
    code, out, err = _run(capsys, "arn:aws:iam::111111111111:role/r", "--config", str(bad))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert any("Has prohibited field NotPrincipal." in line for line in lines)
    assert any(line.startswith(f"{bad}: accounts[1]") for line in lines)
    assert lines[-1] == "2 problem(s) found"
    code, _, err = _run(capsys, APP_READER, "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "cannot read the file" in err


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["access", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("ROLE_ARN", "--config", "--json", "allowed if", "Exit 0", "2 when the world"):
        assert phrase in text
