"""The world file: loading, the built World and its indexes, and every validation message."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.errors import WorldError
from sidecar.identity.load import build_world
from sidecar.identity.model import World
from sidecar.server.world_file import load_world_file

WORLDS = Path(__file__).parent / "worlds"
RICH_ENV = {
    "ALICE_SECRET": "alice-secret-value",
    "ALICE_MFA_SEED": "JBSWY3DPEHPK3PXP",
    "CAROL_SECRET": "carol-secret-value",
}
A1 = "111111111111"
KEY = "AKIAALICE00000000001"
V = "2012-10-17"
ALLOW: dict[str, Any] = {
    "Version": V,
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
TRUST: dict[str, Any] = {
    "Version": V,
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "orders.mesh.local"},
            "Action": "sts:AssumeRole",
        }
    ],
}
DELETE = object()


def base() -> dict[str, Any]:
    """A small valid world that the check cases edit."""
    return copy.deepcopy(
        {
            "accounts": [
                {
                    "id": A1,
                    "managed_policies": [{"name": "Read", "document": ALLOW}],
                    "roles": [{"name": "app", "trust_policy": TRUST}],
                    "users": [
                        {"name": "alice", "access_keys": [{"id": KEY, "secret_env": "ALICE"}]}
                    ],
                    "oidc_providers": [
                        {
                            "url": "https://issuer.example",
                            "client_ids": ["sts.amazonaws.com"],
                            "jwks_file": "/jwks.json",
                        }
                    ],
                    "saml_providers": [{"name": "corp", "metadata_file": "/idp.xml"}],
                    "resource_policies": [],
                }
            ]
        }
    )


def secrets(kind: str, ref: str) -> str | None:
    return {("env", "ALICE"): "alice-secret-value", ("env", "SEED"): "JBSWY3DPEHPK3PXP"}.get(
        (kind, ref)
    )


def build(doc: Any) -> World:
    return build_world(doc, source="world.yaml", secrets=secrets)


def issues_of(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(WorldError) as info:
        build(doc)
    return info.value.issues


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def edit(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Set (or with DELETE remove) the value at a dotted path such as `accounts[0].roles`;
    an index one past the end of a list appends."""
    steps: list[str | int] = [name if name else int(index) for name, index in _TOKEN.findall(path)]
    node: Any = doc
    for step in steps[:-1]:
        node = node[step]
    last = steps[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(copy.deepcopy(value))
    else:
        node[last] = copy.deepcopy(value)
    return doc


def policy_with(size: int) -> dict[str, Any]:
    """An identity policy of about ``size`` non-whitespace characters."""
    pad = "x" * max(size - 100, 1)
    return {
        "Version": V,
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{pad}"}
        ],
    }


def assert_issue(issues: list[tuple[str, str]], path: str, fragment: str) -> None:
    assert any(p == path and fragment in m for p, m in issues), issues


# -- the rich world ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rich() -> World:
    return load_world_file(str(WORLDS / "rich.yaml"), environ=RICH_ENV, generation=3)


class TestRichWorld:
    def test_accounts_keep_their_quoted_ids(self, rich: World) -> None:
        """Both accounts load, the leading zero of 022222222222 kept; partition defaults to aws."""
        assert list(rich.accounts) == [A1, "022222222222"]
        assert rich.partition == "aws"
        assert rich.generation == 3

    def test_roles_have_arns_with_paths_and_stable_ids(self, rich: World) -> None:
        """A role's ARN includes its path; its id is AROA...; every field is carried over."""
        role = rich.role("arn:aws:iam::111111111111:role/apps/app-reader")
        assert role is not None
        assert rich.role_by_name(A1, "APP-READER") is role
        assert role.role_id.startswith("AROA")
        assert len(role.role_id) == 21
        assert role.max_session_duration == 7200
        assert role.description == "Reads reports for the orders service"
        assert dict(role.tags) == {"team": "payments", "cost center": "4711"}
        assert role.managed_policy_arns == ("arn:aws:iam::111111111111:policy/S3Read",)
        assert role.permissions_boundary == "arn:aws:iam::111111111111:policy/boundaries/Boundary"
        assert role.trust_policy.policy_id == "TrustPolicy"
        assert list(role.inline_policies) == ["QueueSend", "DenyDelete"]
        assert role.inline_policies["DenyDelete"].policy_id == "DenyDelete"
        saml_role = rich.role_by_name(A1, "samladmin")
        assert saml_role is not None
        assert saml_role.max_session_duration == 3600

    def test_roles_by_arn_indexes_every_account(self, rich: World) -> None:
        """roles_by_arn and users_by_arn hold the entities of all accounts."""
        assert set(rich.roles_by_arn) == {
            "arn:aws:iam::111111111111:role/apps/app-reader",
            "arn:aws:iam::111111111111:role/SamlAdmin",
            "arn:aws:iam::022222222222:role/cross-reader",
        }
        assert set(rich.users_by_arn) == {
            "arn:aws:iam::111111111111:user/staff/alice",
            "arn:aws:iam::022222222222:user/carol",
        }

    def test_managed_policies_by_arn_with_compact_text(self, rich: World) -> None:
        """A managed policy's id is its ARN; its text is compact JSON (the unquoted YAML
        Version date read back as 2012-10-17); JSON-string documents are accepted too."""
        policy = rich.managed_policy("arn:aws:iam::111111111111:policy/S3Read")
        assert policy is not None
        assert policy.policy_id.startswith("ANPA")
        assert policy.document.policy_id == policy.arn
        assert json.loads(policy.text)["Version"] == V
        assert " " not in policy.text
        boundary = rich.managed_policy("arn:aws:iam::111111111111:policy/boundaries/Boundary")
        assert boundary is not None
        assert boundary.path == "/boundaries/"
        assert boundary.text.startswith('{"Version":"2012-10-17"')

    def test_users_access_keys_and_mfa(self, rich: World) -> None:
        """Access keys are indexed by id with their user; secrets and MFA seeds are resolved."""
        user, key = rich.access_keys["AKIAALICE00000000001"]
        assert user is rich.users_by_arn["arn:aws:iam::111111111111:user/staff/alice"]
        assert key.secret == "alice-secret-value"
        assert user.user_id.startswith("AIDA")
        (device,) = user.mfa_devices
        assert device.serial_number == "arn:aws:iam::111111111111:mfa/alice-phone"
        assert device.seed == b"Hello!\xde\xad\xbe\xef"
        assert rich.access_keys["AKIACAROL00000000002"][1].secret == "carol-secret-value"

    def test_identity_providers(self, rich: World) -> None:
        """OIDC provider ARNs drop https:// and a trailing slash; SAML defaults are AWS's."""
        oidc = rich.accounts[A1].oidc_providers[
            "arn:aws:iam::111111111111:oidc-provider/kubernetes.default.svc"
        ]
        assert oidc.client_ids == ("pods.eks.amazonaws.com", "sts.amazonaws.com")
        assert oidc.jwks_file == "/var/run/oidc/jwks.json"
        tenant = rich.accounts["022222222222"].oidc_providers[
            "arn:aws:iam::022222222222:oidc-provider/issuer.example.com/tenant"
        ]
        assert tenant.url == "https://issuer.example.com/tenant/"
        assert tenant.key_prefix == "issuer.example.com/tenant"
        assert tenant.jwks_url == "https://issuer.example.com/tenant/keys"
        saml = rich.accounts[A1].saml_providers["arn:aws:iam::111111111111:saml-provider/corp-idp"]
        assert saml.recipient == "https://signin.aws.amazon.com/saml"
        assert saml.audience == "urn:amazon:webservices"

    def test_resource_policies(self, rich: World) -> None:
        """Resource policies keep their pattern, which is also the compiled policy's id."""
        (rp,) = rich.accounts[A1].resource_policies
        assert rp.resource == "arn:aws:s3:::reports/*"
        assert rp.document.policy_id == "arn:aws:s3:::reports/*"

    def test_service_principals_pod_identity_ext_authz_signing(self, rich: World) -> None:
        """Top-level sections are carried over, and services are indexed by SPIFFE id."""
        orders = rich.services_by_spiffe["spiffe://cluster.local/ns/shop/sa/orders-canary"]
        assert orders.name == "orders.mesh.local"
        assert len(rich.services_by_spiffe) == 3
        assert rich.pod_identity is not None
        assert rich.pod_identity.cluster_name == "demo"
        (association,) = rich.pod_identity.associations
        assert association.role_arn in rich.roles_by_arn
        assert rich.ext_authz is not None
        assert rich.ext_authz["dry_run"] is False
        assert rich.ext_authz["default"] == {
            "action": "http:{method}",
            "resource": "arn:aws:http:::{host}{path}",
        }
        routes = rich.ext_authz["routes"]
        assert isinstance(routes, list)
        assert routes[1] == {
            "path": "/files/{key+}",
            "action": "files:{method}",
            "resource": "arn:aws:files:::object/{key}",
            "context": [],
        }
        assert routes[0]["context"] == [
            {"from": "query", "name": "expand", "key": "orders:Expand", "type": "STRING"},
            {
                "from": "header",
                "name": "X-Tenant",
                "key": "aws:RequestTag/tenant",
                "type": "STRING",
            },
            {"from": "query", "name": "tag", "key": "orders:Tags", "type": "STRING_LIST"},
        ]
        assert rich.ext_authz["strip_credentials"] is True
        assert rich.ext_authz["envoy_identities"] == [
            "spiffe://cluster.local/ns/istio-system/sa/ingressgateway"
        ]
        assert rich.signing_keys_file == "/etc/iam-sidecar/keys.json"

    def test_ids_are_stable_across_loads(self, rich: World) -> None:
        """Loading the same file again gives the same role, user and policy ids."""
        again = load_world_file(str(WORLDS / "rich.yaml"), environ=RICH_ENV)
        for arn, role in rich.roles_by_arn.items():
            assert again.roles_by_arn[arn].role_id == role.role_id
        for arn, user in rich.users_by_arn.items():
            assert again.users_by_arn[arn].user_id == user.user_id
        for account_id, account in rich.accounts.items():
            for arn, policy in account.managed_policies.items():
                assert (
                    again.accounts[account_id].managed_policies[arn].policy_id == policy.policy_id
                )


