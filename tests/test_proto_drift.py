"""The committed generated code is exactly what `make proto` makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_proto_sources(tmp_path: Path) -> None:
    """Regenerating from proto/ gives byte-identical files; run `make proto` when this fails."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert fresh, "the generator produced nothing"
    committed_dir = ROOT / "sidecar" / "api"
    committed = {
        p.relative_to(ROOT): p.read_bytes()
        for p in committed_dir.rglob("*")
        if p.is_file() and "_pb2" in p.name and "__pycache__" not in p.parts
    }
    assert sorted(map(str, fresh)) == sorted(map(str, committed)), "generated file set differs"
    for rel, content in fresh.items():
        assert committed[rel] == content, f"{rel} is stale: run `make proto`"


def test_wire_names_of_the_contract() -> None:
    """The services, methods and enum values named in docs/API.md §1 exist under iamsidecar.v1."""
    from sidecar.api.v1 import authorizer_pb2, sts_pb2, types_pb2

    sts = sts_pb2.DESCRIPTOR.services_by_name["SecurityTokenService"]
    assert sts.full_name == "iamsidecar.v1.SecurityTokenService"
    assert set(sts.methods_by_name) == {
        "AssumeRole",
        "AssumeRoleWithWebIdentity",
        "AssumeRoleWithSAML",
        "GetCallerIdentity",
    }
    authz = authorizer_pb2.DESCRIPTOR.services_by_name["Authorizer"]
    assert authz.full_name == "iamsidecar.v1.Authorizer"
    assert set(authz.methods_by_name) == {"Authorize", "BatchAuthorize", "SimulateCustomPolicy"}
    assert dict(types_pb2.Decision.items()) == {
        "DECISION_UNSPECIFIED": 0,
        "ALLOWED": 1,
        "EXPLICIT_DENY": 2,
        "IMPLICIT_DENY": 3,
    }
    assert list(types_pb2.ContextKeyType.keys()) == [
        "CONTEXT_KEY_TYPE_UNSPECIFIED", "STRING", "STRING_LIST", "NUMERIC", "NUMERIC_LIST",
        "BOOLEAN", "BOOLEAN_LIST", "IP", "IP_LIST", "BINARY", "BINARY_LIST", "DATE", "DATE_LIST",
    ]  # fmt: skip
    fields = {f.name for f in sts_pb2.AssumeRoleRequest.DESCRIPTOR.fields}
    assert fields == {
        "role_arn", "role_session_name", "duration_seconds", "external_id", "policy",
        "policy_arns", "tags", "transitive_tag_keys", "source_identity", "serial_number",
        "token_code",
    }  # fmt: skip
