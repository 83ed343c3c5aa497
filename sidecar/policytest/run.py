"""Decide every case with the code the sidecar runs.

Action cases go through the engine: a role (or session ARN) principal through
Authorizer.authorize_session with a session minted as AssumeRole mints it, a user through
engine/user_principal.py, a pod through the session pod identity issues it. Assume cases call
the STS core (sidecar/sts/assume.py, sidecar/sts/pod_identity.py): trust, the caller's own
policies, the organization's guardrails and every parameter check, as the AssumeRole call.

Everything that does not depend on the answer (the principal, the session, the context) is set
up for every case first; a problem there is a problem of the test file (TestFileError, all of
them at once), not a failed case.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sidecar.engine.authorize import Authorizer, AuthzResult, federated_prefixes
from sidecar.engine.limits import check_request as check_sizes
from sidecar.engine.user_principal import authorize_user
from sidecar.errors import AccessDenied, SidecarError
from sidecar.identity.load.toolkit import at
from sidecar.identity.model import World
from sidecar.policy.context import Context
from sidecar.policy.entries import context_from_entries
from sidecar.policy.evaluate import Matched
from sidecar.policytest.model import Case, SessionSpec, TestFileError
from sidecar.policytest.principals import Principal, find_principal, role_session, session_problem
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role
from sidecar.sts.callers import Caller, ServiceCaller, SessionCaller, UserCaller
from sidecar.sts.clock import Clock
from sidecar.sts.keys import KeyRing
from sidecar.sts.mfa import totp
from sidecar.sts.pod_identity import PodClaims, authorize_pod, issue_pod_session

DENIED = "DENIED"


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    actual: str  # ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY; assume cases: ALLOWED or DENIED
    principal_arn: str  # who was decided for (a session's ARN for a role)
    reason: str  # AWS's sentence, or the refusal's "Code: message"
    deciding: tuple[Matched, ...] = ()

    @property
    def passed(self) -> bool:
        return self.case.expect.accepts(self.actual)


class _CaseClock:
    """The time of the case being decided: the Authorizer and STS read it."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


class _Entropy:
    """Repeatable bytes: access key ids and token keys of test sessions need not be secret."""

    def __init__(self) -> None:
        self.counter = 0

    def token_bytes(self, n: int) -> bytes:
        self.counter += 1
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"iam-test:{self.counter}:{len(out)}".encode()).digest()
        return out[:n]

    def random(self) -> float:
        return 0.5


@dataclass(frozen=True, slots=True)
class _Plan:
    case: Case
    time: float
    caller: Caller | None = None  # None for a pod
    context: Context | None = None


class _Problems(Exception):
    def __init__(self, issues: list[tuple[str, str]]) -> None:
        super().__init__()
        self.issues = issues


