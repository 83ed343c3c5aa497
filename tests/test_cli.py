"""`iam-sidecar simulate`: protobuf JSON in, protobuf JSON out, errors as JSON on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
        ],
    }
)


class TestSimulateCommand:
    def test_prints_one_result_per_pair(self) -> None:
        """Each (action, resource) pair gets a decision with its deciding statement."""
        request = {"policyInputList": [POLICY], "actionNames": ["s3:GetObject", "s3:PutObject"]}
        out = run("simulate", stdin=json.dumps(request))
        assert out.returncode == 0, out.stderr
        results = json.loads(out.stdout)["evaluationResults"]
        assert [r["evalDecision"] for r in results] == ["ALLOWED", "IMPLICIT_DENY"]
        assert results[0]["evalResourceName"] == "*"
        assert results[0]["matchedStatements"] == [
            {"policyId": "PolicyInputList.1", "sid": "Read", "index": 0, "effect": "Allow",
             "policyType": "identity"}
        ]  # fmt: skip

    def test_snake_case_input_and_output(self) -> None:
        """Proto field names are accepted, and printed with --proto-names."""
        request = {"policy_input_list": [POLICY], "action_names": ["s3:GetObject"]}
        out = run("simulate", "--proto-names", stdin=json.dumps(request))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["evaluation_results"][0]["eval_decision"] == "ALLOWED"

    def test_malformed_policy_exits_1_with_the_error_on_stderr(self) -> None:
        """An invalid policy is a MalformedPolicyDocument with IAM's message and a location."""
        bad = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "allow",
                          "Action": "s3:*", "Resource": "*"}]})  # fmt: skip
        out = run("simulate", stdin=json.dumps({"policyInputList": [bad], "actionNames": ["a:b"]}))
        assert out.returncode == 1
        assert out.stdout == ""
        assert json.loads(out.stderr) == {
            "code": "MalformedPolicyDocument",
            "message": "The policy failed legacy parsing",
            "location": "Statement[0].Effect",
        }

    def test_bad_request_json_is_a_validation_error(self) -> None:
        """Input that is not a SimulateCustomPolicyRequest is refused, not crashed on."""
        out = run("simulate", stdin='{"noSuchField": 1}')
        assert out.returncode == 1
        assert json.loads(out.stderr)["code"] == "ValidationError"

    def test_context_value_of_the_wrong_type_is_refused(self) -> None:
        """A context value that does not parse as its declared type is a ValidationError."""
        request = {
            "policyInputList": [POLICY],
            "actionNames": ["s3:GetObject"],
            "contextEntries": [{"key": "aws:SourceIp", "values": ["nope"], "type": "IP"}],
        }
        out = run("simulate", stdin=json.dumps(request))
        assert out.returncode == 1
        assert json.loads(out.stderr)["code"] == "ValidationError"

    def test_example_request_of_make_run(self) -> None:
        """The README's example request runs and shows an allow and denies."""
        out = run("simulate", "--input", str(ROOT / "examples" / "simulate-request.json"))
        assert out.returncode == 0, out.stderr
        decisions = [r["evalDecision"] for r in json.loads(out.stdout)["evaluationResults"]]
        assert decisions == ["ALLOWED", "IMPLICIT_DENY", "IMPLICIT_DENY", "IMPLICIT_DENY"]

    def test_help_explains_the_command(self) -> None:
        """--help describes input, output and errors."""
        out = run("simulate", "--help")
        assert out.returncode == 0
        assert "SimulateCustomPolicyRequest" in out.stdout
