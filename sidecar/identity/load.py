"""Build the World from a parsed world file (docs/API.md §5), validating everything first.

The file is read in two passes. The first walks the document once, checking every key, type,
name, limit and policy, and reporting each problem as (path, message) with a path such as
`accounts[0].roles[2].trust_policy.Statement[1].Principal.AWS`. The second checks references
that need the whole world: attached managed policies, principals naming users, roles and
providers, and pod-identity roles. Only when no problem was found is the World assembled;
otherwise WorldError lists them all.

Pure: secrets (access-key secrets, MFA seeds) come through ``secrets``, never from the
environment or a file read here.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import difflib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sidecar.errors import LimitExceeded, MalformedPolicyDocument, ValidationError, WorldError
from sidecar.identity.ids import managed_policy_id, role_id, user_id
from sidecar.identity.model import (
    AccessKey,
    Account,
    ManagedPolicy,
    MfaDevice,
    OidcProvider,
    PodIdentity,
    PodIdentityAssociation,
    ResourcePolicy,
    Role,
    SamlProvider,
    ServicePrincipal,
    User,
    World,
)
from sidecar.policy.arn import Arn
from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.model import Policy, PolicyKind
from sidecar.policy.parse import load_json, parse_policy, policy_size

SecretSource = Callable[[str, str], str | None]
"""Looks a secret up: ``secrets("env", NAME)`` or ``secrets("file", PATH)``; None if absent."""

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
MAX_ATTACHED_POLICIES = 10  # PoliciesPerRole / PoliciesPerUser
ROLE_INLINE_LIMIT = 10240  # sum of a role's inline policies, whitespace not counted
USER_INLINE_LIMIT = 2048
MAX_TAGS = 50
MAX_DESCRIPTION = 1000
MIN_SESSION, MAX_SESSION = 3600, 43200
TRUST_POLICY_ID = "TrustPolicy"

_TOP_KEYS = ("partition", "accounts", "service_principals", "pod_identity", "ext_authz", "signing")
_ACCOUNT_KEYS = (
    "id", "managed_policies", "roles", "users", "oidc_providers", "resource_policies",
    "saml_providers",
)  # fmt: skip
_ROLE_KEYS = (
    "name", "path", "description", "max_session_duration", "trust_policy", "inline_policies",
    "managed_policy_arns", "permissions_boundary", "tags",
)  # fmt: skip
_USER_KEYS = (
    "name", "path", "inline_policies", "managed_policy_arns", "permissions_boundary", "tags",
    "access_keys", "mfa_devices",
)  # fmt: skip

_OIDC_KEYS = ("url", "client_ids", "jwks_file", "jwks_url")
_SAML_KEYS = ("name", "metadata_file", "recipient", "audience")
_POD_IDENTITY_KEYS = ("issuer", "audience", "cluster_name", "associations")
_ASSOCIATION_KEYS = ("namespace", "service_account", "role_arn")
_ROUTE_KEYS = ("method", "host", "path", "action", "resource")

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_ENTITY_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)  # role, user, policy and MFA device names
_ENTITY_CHARS = "letters, digits and _+=,.@-"
_INLINE_NAME = re.compile(r"[!-~]+")  # printable ASCII: no whitespace
_INLINE_FORBIDDEN = frozenset("\\/*?")
_IAM_PATH = re.compile(r"/|/[\x21-\x7f]+/")
_ACCESS_KEY_ID = re.compile(r"AKIA[A-Z0-9]{12,124}")
_SAML_NAME = re.compile(r"[\w.-]{1,128}", re.ASCII)
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_HTTP_METHOD = re.compile(r"[A-Z]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")
_REQUEST_FIELDS = ("method", "host", "path")  # placeholders every ext_authz template may use
_ACTION = re.compile(r"[A-Za-z0-9.{}_-]+:[^:\s]+")


def build_world(doc: Any, *, source: str, secrets: SecretSource, generation: int = 0) -> World:
    """Validate the parsed world file ``doc`` completely, then build the World.

    Raises WorldError naming ``source`` with every problem found.
    """
    loader = _Loader(secrets)
    parts = loader.read(doc)
    if parts is None or loader.issues:  # read() reports why whenever it returns None
        raise WorldError(source, loader.issues)
    return loader.assemble(parts, generation)


# -- small helpers -----------------------------------------------------------------------------


def _kind(value: object) -> str:
    """The YAML/JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, _dt.date):
        return "a date"
    return type(value).__name__


