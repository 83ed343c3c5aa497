"""Revocation at the second: `revoke-sessions` at t.5 writes t+1, so sessions issued at t.0 and
t.999 (before and after the command) are denied and one issued at t+1 is not (docs/STS.md,
"Revoking sessions"); and the policy's DateLessThan leaves a session issued exactly at the
written time alone, as AWS's AWSRevokeOlderSessions does."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidecar import cli
from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.identity.model import World
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, PolicySet, evaluate
from sidecar.policy.model import PolicyKind
from sidecar.policy.principals import principal_from_arn
from sidecar.server.world_file import load_world_file
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import UserCaller
from sidecar.sts.clock import iso8601
from sidecar.sts.keys import KeyRing
from sidecar.sts.revoke import REVOKE_POLICY_NAME, revocation_policy, revocation_time
from tests.engine.test_authorize import with_role
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.conftest import START
from tests.sts.world import ALICE, A, _compile

T = START  # a whole second; the command runs at T + 0.5
APP = f"arn:aws:iam::{A}:role/apps/app-reader"
REPORT = "arn:aws:s3:::reports/q1.csv"
ROOT = Path(__file__).resolve().parents[2]

WORLD = f"""\
# revocation boundary test world
accounts:
  - id: "{A}"
    roles:
      - name: app-reader
        path: /apps/
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - {{Effect: Allow, Principal: {{AWS: "{ALICE}"}}, Action: sts:AssumeRole}}
        inline_policies:
          read:
            Version: "2012-10-17"
            Statement:
              - {{Effect: Allow, Action: "s3:GetObject", Resource: "*"}}
    users:
      - name: alice
