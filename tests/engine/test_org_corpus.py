"""The organizations corpus (tests/corpus/org/*.yaml), run through Authorize.

Each file holds a world (with an ``organization`` block) and cases: a role session of that world
asks for one action on one resource; the case gives the decision, and optionally the deciding
statements (``policy_id/sid`` or ``policy_id#index``, compared as a set) and a fragment of the
reason. Cases go through the cached engine and the bare authorizer, which must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.engine.authorize import Authorizer
from sidecar.engine.engine import Engine
from sidecar.identity.load import build_world
from sidecar.identity.model import World
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from sidecar.sts.tokens import encode_token
from tests.fakes import CountingEntropy, FixedClock
from tests.sts.conftest import START

CORPUS = Path(__file__).parent.parent / "corpus" / "org"


def _files() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def _cases() -> list[Any]:
    params = []
    for path in _files():
        for case in yaml.safe_load(path.read_text())["cases"]:
            params.append(pytest.param(path, case, id=f"{path.stem}: {case['name']}"))
    return params


_WORLDS: dict[Path, World] = {}


def _world(path: Path) -> World:
    if path not in _WORLDS:
        doc = yaml.safe_load(path.read_text())["world"]
        _WORLDS[path] = build_world(doc, source=str(path), secrets=lambda _k, _r: None)
    return _WORLDS[path]


def session_for(world: World, role_arn: str) -> Session:
    role = world.roles_by_arn[role_arn]
    return Session(
        partition=world.partition,
        account=role.account,
        role_name=role.name,
        role_path=role.path,
        role_id=role.role_id,
        session_name="s1",
        access_key_id="ASIAORGCORPUS0000001",
        issued_at=START,
        expires_at=START + 3600,
    )


def _name(ref: Any) -> str:
    return f"{ref.policy_id}/{ref.sid}" if ref.sid else f"{ref.policy_id}#{ref.index}"


@pytest.mark.parametrize(("path", "case"), _cases())
def test_org_corpus_case(path: Path, case: dict[str, Any]) -> None:
    world = _world(path)
    keys = KeyRing.generate(CountingEntropy(1), "k1")
    clock = FixedClock(START)
    session = session_for(world, case["role"])
    authz = Authorizer(world, keys, clock)
    result = authz.authorize_session(session, case["action"], case["resource"])
    want = case["expect"]
    assert result.decision.name == want["decision"], result.reason
    if "matched" in want:
        assert {_name(m.ref) for m in result.evaluation.matched} == set(want["matched"])
    if "reason" in want:
        assert want["reason"] in result.reason
    # The cached engine (twice: the second answer comes from its cache) says the same.
    token = encode_token(session, keys)
    engine = Engine(world, keys, clock)
    for _ in range(2):
        cached, _hit = engine.authorize(token, case["action"], case["resource"])
        assert cached.decision is result.decision
        assert cached.reason == result.reason
