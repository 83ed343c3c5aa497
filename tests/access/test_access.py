"""The access report's core (sidecar/inspect_role): who can assume a role, with verdicts that
agree with AssumeRole itself, and what the role may do with its guardrails."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import AccessDenied, NoSuchEntity, ValidationError
from sidecar.identity.ids import user_id
from sidecar.identity.model import World
from sidecar.inspect_role import inspect_role, to_json
from sidecar.server.world_file import load_world_file
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role, create_session
from sidecar.sts.callers import SessionCaller, UserCaller
from sidecar.sts.keys import KeyRing
from tests.fakes import CountingEntropy, FixedClock

WORLD_FILE = Path(__file__).with_name("world.yaml")
TARGET = "arn:aws:iam::111111111111:role/target"


@pytest.fixture(scope="module")
def world() -> World:
    return load_world_file(str(WORLD_FILE), environ={})


@pytest.fixture(scope="module")
def report(world: World) -> dict:
    return to_json(inspect_role(world, TARGET))


def _grant(report: dict, sid: str) -> dict:
    return next(g for g in report["who_can_assume"]["grants"] if g["sid"] == sid)


def _identities(report: dict, sid: str) -> dict[str, dict]:
    (principal,) = _grant(report, sid)["principal_reports"]
    return {v["arn"].rsplit("/", 1)[-1]: v for v in principal["identities"]}


def test_account_principal_lists_each_identity_of_the_account_with_the_engine_verdict(
    report: dict,
) -> None:
    grant = _grant(report, "TheOtherAccount")
    assert grant["covers"] == ["sts:AssumeRole"]
    (principal,) = grant["principal_reports"]
    assert (principal["kind"], principal["account"]) == ("account", "222222222222")
    found = _identities(report, "TheOtherAccount")
    assert {k: v["outcome"] for k, v in found.items()} == {
        "allowed": "allowed",
        "blocked": "denied",
        "mallory": "denied",
        "nope": "denied",
        "withmfa": "allowed-if",
    }
    assert "because no identity-based policy allows" in found["nope"]["reason"]
    assert "explicit deny in a role trust policy" in found["mallory"]["reason"]
    assert "explicit deny in a service control policy" in found["blocked"]["reason"]
    (group,) = found["withmfa"]["conditions"]
    (alternative,) = group["any_of"]
    assert alternative["policy_type"] == "identity"
    assert (alternative["policy"], alternative["sid"]) == ("AssumeWithMfa", "OnlyWithMfa")
    assert alternative["conditions"] == [
        {"operator": "Bool", "key": "aws:MultiFactorAuthPresent", "values": ["true"]}
    ]


def test_same_account_role_named_by_arn_is_capped_by_its_boundary(report: dict) -> None:
    capped = _identities(report, "CappedCi")["ci-capped"]
    assert capped["outcome"] == "denied"
    assert "because no permissions boundary policy allows" in capped["reason"]
    note = _grant(report, "CappedCi")["principal_reports"][0]["note"]
    assert "permissions boundary must still allow" in note


def test_trust_conditions_make_a_conditional_verdict_and_denies_an_unless(report: dict) -> None:
    ci = _identities(report, "CiWithExternalId")["ci"]
    assert ci["outcome"] == "allowed-if"
    (group,) = ci["conditions"]
    assert group["any_of"][0]["policy_type"] == "resource"
    assert group["any_of"][0]["conditions"][0]["key"] == "sts:ExternalId"
    # A session's tags are not known in advance: the SCP Deny on a tag may still apply.
    (unless,) = ci["unless"]
    assert (unless["policy_type"], unless["policy"]) == ("scp", "NoBlockedCallers")


def test_rcp_of_the_role_account_denies_callers_outside_the_organization(report: dict) -> None:
    outsider = _identities(report, "Outsiders")["outsider"]
    assert outsider["outcome"] == "denied"
    assert "explicit deny in a resource control policy" in outsider["reason"]


def test_trust_denies_and_rcps_covering_assume_are_limits(report: dict) -> None:
    limits = [(s["policy"], s["sid"], s["effect"]) for s in report["who_can_assume"]["limits"]]
    assert limits == [
        ("TrustPolicy", "NotMallory", "Deny"),
        ("StsFromOrgOnly", "OrgOnly", "Deny"),
    ]
    assert report["who_can_assume"]["limits"][0]["principals"] == [
        {"kind": "aws", "value": "arn:aws:iam::222222222222:user/mallory"}
    ]


def test_verdicts_agree_with_assume_role(world: World) -> None:
    """Each user's verdict is what AssumeRole answers for a call without MFA or other keys."""
    env = StsEnv(
        world, KeyRing.generate(CountingEntropy(), "k1"), FixedClock(1.8e9), CountingEntropy()
    )
    found = {
        **_identities(to_json(inspect_role(world, TARGET)), "TheOtherAccount"),
        **_identities(to_json(inspect_role(world, TARGET)), "Outsiders"),
    }
    for name, verdict in found.items():
        user = next(u for a in world.accounts.values() for u in a.users.values() if u.name == name)
        params = AssumeRoleParams(TARGET, "check")
        if verdict["outcome"] == "allowed":
            assert assume_role(env, UserCaller(user), params).session.role_name == "target"
        else:  # denied, or allowed only with MFA, which this call lacks
            with pytest.raises(AccessDenied) as err:
                assume_role(env, UserCaller(user), params)
            if verdict["outcome"] == "denied":
                assert err.value.message == verdict["reason"]