def _at(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _plain(value: Any) -> Any:
    """JSON-shaped data from YAML: string keys, and dates (an unquoted 2012-10-17) as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _dt.date):  # datetime is a date too
        return value.isoformat()
    return value


def _is_tag_text(text: str) -> bool:
    """Tag keys and values: letters, separators (spaces), numbers and _.:/=+-@."""
    return all(unicodedata.category(c)[0] in "LZN" or c in _TAG_PUNCTUATION for c in text)


def _is_inline_name(name: str) -> bool:
    return (
        len(name) <= 128
        and _INLINE_NAME.fullmatch(name) is not None
        and not _INLINE_FORBIDDEN.intersection(name)
    )


def _entity_arn(partition: str, account: str, kind: str, path: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:{kind}{path}{name}"


def _decode_base32(text: str) -> bytes | None:
    cleaned = "".join(text.split()).upper().rstrip("=")
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    policy: Policy
    text: str  # compact JSON


@dataclass(slots=True)
class _AccountParts:
    """One account as the first pass found it: the entities built, and every name declared
    (also those of entities with errors, so that references to them are not reported too)."""

    account_id: str
    managed_policies: dict[str, ManagedPolicy] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    oidc_providers: dict[str, OidcProvider] = field(default_factory=dict)
    saml_providers: dict[str, SamlProvider] = field(default_factory=dict)
    resource_policies: list[ResourcePolicy] = field(default_factory=list)
    role_names: dict[str, str] = field(default_factory=dict)  # lowercased -> as written
    user_names: dict[str, str] = field(default_factory=dict)
    policy_names: set[str] = field(default_factory=set)  # lowercased
    provider_arns: set[str] = field(default_factory=set)  # OIDC and SAML
    mfa_serials: set[str] = field(default_factory=set)
    resources: set[str] = field(default_factory=set)  # resource-policy patterns


@dataclass(slots=True)
class _WorldParts:
    service_principals: list[ServicePrincipal]
    pod_identity: PodIdentity | None
    ext_authz: dict[str, object] | None
    signing_keys_file: str


class _Loader:
    def __init__(self, secrets: SecretSource) -> None:
        self.secrets = secrets
        self.issues: list[tuple[str, str]] = []
        self.partition = "aws"
        self.accounts: dict[str, _AccountParts] = {}
        self.account_paths: dict[str, str] = {}
        self.managed_arns: dict[str, str] = {}  # every managed policy ARN -> its account
        self.role_arns: dict[tuple[str, str], str] = {}  # (account, lowercased name) -> ARN
        self.oidc_urls: set[str] = set()
        self.key_ids: dict[str, str] = {}  # access key id -> where it is first declared
        # Checked once the whole world is known: (path, account of the owner, policy ARN) ...
        self.policy_refs: list[tuple[str, str, str]] = []
        # ... and (path, principal type as IAM prints it, ARN) for trust and resource policies.
        self.principal_refs: list[tuple[str, str, str]] = []

    def issue(self, path: str, message: str) -> None:
        self.issues.append((path, message))

    # -- generic shape checks ------------------------------------------------------------------

    def fields(
        self, value: object, path: str, allowed: tuple[str, ...], required: Iterable[str] = ()
    ) -> dict[Any, Any] | None:
        """``value`` as a map whose keys are checked: unknown keys and missing ones reported."""
        if not isinstance(value, dict):
            self.issue(path, f"expected a map, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.issue(path, f"unknown key {key!r}{hint}")
        for key in required:
            if key not in value:
                self.issue(path, f"missing required key '{key}'")
        return value

    def string(
        self, m: Mapping[Any, Any], key: str, path: str, *, empty: bool = True
    ) -> str | None:
        """A string field; None when absent or not a string (reported)."""
        if key not in m:
            return None
        value = m[key]
        if not isinstance(value, str):
            self.issue(_at(path, key), f"expected a string, got {_kind(value)}")
            return None
        if not empty and not value:
            self.issue(_at(path, key), "must not be empty")
            return None
        return value

    def items(self, m: Mapping[Any, Any], key: str, path: str) -> list[Any]:
        """A list field; empty when absent or not a list (reported)."""
        value = m.get(key, [])
        if not isinstance(value, list):
            self.issue(_at(path, key), f"expected a list, got {_kind(value)}")
            return []
        return value

    def strings(
        self, m: Mapping[Any, Any], key: str, path: str, *, required: bool = False
    ) -> list[str]:
        """A list of non-empty strings; items of other types are reported and left out."""
        where = _at(path, key)
        values = self.items(m, key, path)
        out = []
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                self.issue(f"{where}[{i}]", f"expected a non-empty string, got {_kind(v)}")
            else:
                out.append(v)
        if required and key in m and isinstance(m[key], list) and not values:
            self.issue(where, "must list at least one value")
        return out

    def boolean(self, m: Mapping[Any, Any], key: str, path: str) -> bool:
        value = m.get(key, False)
        if not isinstance(value, bool):
            self.issue(_at(path, key), f"expected true or false, got {_kind(value)}")
            return False
        return value

    def one_of(self, m: Mapping[Any, Any], keys: tuple[str, str], path: str) -> str | None:
        """Exactly one of two alternative keys; returns the one present."""
        present = [k for k in keys if k in m]
        if len(present) != 1:
            self.issue(path, f"give exactly one of '{keys[0]}' or '{keys[1]}'")
            return None
        return present[0]

    # -- names, paths, tags ----------------------------------------------------------------------

    def entity_name(self, m: Mapping[Any, Any], path: str, what: str, max_len: int) -> str | None:
        name = self.string(m, "name", path)
        if name is None:
            return None
        if not (len(name) <= max_len and _ENTITY_NAME.fullmatch(name)):
            self.issue(
                _at(path, "name"),
                f"{what} name {name!r} must be 1-{max_len} characters of {_ENTITY_CHARS}",
            )
            return None
        return name

    def iam_path(self, m: Mapping[Any, Any], path: str) -> str:
        value = self.string(m, "path", path)
        if value is None:
            return "/"
        if not (len(value) <= 512 and _IAM_PATH.fullmatch(value)):
            self.issue(
                _at(path, "path"),
                f"path {value!r} must be '/' or begin and end with '/' "
                "(at most 512 characters of U+0021-U+007F)",
            )
        return value

    def tags(self, m: Mapping[Any, Any], path: str) -> dict[str, str]:
        value = m.get("tags", {})
        where = _at(path, "tags")
        if not isinstance(value, dict):
            self.issue(where, f"expected a map of tag keys to values, got {_kind(value)}")
            return {}
        if len(value) > MAX_TAGS:
            self.issue(where, f"too many tags: {len(value)} (at most {MAX_TAGS})")
        seen: set[str] = set()
        out: dict[str, str] = {}
        for key, tag_value in value.items():
            at = _at(where, key)
            if not isinstance(key, str):
                self.issue(at, f"tag key must be a string, got {_kind(key)}")
                continue
            if not (1 <= len(key) <= 128 and _is_tag_text(key)):
                self.issue(
                    at,
                    f"tag key {key!r} must be 1-128 characters of letters, numbers, spaces "
                    "and _.:/=+-@",
                )
            elif key.lower().startswith("aws:"):
                self.issue(at, f"tag key {key!r} uses the reserved prefix 'aws:'")
            if key.lower() in seen:
                self.issue(at, f"duplicate tag key {key!r} (tag keys are case-insensitive)")
            seen.add(key.lower())
            if not isinstance(tag_value, str):
                self.issue(at, f"tag value must be a quoted string, got {_kind(tag_value)}")
            elif not (len(tag_value) <= 256 and _is_tag_text(tag_value)):
                self.issue(
                    at,
                    "tag value must be at most 256 characters of letters, numbers, spaces "
                    "and _.:/=+-@",
                )
            else:
                out[key] = tag_value
        return out

    # -- policies --------------------------------------------------------------------------------

    def policy(self, value: object, path: str, kind: PolicyKind, policy_id: str) -> _Parsed | None:
        """Parse a policy written as a map or a JSON string; errors reported at their location
        inside the document."""
        source: str | dict[str, Any]
        if isinstance(value, str):
            source = value
        elif isinstance(value, dict):
            source = _plain(value)
        else:
            self.issue(
                path, f"expected a policy document (a map or a JSON string), got {_kind(value)}"
            )
            return None
        try:
            policy = parse_policy(source, kind, policy_id=policy_id)
        except (MalformedPolicyDocument, LimitExceeded, ValidationError) as err:
            where = path if err.location in ("", "$") else f"{path}.{err.location}"
            self.issue(where, f"{err.code}: {err.message}")
            return None
        doc = load_json(source) if isinstance(source, str) else source
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        if kind in (PolicyKind.TRUST, PolicyKind.RESOURCE):
            self._note_principals(policy, path)
        return _Parsed(policy, text)

    def _note_principals(self, policy: Policy, path: str) -> None:
        for st in policy.statements:
            if st.principal is None:
                continue
            element = "NotPrincipal" if st.not_principal else "Principal"
            where = f"{path}.Statement[{st.index}].{element}"
            for arn in st.principal.aws:
                self.principal_refs.append((f"{where}.AWS", "AWS", arn))
            for arn in st.principal.federated:
                self.principal_refs.append((f"{where}.Federated", "FEDERATED", arn))

    def inline_policies(
        self, m: Mapping[Any, Any], path: str, owner: str, limit: int
    ) -> dict[str, CompiledPolicy] | None:
        """The inline policies of ``owner`` ("role NAME"); None if any is invalid."""
        value = m.get("inline_policies", {})
        where = _at(path, "inline_policies")
        if not isinstance(value, dict):
            self.issue(where, f"expected a map of policy names to documents, got {_kind(value)}")
            return None
        out: dict[str, CompiledPolicy] | None = {}
        total = 0
        for name, document in value.items():
            at = _at(where, name)
            if not isinstance(name, str) or not _is_inline_name(name):
                self.issue(
                    at,
                    f"inline policy name {name!r} must be 1-128 ASCII characters without "
                    "whitespace or \\ / * ?",
                )
                out = None
            parsed = self.policy(document, at, PolicyKind.IDENTITY, str(name))
            if parsed is None:
                out = None
                continue
            total += policy_size(parsed.text)
            if out is not None:
                out[str(name)] = compile_policy(parsed.policy)
        if total > limit:
            self.issue(
                where, f"LimitExceeded: Maximum policy size of {limit} bytes exceeded for {owner}"
            )
        return out

    def attachments(
        self, m: Mapping[Any, Any], path: str, account: str | None, quota: str
    ) -> tuple[tuple[str, ...], str | None]:
        """``managed_policy_arns`` and ``permissions_boundary``, to be resolved later."""
        where = _at(path, "managed_policy_arns")
        arns = self.strings(m, "managed_policy_arns", path)
        for i, arn in enumerate(arns):
            if arn in arns[:i]:
                self.issue(f"{where}[{i}]", f"managed policy {arn} is attached twice")
            elif account is not None:
                self.policy_refs.append((f"{where}[{i}]", account, arn))
        if len(set(arns)) > MAX_ATTACHED_POLICIES:
            self.issue(
                where, f"LimitExceeded: Cannot exceed quota for {quota}: {MAX_ATTACHED_POLICIES}"
            )
        boundary = self.string(m, "permissions_boundary", path, empty=False)
        if boundary is not None and account is not None:
            self.policy_refs.append((_at(path, "permissions_boundary"), account, boundary))
        return tuple(arns), boundary

    def secret(
        self, m: Mapping[Any, Any], path: str, keys: tuple[str, str], what: str
    ) -> str | None:
        """A secret named by ``keys[0]`` (an environment variable) or ``keys[1]`` (a file)."""
        key = self.one_of(m, keys, path)
        if key is None:
            return None
        ref = self.string(m, key, path, empty=False)
        if ref is None:
            return None
        env = key == keys[0]
        value = self.secrets("env" if env else "file", ref)
        where = f"environment variable {ref}" if env else f"file {ref}"
        if value is None:
            self.issue(_at(path, key), f"{what} not found in {where}")
        elif not value:
            self.issue(_at(path, key), f"{what} is empty in {where}")
        else:
            return value
        return None

    # -- the document ------------------------------------------------------------------------------

    def read(self, doc: object) -> _WorldParts | None:
        if doc is None:
            self.issue("", "the world file is empty")
            return None
        m = self.fields(doc, "", _TOP_KEYS, ("accounts",))
        if m is None:
            return None
        partition = self.string(m, "partition", "")
        if partition is not None:
            if partition in PARTITIONS:
                self.partition = partition
            else:
                self.issue(
                    "partition",
                    f"unknown partition {partition!r} (expected one of {', '.join(PARTITIONS)})",
                )
        for i, account in enumerate(self.items(m, "accounts", "")):
            self.account(account, f"accounts[{i}]")
        services = self.service_principals(m)
        pod_identity = (
            self.pod_identity(m["pod_identity"], "pod_identity") if "pod_identity" in m else None
        )
        ext_authz = self.ext_authz(m["ext_authz"], "ext_authz") if "ext_authz" in m else None
        keys_file = ""
        if "signing" in m:
            signing = self.fields(m["signing"], "signing", ("keys_file",), ("keys_file",))
            if signing is not None:
                keys_file = self.string(signing, "keys_file", "signing", empty=False) or ""
        self.check_references()
        return _WorldParts(services, pod_identity, ext_authz, keys_file)

    def account_id(self, value: object, path: str) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            # No corrected value is suggested: YAML also reads 0-prefixed digits as octal.
            self.issue(
                path,
                "account id must be a quoted 12-digit string: an unquoted YAML number loses "
                "leading zeros",
            )
            return None
        if not isinstance(value, str):
            self.issue(path, f"account id must be a quoted 12-digit string, got {_kind(value)}")
            return None
        if not _ACCOUNT_ID.fullmatch(value):
            self.issue(path, f"account id {value!r} must be exactly 12 digits")
            return None
        return value

    def account(self, value: object, path: str) -> None:
        m = self.fields(value, path, _ACCOUNT_KEYS, ("id",))
        if m is None:
            return
        account_id = self.account_id(m["id"], _at(path, "id")) if "id" in m else None
        parts = _AccountParts(account_id or "")
        if account_id is not None:
            if account_id in self.accounts:
                self.issue(
                    _at(path, "id"),
                    f"duplicate account id '{account_id}' (also {self.account_paths[account_id]})",
                )
                account_id = None  # checked, but references into it are not resolved
            else:
                self.accounts[account_id] = parts
                self.account_paths[account_id] = path
        for i, item in enumerate(self.items(m, "managed_policies", path)):
            self.managed_policy(item, f"{path}.managed_policies[{i}]", parts, account_id)
        for i, item in enumerate(self.items(m, "roles", path)):
            self.role(item, f"{path}.roles[{i}]", parts, account_id)
        for i, item in enumerate(self.items(m, "users", path)):
            self.user(item, f"{path}.users[{i}]", parts, account_id)
        for i, item in enumerate(self.items(m, "oidc_providers", path)):
            self.oidc_provider(item, f"{path}.oidc_providers[{i}]", parts)
        for i, item in enumerate(self.items(m, "saml_providers", path)):
            self.saml_provider(item, f"{path}.saml_providers[{i}]", parts)
        for i, item in enumerate(self.items(m, "resource_policies", path)):
            self.resource_policy(item, f"{path}.resource_policies[{i}]", parts)

    def managed_policy(
        self, value: object, path: str, acct: _AccountParts, account_id: str | None
    ) -> None:
        m = self.fields(value, path, ("name", "path", "document"), ("name", "document"))
        if m is None:
            return
        name = self.entity_name(m, path, "managed policy", 128)
        policy_path = self.iam_path(m, path)
        if name is None:
            return
        if name.lower() in acct.policy_names:
            self.issue(
                _at(path, "name"),
                f"duplicate managed policy name {name!r} (policy names are case-insensitive)",
            )
            return
        acct.policy_names.add(name.lower())
        arn = _entity_arn(self.partition, acct.account_id, "policy", policy_path, name)
        if account_id is not None:
            self.managed_arns[arn] = account_id
        parsed = (
            self.policy(m["document"], _at(path, "document"), PolicyKind.MANAGED, arn)
            if "document" in m
            else None
        )
        if parsed is not None:
            acct.managed_policies[arn] = ManagedPolicy(
                arn=arn,
                name=name,
                path=policy_path,
                policy_id=managed_policy_id(self.partition, acct.account_id, name),
                document=compile_policy(parsed.policy),
                text=parsed.text,
            )

    def role(self, value: object, path: str, acct: _AccountParts, account_id: str | None) -> None:
        m = self.fields(value, path, _ROLE_KEYS, ("name", "trust_policy"))
        if m is None:
            return
        name = self.entity_name(m, path, "role", 64)
        role_path = self.iam_path(m, path)
        arn = ""
        if name is not None:
            if name.lower() in acct.role_names:
                self.issue(
                    _at(path, "name"),
                    f"duplicate role name {name!r} (role names are case-insensitive)",
                )
                name = None
            else:
                acct.role_names[name.lower()] = name
                arn = _entity_arn(self.partition, acct.account_id, "role", role_path, name)
                if account_id is not None:
                    self.role_arns[(account_id, name.lower())] = arn
        description = self.string(m, "description", path) or ""
        if len(description) > MAX_DESCRIPTION:
            self.issue(
                _at(path, "description"),
                f"description is {len(description)} characters (at most {MAX_DESCRIPTION})",
            )
        duration = m.get("max_session_duration", MIN_SESSION)
        if (
            not isinstance(duration, int)
            or isinstance(duration, bool)
            or not MIN_SESSION <= duration <= MAX_SESSION
        ):
            self.issue(
                _at(path, "max_session_duration"),
                f"max_session_duration must be an integer from {MIN_SESSION} to {MAX_SESSION} "
                f"seconds, got {duration!r}",
            )
        trust = (
            self.policy(
                m["trust_policy"], _at(path, "trust_policy"), PolicyKind.TRUST, TRUST_POLICY_ID
            )
            if "trust_policy" in m
            else None
        )
        inline = self.inline_policies(m, path, f"role {m.get('name')}", ROLE_INLINE_LIMIT)
        managed, boundary = self.attachments(m, path, account_id, "PoliciesPerRole")
        tags = self.tags(m, path)
        if name is None or trust is None or inline is None:
            return
        acct.roles[name.lower()] = Role(
            account=acct.account_id,
            name=name,
            path=role_path,
            arn=arn,
            role_id=role_id(self.partition, acct.account_id, name),
            trust_policy=compile_policy(trust.policy),
            inline_policies=MappingProxyType(inline),
            managed_policy_arns=managed,
            permissions_boundary=boundary,
            tags=MappingProxyType(tags),
            max_session_duration=duration,
            description=description,
        )

    def user(self, value: object, path: str, acct: _AccountParts, account_id: str | None) -> None:
        m = self.fields(value, path, _USER_KEYS, ("name",))
        if m is None:
            return
        name = self.entity_name(m, path, "user", 64)
        user_path = self.iam_path(m, path)
        if name is not None:
            if name.lower() in acct.user_names:
                self.issue(
                    _at(path, "name"),
                    f"duplicate user name {name!r} (user names are case-insensitive)",
                )
                name = None
            else:
                acct.user_names[name.lower()] = name
        inline = self.inline_policies(m, path, f"user {m.get('name')}", USER_INLINE_LIMIT)
        managed, boundary = self.attachments(m, path, account_id, "PoliciesPerUser")
        tags = self.tags(m, path)
        keys = [
            self.access_key(item, f"{path}.access_keys[{i}]")
            for i, item in enumerate(self.items(m, "access_keys", path))
        ]
        devices = [
            self.mfa_device(item, f"{path}.mfa_devices[{i}]", acct)
            for i, item in enumerate(self.items(m, "mfa_devices", path))
        ]
        if name is None or inline is None:
            return
        acct.users[name.lower()] = User(
            account=acct.account_id,
            name=name,
            path=user_path,
            arn=_entity_arn(self.partition, acct.account_id, "user", user_path, name),
            user_id=user_id(self.partition, acct.account_id, name),
            inline_policies=MappingProxyType(inline),
            managed_policy_arns=managed,
            permissions_boundary=boundary,
            tags=MappingProxyType(tags),
            access_keys=tuple(k for k in keys if k is not None),
            mfa_devices=tuple(d for d in devices if d is not None),
        )

    def access_key(self, value: object, path: str) -> AccessKey | None:
        m = self.fields(value, path, ("id", "secret_env", "secret_file"), ("id",))
        if m is None:
            return None
        key_id = self.string(m, "id", path)
        if key_id is not None:
            if not _ACCESS_KEY_ID.fullmatch(key_id):
                self.issue(
                    _at(path, "id"),
                    f"access key id {key_id!r} must be AKIA followed by 12-124 upper-case "
                    "letters and digits",
                )
            elif key_id in self.key_ids:
                self.issue(
                    _at(path, "id"),
                    f"duplicate access key id {key_id} (also {self.key_ids[key_id]})",
                )
            else:
                self.key_ids[key_id] = path
        secret = self.secret(
            m, path, ("secret_env", "secret_file"), f"secret for access key {key_id}"
        )
        if key_id is None or secret is None:
            return None
        return AccessKey(access_key_id=key_id, secret=secret)

    def mfa_device(self, value: object, path: str, acct: _AccountParts) -> MfaDevice | None:
        m = self.fields(value, path, ("name", "seed_env", "seed_file"), ("name",))
        if m is None:
            return None
        name = self.entity_name(m, path, "MFA device", 128)
        serial = f"arn:{self.partition}:iam::{acct.account_id}:mfa/{name}"
        if name is not None:
            if serial in acct.mfa_serials:
                self.issue(_at(path, "name"), f"duplicate MFA device name {name!r} in the account")
            acct.mfa_serials.add(serial)
        text = self.secret(m, path, ("seed_env", "seed_file"), f"seed for MFA device {name}")
        if text is None:
            return None
        seed = _decode_base32(text)
        if not seed:
            self.issue(path, f"seed for MFA device {name} is not valid base32 text")
            return None
        return MfaDevice(serial_number=serial, seed=seed) if name is not None else None

    def oidc_provider(self, value: object, path: str, acct: _AccountParts) -> None:
        m = self.fields(value, path, _OIDC_KEYS, ("url", "client_ids"))
        if m is None:
            return
        url = self.string(m, "url", path)
        arn = ""
        if url is not None:
            host_path = url.removeprefix("https://").rstrip("/")
            if (
                not url.startswith("https://")
                or not host_path
                or any(c.isspace() or c in "?#" for c in host_path)
            ):
                self.issue(
                    _at(path, "url"),
                    f"url {url!r} must be https://host[/path], without query or fragment",
                )
                url = None
            else:
                arn = f"arn:{self.partition}:iam::{acct.account_id}:oidc-provider/{host_path}"
                self.oidc_urls.add(url)
                if arn in acct.provider_arns:
                    self.issue(_at(path, "url"), f"duplicate oidc provider url {url!r}")
                    url = None
                acct.provider_arns.add(arn)
        client_ids = self.strings(m, "client_ids", path, required=True)
        jwks = self.one_of(m, ("jwks_file", "jwks_url"), path)
        jwks_value = self.string(m, jwks, path, empty=False) if jwks is not None else None
        if (
            jwks == "jwks_url"
            and jwks_value is not None
            and not jwks_value.startswith(("https://", "http://"))
        ):
            self.issue(_at(path, "jwks_url"), f"jwks_url {jwks_value!r} must be an http(s) URL")
        if url is None or not client_ids or jwks_value is None:
            return
        acct.oidc_providers[arn] = OidcProvider(
            account=acct.account_id,
            url=url,
            arn=arn,
            client_ids=tuple(client_ids),
            jwks_file=jwks_value if jwks == "jwks_file" else "",
            jwks_url=jwks_value if jwks == "jwks_url" else "",
        )

    def saml_provider(self, value: object, path: str, acct: _AccountParts) -> None:
        m = self.fields(value, path, _SAML_KEYS, ("name", "metadata_file"))
        if m is None:
            return
        name = self.string(m, "name", path)
        arn = ""
        if name is not None:
            arn = f"arn:{self.partition}:iam::{acct.account_id}:saml-provider/{name}"
            if not _SAML_NAME.fullmatch(name):
                self.issue(
                    _at(path, "name"),
                    f"saml provider name {name!r} must be 1-128 letters, digits and _.-",
                )
                name = None
            elif arn in acct.provider_arns:
                self.issue(_at(path, "name"), f"duplicate saml provider name {name!r}")
                name = None
            acct.provider_arns.add(arn)
        metadata_file = self.string(m, "metadata_file", path, empty=False)
        recipient = self.string(m, "recipient", path, empty=False)
        audience = self.string(m, "audience", path, empty=False)
        if name is None or metadata_file is None:
            return
        overrides = {"recipient": recipient, "audience": audience}  # else the model's defaults
        acct.saml_providers[arn] = SamlProvider(
            acct.account_id,
            name,
            arn,
            metadata_file,
            **{key: text for key, text in overrides.items() if text is not None},
        )

    def resource_policy(self, value: object, path: str, acct: _AccountParts) -> None:
        m = self.fields(value, path, ("resource", "document"), ("resource", "document"))
        if m is None:
            return
        resource = self.string(m, "resource", path)
        if resource is not None:
            if not resource.startswith("arn:"):
                self.issue(
                    _at(path, "resource"), f"resource {resource!r} must be an ARN pattern (arn:...)"
                )
                resource = None
            elif resource in acct.resources:
                self.issue(_at(path, "resource"), f"duplicate resource policy for {resource!r}")
            else:
                acct.resources.add(resource)
        if "document" not in m:
            return
        parsed = self.policy(
            m["document"], _at(path, "document"), PolicyKind.RESOURCE, resource or ""
        )
        if parsed is not None and resource is not None:
            acct.resource_policies.append(
                ResourcePolicy(acct.account_id, resource, compile_policy(parsed.policy))
            )

    # -- top-level sections ------------------------------------------------------------------------

    def service_principals(self, m: Mapping[Any, Any]) -> list[ServicePrincipal]:
        out: list[ServicePrincipal] = []
        names: set[str] = set()
        spiffe_paths: dict[str, str] = {}
        for i, item in enumerate(self.items(m, "service_principals", "")):
            path = f"service_principals[{i}]"
            sp = self.fields(item, path, ("name", "spiffe_ids"), ("name", "spiffe_ids"))
            if sp is None:
                continue
            name = self.string(sp, "name", path, empty=False)
            if name is not None:
                if any(c.isspace() or c == "*" for c in name):
                    self.issue(
                        _at(path, "name"),
                        f"service principal name {name!r} must not contain whitespace or *",
                    )
                elif name in names:
                    self.issue(_at(path, "name"), f"duplicate service principal name {name!r}")
                names.add(name)
            spiffe_ids = self.strings(sp, "spiffe_ids", path, required=True)
            for j, sid in enumerate(spiffe_ids):
                at = f"{path}.spiffe_ids[{j}]"
                if not sid.startswith("spiffe://") or len(sid) == len("spiffe://"):
                    self.issue(at, f"SPIFFE id {sid!r} must start with spiffe://")
                elif sid in spiffe_paths:
                    self.issue(at, f"duplicate SPIFFE id {sid!r} (also {spiffe_paths[sid]})")
                else:
                    spiffe_paths[sid] = at
            if name is not None:
                out.append(ServicePrincipal(name, tuple(spiffe_ids)))
        return out

    def pod_identity(self, value: object, path: str) -> PodIdentity | None:
        m = self.fields(value, path, _POD_IDENTITY_KEYS, _POD_IDENTITY_KEYS[:3])
        if m is None:
            return None
        issuer = self.string(m, "issuer", path, empty=False)
        if issuer is not None and issuer not in self.oidc_urls:
            self.issue(
                _at(path, "issuer"),
                f"issuer {issuer!r} is not the url of any oidc provider in the world",
            )
        audience = self.string(m, "audience", path, empty=False)
        cluster = self.string(m, "cluster_name", path, empty=False)
        associations: list[PodIdentityAssociation] = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(self.items(m, "associations", path)):
            at = f"{path}.associations[{i}]"
            a = self.fields(item, at, _ASSOCIATION_KEYS, _ASSOCIATION_KEYS)
            if a is None:
                continue
            namespace = self.string(a, "namespace", at, empty=False)
            account = self.string(a, "service_account", at, empty=False)
            role_arn = self.string(a, "role_arn", at, empty=False)
            if namespace is not None and account is not None:
                if (namespace, account) in seen:
                    self.issue(
                        at, f"duplicate association for service account {namespace}/{account}"
                    )
                seen.add((namespace, account))
            if role_arn is not None and not self.role_exists(role_arn, _at(at, "role_arn")):
                continue
            if namespace and account and role_arn:
                associations.append(PodIdentityAssociation(namespace, account, role_arn))
        if issuer is None or audience is None or cluster is None:
            return None
        return PodIdentity(issuer, audience, cluster, tuple(associations))

    def role_exists(self, arn: str, path: str) -> bool:
        """Is ``arn`` (path included) a role of the world? If not, say so, with the ARN of a
        role of that name when only the path is wrong."""
        parsed = Arn.parse(arn)
        actual = None
        if parsed is not None and parsed.resource.startswith("role/"):
            name = parsed.resource.rsplit("/", 1)[-1].lower()
            actual = self.role_arns.get((parsed.account, name))
        if actual == arn:
            return True
        hint = f" (the role's ARN is {actual})" if actual is not None else ""
        self.issue(path, f"no role {arn}{hint}")
        return False

    def ext_authz(self, value: object, path: str) -> dict[str, object] | None:
        """The Envoy ext_authz mapping, validated and returned as plain data with defaults."""
        m = self.fields(value, path, ("routes", "default", "dry_run"))
        if m is None:
            return None
        routes: list[dict[str, str]] = []
        for i, item in enumerate(self.items(m, "routes", path)):
            at = f"{path}.routes[{i}]"
            route = self.fields(item, at, _ROUTE_KEYS, ("path", "action", "resource"))
            if route is None:
                continue
            out: dict[str, str] = {}
            for key in ("method", "host", "path", "action", "resource"):
                text = self.string(route, key, at, empty=False)
                if text is not None:
                    out[key] = text
            method = out.get("method")
            if method is not None and not _HTTP_METHOD.fullmatch(method):
                self.issue(
                    _at(at, "method"), f"method {method!r} must be an upper-case HTTP method"
                )
            captures = self.route_captures(out["path"], _at(at, "path")) if "path" in out else None
            if captures is not None:
                self.template(out, at, captures)
            routes.append(out)
        default: object = "deny"
        if "default" in m:
            raw = m["default"]
            at = _at(path, "default")
            if isinstance(raw, str):
                if raw != "deny":
                    self.issue(
                        at, f"default must be 'deny' or a map {{action, resource}}, got {raw!r}"
                    )
            else:
                d = self.fields(raw, at, ("action", "resource"), ("action", "resource"))
                if d is not None:
                    plain = {
                        key: text
                        for key in ("action", "resource")
                        if (text := self.string(d, key, at, empty=False)) is not None
                    }
                    self.template(plain, at, set())
                    raw = plain
            default = raw
        return {"routes": routes, "default": default, "dry_run": self.boolean(m, "dry_run", path)}

    def route_captures(self, template: str, path: str) -> set[str] | None:
        """The names a route path captures; None (reported) if the path is not valid."""
        if not template.startswith("/"):
            self.issue(path, f"route path {template!r} must start with '/'")
            return None
        segments = template[1:].split("/")
        names: set[str] = set()
        ok = True
        for i, segment in enumerate(segments):
            if "{" not in segment and "}" not in segment:
                continue
            match = _CAPTURE.fullmatch(segment)
            if match is None:
                self.issue(
                    path,
                    f"route path segment {segment!r}: a placeholder is a whole segment, "
                    "{name} or {name+}",
                )
                ok = False
            elif match.group(2) and i != len(segments) - 1:
                self.issue(path, f"route path {template!r}: {segment} may only end the path")
                ok = False
            elif match.group(1) in _REQUEST_FIELDS:
                self.issue(
                    path,
                    f"route path {template!r}: {{{match.group(1)}}} names the request's "
                    f"{match.group(1)}; choose another placeholder name",
                )
                ok = False
            elif match.group(1) in names:
                self.issue(path, f"route path {template!r}: {segment} appears twice")
                ok = False
            else:
                names.add(match.group(1))
        return names if ok else None

    def template(self, out: Mapping[str, str], path: str, captures: set[str]) -> None:
        """An ext_authz action and resource: their placeholders must be known."""
        known = captures | set(_REQUEST_FIELDS)
        action = out.get("action")
        if action is not None and not _ACTION.fullmatch(action):
            self.issue(_at(path, "action"), f"action {action!r} must be service:Action")
        resource = out.get("resource")
        if resource is not None and resource != "*" and not resource.startswith("arn:"):
            self.issue(_at(path, "resource"), f"resource {resource!r} must be an ARN or '*'")
        for key in ("action", "resource"):
            for name in _PLACEHOLDER.findall(out.get(key, "")):
                if name not in known:
                    self.issue(
                        _at(path, key),
                        f"unknown placeholder {{{name}}} (known: "
                        f"{', '.join('{' + k + '}' for k in sorted(known))})",
                    )

    # -- the second pass -----------------------------------------------------------------------

    def check_references(self) -> None:
        for path, owner, arn in self.policy_refs:
            account = self.managed_arns.get(arn)
            if account is None:
                self.issue(path, f"no managed policy {arn}")
            elif account != owner:
                self.issue(path, f"managed policy {arn} belongs to another account")
        for path, label, arn in self.principal_refs:
            if not self.principal_exists(label, arn):
                message = f'Invalid principal in policy: "{label}":"{arn}"'
                self.issue(path, f"MalformedPolicyDocument: {message}")

    def principal_exists(self, label: str, arn: str) -> bool:
        """Does a principal ARN name an entity of the world? Only ARNs in accounts the world
        defines can be checked; role and user names compare exactly, paths ignored."""
        parsed = Arn.parse(arn)
        if parsed is None or parsed.partition != self.partition or parsed.service != "iam":
            return True
        acct = self.accounts.get(parsed.account)
        if acct is None:
            return True
        kind, _, rest = parsed.resource.partition("/")
        name = rest.rsplit("/", 1)[-1]
        if label == "AWS" and kind == "role":
            return acct.role_names.get(name.lower()) == name
        if label == "AWS" and kind == "user":
            return acct.user_names.get(name.lower()) == name
        if label == "FEDERATED" and kind in ("oidc-provider", "saml-provider"):
            return arn in acct.provider_arns
        return True

    # -- building -------------------------------------------------------------------------------

    def assemble(self, parts: _WorldParts, generation: int) -> World:
        accounts: dict[str, Account] = {}
        roles_by_arn: dict[str, Role] = {}
        users_by_arn: dict[str, User] = {}
        access_keys: dict[str, tuple[User, AccessKey]] = {}
        for account_id, acct in self.accounts.items():
            accounts[account_id] = Account(
                account_id=account_id,
                managed_policies=MappingProxyType(acct.managed_policies),
                roles=MappingProxyType(acct.roles),
                users=MappingProxyType(acct.users),
                oidc_providers=MappingProxyType(acct.oidc_providers),
                saml_providers=MappingProxyType(acct.saml_providers),
                resource_policies=tuple(acct.resource_policies),
            )
            roles_by_arn.update((role.arn, role) for role in acct.roles.values())
            for user in acct.users.values():
                users_by_arn[user.arn] = user
                access_keys.update((key.access_key_id, (user, key)) for key in user.access_keys)
        services = tuple(parts.service_principals)
        return World(
            partition=self.partition,
            accounts=MappingProxyType(accounts),
            service_principals=services,
            pod_identity=parts.pod_identity,
            ext_authz=parts.ext_authz,
            signing_keys_file=parts.signing_keys_file,
            generation=generation,
            roles_by_arn=MappingProxyType(roles_by_arn),
            users_by_arn=MappingProxyType(users_by_arn),
            access_keys=MappingProxyType(access_keys),
            services_by_spiffe=MappingProxyType(
                {sid: sp for sp in services for sid in sp.spiffe_ids}
            ),
        )
