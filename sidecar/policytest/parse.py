"""A parsed test file (YAML/JSON data) → cases, every problem reported with its path.

The format is docs/POLICY-TESTS.md. Reading goes on after a problem, as the world loader's does
(sidecar/identity/load/toolkit.py), so that one run lists them all; nothing is returned when
there is any.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sidecar.errors import SidecarError
from sidecar.identity.load.toolkit import Reader, at, kind, plain
from sidecar.policy.entries import ContextType, context_from_entries
from sidecar.policytest.keys import refused_key
from sidecar.policytest.model import (
    DEFAULT_POD_NAME,
    DEFAULT_POD_UID,
    DEFAULT_SESSION_NAME,
    AssumeSpec,
    Case,
    ContextEntry,
    Expect,
    PodSpec,
    SessionSpec,
    TestFileError,
)

_FILE_KEYS = ("tests",)
# The parameters of an assume case, beside `assume` (AssumeRole's, in snake_case).
ASSUME_KEYS = (
    "session_name",
    "duration_seconds",
    "external_id",
    "tags",
    "transitive_tag_keys",
    "source_identity",
    "session_policy",
    "policy_arns",
    "mfa",
)
CASE_KEYS = (
    "name",
    "principal",
    "pod",
    "session",
    "action",
    "resource",
    "matrix",
    "context",
    "assume",
    "expect",
    "at",
    *ASSUME_KEYS,
)
SESSION_KEYS = (
    "name",
    "tags",
    "transitive_tag_keys",
    "source_identity",
    "session_policy",
    "policy_arns",
    "mfa",
    "issued_at",
)
POD_KEYS = ("namespace", "service_account", "pod_name", "pod_uid")
MATRIX_KEYS = ("action", "resource")
_TYPED_KEYS = ("type", "values")
_TYPES = tuple(t.name for t in ContextType if t is not ContextType.UNSPECIFIED)


def parse_test_file(doc: Any, source: str) -> list[Case]:
    """The cases of one test file, matrices expanded; raises TestFileError with every problem."""
    r = Reader()
    cases: list[Case] = []
    top = r.fields(doc, "", _FILE_KEYS, _FILE_KEYS)
    if top is not None:
        if isinstance(top.get("tests"), list) and not top["tests"]:
            r.issue("tests", "must list at least one test")
        for item, where in r.each(top, "tests", ""):
            cases += _case(r, item, where, source)
    _unique_names(r, cases)
    if r.issues:
        raise TestFileError([(source, path, message) for path, message in r.issues])
    return cases


def _unique_names(r: Reader, cases: list[Case]) -> None:
    seen: dict[str, str] = {}
    for case in cases:
        if case.name in seen:
            r.issue(case.path, f"the test name {case.name!r} is used by {seen[case.name]} too")
        else:
            seen[case.name] = case.path


# -- one case ---------------------------------------------------------------------------------


def _case(r: Reader, item: object, path: str, source: str) -> list[Case]:
    m = r.fields(item, path, CASE_KEYS, ("name", "expect"))
    if m is None:
        return []
    before = len(r.issues)
    name = r.string(m, "name", path, empty=False) or ""
    principal = r.string(m, "principal", path, empty=False) or ""
    pod = _pod(r, m, path)
    if ("principal" in m) == ("pod" in m):
        r.issue(path, "give exactly one of 'principal' or 'pod'")
    assume = _assume(r, m, path)
    expect = _expect(r, m, path, assume is not None)
    session = _session(r, m, path)
    if "session" in m and "pod" in m:
        r.issue(at(path, "session"), "a pod's session is made by pod identity: drop 'session'")
    context = _context(r, m, path)
    if assume is not None and "context" in m:
        r.issue(
            at(path, "context"),
            "assume cases read no request context: STS takes only the assume parameters",
        )
    when = _time(r, m, "at", path)
    pairs = _pairs(r, m, path, assume is not None)
    if len(r.issues) > before or expect is None:
        return []
    base = Case(
        name=name,
        source=source,
        path=path,
        expect=expect,
        principal=principal,
        pod=pod,
        session=session,
        assume=assume,
        context=context,
        at=when,
    )
    if pairs is None:  # an assume case
        return [base]
    if "matrix" not in m:
        action, resource = pairs[0]
        return [_with(base, name, action, resource)]
    return [_with(base, f"{name} [{a} {res}]", a, res) for a, res in pairs]


def _with(base: Case, name: str, action: str, resource: str) -> Case:
    return Case(
        name=name,
        source=base.source,
        path=base.path,
        expect=base.expect,
        principal=base.principal,
        pod=base.pod,
        session=base.session,
        action=action,
        resource=resource,
        assume=base.assume,
        context=base.context,
        at=base.at,
    )


def _expect(r: Reader, m: Mapping[Any, Any], path: str, assume: bool) -> Expect | None:
    text = r.string(m, "expect", path)
    if text is None:
        return None
    allowed = ("ALLOWED", "DENIED") if assume else tuple(e.value for e in Expect)
    if text not in allowed:
        what = "an assume case expects" if assume else "expected"
        r.issue(at(path, "expect"), f"{what} one of {', '.join(allowed)}, got {text!r}")
        return None
    return Expect(text)


def _pairs(
    r: Reader, m: Mapping[Any, Any], path: str, assume: bool
) -> list[tuple[str, str]] | None:
    """(action, resource) pairs of an action case; None for an assume case."""
    if assume:
        for key in ("action", "resource", "matrix"):
            if key in m:
                r.issue(at(path, key), "an assume case has no action or resource: drop it")
        return None
    matrix: dict[Any, Any] = {}
    if "matrix" in m:
        matrix = r.fields(m["matrix"], at(path, "matrix"), MATRIX_KEYS) or {}
    lists: list[list[str]] = []
    for key in ("action", "resource"):
        if key in matrix:
            if key in m:
                r.issue(at(path, key), f"give '{key}' or 'matrix.{key}', not both")
            lists.append(r.strings(matrix, key, at(path, "matrix"), required=True))
        elif key in m:
            lists.append([r.string(m, key, path, empty=False) or ""])
        else:
            r.issue(path, f"missing required key '{key}' (or 'assume' for an assume case)")
            lists.append([])
    return [(a, res) for a in lists[0] for res in lists[1]]


# -- principal, session, pod --------------------------------------------------------------------


def _pod(r: Reader, m: Mapping[Any, Any], path: str) -> PodSpec | None:
    if "pod" not in m:
        return None
    where = at(path, "pod")
    p = r.fields(m["pod"], where, POD_KEYS, POD_KEYS[:2])
    if p is None:
        return None
    namespace = r.string(p, "namespace", where, empty=False)
    account = r.string(p, "service_account", where, empty=False)
    pod_name = r.string(p, "pod_name", where, empty=False) or DEFAULT_POD_NAME
    pod_uid = r.string(p, "pod_uid", where, empty=False) or DEFAULT_POD_UID
    if namespace is None or account is None:
        return None
    return PodSpec(namespace, account, pod_name, pod_uid)


def _session(r: Reader, m: Mapping[Any, Any], path: str) -> SessionSpec:
    if "session" not in m:
        return SessionSpec()
    where = at(path, "session")
    s = r.fields(m["session"], where, SESSION_KEYS)
    if s is None:
        return SessionSpec()
    tags, keys = _tags(r, s, where)
    return SessionSpec(
        name=r.string(s, "name", where, empty=False) or "",
        tags=tags,
        transitive_tag_keys=keys,
        source_identity=r.string(s, "source_identity", where) or "",
        policy=_policy(r, s, where),
        policy_arns=tuple(r.strings(s, "policy_arns", where)),
        mfa=r.boolean(s, "mfa", where),
        issued_at=_time(r, s, "issued_at", where),
    )


def _assume(r: Reader, m: Mapping[Any, Any], path: str) -> AssumeSpec | None:
    if "assume" not in m:
        for key in ASSUME_KEYS:
            if key in m:
                r.issue(at(path, key), f"'{key}' is an assume parameter: it needs 'assume'")
        return None
    role_arn = r.string(m, "assume", path, empty=False)
    if "pod" in m:
        for key in ASSUME_KEYS:
            if key in m:
                r.issue(at(path, key), "pod identity sets the assume parameters: drop it")
    duration = m.get("duration_seconds", 0)
    if not isinstance(duration, int) or isinstance(duration, bool):
        r.issue(at(path, "duration_seconds"), f"expected an integer, got {kind(duration)}")
        duration = 0
    tags, keys = _tags(r, m, path)
    if role_arn is None:
        return None
    return AssumeSpec(
        role_arn=role_arn,
        session_name=r.string(m, "session_name", path, empty=False) or DEFAULT_SESSION_NAME,
        duration_seconds=duration,
        external_id=r.string(m, "external_id", path) or "",
        tags=tags,
        transitive_tag_keys=keys,
        source_identity=r.string(m, "source_identity", path) or "",
        policy=_policy(r, m, path),
        policy_arns=tuple(r.strings(m, "policy_arns", path)),
        mfa=r.boolean(m, "mfa", path),
    )


def _tags(
    r: Reader, m: Mapping[Any, Any], path: str
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    tags: list[tuple[str, str]] = []
    for key, value in (r.mapping(m, "tags", path, "tag keys to values") or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            shown = value if isinstance(key, str) else key
            r.issue(at(at(path, "tags"), key), f"expected text, got {kind(shown)}: quote it")
        else:
            tags.append((key, value))
    return tuple(tags), tuple(r.strings(m, "transitive_tag_keys", path))


def _policy(r: Reader, m: Mapping[Any, Any], path: str) -> str:
    """A session policy written as a map or a JSON string, as JSON text (checked by STS)."""
    value = m.get("session_policy")
    if value is None:
        if "session_policy" in m:
            r.issue(at(path, "session_policy"), "expected a policy document, got null")
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(plain(value), separators=(",", ":"))
    r.issue(
        at(path, "session_policy"),
        f"expected a policy document (a map or a JSON string), got {kind(value)}",
    )
    return ""


# -- time and context -----------------------------------------------------------------------


def _time(r: Reader, m: Mapping[Any, Any], key: str, path: str) -> float | None:
    """An ISO 8601 time (YAML may have read it as a date or datetime already) as epoch
    seconds; a time without a zone is UTC."""
    if key not in m:
        return None
    value = m[key]
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            r.issue(at(path, key), f"not an ISO 8601 time: {value!r} (e.g. 2026-11-02T09:30:00Z)")
            return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        r.issue(at(path, key), f"expected an ISO 8601 time, got {kind(value)}")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _context(r: Reader, m: Mapping[Any, Any], path: str) -> tuple[ContextEntry, ...]:
    where = at(path, "context")
    given = r.mapping(m, "context", path, "condition keys to values")
    entries: list[ContextEntry] = []
    for key, value in (given or {}).items():
        key_path = at(where, key)
        if not isinstance(key, str) or not key:
            r.issue(key_path, f"a condition key is text, got {kind(key)}")
            continue
        refusal = refused_key(key)
        if refusal is not None:
            r.issue(key_path, refusal)
            continue
        entry = _entry(r, key, value, key_path)
        if entry is not None:
            entries.append(entry)
    try:  # the checks a typed ContextEntry gets (values of their type, counts, repeats)
        context_from_entries((e.key, e.values, e.type) for e in entries)
    except SidecarError as err:
        r.issue(where, err.message)
    return tuple(entries)


def _entry(r: Reader, key: str, value: object, path: str) -> ContextEntry | None:
    """A string is STRING, a list STRING_LIST, true/false BOOLEAN, a number NUMERIC, and
    {type, values} any type."""
    if isinstance(value, bool):
        return ContextEntry(key, ("true" if value else "false",), ContextType.BOOLEAN)
    if isinstance(value, int | float):
        return ContextEntry(key, (str(value),), ContextType.NUMERIC)
    if isinstance(value, str):
        return ContextEntry(key, (value,), ContextType.STRING)
    if isinstance(value, list):
        texts = _texts(r, value, path)
        return None if texts is None else ContextEntry(key, texts, ContextType.STRING_LIST)
    if isinstance(value, dict):
        typed = r.fields(value, path, _TYPED_KEYS, _TYPED_KEYS)
        if typed is None or "type" not in typed or "values" not in typed:
            return None
        name = typed["type"]
        if name not in _TYPES:
            r.issue(at(path, "type"), f"expected one of {', '.join(_TYPES)}, got {name!r}")
            return None
        values = typed["values"]
        if not isinstance(values, list):
            r.issue(at(path, "values"), f"expected a list, got {kind(values)}")
            return None
        texts = _texts(r, values, at(path, "values"))
        return None if texts is None else ContextEntry(key, texts, ContextType[name])
    r.issue(path, f"expected a string, a list or {{type, values}}, got {kind(value)}")
    return None


def _texts(r: Reader, values: list[Any], path: str) -> tuple[str, ...] | None:
    """Context values as text: strings as they are; numbers and booleans as IAM writes them."""
    out: list[str] = []
    for i, v in enumerate(values):
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, str | int | float):
            out.append(str(v))
        else:
            r.issue(f"{path}[{i}]", f"expected a value, got {kind(v)}")
            return None
    return tuple(out)
