"""Parse and validate policy documents, with IAM's MalformedPolicyDocument messages.

Checks run in the order of docs/SEMANTICS.md §1.8; the first failing check wins:

1. syntax (JSON, shapes, element names, operators)     "Syntax errors in policy."
2. version, for kinds that need 2012-10-17              "Policy document must be version ..."
3. legacy parsing (Effect case, Date values, ARNs)      "The policy failed legacy parsing"
4. Sid uniqueness; 5. actions present; 6. resource formats; 7. action vendors;
8. resources present; 9. principal rules for the kind (and trust-policy rules).

Every error names where the problem is (``location``, e.g. ``Statement[1].Condition``).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from sidecar.errors import (
    LimitExceeded,
    MalformedPolicyDocument,
    validation_errors,
    violation,
)
from sidecar.policy.arn import PARTITIONS
from sidecar.policy.model import (
    PRINCIPAL_KINDS,
    STRICT_VERSION_KINDS,
    VERSION_2008,
    VERSION_2012,
    ConditionClause,
    Policy,
    PolicyKind,
    PrincipalBlock,
    Statement,
)
from sidecar.policy.operators import parse_operator
from sidecar.policy.values import parse_date
from sidecar.policy.wildcard import compile_glob

SYNTAX = "Syntax errors in policy."
VERSION_REQUIRED = "Policy document must be version 2012-10-17 or greater."
LEGACY = "The policy failed legacy parsing"
SID_UNIQUE = "Statement IDs (SID) in a single policy must be unique."
SID_CHARS = (
    "Statement IDs (SID) must be alpha-numeric. "
    "Check that your input satisfies the regular expression [0-9A-Za-z]*"
)
NO_ACTIONS = "Policy statement must contain actions."
NO_RESOURCES = "Policy statement must contain resources."
NO_PRINCIPAL_ALLOWED = "Policy document should not specify a principal."
PRINCIPAL_REQUIRED = "Missing required field Principal"
TRUST_RESOURCE = "Has prohibited field Resource."
TRUST_NOT_PRINCIPAL = "Has prohibited field NotPrincipal."
# Organizations UG, "RCP syntax": Allow only in the AWS-managed RCPFullAWSAccess; Principal "*".
RCP_ALLOW = "The effect of Allow is only supported for the RCPFullAWSAccess policy."
RCP_PRINCIPAL = 'A resource control policy must specify Principal "*".'
TRUST_ACTIONS = (
    "Trust Policy statement actions can only be sts:AssumeRole, sts:AssumeRoleWithSAML,  "
    "and sts:AssumeRoleWithWebIdentity"
)
VENDOR_REQUIRED = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
ONE_COLON = "Actions/Condition can contain only one colon."
VENDOR_REGEX = "Resource vendor must be fully qualified and cannot contain regexes."
IAM_PATH_STARTS = (
    "user/", "federated-user/", "role/", "group/", "instance-profile/", "mfa/",
    "server-certificate/", "policy/", "sms-mfa/", "saml-provider/", "oidc-provider/",
    "report/", "access-report/",
)  # fmt: skip
IAM_PATH = 'IAM resource path must either be "*" or start with ' + ", ".join(IAM_PATH_STARTS) + "."

TRUST_ACTION_NAMES = (
    "sts:assumerole",
    "sts:assumerolewithsaml",
    "sts:assumerolewithwebidentity",
    "sts:tagsession",
    "sts:setsourceidentity",
    "sts:setcontext",
)

TOP_KEYS = frozenset({"Version", "Id", "Statement"})
STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
     "NotResource", "Condition"}
)  # fmt: skip
PRINCIPAL_KEYS = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})

# Quotas on the document's non-whitespace characters (docs/SEMANTICS.md §1.7).
DEFAULT_QUOTAS: dict[PolicyKind, tuple[int, str]] = {
    PolicyKind.MANAGED: (6144, "Cannot exceed quota for PolicySize: 6144"),
    PolicyKind.BOUNDARY: (6144, "Cannot exceed quota for PolicySize: 6144"),
    PolicyKind.TRUST: (2048, "Cannot exceed quota for ACLSizePerRole: 2048"),
    PolicyKind.SCP: (5120, "Cannot exceed quota for PolicySize: 5120"),
    PolicyKind.RCP: (5120, "Cannot exceed quota for PolicySize: 5120"),
}
API_MAX_CHARS = 131072
_ALLOWED_CHARS = re.compile(r"^[\t\n\r\u0020-\u00ff]*\Z")
# The characters of a policy document parameter as AWS's messages show the pattern.
POLICY_PATTERN = r"[\u0009\u000A\u000D\u0020-\u00FF]+"
_PATTERN_CONSTRAINT = f"Member must satisfy regular expression pattern: {POLICY_PATTERN}"
_SID = re.compile(r"^[A-Za-z0-9]*\Z")
_VENDOR_BAD = re.compile(r"[^a-zA-Z0-9\-.]")
_ACCOUNT = re.compile(r"^\d{12}\Z")
_UNIQUE_ID = re.compile(r"^A[A-Z0-9]{3}[A-Z0-9]{12,124}\Z")
_WHITESPACE = re.compile(r"\s+")

_Json = Any


class _Fail(Exception):
    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.message = message
        self.location = location


def _fail(message: str, location: str) -> NoReturn:
    raise _Fail(message, location)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str) -> _Json:
    """Strict JSON: duplicate keys and NaN/Infinity are errors."""
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_no_constants)


def _normalize(obj: _Json) -> _Json:
    """Make a YAML-loaded document JSON-shaped (YAML reads an unquoted 2012-10-17 as a date)."""
    if isinstance(obj, Mapping):
        return {str(k): _normalize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalize(v) for v in obj]
    if isinstance(obj, _dt.datetime | _dt.date):
        return obj.isoformat()
    return obj


def policy_size(text: str) -> int:
    """Characters that count toward IAM quotas: whitespace never counts."""
    return len(_WHITESPACE.sub("", text))


def parse_policy(
    source: str | Mapping[str, Any],
    kind: PolicyKind,
    *,
    policy_id: str = "",
    field: str = "policyDocument",
    quota: tuple[int, str] | None = None,
    enforce_quota: bool = True,
) -> Policy:
    """Validate ``source`` as a policy of ``kind`` and return its parsed form.

    ``field`` names the parameter in ValidationError messages; ``quota`` overrides the kind's
    default size quota; ``enforce_quota=False`` skips quotas (SimulateCustomPolicy has none
    beyond its 131,072 characters).
    Raises MalformedPolicyDocument, ValidationError or LimitExceeded.
    """
    if isinstance(source, str):
        text = source
        if len(text) > API_MAX_CHARS or not text:
            raise validation_errors(
                [violation(field, f"Member must have length between 1 and {API_MAX_CHARS}")]
            )
        if not _ALLOWED_CHARS.match(text):
            raise validation_errors([violation(field, _PATTERN_CONSTRAINT)])
        try:
            doc = load_json(text)
        except (ValueError, RecursionError):
            raise MalformedPolicyDocument(SYNTAX, location="$") from None
    else:
        doc = _normalize(source)
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        if not _ALLOWED_CHARS.match(text):
            raise validation_errors([violation(field, _PATTERN_CONSTRAINT)])
    try:
        policy = _Validator(doc, kind, policy_id).run()
    except _Fail as f:
        raise MalformedPolicyDocument(f.message, location=f.location) from None
    limit = quota if quota is not None else DEFAULT_QUOTAS.get(kind)
    if enforce_quota and limit is not None and policy_size(text) > limit[0]:
        raise LimitExceeded(limit[1])
    return policy


def _as_list(value: _Json) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _scalar_text(value: _Json) -> str:
    """Condition values: quotes are optional around numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class _Validator:
    def __init__(self, doc: _Json, kind: PolicyKind, policy_id: str) -> None:
        self.doc = doc
        self.kind = kind
        self.policy_id = policy_id
        self.statements: list[dict[str, Any]] = []

    def run(self) -> Policy:
        self._syntax()
        version = self.doc.get("Version", "")
        if self.kind in STRICT_VERSION_KINDS and version != VERSION_2012:
            _fail(VERSION_REQUIRED, "Version")
        self._legacy()
        resource_error = self._resource_formats()
        self._sid_uniqueness()
        self._actions_present()
        if resource_error is not None:
            _fail(*resource_error)
        self._action_vendors()
        self._kind_rules()
        return self._build(version)

    # -- 1. syntax ---------------------------------------------------------------------------
    def _syntax(self) -> None:
        doc = self.doc
        if not isinstance(doc, dict):
            _fail(SYNTAX, "$")
        for key in doc:
            if key not in TOP_KEYS:
                _fail(SYNTAX, key)
        if "Version" in doc and doc["Version"] not in (VERSION_2012, VERSION_2008):
            _fail(SYNTAX, "Version")
        if "Id" in doc and not isinstance(doc["Id"], str):
            _fail(SYNTAX, "Id")
        if "Statement" not in doc:
            _fail(SYNTAX, "Statement")
        body = doc["Statement"]
        if isinstance(body, dict):
            self.statements = [body]
        elif isinstance(body, list) and body:
            self.statements = body
        else:
            _fail(SYNTAX, "Statement")
        for i, st in enumerate(self.statements):
            self._statement_syntax(st, f"Statement[{i}]")

    def _statement_syntax(self, st: _Json, loc: str) -> None:
        if not isinstance(st, dict):
            _fail(SYNTAX, loc)
        for key in st:
            if key not in STATEMENT_KEYS:
                _fail(SYNTAX, f"{loc}.{key}")
        for a, b in (("Action", "NotAction"), ("Resource", "NotResource"),
                     ("Principal", "NotPrincipal")):  # fmt: skip
            if a in st and b in st:
                _fail(SYNTAX, f"{loc}.{b}")
        effect = st.get("Effect")
        if not isinstance(effect, str) or effect.lower() not in ("allow", "deny"):
            _fail(SYNTAX, f"{loc}.Effect")
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in st:
                value = st[key]
                if not isinstance(value, str | list) or (
                    isinstance(value, list) and not all(isinstance(v, str) for v in value)
                ):
                    _fail(SYNTAX, f"{loc}.{key}")
        if "Sid" in st and not isinstance(st["Sid"], str):
            _fail(SYNTAX, f"{loc}.Sid")
        for key in ("Principal", "NotPrincipal"):
            if key in st:
                self._principal_syntax(st[key], f"{loc}.{key}")
        if "Condition" in st:
            self._condition_syntax(st["Condition"], f"{loc}.Condition")

    @staticmethod
    def _principal_syntax(value: _Json, loc: str) -> None:
        if value == "*":
            return
        if not isinstance(value, dict) or not value:
            _fail(SYNTAX, loc)
        for key, entries in value.items():
            if key not in PRINCIPAL_KEYS:
                _fail(SYNTAX, f"{loc}.{key}")
            if isinstance(entries, str):
                continue
            if not isinstance(entries, list) or not entries:
                _fail(SYNTAX, f"{loc}.{key}")
            if not all(isinstance(e, str) for e in entries):
                _fail(SYNTAX, f"{loc}.{key}")

    @staticmethod
    def _condition_syntax(block: _Json, loc: str) -> None:
        if not isinstance(block, dict):
            _fail(SYNTAX, loc)
        for op, keys in block.items():
            if not isinstance(keys, dict):
                _fail(SYNTAX, f"{loc}.{op}")
            if parse_operator(op) is None:  # unknown operators are malformed (§3.2)
                _fail(SYNTAX, f"{loc}.{op}")
            for key, values in keys.items():
                where = f"{loc}.{op}.{key}"
                if not key:
                    _fail(SYNTAX, where)
                for v in _as_list(values):
                    if v is None or isinstance(v, dict | list):
                        _fail(SYNTAX, where)

    # -- 3. legacy parsing -------------------------------------------------------------------
    def _legacy(self) -> None:
        for i, st in enumerate(self.statements):
            loc = f"Statement[{i}]"
            if st["Effect"] not in ("Allow", "Deny"):  # case-sensitive
                _fail(LEGACY, f"{loc}.Effect")
            for op, keys in st.get("Condition", {}).items():
                parsed = parse_operator(op)
                if parsed is None or not parsed.base.startswith("Date"):
                    continue
                for key, values in keys.items():
                    for v in _as_list(values):
                        if isinstance(v, bool) or parse_date(_scalar_text(v)) is None:
                            _fail(LEGACY, f"{loc}.Condition.{op}.{key}")

    def _resource_formats(self) -> tuple[str, str] | None:
        """Find the first resource format error (reported after the Sid and action checks);
        while none is found, resources also go through legacy parsing (reported now)."""
        first: tuple[str, str] | None = None
        for i, st in enumerate(self.statements):
            for key in ("Resource", "NotResource"):
                if key not in st:
                    continue
                loc = f"Statement[{i}].{key}"
                for r in _as_list(st[key]):
                    if first is None:
                        message = _resource_format_error(r)
                        if message is not None:
                            first = (message, loc)
                if first is None:
                    for r in _as_list(st[key]):
                        if not _legacy_resource_ok(r):
                            _fail(LEGACY, loc)
        return first

    # -- 4, 5, 7 -----------------------------------------------------------------------------
    def _sid_uniqueness(self) -> None:
        seen: set[str] = set()
        iam_sids = self.kind is not PolicyKind.RESOURCE
        for i, st in enumerate(self.statements):
            sid = st.get("Sid", "")
            if iam_sids and not _SID.match(sid):
                _fail(SID_CHARS, f"Statement[{i}].Sid")
            if sid:
                if sid in seen:
                    _fail(SID_UNIQUE, f"Statement[{i}].Sid")
                seen.add(sid)

    def _actions_present(self) -> None:
        for i, st in enumerate(self.statements):
            key = "Action" if "Action" in st else "NotAction" if "NotAction" in st else None
            if key is None or st[key] == []:
                _fail(NO_ACTIONS, f"Statement[{i}]")

    def _action_vendors(self) -> None:
        for i, st in enumerate(self.statements):
            key = "Action" if "Action" in st else "NotAction"
            for action in _as_list(st[key]):
                message = _action_error(action)
                if message is not None:
                    _fail(message, f"Statement[{i}].{key}")

    # -- 8, 9: rules of the policy's kind ------------------------------------------------------
    def _kind_rules(self) -> None:
        trust = self.kind is PolicyKind.TRUST
        for i, st in enumerate(self.statements):
            loc = f"Statement[{i}]"
            has_resource = "Resource" in st or "NotResource" in st
            if not trust and (not has_resource or st.get("Resource", st.get("NotResource")) == []):
                _fail(NO_RESOURCES, loc)
        for i, st in enumerate(self.statements):
            loc = f"Statement[{i}]"
            has_principal = "Principal" in st or "NotPrincipal" in st
            if self.kind not in PRINCIPAL_KINDS:
                if has_principal:
                    _fail(NO_PRINCIPAL_ALLOWED, f"{loc}.Principal")
                continue
            if not has_principal:
                _fail(PRINCIPAL_REQUIRED, loc)
            if self.kind is PolicyKind.RCP:
                if st.get("Effect") != "Deny":
                    _fail(RCP_ALLOW, f"{loc}.Effect")
                if st.get("Principal") != "*":
                    _fail(RCP_PRINCIPAL, f"{loc}.Principal")
            if trust:
                if "NotPrincipal" in st:
                    _fail(TRUST_NOT_PRINCIPAL, f"{loc}.NotPrincipal")
                if "Action" in st:
                    for action in _as_list(st["Action"]):
                        if not _is_trust_action(action):
                            _fail(TRUST_ACTIONS, f"{loc}.Action")
                if "Resource" in st or "NotResource" in st:
                    _fail(TRUST_RESOURCE, f"{loc}.Resource")
            key = "Principal" if "Principal" in st else "NotPrincipal"
            _check_principal_values(st[key], f"{loc}.{key}")

    # -- build -----------------------------------------------------------------------------
    def _build(self, version: str) -> Policy:
        statements = []
        for i, st in enumerate(self.statements):
            not_action = "NotAction" in st
            actions = tuple(_as_list(st["NotAction" if not_action else "Action"]))
            not_resource = "NotResource" in st
            res_key = "NotResource" if not_resource else "Resource"
            resources = tuple(_as_list(st[res_key])) if res_key in st else None
            not_principal = "NotPrincipal" in st
            p_key = "NotPrincipal" if not_principal else "Principal"
            principal = _principal_block(st[p_key]) if p_key in st else None
            conditions = []
            for op, keys in st.get("Condition", {}).items():
                parsed = parse_operator(op)
                assert parsed is not None  # checked in _syntax
                for key, values in keys.items():
                    conditions.append(
                        ConditionClause(
                            operator=op,
                            base=parsed.base,
                            qualifier=parsed.qualifier,
                            if_exists=parsed.if_exists,
                            key=key,
                            values=tuple(_scalar_text(v) for v in _as_list(values)),
                        )
                    )
            statements.append(
                Statement(
                    index=i,
                    sid=st.get("Sid", ""),
                    effect=st["Effect"],
                    actions=actions,
                    not_action=not_action,
                    resources=resources,
                    not_resource=not_resource,
                    principal=principal,
                    not_principal=not_principal,
                    conditions=tuple(conditions),
                )
            )
        return Policy(self.policy_id, self.kind, version, tuple(statements))


