"""The evaluation corpus (tests/corpus/eval/*.yaml), run through SimulateCustomPolicy.

Each case is a SimulateCustomPolicy request with the expected decision (and optionally the
deciding statements and missing context keys) for each (action, resource) pair, or the error it
must be refused with. Cases go through the same function as the RPC and `iam-sidecar simulate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from sidecar.api.v1 import authorizer_pb2, types_pb2
from sidecar.errors import SidecarError
from sidecar.server.convert import simulate_custom_policy

CORPUS = Path(__file__).parent / "corpus" / "eval"
POLICY_LISTS = (
    "policy_input_list",
    "permissions_boundary_policy_input_list",
    "session_policy_input_list",
    "service_control_policy_input_list",
)
LEVEL_LISTS = (
    ("ordered_organization_policy_input_list", "service_control_policy_input_list"),
    ("ordered_resource_control_policy_input_list", "resource_control_policy_input_list"),
)


def _cases() -> list[Any]:
    params = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


def _policy_text(doc: Any) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc)


def build_request(spec: dict[str, Any]) -> authorizer_pb2.SimulateCustomPolicyRequest:
    body = dict(spec)
    for key in POLICY_LISTS:
        if key in body:
            body[key] = [_policy_text(d) for d in body[key]]
    # Organization levels: {levelList: [{innerList: [doc, ...]}, ...]}
    for key, inner in LEVEL_LISTS:
        if key in body:
            body[key] = [{inner: [_policy_text(d) for d in lv.get(inner, [])]} for lv in body[key]]
    if "resource_policy" in body:
        body["resource_policy"] = _policy_text(body["resource_policy"])
    if "context_entries" in body:
        body["context_entries"] = [
            {**e, "values": [v if isinstance(v, str) else json.dumps(v) for v in e["values"]]}
            for e in body["context_entries"]
        ]
    return json_format.ParseDict(body, authorizer_pb2.SimulateCustomPolicyRequest())


def _ref_name(ref: types_pb2.StatementRef) -> str:
    return f"{ref.policy_id}/{ref.sid}" if ref.sid else f"{ref.policy_id}#{ref.index}"


def _matches_name(ref: types_pb2.StatementRef, name: str) -> bool:
    return name in (_ref_name(ref), f"{ref.policy_id}#{ref.index}")


@pytest.mark.parametrize("case", _cases())
def test_corpus_case(case: dict[str, Any]) -> None:
    request = build_request(case["request"])
    if "error" in case:
        with pytest.raises(SidecarError) as info:
            simulate_custom_policy(request)
        assert info.value.code == case["error"]["code"]
        if "message" in case["error"]:
            assert info.value.message == case["error"]["message"]
        return
    results = simulate_custom_policy(request).evaluation_results
    expected = case["expect"]
    assert len(results) == len(expected), "one expectation per (action, resource) pair"
    for got, want in zip(results, expected, strict=True):
        where = f"{got.eval_action_name} on {got.eval_resource_name}"
        decision = types_pb2.Decision.Name(got.eval_decision)
        assert decision == want["decision"], f"{where}: {got.reason}"
        if "matched" in want:
            names = [_ref_name(r) for r in got.matched_statements]
            assert len(names) == len(want["matched"]), f"{where}: matched {names}"
            for name in want["matched"]:
                assert any(_matches_name(r, name) for r in got.matched_statements), (
                    f"{where}: {name} not in {names}"
                )
        if "missing_context_values" in want:
            assert sorted(k.lower() for k in got.missing_context_values) == sorted(
                k.lower() for k in want["missing_context_values"]
            )
