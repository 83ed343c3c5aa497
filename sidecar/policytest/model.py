"""What a test file says, once read: cases, their principal, session and assume parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sidecar.errors import SidecarError
from sidecar.policy.entries import ContextType

DEFAULT_SESSION_NAME = "iam-test"
DEFAULT_POD_NAME = "iam-test"
DEFAULT_POD_UID = "00000000-0000-0000-0000-000000000000"


class Expect(StrEnum):
    ALLOWED = "ALLOWED"
    EXPLICIT_DENY = "EXPLICIT_DENY"
    IMPLICIT_DENY = "IMPLICIT_DENY"
    DENIED = "DENIED"  # either kind of deny; for assume cases, any refusal

    def accepts(self, actual: str) -> bool:
        if self is Expect.DENIED:
            return actual in ("DENIED", "EXPLICIT_DENY", "IMPLICIT_DENY")
        return actual == self.value


class TestFileError(SidecarError):
    """Every problem found in test files (or in setting their cases up against the world), each
    as (source, path inside the file, message)."""

    __test__ = False  # not a pytest class, whatever its name
    code = "InvalidTestFile"

    def __init__(self, issues: list[tuple[str, str, str]]) -> None:
        self.issues = issues
        super().__init__("\n".join(f"{s}: {p}: {m}" if p else f"{s}: {m}" for s, p, m in issues))


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """How the role session of a role principal was made (as AssumeRole parameters would)."""

    name: str = ""  # "" -> DEFAULT_SESSION_NAME, or the name in a session ARN
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str = ""
    policy: str = ""  # inline session policy, JSON text
    policy_arns: tuple[str, ...] = ()
    mfa: bool = False
    issued_at: float | None = None  # None: at the case's time


@dataclass(frozen=True, slots=True)
class AssumeSpec:
    """An AssumeRole call made by the case's principal."""

    role_arn: str
    session_name: str = DEFAULT_SESSION_NAME
    duration_seconds: int = 0
    external_id: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str = ""
    policy: str = ""
    policy_arns: tuple[str, ...] = ()
    mfa: bool = False  # a user caller passes its MFA device's current code


@dataclass(frozen=True, slots=True)
class PodSpec:
    namespace: str
    service_account: str
    pod_name: str = DEFAULT_POD_NAME
    pod_uid: str = DEFAULT_POD_UID


@dataclass(frozen=True, slots=True)
class ContextEntry:
    key: str
    values: tuple[str, ...]
    type: ContextType


@dataclass(frozen=True, slots=True)
class Case:
    """One case to decide; a matrix case is already expanded into several."""

    __test__ = False

    name: str
    source: str  # the test file
    path: str  # where in the file, e.g. tests[3]
    expect: Expect
    principal: str = ""  # a role, user or session ARN, or a mesh service (assume cases)
    pod: PodSpec | None = None
    session: SessionSpec = field(default_factory=SessionSpec)
    action: str = ""
    resource: str = ""
    assume: AssumeSpec | None = None
    context: tuple[ContextEntry, ...] = ()
    at: float | None = None  # epoch seconds; None: the runner's clock