"""


def _token(world: World, keys: KeyRing, at: float) -> str:
    """A session of app-reader issued at ``at`` (its issue time is ``floor(at)``)."""
    env = StsEnv(world, keys, FixedClock(at), CountingEntropy(int(at * 1000)))
    caller = UserCaller(world.users_by_arn[ALICE])
    return assume_role(env, caller, AssumeRoleParams(APP, "s1")).credentials.session_token


def _revoked_world(world: World, before_iso: str) -> World:
    role = world.roles_by_arn[APP]
    revoke = _compile(revocation_policy(before_iso), PolicyKind.IDENTITY, REVOKE_POLICY_NAME)
    return with_role(
        world, APP, inline_policies={**role.inline_policies, REVOKE_POLICY_NAME: revoke}
    )


class TestTheBound:
    @pytest.mark.parametrize("offset", [0.0, 0.5, 0.999])
    def test_any_instant_in_a_second_gives_the_next_second(self, offset: float) -> None:
        """floor(now) + 1, whatever the fraction."""
        assert revocation_time(T + offset) == iso8601(T + 1) == "2027-01-15T08:00:01Z"

    def test_sessions_of_the_command_second_are_denied_the_next_second_allowed(
        self, world: World, keys: KeyRing
    ) -> None:
        """Issued at t.0 (before the command at t.5) and t.999 (after it): denied by the
        revocation; issued at t+1: allowed."""
        before, after, next_second = (_token(world, keys, T + x) for x in (0.0, 0.999, 1.0))
        revoked = _revoked_world(world, revocation_time(T + 0.5))
        authz = Authorizer(revoked, keys, FixedClock(T + 1.5))
        for token in (before, after):
            result = authz.authorize(token, "s3:GetObject", REPORT)
            assert result.decision is Decision.EXPLICIT_DENY
            assert [m.ref.policy_id for m in result.evaluation.matched] == [REVOKE_POLICY_NAME]
        assert authz.authorize(next_second, "s3:GetObject", REPORT).decision is Decision.ALLOWED


class TestThePolicyOperator:
    """AWS's policy is DateLessThan, not DateLessThanEquals: the bound itself is not revoked."""

    PRINCIPAL = principal_from_arn(f"arn:aws:sts::{A}:assumed-role/app-reader/s1")
    BOUND = T + 60

    def _decide(self, issued_at: int) -> Decision:
        assert self.PRINCIPAL is not None
        revoke = _compile(revocation_policy(iso8601(self.BOUND)), PolicyKind.IDENTITY, "r")
        allow = _compile(
            {
                "Version": "2012-10-17",
                "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            },
            PolicyKind.IDENTITY,
            "a",
        )
        ctx = Context({"aws:TokenIssueTime": (iso8601(issued_at),)})
        policies = PolicySet(identity=(allow, revoke))
        return evaluate(self.PRINCIPAL, "s3:GetObject", REPORT, ctx, policies).decision

    def test_a_session_issued_exactly_at_the_bound_is_not_revoked(self) -> None:
        """aws:TokenIssueTime equal to the written time: the Deny does not match."""
        assert self._decide(self.BOUND) is Decision.ALLOWED

    def test_a_session_issued_one_second_earlier_is_revoked(self) -> None:
        assert self._decide(self.BOUND - 1) is Decision.EXPLICIT_DENY

    def test_the_document_is_awss(self) -> None:
        """The exact statement AWS attaches (IAM User Guide, "Revoking IAM role temporary
        security credentials")."""
        assert revocation_policy("2027-01-15T08:00:01Z")["Statement"] == [
            {
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": ["*"],
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2027-01-15T08:00:01Z"}},
            }
        ]


class TestTheCommand:
    def test_end_to_end_through_the_world_file_and_a_reloaded_engine(
        self, tmp_path: Path, keys: KeyRing
    ) -> None:
        """Sessions at t.0 and t.999, `revoke-sessions` at t.5 editing the world file, a
        session at t+1; the running engine reloads the file: the first two are denied, the
        last is allowed."""
        path = tmp_path / "world.yaml"
        path.write_text(WORLD)
        world = load_world_file(str(path))
        clock = FixedClock(T)
        engine = Engine(world, keys, clock)
        before = _token(world, keys, T + 0.0)
        assert engine.authorize(before, "s3:GetObject", REPORT)[0].decision is Decision.ALLOWED

        args = cli.build_parser().parse_args(["revoke-sessions", APP, "--config", str(path)])
        assert args.func is cli._cmd_revoke
        assert cli._cmd_revoke(args, now=T + 0.5) == 0
        text = path.read_text()
        assert "# revocation boundary test world" in text
        assert "aws:TokenIssueTime: '2027-01-15T08:00:01Z'" in text or (
            "aws:TokenIssueTime: 2027-01-15T08:00:01Z" in text
        ), text

        after = _token(world, keys, T + 0.999)  # the old snapshot still issues sessions
        clock.t = T + 1.0
        reloaded = load_world_file(str(path))
        next_second = _token(reloaded, keys, T + 1.0)
        engine.swap(reloaded, keys)
        clock.t = T + 1.5
        for token in (before, after):
            result, _cached = engine.authorize(token, "s3:GetObject", REPORT)
            assert result.decision is Decision.EXPLICIT_DENY
            assert [m.ref.policy_id for m in result.evaluation.matched] == [REVOKE_POLICY_NAME]
        result, _cached = engine.authorize(next_second, "s3:GetObject", REPORT)
        assert result.decision is Decision.ALLOWED

    def test_the_command_reads_the_real_clock(self, tmp_path: Path) -> None:
        """Without --before, the process writes the second after the one it ran in."""
        path = tmp_path / "world.yaml"
        path.write_text(WORLD)
        started = int(time.time())
        out = subprocess.run(
            [sys.executable, "-m", "sidecar", "revoke-sessions", APP, "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        ended = int(time.time())
        assert out.returncode == 0, out.stderr
        found = re.search(r"aws:TokenIssueTime: '?([0-9TZ:-]+)'?", path.read_text())
        assert found is not None
        assert found.group(1) in {iso8601(s + 1) for s in range(started, ended + 1)}
        assert f"sessions issued before {found.group(1)} are now denied" in out.stdout