# -- what is accepted ------------------------------------------------------------------------------


class TestAccepted:
    def test_the_base_world_is_valid(self) -> None:
        """The world the check cases edit loads without problems."""
        world = build(base())
        assert world.role_by_name(A1, "app") is not None
        assert world.pod_identity is None
        assert world.ext_authz is None

    def test_ext_authz_defaults(self) -> None:
        """An ext_authz block gets its defaults, and a context entry its STRING type; a route
        may take caller keys (aws:RequestTag/..., service keys) from its query and headers."""
        doc = edit(base(), "ext_authz", {"routes": [{**ROUTE, "context": [CTX, HDR]}]})
        ext_authz = build(doc).ext_authz
        assert ext_authz == {
            "routes": [
                {**ROUTE, "context": [{**CTX, "type": "STRING"}, {**HDR, "type": "STRING"}]}
            ],
            "default": "deny",
            "dry_run": False,
            "strip_credentials": False,
            "envoy_identities": [],
        }

    def test_json_string_and_yaml_map_policies(self) -> None:
        """A policy may be a JSON string or a map, and both compile to the same statements."""
        doc = edit(
            base(), "accounts[0].roles[0].inline_policies", {"A": ALLOW, "B": json.dumps(ALLOW)}
        )
        role = build(doc).role_by_name(A1, "app")
        assert role is not None
        a, b = role.inline_policies["A"], role.inline_policies["B"]
        assert a.policy.statements == b.policy.statements

    def test_unquoted_version_date_in_yaml(self) -> None:
        """`Version: 2012-10-17` unquoted (a YAML date) is accepted for a managed policy."""
        text = (WORLDS / "rich.yaml").read_text()
        assert "Version: 2012-10-17            # unquoted" in text
        world = load_world_file(str(WORLDS / "rich.yaml"), environ=RICH_ENV)
        policy = world.managed_policy("arn:aws:iam::111111111111:policy/S3Read")
        assert policy is not None
        assert policy.document.policy.version == V

    def test_partition_shapes_the_arns(self) -> None:
        """With partition aws-cn every ARN and principal check uses aws-cn."""
        doc = edit(base(), "partition", "aws-cn")
        edit(
            doc,
            "accounts[0].roles[0].managed_policy_arns",
            ["arn:aws-cn:iam::111111111111:policy/Read"],
        )
        world = build(doc)
        assert "arn:aws-cn:iam::111111111111:role/app" in world.roles_by_arn

    @pytest.mark.parametrize(
        "partition", ["aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"]
    )
    def test_every_aws_partition_is_accepted(self, partition: str) -> None:
        """All of AWS's partitions are accepted, not only aws, aws-cn and aws-us-gov."""
        world = build(edit(base(), "partition", partition))
        assert f"arn:{partition}:iam::111111111111:role/app" in world.roles_by_arn

    def test_unknown_partition_lists_the_known_ones(self) -> None:
        issues = issues_of(edit(base(), "partition", "aws-moon"))
        assert issues == [
            (
                "partition",
                "unknown partition 'aws-moon' (expected one of aws, aws-cn, aws-us-gov, "
                "aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc)",
            )
        ]

    def test_principals_outside_the_world_and_role_paths(self) -> None:
        """Principals in accounts the world lacks are accepted, and a role principal matches
        by account and name whatever path it gives."""
        trust = copy.deepcopy(TRUST)
        trust["Statement"][0]["Principal"] = {
            "AWS": [
                "arn:aws:iam::999999999999:role/Anything",
                "arn:aws:iam::111111111111:role/some/path/app",
                "arn:aws:iam::111111111111:user/alice",
                "arn:aws:iam::111111111111:root",
                "*",
            ]
        }
        build(edit(base(), "accounts[0].roles[0].trust_policy", trust))

    def test_federated_principals_naming_world_providers(self) -> None:
        """Federated principals naming the world's OIDC and SAML providers are accepted."""
        trust = {
            "Version": V,
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": [
                            "arn:aws:iam::111111111111:oidc-provider/issuer.example",
                            "arn:aws:iam::111111111111:saml-provider/corp",
                        ]
                    },
                    "Action": ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRoleWithSAML"],
                }
            ],
        }
        build(edit(base(), "accounts[0].roles[0].trust_policy", trust))

    def test_inline_policies_just_under_the_role_limit(self) -> None:
        """A role's inline policies may total 10,240 characters."""
        doc = edit(
            base(),
            "accounts[0].roles[0].inline_policies",
            {"A": policy_with(5000), "B": policy_with(5000)},
        )
        build(doc)


