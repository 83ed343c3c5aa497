"""Results as text lines and as JUnit XML (the format CI systems display)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from sidecar.policy.evaluate import Matched
from sidecar.policytest.run import CaseResult


def statement(m: Matched) -> str:
    """A deciding statement: its policy type, policy id and Sid (or index when it has none)."""
    ref = m.ref
    return f"{m.policy_type.value} {ref.policy_id}[{ref.sid or ref.index}]"


def deciding(result: CaseResult) -> str:
    """The deciding statements, each once (FullAWSAccess allows at several levels)."""
    return ", ".join(dict.fromkeys(statement(m) for m in result.deciding)) or "none"


def _where(result: CaseResult) -> str:
    return f"{result.case.source}: {result.case.path}"


def detail(result: CaseResult) -> str:
    """Why the case got its answer: the principal, the deciding statements, AWS's words."""
    parts = [f"principal {result.principal_arn}"]
    if result.case.assume is None:
        parts.append(f"deciding statements: {deciding(result)}")
    parts.append(result.reason)
    return "; ".join(parts)


def line(result: CaseResult) -> str:
    case = result.case
    if result.passed:
        return f"ok    {case.name}: {result.actual} ({_where(result)})"
    return (
        f"FAIL  {case.name}: expected {case.expect.value}, got {result.actual} "
        f"({_where(result)}); {detail(result)}"
    )


def summary(results: Sequence[CaseResult]) -> str:
    passed = sum(1 for r in results if r.passed)
    return f"{passed} passed, {len(results) - passed} failed"


def junit(results: Sequence[CaseResult], *, name: str = "iam-sidecar test") -> bytes:
    """One <testsuite> per test file, one <testcase> per case, a <failure> for each failed
    one (its message: expected and actual; its text: the detail)."""
    failed = sum(1 for r in results if not r.passed)
    root = ET.Element(
        "testsuites", name=name, tests=str(len(results)), failures=str(failed), errors="0"
    )
    root.set("time", "0")
    files: dict[str, list[CaseResult]] = {}
    for r in results:
        files.setdefault(r.case.source, []).append(r)
    for source, group in files.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=source,
            tests=str(len(group)),
            failures=str(sum(1 for r in group if not r.passed)),
            errors="0",
            skipped="0",
            time="0",
        )
        for r in group:
            case = ET.SubElement(suite, "testcase", name=r.case.name, classname=source, time="0")
            if not r.passed:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"expected {r.case.expect.value}, got {r.actual}",
                    type="PolicyTestFailure",
                )
                failure.text = f"{r.case.path}: {detail(r)}"
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{r.actual}; {detail(r)}"
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
