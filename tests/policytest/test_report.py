"""Failure lines, the summary and JUnit XML, read back with the standard library's parser."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from sidecar.policytest.report import junit, line, summary
from sidecar.policytest.run import CaseResult
from tests.policytest.helpers import ALICE, ORDERS, PROD_ADMIN, run

TESTS = f"""\
tests:
  - name: reads orders
    principal: {ORDERS}
    action: s3:GetObject
    resource: arn:aws:s3:::orders-data/a
    expect: ALLOWED
  - name: reads private orders
    principal: {ORDERS}
    action: s3:GetObject
    resource: arn:aws:s3:::orders-data/private/a
    expect: ALLOWED
  - name: assumes prod-admin
    principal: {ALICE}
    assume: {PROD_ADMIN}
    expect: ALLOWED
  - name: writes
    principal: {ORDERS}
    matrix: {{action: [s3:PutObject, s3:DeleteObject]}}
    resource: arn:aws:s3:::orders-data/a
    expect: ALLOWED
"""


def results() -> list[CaseResult]:
    return run(TESTS)


def test_lines() -> None:
    ok, private, assume, put, delete = results()
    assert line(ok) == "ok    reads orders: ALLOWED (t.iamtest.yaml: tests[0])"
    assert line(private) == (
        "FAIL  reads private orders: expected ALLOWED, got EXPLICIT_DENY (t.iamtest.yaml: "
        "tests[1]); principal arn:aws:sts::111111111111:assumed-role/orders/iam-test; deciding "
        "statements: identity data[NoPrivate]; User: arn:aws:sts::111111111111:assumed-role/"
        "orders/iam-test is not authorized to perform: s3:GetObject on resource: "
        "arn:aws:s3:::orders-data/private/a with an explicit deny in an identity-based policy"
    )
    assert line(assume).startswith(
        "FAIL  assumes prod-admin: expected ALLOWED, got DENIED (t.iamtest.yaml: tests[2]); "
        f"principal {ALICE}; AccessDenied: User: {ALICE} is not authorized to perform: "
        f"sts:AssumeRole on resource: {PROD_ADMIN}"
    )
    assert put.passed
    assert not delete.passed
    assert line(delete).startswith(
        "FAIL  writes [s3:DeleteObject arn:aws:s3:::orders-data/a]: expected ALLOWED, got "
        "IMPLICIT_DENY"
    )
    assert "deciding statements: none" in line(delete)


def test_summary() -> None:
    assert summary(results()) == "2 passed, 3 failed"
    assert summary([]) == "0 passed, 0 failed"


def test_junit_read_back() -> None:
    root = ET.fromstring(junit(results()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "3", "0")
    [suite] = root.findall("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == (
        "t.iamtest.yaml", "5", "3",
    )  # fmt: skip
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "reads orders",
        "reads private orders",
        "assumes prod-admin",
        "writes [s3:PutObject arn:aws:s3:::orders-data/a]",
        "writes [s3:DeleteObject arn:aws:s3:::orders-data/a]",
    ]
    assert {c.get("classname") for c in cases} == {"t.iamtest.yaml"}
    assert [c.find("failure") is not None for c in cases] == [False, True, True, False, True]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected ALLOWED, got EXPLICIT_DENY"
    assert failure.text is not None
    assert "identity data[NoPrivate]" in failure.text
    passed = cases[0].find("system-out")
    assert passed is not None
    assert passed.text is not None
    assert passed.text.startswith("ALLOWED")


def test_junit_one_suite_per_file() -> None:
    first = results()
    second = run(TESTS.replace("reads orders", "reads orders again"))
    moved = [replace(r, case=replace(r.case, source="b.iamtest.yaml")) for r in second]
    root = ET.fromstring(junit([*first, *moved]))
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "t.iamtest.yaml",
        "b.iamtest.yaml",
    ]
    assert root.get("tests") == "10"