# -- every check, with its path and message ------------------------------------------------------

R0 = "accounts[0].roles[0]"
U0 = "accounts[0].users[0]"
M0 = "accounts[0].managed_policies[0]"
O0 = "accounts[0].oidc_providers[0]"
S0 = "accounts[0].saml_providers[0]"
K0 = f"{U0}.access_keys[0]"
OTHER = {"id": "222222222222", "managed_policies": [{"name": "Theirs", "document": ALLOW}]}
POD = {
    "issuer": "https://issuer.example",
    "audience": "pods",
    "cluster_name": "demo",
    "associations": [
        {
            "namespace": "shop",
            "service_account": "orders",
            "role_arn": "arn:aws:iam::111111111111:role/app",
        }
    ],
}
ROUTE = {
    "path": "/orders/{id}",
    "action": "orders:GetOrder",
    "resource": "arn:aws:orders:::order/{id}",
}
CTX = {"from": "query", "name": "expand", "key": "orders:Expand"}
HDR = {"from": "header", "name": "x-tenant", "key": "aws:RequestTag/tenant"}


def _trust_naming(principal: dict[str, Any]) -> dict[str, Any]:
    trust = copy.deepcopy(TRUST)
    trust["Statement"].append(
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    )
    return trust


def _eleven_policies() -> list[dict[str, Any]]:
    return [{"name": f"P{i}", "document": ALLOW} for i in range(11)]


Case = tuple[str, list[tuple[str, object]], str, str]  # id, edits, path, message