def _resource_format_error(r: str) -> str | None:
    if r == "*":
        return None
    prefix, colon, rest = r.partition(":")
    if not colon or prefix != "arn":
        return f'Resource {r} must be in ARN format or "*".'
    partition, colon, rest = rest.partition(":")
    if partition not in PARTITIONS:
        parts = rest.split(":")
        a1 = parts[0] if parts[0] != "" or len(parts) > 1 else "*"
        a2 = parts[1] if len(parts) > 1 else "*"
        a3 = parts[2] if len(parts) > 2 else "*"
        a4 = ":".join(parts[3:]) if len(parts) > 3 else "*"
        padded = f"arn:{partition}:{a1}:{a2}:{a3}:{a4}"
        return f'Partition "{partition}" is not valid for resource "{padded}".'
    if not colon:
        return VENDOR_REGEX
    service, colon, rest = rest.partition(":")
    if "*" in service or "?" in service:
        return VENDOR_REGEX
    region, _, rest = rest.partition(":")
    if service == "iam" and region:
        return f"IAM resource {r} cannot contain region information."
    _account, colon, resource = rest.partition(":")
    if service == "s3" and region and not resource.startswith("accesspoint/"):
        return f"Resource {r} can not contain region information."
    if (
        service == "iam"
        and colon
        and not (
            resource == "*" or resource.startswith("*") or resource.startswith(IAM_PATH_STARTS)
        )
    ):
        return IAM_PATH
    return None


