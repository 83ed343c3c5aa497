"""`iam-sidecar validate`, `keys` and `revoke-sessions` on real files."""

from __future__ import annotations

import difflib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sidecar.demo import WORLD_FILE as DEMO_WORLD_FILE
from sidecar.server.keyfile import read_key_ring
from sidecar.server.world_file import load_world_file
from sidecar.sts.revoke import REVOKE_POLICY_NAME

ROOT = Path(__file__).resolve().parent.parent

WORLD = """\
# The payments team's world.
accounts:
  - id: "111111111111"   # production
    roles:
      - name: app-reader
        path: /apps/
        # who may assume it
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Principal: {AWS: "111111111111"}
              Action: sts:AssumeRole
        inline_policies:
          read:
            Version: "2012-10-17"
            Statement:
              - {Effect: Allow, Action: "s3:GetObject", Resource: "*"}
      - name: other
        trust_policy: '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "sts:AssumeRole"}}'
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


class TestValidate:
    def test_a_good_world(self, tmp_path: Path) -> None:
        """A valid file: exit 0 and a one-line summary."""
        path = tmp_path / "world.yaml"
        path.write_text(WORLD)
        out = run("validate", str(path))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "ok: 1 account(s), 2 role(s)" in out.stdout

    def test_every_problem_is_listed(self, tmp_path: Path) -> None:
        """A broken file: each problem as FILE: PATH: MESSAGE, exit 1."""
        path = tmp_path / "world.yaml"
        path.write_text(
            WORLD.replace('Action: "s3:GetObject"', 'Action: "GetObject"').replace(
                "name: other", "name: bad name"
            )
        )
        out = run("validate", str(path))
        assert out.returncode == 1
        lines = out.stdout.strip().splitlines()
        assert len(lines) >= 2
        assert any(
            "accounts[0].roles[0].inline_policies.read" in line
            and "Actions/Conditions must be prefaced by a vendor" in line
            for line in lines
        ), lines
        assert any("accounts[0].roles[1].name" in line for line in lines), lines


class TestKeys:
    def test_generate_rotate_public(self, tmp_path: Path) -> None:
        """generate writes an owner-only file; rotate adds an active key; public drops the
        private keys."""
        path = tmp_path / "keys.json"
        assert run("keys", "generate", "--out", str(path)).returncode == 0
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert read_key_ring(path).active_kid == "k1"
        assert run("keys", "rotate", str(path), "--kid", "k2").returncode == 0
        ring = read_key_ring(path)
        assert ring.active_kid == "k2"
        assert sorted(ring.kids()) == ["k1", "k2"]
        out = run("keys", "public", str(path))
        doc = json.loads(out.stdout)
        assert "active" not in doc
        assert all("private_key" not in k for k in doc["keys"])

    def test_a_broken_key_file_is_refused(self, tmp_path: Path) -> None:
        """A key set that is not JSON: exit 1 with the error as JSON."""
        path = tmp_path / "keys.json"
        path.write_text("{nope")
        out = run("keys", "rotate", str(path), "--kid", "k2")
        assert out.returncode == 1
        assert json.loads(out.stderr)["code"] == "InvalidKeySet"


class TestRevokeSessions:
    ARN = "arn:aws:iam::111111111111:role/apps/app-reader"

    def test_edits_in_place_keeping_comments(self, tmp_path: Path) -> None:
        """The policy is added to the role; comments and the rest of the file stay."""
        path = tmp_path / "world.yaml"
        path.write_text(WORLD)
        out = run(
            "revoke-sessions", self.ARN, "--config", str(path), "--before", "2027-01-01T00:00:00Z"
        )
        assert out.returncode == 0, out.stderr
        text = path.read_text()
        assert "# The payments team's world." in text
        assert "# who may assume it" in text
        assert "# production" in text
        world = load_world_file(str(path))
        role = world.role_by_name("111111111111", "app-reader")
        assert role is not None
        assert REVOKE_POLICY_NAME in role.inline_policies
        assert "read" in role.inline_policies
        assert "2027-01-01T00:00:00Z" in text

    @pytest.mark.parametrize("indented", [False, True], ids=["flush-lists", "indented-lists"])
    def test_the_diff_only_adds_the_policy(self, tmp_path: Path, indented: bool) -> None:
        """The file keeps its own indentation (lists flush with their key, or indented as
        the demo world writes them): a reviewer's diff is the new policy, nothing else."""
        path = tmp_path / "world.yaml"
        text = (
            DEMO_WORLD_FILE.read_text()
            if indented
            else yaml.safe_dump(
                yaml.safe_load(DEMO_WORLD_FILE.read_text()), sort_keys=False, width=4096
            )
        )
        path.write_text(text)
        out = run("revoke-sessions", self.ARN, "--config", str(path))
        assert out.returncode == 0, out.stderr
        diff = list(difflib.unified_diff(text.splitlines(), path.read_text().splitlines()))
        removed = [line for line in diff[2:] if line.startswith("-")]
        added = [line for line in diff[2:] if line.startswith("+")]
        assert removed == []
        assert any(REVOKE_POLICY_NAME in line for line in added)

    def test_dry_run_prints_the_change_only(self, tmp_path: Path) -> None:
        """--dry-run shows a diff and leaves the file alone."""
        path = tmp_path / "world.yaml"
        path.write_text(WORLD)
        out = run("revoke-sessions", self.ARN, "--config", str(path), "--dry-run")
        assert out.returncode == 0
        assert "+" in out.stdout
        assert REVOKE_POLICY_NAME in out.stdout
        assert path.read_text() == WORLD

    def test_unknown_role(self, tmp_path: Path) -> None:
        """A role that is not in the file: NoSuchEntity, file untouched."""
        path = tmp_path / "world.yaml"
        path.write_text(WORLD)
        out = run("revoke-sessions", "arn:aws:iam::111111111111:role/nope", "--config", str(path))
        assert out.returncode == 1
        assert json.loads(out.stderr)["code"] == "NoSuchEntity"
        assert path.read_text() == WORLD