SHAPE: list[Case] = [
    (
        "unknown-top-key",
        [("partitionz", "aws")],
        "",
        "unknown key 'partitionz' (did you mean 'partition'?)",
    ),
    (
        "unknown-account-key",
        [("accounts[0].rolez", [])],
        "accounts[0]",
        "unknown key 'rolez' (did you mean 'roles'?)",
    ),
    ("unknown-role-key", [(f"{R0}.trust", {})], R0, "unknown key 'trust'"),
    ("missing-accounts", [("accounts", DELETE)], "", "missing required key 'accounts'"),
    ("missing-trust", [(f"{R0}.trust_policy", DELETE)], R0, "missing required key 'trust_policy'"),
    (
        "roles-not-list",
        [("accounts[0].roles", {})],
        "accounts[0].roles",
        "expected a list, got a map",
    ),
    ("role-not-map", [("accounts[0].roles[0]", "app")], R0, "expected a map, got a string"),
    ("name-not-string", [(f"{R0}.name", 7)], f"{R0}.name", "expected a string, got an integer"),
    (
        "account-id-int",
        [("accounts[0].id", 11111111111)],
        "accounts[0].id",
        "account id must be a quoted 12-digit string: an unquoted YAML number loses leading zeros",
    ),
    (
        "account-id-short",
        [("accounts[0].id", "12345")],
        "accounts[0].id",
        "must be exactly 12 digits",
    ),
    (
        "account-id-dup",
        [("accounts[1]", {"id": A1})],
        "accounts[1].id",
        "duplicate account id '111111111111' (also accounts[0])",
    ),
    ("partition", [("partition", "aws-moon")], "partition", "unknown partition 'aws-moon'"),
]
NAMES: list[Case] = [
    (
        "role-name-chars",
        [(f"{R0}.name", "app reader")],
        f"{R0}.name",
        "role name 'app reader' must be 1-64 characters of letters, digits and _+=,.@-",
    ),
    ("role-name-long", [(f"{R0}.name", "r" * 65)], f"{R0}.name", "must be 1-64 characters"),
    ("role-name-empty", [(f"{R0}.name", "")], f"{R0}.name", "must be 1-64 characters"),
    ("user-name-chars", [(f"{U0}.name", "al/ice")], f"{U0}.name", "user name 'al/ice' must be"),
    (
        "policy-name-long",
        [(f"{M0}.name", "p" * 129)],
        f"{M0}.name",
        "managed policy name '" + "p" * 129 + "' must be 1-128 characters",
    ),
    (
        "inline-name-slash",
        [(f"{R0}.inline_policies", {"a/b": ALLOW})],
        f"{R0}.inline_policies.a/b",
        "inline policy name 'a/b' must be 1-128 ASCII characters without whitespace or \\ / * ?",
    ),
    (
        "inline-name-space",
        [(f"{R0}.inline_policies", {"a b": ALLOW})],
        f"{R0}.inline_policies.a b",
        "inline policy name 'a b'",
    ),
    (
        "inline-name-long",
        [(f"{R0}.inline_policies", {"n" * 129: ALLOW})],
        f"{R0}.inline_policies.{'n' * 129}",
        "inline policy name",
    ),
    (
        "path-no-slashes",
        [(f"{R0}.path", "apps")],
        f"{R0}.path",
        "path 'apps' must be '/' or begin and end with '/'",
    ),
    ("path-non-ascii", [(f"{U0}.path", "/é/")], f"{U0}.path", "path '/é/' must be"),
    ("path-long", [(f"{R0}.path", "/" + "a" * 511 + "/")], f"{R0}.path", "at most 512 characters"),
    (
        "dup-role",
        [("accounts[0].roles[1]", {"name": "APP", "trust_policy": TRUST})],
        "accounts[0].roles[1].name",
        "duplicate role name 'APP' (role names are case-insensitive)",
    ),
    (
        "dup-user",
        [("accounts[0].users[1]", {"name": "Alice"})],
        "accounts[0].users[1].name",
        "duplicate user name 'Alice'",
    ),
    (
        "dup-policy",
        [("accounts[0].managed_policies[1]", {"name": "read", "path": "/x/", "document": ALLOW})],
        "accounts[0].managed_policies[1].name",
        "duplicate managed policy name 'read'",
    ),
    (
        "description-long",
        [(f"{R0}.description", "d" * 1001)],
        f"{R0}.description",
        "description is 1001 characters (at most 1000)",
    ),
    (
        "session-short",
        [(f"{R0}.max_session_duration", 900)],
        f"{R0}.max_session_duration",
        "max_session_duration must be an integer from 3600 to 43200 seconds, got 900",
    ),
    (
        "session-long",
        [(f"{R0}.max_session_duration", 43201)],
        f"{R0}.max_session_duration",
        "got 43201",
    ),
    (
        "session-string",
        [(f"{R0}.max_session_duration", "3600")],
        f"{R0}.max_session_duration",
        "got '3600'",
    ),
]
TAGS: list[Case] = [
    (
        "tags-not-map",
        [(f"{R0}.tags", ["a"])],
        f"{R0}.tags",
        "expected a map of tag keys to values, got a list",
    ),
    (
        "tags-too-many",
        [(f"{R0}.tags", {f"k{i}": "v" for i in range(51)})],
        f"{R0}.tags",
        "too many tags: 51 (at most 50)",
    ),
    (
        "tag-key-long",
        [(f"{R0}.tags", {"k" * 129: "v"})],
        f"{R0}.tags.{'k' * 129}",
        "must be 1-128 characters",
    ),
    ("tag-key-chars", [(f"{R0}.tags", {"a*b": "v"})], f"{R0}.tags.a*b", "tag key 'a*b' must be"),
    (
        "tag-key-reserved",
        [(f"{R0}.tags", {"AWS:team": "v"})],
        f"{R0}.tags.AWS:team",
        "tag key 'AWS:team' uses the reserved prefix 'aws:'",
    ),
    (
        "tag-key-dup",
        [(f"{U0}.tags", {"Team": "a", "team": "b"})],
        f"{U0}.tags.team",
        "duplicate tag key 'team' (tag keys are case-insensitive)",
    ),
    (
        "tag-value-long",
        [(f"{R0}.tags", {"k": "v" * 257})],
        f"{R0}.tags.k",
        "tag value must be at most 256",
    ),
    ("tag-value-chars", [(f"{R0}.tags", {"k": "a;b"})], f"{R0}.tags.k", "tag value must be"),
    (
        "tag-value-int",
        [(f"{R0}.tags", {"k": 5})],
        f"{R0}.tags.k",
        "tag value must be a quoted string, got an integer",
    ),
]
POLICIES: list[Case] = [
    (
        "trust-resource",
        [(f"{R0}.trust_policy.Statement[0].Resource", "*")],
        f"{R0}.trust_policy.Statement[0].Resource",
        "MalformedPolicyDocument: Has prohibited field Resource.",
    ),
    (
        "trust-json-syntax",
        [(f"{R0}.trust_policy", "{not json")],
        f"{R0}.trust_policy",
        "MalformedPolicyDocument: Syntax errors in policy.",
    ),
    (
        "trust-not-document",
        [(f"{R0}.trust_policy", 5)],
        f"{R0}.trust_policy",
        "expected a policy document (a map or a JSON string), got an integer",
    ),
    (
        "trust-too-big",
        [
            (
                f"{R0}.trust_policy.Statement[0].Condition",
                {"StringEquals": {"aws:PrincipalTag/x": ["v" * 40] * 60}},
            )
        ],
        f"{R0}.trust_policy",
        "LimitExceeded: Cannot exceed quota for ACLSizePerRole: 2048",
    ),
    (
        "managed-version",
        [(f"{M0}.document.Version", DELETE)],
        f"{M0}.document.Version",
        "MalformedPolicyDocument: Policy document must be version 2012-10-17 or greater.",
    ),
    (
        "managed-too-big",
        [(f"{M0}.document", policy_with(6300))],
        f"{M0}.document",
        "LimitExceeded: Cannot exceed quota for PolicySize: 6144",
    ),
    (
        "inline-principal",
        [
            (
                f"{R0}.inline_policies",
                {"A": {**ALLOW, "Statement": [{**ALLOW["Statement"][0], "Principal": "*"}]}},
            )
        ],
        f"{R0}.inline_policies.A.Statement[0].Principal",
        "MalformedPolicyDocument: Policy document should not specify a principal.",
    ),
    (
        "role-inline-total",
        [(f"{R0}.inline_policies", {"A": policy_with(6000), "B": policy_with(6000)})],
        f"{R0}.inline_policies",
        "LimitExceeded: Maximum policy size of 10240 bytes exceeded for role app",
    ),
    (
        "user-inline-total",
        [(f"{U0}.inline_policies", {"A": policy_with(1500), "B": policy_with(1500)})],
        f"{U0}.inline_policies",
        "LimitExceeded: Maximum policy size of 2048 bytes exceeded for user alice",
    ),
    (
        "inline-not-map",
        [(f"{U0}.inline_policies", [ALLOW])],
        f"{U0}.inline_policies",
        "expected a map of policy names to documents, got a list",
    ),
    (
        "resource-policy-principal",
        [("accounts[0].resource_policies[0]", {"resource": "arn:aws:s3:::b/*", "document": ALLOW})],
        "accounts[0].resource_policies[0].document.Statement[0]",
        "MalformedPolicyDocument: Missing required field Principal",
    ),
]
ATTACHMENTS: list[Case] = [
    (
        "attached-missing",
        [(f"{R0}.managed_policy_arns", ["arn:aws:iam::111111111111:policy/Nope"])],
        f"{R0}.managed_policy_arns[0]",
        "no managed policy arn:aws:iam::111111111111:policy/Nope",
    ),
    (
        "attached-wrong-path",
        [(f"{U0}.managed_policy_arns", ["arn:aws:iam::111111111111:policy/x/Read"])],
        f"{U0}.managed_policy_arns[0]",
        "no managed policy arn:aws:iam::111111111111:policy/x/Read",
    ),
    (
        "boundary-missing",
        [(f"{U0}.permissions_boundary", "arn:aws:iam::111111111111:policy/Gone")],
        f"{U0}.permissions_boundary",
        "no managed policy arn:aws:iam::111111111111:policy/Gone",
    ),
    (
        "attached-other-account",
        [
            ("accounts[1]", OTHER),
            (f"{R0}.managed_policy_arns", ["arn:aws:iam::222222222222:policy/Theirs"]),
        ],
        f"{R0}.managed_policy_arns[0]",
        "managed policy arn:aws:iam::222222222222:policy/Theirs belongs to another account",
    ),
    (
        "attached-twice",
        [(f"{R0}.managed_policy_arns", ["arn:aws:iam::111111111111:policy/Read"] * 2)],
        f"{R0}.managed_policy_arns[1]",
        "is attached twice",
    ),
    (
        "role-quota",
        [
            ("accounts[0].managed_policies", _eleven_policies()),
            (
                f"{R0}.managed_policy_arns",
                [f"arn:aws:iam::111111111111:policy/P{i}" for i in range(11)],
            ),
        ],
        f"{R0}.managed_policy_arns",
        "LimitExceeded: Cannot exceed quota for PoliciesPerRole: 10",
    ),
    (
        "user-quota",
        [
            ("accounts[0].managed_policies", _eleven_policies()),
            (
                f"{U0}.managed_policy_arns",
                [f"arn:aws:iam::111111111111:policy/P{i}" for i in range(11)],
            ),
        ],
        f"{U0}.managed_policy_arns",
        "LimitExceeded: Cannot exceed quota for PoliciesPerUser: 10",
    ),
]
PRINCIPALS: list[Case] = [
    (
        "principal-role",
        [(f"{R0}.trust_policy", _trust_naming({"AWS": "arn:aws:iam::111111111111:role/Missing"}))],
        f"{R0}.trust_policy.Statement[1].Principal.AWS",
        "MalformedPolicyDocument: Invalid principal in policy: "
        '"AWS":"arn:aws:iam::111111111111:role/Missing"',
    ),
    (
        "principal-role-case",
        [(f"{R0}.trust_policy", _trust_naming({"AWS": "arn:aws:iam::111111111111:role/APP"}))],
        f"{R0}.trust_policy.Statement[1].Principal.AWS",
        '"AWS":"arn:aws:iam::111111111111:role/APP"',
    ),
    (
        "principal-user",
        [(f"{R0}.trust_policy", _trust_naming({"AWS": ["arn:aws:iam::111111111111:user/bob"]}))],
        f"{R0}.trust_policy.Statement[1].Principal.AWS",
        '"AWS":"arn:aws:iam::111111111111:user/bob"',
    ),
    (
        "principal-oidc",
        [
            (
                f"{R0}.trust_policy",
                {
                    "Version": V,
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRoleWithWebIdentity",
                            "Principal": {
                                "Federated": "arn:aws:iam::111111111111:oidc-provider/other.example"
                            },
                        }
                    ],
                },
            )
        ],
        f"{R0}.trust_policy.Statement[0].Principal.Federated",
        "Invalid principal in policy: "
        '"FEDERATED":"arn:aws:iam::111111111111:oidc-provider/other.example"',
    ),
    (
        "principal-resource-policy",
        [
            (
                "accounts[0].resource_policies[0]",
                {
                    "resource": "arn:aws:s3:::b/*",
                    "document": {
                        "Version": V,
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "s3:GetObject",
                                "Resource": "arn:aws:s3:::b/*",
                                "Principal": {"AWS": "arn:aws:iam::111111111111:role/Ghost"},
                            }
                        ],
                    },
                },
            )
        ],
        "accounts[0].resource_policies[0].document.Statement[0].Principal.AWS",
        '"AWS":"arn:aws:iam::111111111111:role/Ghost"',
    ),
]
CREDENTIALS: list[Case] = [
    (
        "key-both-secrets",
        [(f"{K0}.secret_file", "/s")],
        K0,
        "give exactly one of 'secret_env' or 'secret_file'",
    ),
    (
        "key-no-secret",
        [(f"{K0}.secret_env", DELETE)],
        K0,
        "give exactly one of 'secret_env' or 'secret_file'",
    ),
    (
        "key-id-shape",
        [(f"{K0}.id", "AKIA1234")],
        f"{K0}.id",
        "access key id 'AKIA1234' must be AKIA followed by 12-124 upper-case letters and digits",
    ),
    ("key-id-prefix", [(f"{K0}.id", "ASIAALICE00000000001")], f"{K0}.id", "must be AKIA"),
    (
        "key-id-dup",
        [
            (
                "accounts[1]",
                {
                    "id": "222222222222",
                    "users": [{"name": "bob", "access_keys": [{"id": KEY, "secret_env": "ALICE"}]}],
                },
            )
        ],
        "accounts[1].users[0].access_keys[0].id",
        f"duplicate access key id {KEY} (also accounts[0].users[0].access_keys[0])",
    ),
    (
        "key-secret-env-missing",
        [(f"{K0}.secret_env", "NOPE")],
        f"{K0}.secret_env",
        f"secret for access key {KEY} not found in environment variable NOPE",
    ),
    (
        "key-secret-file-missing",
        [(f"{K0}.secret_env", DELETE), (f"{K0}.secret_file", "/no/such")],
        f"{K0}.secret_file",
        f"secret for access key {KEY} not found in file /no/such",
    ),
    (
        "mfa-seed-missing",
        [(f"{U0}.mfa_devices", [{"name": "phone", "seed_env": "NOPE"}])],
        f"{U0}.mfa_devices[0].seed_env",
        "seed for MFA device phone not found in environment variable NOPE",
    ),
    (
        "mfa-seed-both",
        [(f"{U0}.mfa_devices", [{"name": "phone", "seed_env": "SEED", "seed_file": "/s"}])],
        f"{U0}.mfa_devices[0]",
        "give exactly one of 'seed_env' or 'seed_file'",
    ),
    (
        "mfa-name",
        [(f"{U0}.mfa_devices", [{"name": "my phone", "seed_env": "SEED"}])],
        f"{U0}.mfa_devices[0].name",
        "MFA device name 'my phone' must be",
    ),
    (
        "mfa-dup",
        [(f"{U0}.mfa_devices", [{"name": "phone", "seed_env": "SEED"}] * 2)],
        f"{U0}.mfa_devices[1].name",
        "duplicate MFA device name 'phone'",
    ),
]
PROVIDERS: list[Case] = [
    (
        "oidc-http",
        [(f"{O0}.url", "http://issuer.example")],
        f"{O0}.url",
        "url 'http://issuer.example' must be https://host[/path]",
    ),
    (
        "oidc-query",
        [(f"{O0}.url", "https://issuer.example/?x=1")],
        f"{O0}.url",
        "without query or fragment",
    ),
    (
        "oidc-dup",
        [
            (
                "accounts[0].oidc_providers[1]",
                {"url": "https://issuer.example/", "client_ids": ["a"], "jwks_file": "/j"},
            )
        ],
        "accounts[0].oidc_providers[1].url",
        "duplicate oidc provider url 'https://issuer.example/'",
    ),
    (
        "oidc-client-ids-empty",
        [(f"{O0}.client_ids", [])],
        f"{O0}.client_ids",
        "must list at least one value",
    ),
    (
        "oidc-client-ids-type",
        [(f"{O0}.client_ids", "sts.amazonaws.com")],
        f"{O0}.client_ids",
        "expected a list, got a string",
    ),
    (
        "oidc-jwks-both",
        [(f"{O0}.jwks_url", "https://issuer.example/keys")],
        O0,
        "give exactly one of 'jwks_file' or 'jwks_url'",
    ),
    (
        "oidc-jwks-none",
        [(f"{O0}.jwks_file", DELETE)],
        O0,
        "give exactly one of 'jwks_file' or 'jwks_url'",
    ),
    (
        "saml-name",
        [(f"{S0}.name", "corp idp")],
        f"{S0}.name",
        "saml provider name 'corp idp' must be",
    ),
    (
        "saml-dup",
        [("accounts[0].saml_providers[1]", {"name": "corp", "metadata_file": "/m"})],
        "accounts[0].saml_providers[1].name",
        "duplicate saml provider name 'corp'",
    ),
    (
        "saml-metadata",
        [(f"{S0}.metadata_file", DELETE)],
        S0,
        "missing required key 'metadata_file'",
    ),
    (
        "saml-audience-type",
        [(f"{S0}.audience", ["a"])],
        f"{S0}.audience",
        "expected a string, got a list",
    ),
]
RESOURCE_POLICIES: list[Case] = [
    (
        "resource-not-arn",
        [("accounts[0].resource_policies[0]", {"resource": "s3:::b/*", "document": ALLOW})],
        "accounts[0].resource_policies[0].resource",
        "resource 's3:::b/*' must be an ARN pattern",
    ),
    (
        "resource-no-document",
        [("accounts[0].resource_policies[0]", {"resource": "arn:aws:s3:::b"})],
        "accounts[0].resource_policies[0]",
        "missing required key 'document'",
    ),
]
SERVICES: list[Case] = [
    (
        "service-dup",
        [
            (
                "service_principals",
                [
                    {"name": "a", "spiffe_ids": ["spiffe://x/a"]},
                    {"name": "a", "spiffe_ids": ["spiffe://x/b"]},
                ],
            )
        ],
        "service_principals[1].name",
        "duplicate service principal name 'a'",
    ),
    (
        "spiffe-scheme",
        [("service_principals", [{"name": "a", "spiffe_ids": ["https://x/a"]}])],
        "service_principals[0].spiffe_ids[0]",
        "SPIFFE id 'https://x/a' must start with spiffe://",
    ),
    (
        "spiffe-dup",
        [
            (
                "service_principals",
                [
                    {"name": "a", "spiffe_ids": ["spiffe://x/a"]},
                    {"name": "b", "spiffe_ids": ["spiffe://x/a"]},
                ],
            )
        ],
        "service_principals[1].spiffe_ids[0]",
        "duplicate SPIFFE id 'spiffe://x/a' (also service_principals[0].spiffe_ids[0])",
    ),
    (
        "spiffe-empty",
        [("service_principals", [{"name": "a", "spiffe_ids": []}])],
        "service_principals[0].spiffe_ids",
        "must list at least one value",
    ),
]
POD_IDENTITY: list[Case] = [
    (
        "pod-issuer",
        [("pod_identity", {**POD, "issuer": "https://elsewhere"})],
        "pod_identity.issuer",
        "issuer 'https://elsewhere' is not the url of any oidc provider in the world",
    ),
    (
        "pod-audience-empty",
        [("pod_identity", {**POD, "audience": ""})],
        "pod_identity.audience",
        "must not be empty",
    ),
    (
        "pod-cluster-missing",
        [("pod_identity", {k: v for k, v in POD.items() if k != "cluster_name"})],
        "pod_identity",
        "missing required key 'cluster_name'",
    ),
    (
        "pod-role-missing",
        [
            ("pod_identity", POD),
            ("pod_identity.associations[0].role_arn", "arn:aws:iam::111111111111:role/ghost"),
        ],
        "pod_identity.associations[0].role_arn",
        "no role arn:aws:iam::111111111111:role/ghost",
    ),
    (
        "pod-role-path",
        [(f"{R0}.path", "/apps/"), ("pod_identity", POD)],
        "pod_identity.associations[0].role_arn",
        "no role arn:aws:iam::111111111111:role/app "
        "(the role's ARN is arn:aws:iam::111111111111:role/apps/app)",
    ),
    (
        "pod-dup",
        [("pod_identity", POD), ("pod_identity.associations[1]", POD["associations"][0])],
        "pod_identity.associations[1]",
        "duplicate association for service account shop/orders",
    ),
]
EXT_AUTHZ: list[Case] = [
    (
        "route-path-slash",
        [("ext_authz", {"routes": [{**ROUTE, "path": "orders"}]})],
        "ext_authz.routes[0].path",
        "route path 'orders' must start with '/'",
    ),
    (
        "route-partial-segment",
        [("ext_authz", {"routes": [{**ROUTE, "path": "/orders/{id}.json"}]})],
        "ext_authz.routes[0].path",
        "a placeholder is a whole segment",
    ),
    (
        "route-greedy-middle",
        [("ext_authz", {"routes": [{**ROUTE, "path": "/a/{rest+}/b"}]})],
        "ext_authz.routes[0].path",
        "{rest+} may only end the path",
    ),
    (
        "route-unknown-placeholder",
        [("ext_authz", {"routes": [{**ROUTE, "resource": "arn:aws:orders:::{oid}"}]})],
        "ext_authz.routes[0].resource",
        "unknown placeholder {oid}",
    ),
    (
        "route-method",
        [("ext_authz", {"routes": [{**ROUTE, "method": "get"}]})],
        "ext_authz.routes[0].method",
        "method 'get' must be an upper-case HTTP method",
    ),
    (
        "route-action",
        [("ext_authz", {"routes": [{**ROUTE, "action": "GetOrder"}]})],
        "ext_authz.routes[0].action",
        "action 'GetOrder' must be service:Action",
    ),
    (
        "route-missing-action",
        [("ext_authz", {"routes": [{"path": "/x", "resource": "*"}]})],
        "ext_authz.routes[0]",
        "missing required key 'action'",
    ),
    (
        "route-unknown-key",
        [("ext_authz", {"routes": [{**ROUTE, "verb": "GET"}]})],
        "ext_authz.routes[0]",
        "unknown key 'verb'",
    ),
    (
        "ext-default",
        [("ext_authz", {"default": "allow"})],
        "ext_authz.default",
        "default must be 'deny' or a map {action, resource}, got 'allow'",
    ),
    (
        "ext-default-placeholder",
        [("ext_authz", {"default": {"action": "http:{verb}", "resource": "*"}})],
        "ext_authz.default.action",
        "unknown placeholder {verb}",
    ),
    (
        "ext-dry-run",
        [("ext_authz", {"dry_run": "yes"})],
        "ext_authz.dry_run",
        "expected true or false, got a string",
    ),
    (
        "ext-strip-credentials",
        [("ext_authz", {"strip_credentials": 1})],
        "ext_authz.strip_credentials",
        "expected true or false, got an integer",
    ),
    (
        "envoy-identities-type",
        [("ext_authz", {"envoy_identities": "spiffe://td/envoy"})],
        "ext_authz.envoy_identities",
        "expected a list, got a string",
    ),
    (
        "envoy-identity-scheme",
        [("ext_authz", {"envoy_identities": ["spiffe://td/envoy", "https://td/envoy"]})],
        "ext_authz.envoy_identities[1]",
        "expected a SPIFFE id spiffe://..., got 'https://td/envoy'",
    ),
    (
        "envoy-identity-dup",
        [("ext_authz", {"envoy_identities": ["spiffe://td/envoy", "spiffe://td/envoy"]})],
        "ext_authz.envoy_identities[1]",
        "duplicate SPIFFE id 'spiffe://td/envoy'",
    ),
    (
        "route-host-port",
        [("ext_authz", {"routes": [{**ROUTE, "host": "orders.example:8080"}]})],
        "ext_authz.routes[0].host",
        "must be a host name or address without a port",
    ),
    (
        "route-path-dot-segment",
        [("ext_authz", {"routes": [{**ROUTE, "path": "/a/../orders/{id}"}]})],
        "ext_authz.routes[0].path",
        "segment '..' would never match a normalized path",
    ),
    (
        "route-path-trailing-slash",
        [("ext_authz", {"routes": [{**ROUTE, "path": "/orders/{id}/"}]})],
        "ext_authz.routes[0].path",
        "segment '' would never match a normalized path",
    ),
    (
        "route-path-escape",
        [("ext_authz", {"routes": [{**ROUTE, "path": "/my%20orders/{id}"}]})],
        "ext_authz.routes[0].path",
        "segment 'my%20orders' would never match a normalized path",
    ),
    (
        "context-type",
        [("ext_authz", {"routes": [{**ROUTE, "context": {"from": "query"}}]})],
        "ext_authz.routes[0].context",
        "expected a list, got a map",
    ),
    (
        "context-sidecar-key",
        [("ext_authz", {"routes": [{**ROUTE, "context": [CTX, {**CTX, "key": "aws:SourceIp"}]}]})],
        "ext_authz.routes[0].context[1].key",
        "condition key aws:SourceIp is set by the sidecar, never taken from a request",
    ),
    (
        "context-sidecar-key-spelling",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "key": "AWS:principalarn"}]}]})],
        "ext_authz.routes[0].context[0].key",
        "condition key aws:PrincipalArn is set by the sidecar",
    ),
    (
        "context-secure-transport",
        [
            (
                "ext_authz",
                {"routes": [{**ROUTE, "context": [{**CTX, "key": "aws:SecureTransport"}]}]},
            )
        ],
        "ext_authz.routes[0].context[0].key",
        "condition key aws:SecureTransport is set by the sidecar",
    ),
    (
        "context-sts-key",
        [
            (
                "ext_authz",
                {"routes": [{**ROUTE, "context": [{**CTX, "key": "sts:RoleSessionName"}]}]},
            )
        ],
        "ext_authz.routes[0].context[0].key",
        "is set by the sidecar",
    ),
    (
        "context-built-in-provider-key",
        [
            (
                "ext_authz",
                {"routes": [{**ROUTE, "context": [{**CTX, "key": "accounts.google.com:sub"}]}]},
            )
        ],
        "ext_authz.routes[0].context[0].key",
        "is set by the sidecar",
    ),
    (
        "context-world-provider-key",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "key": "issuer.example:sub"}]}]})],
        "ext_authz.routes[0].context[0].key",
        "is set by the sidecar",
    ),
    (
        "context-key-shape",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "key": "tenant"}]}]})],
        "ext_authz.routes[0].context[0].key",
        "condition key 'tenant' must be prefix:name",
    ),
    (
        "context-key-twice",
        [("ext_authz", {"routes": [{**ROUTE, "context": [CTX, {**CTX, "key": "ORDERS:expand"}]}]})],
        "ext_authz.routes[0].context[1].key",
        "already given by ext_authz.routes[0].context[0].key",
    ),
    (
        "context-from",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "from": "body"}]}]})],
        "ext_authz.routes[0].context[0].from",
        "from must be 'query' or 'header', got 'body'",
    ),
    (
        "context-type-name",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "type": "STRINGS"}]}]})],
        "ext_authz.routes[0].context[0].type",
        "unknown type 'STRINGS' (one of STRING, STRING_LIST, NUMERIC",
    ),
    (
        "context-missing-key",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{"from": "query", "name": "a"}]}]})],
        "ext_authz.routes[0].context[0]",
        "missing required key 'key'",
    ),
    (
        "context-unknown-field",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "kind": "STRING"}]}]})],
        "ext_authz.routes[0].context[0]",
        "unknown key 'kind'",
    ),
    (
        "context-empty-name",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**CTX, "name": ""}]}]})],
        "ext_authz.routes[0].context[0].name",
        "must not be empty",
    ),
    (
        "context-header-name",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**HDR, "name": "x tenant"}]}]})],
        "ext_authz.routes[0].context[0].name",
        "header name 'x tenant' is not an HTTP header name",
    ),
    (
        "context-credential-header",
        [("ext_authz", {"routes": [{**ROUTE, "context": [{**HDR, "name": "Authorization"}]}]})],
        "ext_authz.routes[0].context[0].name",
        "header 'Authorization' carries credentials",
    ),
]
SIGNING: list[Case] = [
    ("signing-missing", [("signing", {})], "signing", "missing required key 'keys_file'"),
    (
        "signing-type",
        [("signing", {"keys_file": 1})],
        "signing.keys_file",
        "expected a string, got an integer",
    ),
]