def test_conditional_verdict_agrees_with_assume_role(world: World) -> None:
    env = StsEnv(
        world, KeyRing.generate(CountingEntropy(), "k1"), FixedClock(1.8e9), CountingEntropy()
    )
    ci = world.role_by_name("111111111111", "ci")
    assert ci is not None
    caller = SessionCaller(create_session(env, ci, session_name="build", duration=900).session)
    with pytest.raises(AccessDenied):
        assume_role(env, caller, AssumeRoleParams(TARGET, "xx"))
    ok = assume_role(env, caller, AssumeRoleParams(TARGET, "xx", external_id="build-42"))
    assert ok.session.role_name == "target"


def test_what_it_may_do_lists_allows_denies_and_guardrails(report: dict) -> None:
    what = report["what_it_may_do"]
    queues, read = what["policies"]
    assert (queues["name"], queues["kind"], read["kind"]) == ("Queues", "inline", "managed")
    (send,) = queues["allows"]
    assert (send["actions"], send["not_action"]) == (["sqs:Delete*"], True)
    assert (send["resources"], send["not_resource"]) == (["arn:aws:sqs:*:*:secret-*"], True)
    assert [d["sid"] for d in queues["denies"]] == ["NoSecretData"]
    assert read["arn"] == "arn:aws:iam::111111111111:policy/ReadData"
    assert read["allows"][0]["conditions"] == [
        {"operator": "Bool", "key": "aws:SecureTransport", "values": ["true"]}
    ]
    boundary = what["permissions_boundary"]
    assert boundary["name"] == "Boundary"
    assert boundary["allows"][0]["actions"] == ["s3:*", "sts:AssumeRole"]
    org = what["organization"]
    assert org["status"] == "member"
    assert [lvl["target"] for lvl in org["levels"]] == [
        "r-ab12",
        "ou-ab12-11111111",
        "111111111111",
    ]
    root = org["levels"][0]
    assert [p["name"] for p in root["scps"]] == ["FullAWSAccess", "DenyLeaveOrg"]
    assert root["scps"][1]["denies"][0]["sid"] == "NoLeaving"
    assert [p["name"] for p in root["rcps"]] == ["StsFromOrgOnly"]
    assert "only narrow" in what["session_policies"]


SMALL = """
accounts:
  - id: "999999999999"
    roles:
      - name: admin
        trust_policy:
          Version: "2012-10-17"
          Statement: [{Effect: Allow, Principal: {AWS: "*"}, Action: "sts:*"}]
  - id: "555555555555"
    roles:
      - name: lone
        trust_policy:
          Version: "2012-10-17"
          Statement:
            - Effect: Allow
              Principal: {Federated: accounts.google.com}
              Action: sts:AssumeRoleWithWebIdentity
organization:
  id: o-a1b2c3d4e5
  management_account: "999999999999"
  root: {id: r-ab12, scps: [DenyAll], accounts: ["999999999999"]}
  policies:
    DenyAll: {Version: "2012-10-17", Statement: [{Effect: Deny, Action: "*", Resource: "*"}]}
"""


def test_management_account_and_outside_accounts_have_no_guardrails(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    small = load_world_file(str(path), environ={})
    admin = to_json(inspect_role(small, "arn:aws:iam::999999999999:role/admin"))
    org = admin["what_it_may_do"]["organization"]
    assert (org["status"], org["levels"]) == ("management", [])
    (grant,) = admin["who_can_assume"]["grants"]
    assert grant["covers"] == [
        "sts:AssumeRole",
        "sts:AssumeRoleWithWebIdentity",
        "sts:AssumeRoleWithSAML",
        "sts:TagSession",
        "sts:SetSourceIdentity",
        "sts:SetContext",
    ]
    assert grant["principal_reports"][0]["kind"] == "everyone"
    lone = to_json(inspect_role(small, "arn:aws:iam::555555555555:role/lone"))
    assert lone["what_it_may_do"]["organization"]["status"] == "outside"
    (grant,) = lone["who_can_assume"]["grants"]
    assert grant["covers"] == ["sts:AssumeRoleWithWebIdentity"]
    assert grant["principal_reports"][0]["kind"] == "federated"


def test_unknown_role_and_non_role_arns_are_refused(world: World) -> None:
    with pytest.raises(NoSuchEntity, match=r"The role with name ghost cannot be found\."):
        inspect_role(world, "arn:aws:iam::111111111111:role/ghost")
    with pytest.raises(ValidationError, match="is not a role ARN"):
        inspect_role(world, "arn:aws:iam::111111111111:user/allowed")


def test_unique_id_principal_names_its_identity(tmp_path: Path) -> None:
    uid = user_id("aws", "222222222222", "allowed")
    path = tmp_path / "ids.yaml"
    path.write_text(
        WORLD_FILE.read_text().replace(
            'Principal: {AWS: "444444444444"}', f'Principal: {{AWS: "{uid}"}}'
        )
    )
    world = load_world_file(str(path), environ={})
    (principal,) = _grant(to_json(inspect_role(world, TARGET)), "Outsiders")["principal_reports"]
    assert (principal["kind"], principal["account"]) == ("unique-id", "222222222222")
    assert [(v["arn"], v["outcome"]) for v in principal["identities"]] == [
        ("arn:aws:iam::222222222222:user/allowed", "allowed")
    ]
