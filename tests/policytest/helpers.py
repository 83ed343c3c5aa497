"""The world of these tests (world.yaml) and shortcuts to parse and run test files."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path

from sidecar.identity.load import build_world
from sidecar.identity.model import World
from sidecar.policytest.model import Case
from sidecar.policytest.parse import parse_test_file
from sidecar.policytest.run import CaseResult, run_cases
from sidecar.server.world_file import parse_world_text
from tests.fakes import FixedClock

HERE = Path(__file__).resolve().parent
WORLD_FILE = HERE / "world.yaml"
SOURCE = "t.iamtest.yaml"
SEED = "JBSWY3DPEHPK3PXP"  # alice's MFA seed here (base32)
# The runner's clock for cases without `at`: 2026-11-02T09:30:00Z.
NOW = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC).timestamp()

A = "111111111111"
ORDERS = f"arn:aws:iam::{A}:role/apps/orders"
ADMIN = f"arn:aws:iam::{A}:role/admin"
REVOKED = f"arn:aws:iam::{A}:role/revoked"
ALICE = f"arn:aws:iam::{A}:user/alice"
CONTRACTOR = f"arn:aws:iam::{A}:user/contractors/contractor-1"
PROD_ADMIN = "arn:aws:iam::222222222222:role/prod-admin"


@cache
def world() -> World:
    doc = parse_world_text(str(WORLD_FILE), WORLD_FILE.read_text())
    return build_world(doc, source=str(WORLD_FILE), secrets=lambda kind, ref: SEED)


def parse(text: str) -> list[Case]:
    return parse_test_file(parse_world_text(SOURCE, text), SOURCE)


def run(text: str, *, now: float = NOW, in_world: World | None = None) -> list[CaseResult]:
    return run_cases(in_world or world(), parse(text), FixedClock(now))


def one(text: str, *, now: float = NOW, in_world: World | None = None) -> CaseResult:
    results = run(text, now=now, in_world=in_world)
    assert len(results) == 1
    return results[0]


def case(**fields: object) -> str:
    """A test file with one case named "c" (JSON is YAML)."""
    return "tests:\n  - " + json.dumps({"name": "c", **fields}) + "\n"