def _params(cases: list[Case]) -> tuple[tuple[str, ...], list[Any]]:
    return ("edits", "path", "message"), [pytest.param(*c[1:], id=c[0]) for c in cases]


def check(edits: list[tuple[str, object]], path: str, message: str) -> None:
    """Apply ``edits`` to the valid base world: the problem must be reported at ``path``."""
    doc = base()
    for where, value in edits:
        edit(doc, where, value)
    assert_issue(issues_of(doc), path, message)


class TestChecks:
    @pytest.mark.parametrize(*_params(SHAPE))
    def test_shape(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Unknown and missing keys, and values of the wrong type, are reported where they are."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(NAMES))
    def test_names(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Names, paths, uniqueness, description and session duration follow IAM's rules."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(TAGS))
    def test_tags(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Tags: at most 50, IAM's characters and lengths, unique keys, no aws: prefix."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(POLICIES))
    def test_policies(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Policy errors and size limits are reported inside the document, with IAM's message."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(ATTACHMENTS))
    def test_attachments(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Attached policies and boundaries exist in the owner's account; ten at most."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(PRINCIPALS))
    def test_principals(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """A principal naming a missing user, role or provider of a world account is invalid."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(CREDENTIALS))
    def test_credentials(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Access keys and MFA devices: id shapes, uniqueness and secrets that resolve."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(PROVIDERS))
    def test_providers(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """OIDC and SAML providers: url, names, uniqueness, client ids and key sources."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(RESOURCE_POLICIES))
    def test_resource_policies(
        self, edits: list[tuple[str, object]], path: str, message: str
    ) -> None:
        """Resource policies name an ARN pattern and carry a document."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(SERVICES))
    def test_services(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Service principals: unique names and unique spiffe:// ids."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(POD_IDENTITY))
    def test_pod_identity(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """Pod identity: known issuer, non-empty fields, existing roles, unique accounts."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(EXT_AUTHZ))
    def test_ext_authz(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """ext_authz routes, placeholders, context keys, default, flags and Envoy identities."""
        check(edits, path, message)

    @pytest.mark.parametrize(*_params(SIGNING))
    def test_signing(self, edits: list[tuple[str, object]], path: str, message: str) -> None:
        """signing needs a keys_file."""
        check(edits, path, message)


# -- reporting ------------------------------------------------------------------------------------


class TestReporting:
    def test_every_problem_in_a_file_is_reported(self) -> None:
        """One broken file yields every one of its problems, not just the first."""
        with pytest.raises(WorldError) as info:
            load_world_file(str(WORLDS / "broken.yaml"), environ={})
        issues = info.value.issues
        a1 = "accounts[1]"
        expected = [
            ("partition", "unknown partition 'aws-moon'"),
            ("accounts[0].id", "loses leading zeros"),
            ("accounts[0]", "unknown key 'rolez'"),
            (f"{a1}.managed_policies[0].document.Version", "must be version 2012-10-17"),
            (f"{a1}.roles[0].max_session_duration", "got 60"),
            (f"{a1}.roles[0].tags.aws:team", "reserved prefix"),
            (f"{a1}.roles[1]", "missing required key 'trust_policy'"),
            (f"{a1}.roles[1].name", "duplicate role name 'APP'"),
            (
                f"{a1}.users[0].access_keys[0].secret_env",
                "not found in environment variable DAVE_SECRET",
            ),
            (f"{a1}.oidc_providers[0].url", "must be https://"),
            (f"{a1}.oidc_providers[0].client_ids", "must list at least one value"),
            ("service_principals[0].spiffe_ids[0]", "must start with spiffe://"),
            ("signing", "missing required key 'keys_file'"),
            (f"{a1}.roles[0].managed_policy_arns[0]", "no managed policy"),
            (f"{a1}.roles[0].trust_policy.Statement[1].Principal.AWS", "Invalid principal"),
        ]
        for path, fragment in expected:
            assert_issue(issues, path, fragment)
        assert len(issues) == len(expected)
        first_line = info.value.message.splitlines()[0]
        assert first_line.startswith(f"{WORLDS / 'broken.yaml'}: partition: unknown partition")

    def test_world_error_names_the_source(self) -> None:
        """The error names the source given to build_world, before each path."""
        with pytest.raises(WorldError) as info:
            build_world(edit(base(), "partition", "x"), source="demo.yaml", secrets=secrets)
        assert info.value.source == "demo.yaml"
        assert "demo.yaml: partition: unknown partition 'x'" in str(info.value)

    @pytest.mark.parametrize(
        ("doc", "message"),
        [(None, "the world file is empty"), ([], "expected a map, got a list")],
    )
    def test_a_document_that_is_not_a_map(self, doc: object, message: str) -> None:
        """An empty file or a top level that is not a map is reported at the top."""
        assert issues_of(doc) == [("", message)]

    def test_secret_values_never_appear_in_messages(self) -> None:
        """Problems near a resolved secret never print the secret."""
        doc = edit(base(), f"{K0}.extra", 1)
        edit(doc, f"{U0}.mfa_devices", [{"name": "phone", "seed_env": "ALICE"}])  # not base32
        issues = issues_of(doc)
        assert_issue(
            issues, f"{U0}.mfa_devices[0]", "seed for MFA device phone is not valid base32 text"
        )
        assert "alice-secret-value" not in repr(issues)


# -- the file shell ------------------------------------------------------------------------------


class TestWorldFile:
    def write(self, tmp_path: Path, name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    def test_yaml_syntax_error_has_line_and_column(self, tmp_path: Path) -> None:
        """A YAML syntax error becomes one WorldError issue with its line and column."""
        path = self.write(tmp_path, "w.yaml", "accounts:\n  - id: '1'\n    roles: [\n")
        with pytest.raises(WorldError) as info:
            load_world_file(path)
        ((where, message),) = info.value.issues
        assert where == ""
        assert re.match(r"line 4, column 1: ", message), message

    def test_yaml_duplicate_key_is_an_error(self, tmp_path: Path) -> None:
        """A key repeated in one YAML map is reported with its line, not silently dropped."""
        path = self.write(tmp_path, "w.yaml", "accounts: []\npartition: aws\naccounts: []\n")
        with pytest.raises(WorldError) as info:
            load_world_file(path)
        assert info.value.issues == [
            ("", "line 3, column 1: found duplicate key 'accounts' (while constructing a mapping)")
        ]

    def test_yaml_merge_keys_still_work(self, tmp_path: Path) -> None:
        """YAML anchors and merge keys are plain YAML and stay accepted."""
        text = (
            "accounts:\n"
            "  - id: '111111111111'\n"
            "    roles:\n"
            "      - &r {name: a, trust_policy: '" + json.dumps(TRUST) + "'}\n"
            "      - {<<: *r, name: b}\n"
        )
        world = load_world_file(self.write(tmp_path, "w.yaml", text))
        assert world.role_by_name(A1, "b") is not None

    def test_json_world_and_json_syntax_error(self, tmp_path: Path) -> None:
        """A .json file is read as JSON; a JSON syntax error gives its line and column."""
        doc = base()
        del doc["accounts"][0]["users"]
        world = load_world_file(self.write(tmp_path, "w.json", json.dumps(doc, indent=1)))
        assert world.role_by_name(A1, "app") is not None
        bad = self.write(tmp_path, "bad.json", '{\n "accounts": [,]\n}')
        with pytest.raises(WorldError) as info:
            load_world_file(bad)
        assert info.value.issues == [("", "line 2, column 15: Expecting value")]

    def test_json_duplicate_key_is_an_error(self, tmp_path: Path) -> None:
        """A key repeated in one JSON object is reported."""
        path = self.write(tmp_path, "w.json", '{"accounts": [], "accounts": []}')
        with pytest.raises(WorldError) as info:
            load_world_file(path)
        assert info.value.issues == [("", "duplicate key 'accounts'")]

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read is a WorldError naming it."""
        path = str(tmp_path / "absent.yaml")
        with pytest.raises(WorldError) as info:
            load_world_file(path)
        assert info.value.source == path
        assert info.value.issues == [("", "cannot read the file: No such file or directory")]

    def test_secrets_from_env_and_file(self, tmp_path: Path) -> None:
        """secret_env reads the given environment; secret_file and seed_file read files with
        the trailing newline dropped."""
        secret = tmp_path / "bob.secret"
        secret.write_text("bob-secret\n")
        seed = tmp_path / "seed"
        seed.write_text("jbsw y3dp ehpk 3pxp\n")
        doc = base()
        doc["accounts"][0]["users"].append(
            {
                "name": "bob",
                "access_keys": [{"id": "AKIABOB0000000000002", "secret_file": str(secret)}],
                "mfa_devices": [{"name": "bob-phone", "seed_file": str(seed)}],
            }
        )
        world = load_world_file(
            self.write(tmp_path, "w.json", json.dumps(doc)), environ={"ALICE": "a"}
        )
        assert world.access_keys[KEY][1].secret == "a"
        bob, key = world.access_keys["AKIABOB0000000000002"]
        assert key.secret == "bob-secret"
        assert bob.mfa_devices[0].seed == b"Hello!\xde\xad\xbe\xef"

    def test_an_explicit_empty_environ_is_not_the_process_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """environ={} means no variables at all; only environ=None reads os.environ."""
        monkeypatch.setenv("ALICE", "from-process")
        path = self.write(tmp_path, "w.json", json.dumps(base()))
        with pytest.raises(WorldError) as info:
            load_world_file(path, environ={})
        assert_issue(
            info.value.issues, f"{K0}.secret_env", "not found in environment variable ALICE"
        )
        assert load_world_file(path).access_keys[KEY][1].secret == "from-process"

    def test_unreadable_secret_file_is_not_found(self, tmp_path: Path) -> None:
        """A secret file that is not UTF-8 text counts as absent."""
        secret = tmp_path / "binary"
        secret.write_bytes(b"\xff\xfe")
        doc = edit(base(), f"{K0}.secret_env", DELETE)
        edit(doc, f"{K0}.secret_file", str(secret))
        with pytest.raises(WorldError) as info:
            load_world_file(self.write(tmp_path, "w.json", json.dumps(doc)))
        assert_issue(info.value.issues, f"{K0}.secret_file", f"not found in file {secret}")