class Runner:
    """Decides cases against one world; the policies compiled for one case serve the next."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.clock = _CaseClock()
        entropy = _Entropy()
        self.env = StsEnv(world, KeyRing.generate(entropy, "iam-test"), self.clock, entropy)
        self.authorizer = Authorizer(world, self.env.keys, self.clock)
        self._federated = federated_prefixes(world)

    def run(self, cases: list[Case], clock: Clock) -> list[CaseResult]:
        """Raises TestFileError (every problem) when a case cannot be set up."""
        now = clock.now()  # one time for every case without `at`
        plans: list[_Plan] = []
        issues: list[tuple[str, str, str]] = []
        for case in cases:
            try:
                plans.append(self.plan(case, now if case.at is None else case.at))
            except _Problems as err:
                issues += [(case.source, path, message) for path, message in err.issues]
        if issues:
            raise TestFileError(list(dict.fromkeys(issues)))  # matrix cases repeat theirs
        return [self.decide(plan) for plan in plans]

    # -- setting a case up --------------------------------------------------------------------

    def plan(self, case: Case, time: float) -> _Plan:
        problems: list[tuple[str, str]] = []
        context = self._context(case, problems)
        caller: Caller | None = None
        if case.principal:
            found = find_principal(self.world, case.principal)
            if isinstance(found, str):
                problems.append((at(case.path, "principal"), found))
            else:
                caller = self._caller(case, found, time, problems)
        if problems:
            raise _Problems(problems)
        return _Plan(case, time, caller, context)

    def _caller(
        self, case: Case, found: Principal, time: float, problems: list[tuple[str, str]]
    ) -> Caller | None:
        where = at(case.path, "session")
        if case.assume is not None and case.assume.mfa:
            if found.user is None:
                problems.append((at(case.path, "mfa"), "only a user caller has an MFA device"))
            elif not found.user.mfa_devices:
                problems.append((at(case.path, "mfa"), f"{found.arn} has no MFA device"))
        if found.role is None:
            if case.session != SessionSpec():
                problems.append((where, "only a role principal has a session: drop 'session'"))
            if found.user is not None:
                return UserCaller(found.user, self.world.partition)
            assert found.service is not None
            if case.assume is None:
                problems.append(
                    (
                        at(case.path, "principal"),
                        "a mesh service holds no policies: it is a principal of assume cases only",
                    )
                )
            return ServiceCaller(found.service)
        if found.session_name and case.session.name:
            problems.append(
                (at(where, "name"), "the session ARN names the session already: drop 'name'")
            )
        try:
            session = role_session(self.env, found.role, case.session, found.session_name, time)
        except SidecarError as err:
            problems.append((where, session_problem(err)))
            return None
        return SessionCaller(session)

    def _context(self, case: Case, problems: list[tuple[str, str]]) -> Context | None:
        where = at(case.path, "context")
        for entry in case.context:
            if entry.key.lower().startswith(self._federated):
                problems.append(
                    (at(where, entry.key), "the key comes from a web identity session, which a "
                     "test cannot make, never from 'context'")
                )  # fmt: skip
        if case.assume is not None:
            return None
        ctx = context_from_entries((e.key, e.values, e.type) for e in case.context)
        try:  # the size limits an Authorize request is held to
            check_sizes(case.action, case.resource, ctx)
        except SidecarError as err:
            problems.append((case.path, f"{err.code}: {err.message}"))
        return ctx

    # -- deciding -------------------------------------------------------------------------------

    def decide(self, plan: _Plan) -> CaseResult:
        case = plan.case
        self.clock.t = plan.time
        if case.pod is not None:
            return self._pod(case, plan.context)
        assert plan.caller is not None
        if case.assume is not None:
            return self._assume(case, plan.caller)
        if isinstance(plan.caller, SessionCaller):
            result = self.authorizer.authorize_session(
                plan.caller.session, case.action, case.resource, plan.context
            )
        else:
            assert isinstance(plan.caller, UserCaller)
            result = authorize_user(
                self.authorizer, plan.caller.user, case.action, case.resource, plan.context
            )
        return _decided(case, result)

    def _assume(self, case: Case, caller: Caller) -> CaseResult:
        a = case.assume
        assert a is not None
        serial = code = ""
        if a.mfa and isinstance(caller, UserCaller):
            device = caller.user.mfa_devices[0]
            serial, code = device.serial_number, totp(device.seed, self.clock.now())
        params = AssumeRoleParams(
            role_arn=a.role_arn,
            role_session_name=a.session_name,
            duration_seconds=a.duration_seconds,
            external_id=a.external_id,
            policy=a.policy,
            policy_arns=a.policy_arns,
            tags=a.tags,
            transitive_tag_keys=a.transitive_tag_keys,
            source_identity=a.source_identity,
            serial_number=serial,
            token_code=code,
        )
        arn = caller.principal().arn
        try:
            got = assume_role(self.env, caller, params)
        except SidecarError as err:
            return CaseResult(case, DENIED, arn, f"{err.code}: {err.message}")
        return CaseResult(case, "ALLOWED", arn, f"AssumeRole returned a session: {got.arn}")

    def _pod(self, case: Case, context: Context | None) -> CaseResult:
        pod = case.pod
        assert pod is not None
        who = f"pod {pod.pod_name} of {pod.namespace}/{pod.service_account}"
        config = self.world.pod_identity
        try:
            if config is None:
                raise AccessDenied("Pod identity is not configured in this sidecar's world.")
            claims = PodClaims(pod.namespace, pod.service_account, pod.pod_name, pod.pod_uid)
            grant = authorize_pod(self.env, config, claims)
            session = issue_pod_session(self.env, grant).session
        except SidecarError as err:
            return CaseResult(case, DENIED, who, f"{err.code}: {err.message}")
        if case.assume is not None:
            wanted = case.assume.role_arn
            if session.role_arn != wanted:
                reason = f"the pod's association gives it {session.role_arn}, not {wanted}"
                return CaseResult(case, DENIED, session.arn, reason)
            return CaseResult(case, "ALLOWED", session.arn, f"pod identity issued {session.arn}")
        result = self.authorizer.authorize_session(session, case.action, case.resource, context)
        return _decided(case, result)


def _decided(case: Case, result: AuthzResult) -> CaseResult:
    return CaseResult(
        case, result.decision.name, result.principal_arn, result.reason, result.evaluation.matched
    )


def run_cases(world: World, cases: list[Case], clock: Clock) -> list[CaseResult]:
    """Decide ``cases`` against ``world``; cases without `at` at ``clock``'s time."""
    return Runner(world).run(cases, clock)
