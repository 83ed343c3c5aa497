"""The world file's ``organization`` block: the tree, the attachments per level, AWS's defaults
and limits, and every problem reported with its path (docs/ORGANIZATIONS.md)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.identity.model import Organization
from tests.identity.test_load import DELETE, assert_issue, base, build, edit, issues_of

V = "2012-10-17"
MGMT = "999999999999"
A1 = "111111111111"
A2 = "222222222222"
DENY_REGION: dict[str, Any] = {
    "Version": V,
    "Statement": [{"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}],
}
ONLY_S3: dict[str, Any] = {
    "Version": V,
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}],
}
DENY_S3_RCP: dict[str, Any] = {
    "Version": V,
    "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"},
    ],
}


def org_world() -> dict[str, Any]:
    doc = base()
    doc["organization"] = copy.deepcopy(
        {
            "id": "o-a1b2c3d4e5",
            "management_account": MGMT,
            "root": {"id": "r-ab12", "rcps": ["DenyS3"], "accounts": [MGMT]},
            "units": [
                {
                    "id": "ou-ab12-11111111",
                    "name": "workloads",
                    "scps": ["FullAWSAccess", "DenyRegion"],
                    "accounts": [{"id": A1, "scps": ["OnlyS3"]}, A2],
                    "children": [],
                }
            ],
            "policies": {"DenyRegion": DENY_REGION, "OnlyS3": ONLY_S3, "DenyS3": DENY_S3_RCP},
        }
    )
    return doc


def org() -> Organization:
    found = build(org_world()).organization
    assert found is not None
    return found


def ids(policies: tuple[Any, ...]) -> list[str]:
    return [p.policy_id for p in policies]


class TestTree:
    def test_levels_root_first_account_last(self) -> None:
        member = org().member(A1)
        assert member is not None
        assert [lv.target_id for lv in member.levels] == ["r-ab12", "ou-ab12-11111111", A1]
        assert [ids(s) for s in member.scp_levels] == [
            ["FullAWSAccess"],  # no scps at the root: the default
            ["FullAWSAccess", "DenyRegion"],
            ["OnlyS3"],  # a list replaces the default
        ]

    def test_account_written_as_id_gets_the_default(self) -> None:
        member = org().member(A2)
        assert member is not None
        assert ids(member.scp_levels[-1]) == ["FullAWSAccess"]

    def test_org_path_stops_at_the_parent(self) -> None:
        o = org()
        assert o.members[A1].org_path == "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"
        assert o.members[MGMT].org_path == "o-a1b2c3d4e5/r-ab12/"

    def test_rcps_collect_every_level(self) -> None:
        member = org().member(A1)
        assert member is not None
        assert ids(member.rcps) == ["DenyS3"]

    def test_management_account_is_exempt(self) -> None:
        o = org()
        assert o.member(MGMT) is not None
        assert o.guarded(MGMT) is None
        assert o.guarded(A1) is o.members[A1]

    def test_accounts_outside_the_tree_are_outside(self) -> None:
        assert org().member("333333333333") is None

    def test_rcp_full_aws_access_is_accepted_and_evaluates_nothing(self) -> None:
        doc = edit(org_world(), "organization.root.rcps", ["RCPFullAWSAccess", "DenyS3"])
        o = build(doc).organization
        assert o is not None
        assert ids(o.members[A1].rcps) == ["DenyS3"]

    def test_inline_policies(self) -> None:
        doc = edit(org_world(), "organization.units[0].accounts[0].scps", [ONLY_S3])
        o = build(doc).organization
        assert o is not None
        assert ids(o.members[A1].scp_levels[-1]) == ["organization.units[0].accounts[0].scps[0]"]

    def test_no_organization(self) -> None:
        assert build(base()).organization is None


class TestProblems:
    @pytest.mark.parametrize(
        ("path", "value", "where", "fragment"),
        [
            ("organization.id", "org-1", "organization.id", "must match o-"),
            ("organization.root.id", "root", "organization.root.id", "must match r-"),
            ("organization.units[0].id", "ou-x", "organization.units[0].id", "must match ou-"),
            (
                "organization.units[0].id",
                "ou-zz99-11111111",
                "organization.units[0].id",
                "its root's id",
            ),
            (
                "organization.units[0].accounts[1]",
                A1,
                "organization.units[0].accounts[1]",
                "already placed",
            ),
            (
                "organization.units[0].accounts[1]",
                222222222222,
                "organization.units[0].accounts[1]",
                "quoted 12-digit",
            ),
            (
                "organization.root.scps",
                ["Missing"],
                "organization.root.scps[0]",
                "unknown policy 'Missing'",
            ),
            (
                "organization.root.scps",
                ["RCPFullAWSAccess"],
                "organization.root.scps[0]",
                "not a service control policy",
            ),
            (
                "organization.root.rcps",
                ["FullAWSAccess"],
                "organization.root.rcps[0]",
                "not a resource control policy",
            ),
            (
                "organization.root.scps",
                ["DenyRegion", "DenyRegion"],
                "organization.root.scps[1]",
                "attached twice",
            ),
            ("organization.root.accounts", [], "organization.management_account", "placed"),
            (
                "organization.policies.FullAWSAccess",
                ONLY_S3,
                "organization.policies.FullAWSAccess",
                "AWS-managed",
            ),
            ("organization.units[0].colour", "red", "organization.units[0]", "unknown key"),
        ],
    )
    def test_reported_at_its_path(
        self, path: str, value: object, where: str, fragment: str
    ) -> None:
        assert_issue(issues_of(edit(org_world(), path, value)), where, fragment)

    def test_missing_root(self) -> None:
        doc = edit(org_world(), "organization.root", DELETE)
        assert_issue(issues_of(doc), "organization", "missing required key 'root'")

    def test_scp_may_not_name_a_principal(self) -> None:
        bad = copy.deepcopy(DENY_REGION)
        bad["Statement"][0]["Principal"] = "*"
        doc = edit(org_world(), "organization.policies.DenyRegion", bad)
        assert_issue(
            issues_of(doc),
            "organization.policies.DenyRegion.Statement[0].Principal",
            "should not specify a principal",
        )

    def test_rcp_may_only_deny(self) -> None:
        bad = copy.deepcopy(DENY_S3_RCP)
        bad["Statement"][0]["Effect"] = "Allow"
        doc = edit(org_world(), "organization.policies.DenyS3", bad)
        assert_issue(
            issues_of(doc),
            "organization.policies.DenyS3.Statement[0].Effect",
            "only supported for the RCPFullAWSAccess policy",
        )

    def test_rcp_principal_must_be_star(self) -> None:
        bad = copy.deepcopy(DENY_S3_RCP)
        bad["Statement"][0]["Principal"] = {"AWS": "arn:aws:iam::111111111111:root"}
        doc = edit(org_world(), "organization.policies.DenyS3", bad)
        assert_issue(
            issues_of(doc), "organization.policies.DenyS3.Statement[0].Principal", 'Principal "*"'
        )

    def test_unattached_policy_is_still_validated(self) -> None:
        doc = edit(org_world(), "organization.policies.Spare", {"Version": V, "Statement": []})
        issues = issues_of(doc)
        assert any(p.startswith("organization.policies.Spare") for p, _ in issues), issues

    def test_policy_size_quota(self) -> None:
        big = {
            "Version": V,
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::" + "x" * 5200,
                }
            ],
        }
        doc = edit(org_world(), "organization.policies.DenyRegion", big)
        assert_issue(issues_of(doc), "organization.policies.DenyRegion", "PolicySize: 5120")

    def test_at_most_five_attached(self) -> None:
        doc = org_world()
        names = [f"P{i}" for i in range(6)]
        for name in names:
            doc["organization"]["policies"][name] = DENY_REGION
        edit(doc, "organization.root.scps", names)
        assert_issue(issues_of(doc), "organization.root.scps", "at most 5")

    def test_ous_at_most_five_deep(self) -> None:
        doc = org_world()
        units = doc["organization"]["units"]
        for depth in range(2, 7):
            child = {"id": f"ou-ab12-{depth}0000000", "name": f"level{depth}"}
            units[0]["children"] = [child]
            units = [child]
        issues = issues_of(doc)
        deepest = "organization.units[0]" + ".children[0]" * 5
        assert_issue(issues, deepest, "at most 5 deep")
        assert not any(p == deepest[: -len(".children[0]")] for p, _ in issues), issues


def test_the_documented_example_loads() -> None:
    """docs/ORGANIZATIONS.md's example is a valid world with the tree it describes."""
    text = (Path(__file__).parents[2] / "docs" / "ORGANIZATIONS.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    found = build(yaml.safe_load(block[1])).organization
    assert found is not None
    assert found.members["333333333333"].org_path == (
        "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-22222222/"
    )