def _legacy_resource_ok(r: str) -> bool:
    if r == "*":
        return True
    if not (r.count(":") >= 5 or "::" not in r):
        return False
    parts = r.split(":")
    return len(parts) > 2 and parts[2] != ""


def _action_error(action: str) -> str | None:
    parts = action.split(":")
    if len(parts) == 1 and action != "*":
        return VENDOR_REQUIRED
    if len(parts) > 2:
        return ONE_COLON
    vendor = parts[0]
    if vendor != "*" and _VENDOR_BAD.search(vendor):
        return f"Vendor {vendor} is not valid"
    return None


def _is_trust_action(action: str) -> bool:
    match = compile_glob(action.lower(), ignore_case=True)
    return any(match(name) for name in TRUST_ACTION_NAMES)


def _valid_aws_principal(value: str) -> bool:
    if value == "*" or _ACCOUNT.match(value) or _UNIQUE_ID.match(value):
        return True
    if "*" in value or "?" in value:
        return False
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[1] not in PARTITIONS or parts[3]:
        return False
    service, account, resource = parts[2], parts[4], parts[5]
    if not _ACCOUNT.match(account):
        return False
    if service == "iam":
        if resource == "root":
            return True
        kind, _, rest = resource.partition("/")
        return kind in ("user", "role") and bool(rest) and not rest.endswith("/")
    if service == "sts":
        kind, _, rest = resource.partition("/")
        if kind == "assumed-role":
            role, _, session = rest.partition("/")
            return bool(role) and bool(session) and "/" not in session
        return kind == "federated-user" and bool(rest) and "/" not in rest
    return False


def _check_principal_values(value: _Json, loc: str) -> None:
    if value == "*":
        return
    checks: dict[str, Callable[[str], bool]] = {
        "AWS": _valid_aws_principal,
        "Service": lambda s: bool(s) and "*" not in s,
        "Federated": lambda s: bool(s) and "*" not in s,
        "CanonicalUser": lambda s: bool(s),
    }
    for key, entries in value.items():
        for entry in _as_list(entries):
            if not checks[key](entry):
                label = "SERVICE" if key == "Service" else key.upper() if key != "AWS" else "AWS"
                raise _Fail(f'Invalid principal in policy: "{label}":"{entry}"', f"{loc}.{key}")


def _principal_block(value: _Json) -> PrincipalBlock:
    if value == "*":
        return PrincipalBlock(wildcard=True)
    aws = tuple(_as_list(value.get("AWS", [])))
    return PrincipalBlock(
        wildcard="*" in aws,
        aws=tuple(a for a in aws if a != "*"),
        service=tuple(_as_list(value.get("Service", []))),
        federated=tuple(_as_list(value.get("Federated", []))),
        canonical_user=tuple(_as_list(value.get("CanonicalUser", []))),
    )
