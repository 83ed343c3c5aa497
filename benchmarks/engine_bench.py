"""In-process engine benchmark (targets: docs/BENCHMARKS.md): per-decision cost of the policy
engine, how it scales from 100 to 10,000 statements, and the same decisions side by side with
cedarpy and with moto's IAM policy evaluator.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/engine_bench.py``). It prints a Markdown
table and writes the figures to benchmarks/results/engine-<date>.json. docs/BENCHMARKS.md
explains the method and keeps the figures of a reference run.

The world: one role (an assumed-role session) with 10 managed policies, one per service, 10
statements each: exact actions, ``svc:Get*``-style prefixes and ``svc:*``; resource ARNs with
wildcards and policy variables (``${aws:PrincipalTag/team}``, ``${aws:userid}``); 60 of the 100
statements have conditions (StringEquals, StringLike, IpAddress, NotIpAddress, Bool,
DateLessThan) and 8 are Deny statements. The scaling worlds add filler statements on other
actions and services, spread over the same 10 policies, up to 1,000 and 10,000 statements.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.policy.compile import CompiledPolicy, compile_policy
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision, PolicySet, evaluate
from sidecar.policy.model import PolicyKind
from sidecar.policy.parse import parse_policy
from sidecar.policy.principals import RequestPrincipal, principal_from_arn

try:  # run as a script (make bench) or as a module (python -m benchmarks.engine_bench)
    from cedar_policies import context_to_cedar, policies_to_cedar
except ImportError:  # pragma: no cover
    from benchmarks.cedar_policies import context_to_cedar, policies_to_cedar

ROOT = Path(__file__).resolve().parent
ACCOUNT = "111111111111"
REGION = "us-east-1"
ROLE = "app"
SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/s1"
USER_ID = "AROAEXAMPLEAPPROLE01:s1"
TEAM = "payments"

# The principal's own keys: fixed for every request (policy variables resolve from them).
PRINCIPAL_KEYS = {"aws:PrincipalTag/team": TEAM, "aws:userid": USER_ID}
BASE_CONTEXT = {
    **PRINCIPAL_KEYS,
    "aws:SourceIp": "10.1.2.3",
    "aws:SecureTransport": "true",
    "aws:CurrentTime": "2025-06-01T12:00:00Z",
}
SIZES = (100, 1_000, 10_000)


# -- the world ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    prefix: str
    read: tuple[str, str]
    write: tuple[str, str]
    destroy: tuple[str, str]
    arn: str  # with {} for the resource name

    def res(self, name: str) -> str:
        return self.arn.format(name)

    def act(self, names: tuple[str, ...]) -> list[str]:
        return [f"{self.prefix}:{n}" for n in names]


def _arn(service: str, rest: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}"


SERVICES = (
    Service(
        "s3",
        ("GetObject", "GetObjectVersion"),
        ("PutObject", "PutObjectTagging"),
        ("DeleteObject", "DeleteBucket"),
        "arn:aws:s3:::{}",
    ),
    Service(
        "dynamodb",
        ("GetItem", "BatchGetItem"),
        ("PutItem", "UpdateItem"),
        ("DeleteItem", "DeleteTable"),
        _arn("dynamodb", "table/{}"),
    ),
    Service(
        "sqs",
        ("ReceiveMessage", "GetQueueUrl"),
        ("SendMessage", "ChangeMessageVisibility"),
        ("DeleteQueue", "PurgeQueue"),
        _arn("sqs", "{}"),
    ),
    Service(
        "sns",
        ("GetTopicAttributes", "ListSubscriptionsByTopic"),
        ("Publish", "Subscribe"),
        ("DeleteTopic", "RemovePermission"),
        _arn("sns", "{}"),
    ),
    Service(
        "kms",
        ("Decrypt", "DescribeKey"),
        ("Encrypt", "GenerateDataKey"),
        ("ScheduleKeyDeletion", "DisableKey"),
        _arn("kms", "key/{}"),
    ),
    Service(
        "logs",
        ("GetLogEvents", "FilterLogEvents"),
        ("PutLogEvents", "CreateLogStream"),
        ("DeleteLogGroup", "DeleteLogStream"),
        _arn("logs", "log-group:{}"),
    ),
    Service(
        "lambda",
        ("GetFunction", "GetFunctionConfiguration"),
        ("InvokeFunction", "UpdateFunctionCode"),
        ("DeleteFunction", "RemovePermission"),
        _arn("lambda", "function:{}"),
    ),
    Service(
        "secretsmanager",
        ("GetSecretValue", "DescribeSecret"),
        ("PutSecretValue", "UpdateSecret"),
        ("DeleteSecret", "RemoveRegionsFromReplication"),
        _arn("secretsmanager", "secret:{}"),
    ),
    Service(
        "ssm",
        ("GetParameter", "GetParametersByPath"),
        ("PutParameter", "AddTagsToResource"),
        ("DeleteParameter", "DeleteParameters"),
        _arn("ssm", "parameter/{}"),
    ),
    Service(
        "ec2",
        ("DescribeInstances", "DescribeVolumes"),
        ("StartInstances", "StopInstances"),
        ("TerminateInstances", "DeleteVolume"),
        _arn("ec2", "instance/{}"),
    ),
)

_FILLER_NAMES = (
    "athena glue redshift rds ecs eks ecr elasticloadbalancing autoscaling cloudformation "
    "cloudfront route53 apigateway states events firehose kinesis elasticache es sagemaker "
    "codebuild codepipeline codecommit iot cognito-idp ses acm wafv2 config guardduty inspector2 "
    "macie2 backup batch elasticmapreduce glacier elasticfilesystem fsx transfer workspaces xray "
    "appsync amplify mq neptune-db dax timestream kafka organizations servicecatalog"
)
FILLER_SERVICES = tuple(_FILLER_NAMES.split())
VERBS = ("Create", "Update", "Tag", "Untag", "Attach", "Detach", "Describe", "List", "Start")


def base_policies() -> dict[str, dict[str, Any]]:
    """The 10 policies x 10 statements of the role."""
    docs: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(SERVICES):
        p = s.prefix
        sts: list[dict[str, Any]] = [
            {"Sid": "Read", "Effect": "Allow", "Action": s.act(s.read), "Resource": s.res("app-*")},
            {
                "Sid": "ReadShared",
                "Effect": "Allow",
                "Action": [f"{p}:Get*", f"{p}:List*", f"{p}:Describe*"],
                "Resource": s.res("shared-*"),
            },
            {
                "Sid": "TeamWrite",
                "Effect": "Allow",
                "Action": s.act(s.write),
                "Resource": s.res("team-${aws:PrincipalTag/team}-*"),
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["payments", "billing"]}},
            },
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Action": f"{p}:*",
                "Resource": s.res("admin-*"),
                "Condition": {
                    "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                    "Bool": {"aws:SecureTransport": "true"},
                },
            },
            {
                "Sid": "HomeWrite",
                "Effect": "Allow",
                "Action": s.act(s.write),
                "Resource": s.res("home-${aws:userid}-*"),
                "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
            },
            {
                "Sid": "Project",
                "Effect": "Allow",
                "Action": s.act(s.read + s.write),
                "Resource": [s.res("proj-*"), s.res("lab-*")],
                "Condition": {"StringLike": {"aws:userid": ["AROA*:s*", "AIDA*"]}},
            },
            {
                "Sid": "AppWrite",
                "Effect": "Allow",
                "Action": s.act(s.write),
                "Resource": s.res("app-*"),
            },
        ]
        if i % 3 == 0:
            sts.append(
                {
                    "Sid": "NoProdDelete",
                    "Effect": "Deny",
                    "Action": s.act(s.destroy),
                    "Resource": s.res("prod-*"),
                }
            )
            sts.append(
                {
                    "Sid": "CorpNetworkOnly",
                    "Effect": "Deny",
                    "Action": f"{p}:*",
                    "Resource": "*",
                    "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}},
                }
            )
        else:
            sts.append(
                {
                    "Sid": "ScratchDelete",
                    "Effect": "Allow",
                    "Action": s.act(s.destroy),
                    "Resource": s.res("scratch-*"),
                }
            )
            sts.append(
                {
                    "Sid": "ReadAnywhereSecure",
                    "Effect": "Allow",
                    "Action": s.act(s.read),
                    "Resource": "*",
                    "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                }
            )
        sts.append(
            {
                "Sid": "ProdOps",
                "Effect": "Allow",
                "Action": [f"{p}:Put*", f"{p}:Update*"],
                "Resource": s.res("ops-*"),
                "Condition": {
                    "StringEquals": {"aws:PrincipalTag/env": "prod"},
                    "StringLike": {"aws:userid": "AROA*"},
                },
            }
        )
        docs[f"{ROLE}-{p}"] = {"Version": "2012-10-17", "Statement": sts}
    return docs


_FILLER_CONDITIONS: tuple[dict[str, Any], ...] = (
    {"StringEquals": {"aws:PrincipalTag/team": ["data", "ml"]}},
    {"IpAddress": {"aws:SourceIp": "172.16.0.0/12"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"DateLessThan": {"aws:CurrentTime": "2029-06-30T00:00:00Z"}},
    {"StringLike": {"aws:userid": "AROA*:batch-*"}},
)


def filler_statement(k: int) -> dict[str, Any]:
    """Statement ``k`` of the filler: never applies to a request of the mix."""
    fsvc = FILLER_SERVICES[k % len(FILLER_SERVICES)]
    verb = VERBS[k % len(VERBS)]
    kind = k % 20
    own = SERVICES[k % len(SERVICES)]
    if kind < 12:  # exact actions of other services
        names = [f"{fsvc}:{verb}Thing{k}", f"{fsvc}:{verb}Other{k}"]
        actions: str | list[str] = names[: 1 + k % 2]
        resource: str | list[str] = _arn(fsvc, f"thing/filler-{k}-*")
    elif kind < 14:  # other exact actions of the role's own services
        actions = [f"{own.prefix}:{verb}Resource{k}"]
        resource = own.res(f"filler-{k}-*")
    elif kind < 16:  # prefix patterns that match none of the requested actions
        target = fsvc if kind == 14 else own.prefix
        actions = f"{target}:{verb}Filler{k}*"
        resource = _arn(target, f"thing/filler-{k}/*") if kind == 14 else own.res("filler-*")
    elif kind == 16:  # a whole other service
        actions = f"{fsvc}:*"
        resource = _arn(fsvc, f"thing/filler-{k}")
    else:
        actions = [f"{fsvc}:{verb}Item{k}"]
        resource = "*"
    st: dict[str, Any] = {
        "Sid": f"Filler{k}",
        "Effect": "Deny" if k % 25 == 0 else "Allow",
        "Action": actions,
        "Resource": resource,
    }
    if k % 2 == 0:
        st["Condition"] = _FILLER_CONDITIONS[(k // 2) % len(_FILLER_CONDITIONS)]
    return st


def world(size: int) -> dict[str, dict[str, Any]]:
    """The role's 10 policies holding ``size`` statements in all (base + filler)."""
    docs = base_policies()
    names = list(docs)
    base = sum(len(d["Statement"]) for d in docs.values())
    for k in range(size - base):
        docs[names[k % len(names)]]["Statement"].append(filler_statement(k))
    return docs


def strip_for_moto(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The documents with conditions removed and policy variables replaced by the principal's
    values: what moto's evaluator can express (it ignores conditions and never substitutes)."""
    text = json.dumps(docs)
    for key, value in PRINCIPAL_KEYS.items():
        text = text.replace("${" + key + "}", value)
    out: dict[str, dict[str, Any]] = json.loads(text)
    for doc in out.values():
        for st in doc["Statement"]:
            st.pop("Condition", None)
    return out


# -- the request mix ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    label: str
    action: str
    resource: str
    context: Mapping[str, str]
    expect: Decision


def _svc(prefix: str) -> Service:
    return next(s for s in SERVICES if s.prefix == prefix)


def request_mix() -> list[Request]:
    s3, ddb, sqs, kms = _svc("s3"), _svc("dynamodb"), _svc("sqs"), _svc("kms")
    logs, lam, sm = _svc("logs"), _svc("lambda"), _svc("secretsmanager")
    ssm, ec2 = _svc("ssm"), _svc("ec2")
    allow, deny, none = Decision.ALLOWED, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY
    outside = {**BASE_CONTEXT, "aws:SourceIp": "203.0.113.5"}
    plain = {**BASE_CONTEXT, "aws:SecureTransport": "false"}
    late = {**BASE_CONTEXT, "aws:CurrentTime": "2031-01-01T00:00:00Z"}
    b = BASE_CONTEXT
    home = f"home-{USER_ID}-worker"
    team = sqs.res(f"team-{TEAM}-events")
    return [
        Request("exact action, wildcard ARN", "s3:GetObject", s3.res("app-data/r/1.csv"), b, allow),
        Request("Get* prefix", "dynamodb:GetItem", ddb.res("shared-orders"), b, allow),
        Request("${PrincipalTag} ARN + StringEquals", "sqs:SendMessage", team, b, allow),
        Request("svc:* + IpAddress + Bool", "kms:Decrypt", kms.res("admin-root"), b, allow),
        Request("${aws:userid} ARN + DateLessThan", "logs:PutLogEvents", logs.res(home), b, allow),
        Request("StringLike", "secretsmanager:GetSecretValue", sm.res("proj-x"), b, allow),
        Request("write, no condition", "lambda:InvokeFunction", lam.res("app-worker"), b, allow),
        Request("read anywhere + Bool", "ssm:GetParameter", ssm.res("db/password"), b, allow),
        Request("Deny on prod ARN", "s3:DeleteBucket", s3.res("prod-data"), b, deny),
        Request("Deny NotIpAddress", "s3:GetObject", s3.res("app-data/r/1.csv"), outside, deny),
        Request("Deny NotIpAddress, svc:*", "lambda:GetFunction", lam.res("app-x"), outside, deny),
        Request("variable mismatch", "ec2:StartInstances", ec2.res("team-billing-1"), b, none),
        Request("IpAddress fails", "kms:Encrypt", kms.res("admin-root"), outside, none),
        Request("Bool fails", "kms:Decrypt", kms.res("admin-root"), plain, none),
        Request("DateLessThan fails", "logs:PutLogEvents", logs.res(home), late, none),
        Request("missing key", "ssm:PutParameter", ssm.res("ops-flags"), b, none),
        Request(
            "no policy for service", "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x", b, none
        ),
    ]


# -- the three evaluators ----------------------------------------------------------------------


def compile_world(docs: Mapping[str, Mapping[str, Any]], *, quota: bool) -> PolicySet:
    compiled: list[CompiledPolicy] = []
    for pid, doc in docs.items():
        policy = parse_policy(doc, PolicyKind.MANAGED, policy_id=pid, enforce_quota=quota)
        compiled.append(compile_policy(policy))
    return PolicySet(identity=tuple(compiled))


Job = tuple[RequestPrincipal, str, str, dict[str, tuple[str, ...]]]


def our_jobs(mix: list[Request], principal: RequestPrincipal) -> list[Job]:
    return [(principal, r.action, r.resource, {k: (v,) for k, v in r.context.items()}) for r in mix]


def ours_decide(pset: PolicySet, job: Job) -> Decision:
    principal, action, resource, values = job
    return evaluate(principal, action, resource, Context(values), pset).decision


def cedar_requests(mix: list[Request]) -> list[dict[str, Any]]:
    return [
        {
            "principal": {"type": "Role", "id": ROLE},
            "action": {"type": "Action", "id": r.action.lower()},
            "resource": {"type": "Resource", "id": r.resource},
            "context": context_to_cedar(r.context, r.action, r.resource),
        }
        for r in mix
    ]


def cedar_decision(result: Any) -> Decision:
    """Allow, or Deny split by whether a forbid matched (Cedar's reasons name it)."""
    if result.diagnostics.errors:
        raise RuntimeError(f"cedar evaluation errors: {result.diagnostics.errors}")
    if result.allowed:
        return Decision.ALLOWED
    return Decision.EXPLICIT_DENY if result.diagnostics.reasons else Decision.IMPLICIT_DENY


def moto_policies(docs: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    from moto.iam.access_control import IAMPolicy

    return [IAMPolicy(json.dumps(doc)) for doc in docs.values()]


def moto_decide(policies: list[Any], action: str, resource: str) -> Decision:
    """moto's IAMRequestBase.check_action_permitted, without the HTTP request around it: a
    DENIED policy denies at once, any PERMITTED allows; conditions get no request values."""
    from moto.iam.access_control import PermissionResult

    permitted = False
    for policy in policies:
        result = policy.is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return Decision.EXPLICIT_DENY
        if result == PermissionResult.PERMITTED:
            permitted = True
    return Decision.ALLOWED if permitted else Decision.IMPLICIT_DENY


# -- timing ------------------------------------------------------------------------------------

Body = Callable[[int], float]  # runs the mix ``loops`` times, returns the seconds to time


@dataclass
class Timing:
    median_us: float
    min_us: float
    max_us: float
    loops: int
    repeats: int
    decisions_per_repeat: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_us": round(self.median_us, 3),
            "min_us": round(self.min_us, 3),
            "max_us": round(self.max_us, 3),
            "loops": self.loops,
            "repeats": self.repeats,
            "decisions_per_repeat": self.decisions_per_repeat,
        }


def measure(body: Body, per_loop: int, *, repeats: int, target_s: float) -> Timing:
    """Per-decision µs: ``repeats`` timed runs of ``loops`` passes over the mix. Calibration
    (doubling ``loops`` until a run takes a tenth of ``target_s``) doubles as the warm-up."""
    loops = 1
    while True:
        took = body(loops)
        if took >= target_s / 10 or loops >= 100_000:
            break
        loops *= 2
    loops = max(1, min(100_000, round(loops * target_s / max(took, 1e-9))))
    if took > 3 * target_s:  # one pass is already long (a peer on a big set): fewer runs
        repeats = min(repeats, 3)
    runs = [body(loops) / (loops * per_loop) * 1e6 for _ in range(repeats)]
    return Timing(statistics.median(runs), min(runs), max(runs), loops, repeats, loops * per_loop)


def measure_interleaved(
    bodies: Mapping[Any, Body], per_loop: int, *, repeats: int, target_s: float
) -> dict[Any, Timing]:
    """``measure`` for several bodies at once, taking the timed runs in turn (each body once per
    round, ``repeats`` rounds) so that a slow spell of a shared machine falls on every figure
    alike and the ratios between them stay fair."""
    loops: dict[Any, int] = {}
    for key, body in bodies.items():
        n = 1
        while True:
            took = body(n)
            if took >= target_s / 10 or n >= 100_000:
                break
            n *= 2
        loops[key] = max(1, min(100_000, round(n * target_s / max(took, 1e-9))))
    runs: dict[Any, list[float]] = {key: [] for key in bodies}
    for _ in range(repeats):
        for key, body in bodies.items():
            runs[key].append(body(loops[key]) / (loops[key] * per_loop) * 1e6)
    return {
        key: Timing(
            statistics.median(r), min(r), max(r), loops[key], repeats, loops[key] * per_loop
        )
        for key, r in runs.items()
    }


def ours_bodies(pset: PolicySet, jobs: list[Job]) -> dict[str, Body]:
    perf = time.perf_counter

    def uncached(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for principal, action, resource, values in jobs:
                evaluate(principal, action, resource, Context(values), pset)
        return perf() - t0

    def context_only(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for _p, _a, _r, values in jobs:
                Context(values)
        return perf() - t0

    def evaluate_only(loops: int) -> float:
        contexts = [[Context(j[3]) for j in jobs] for _ in range(loops)]  # fresh, not timed
        gc.collect()
        gc.freeze()  # keep the collector from walking the prepared contexts while timed
        try:
            t0 = perf()
            for row in contexts:
                for (principal, action, resource, _v), ctx in zip(jobs, row, strict=True):
                    evaluate(principal, action, resource, ctx, pset)
            return perf() - t0
        finally:
            gc.unfreeze()

    reused = [Context(j[3]) for j in jobs]

    def warm_context(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for (principal, action, resource, _v), ctx in zip(jobs, reused, strict=True):
                evaluate(principal, action, resource, ctx, pset)
        return perf() - t0

    return {
        "uncached": uncached,
        "context_only": context_only,
        "evaluate_only": evaluate_only,
        "warm_context": warm_context,
    }


def cold_index_bodies(pset: PolicySet, jobs: list[Job]) -> dict[str, Body]:
    """Decisions with each policy's per-action memo emptied first (the first request for an
    action after a reload), and the cost of emptying alone, to subtract."""
    perf = time.perf_counter
    memos = [cp._memo for cp in pset.identity]

    def cold(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for principal, action, resource, values in jobs:
                for m in memos:
                    m.clear()
                evaluate(principal, action, resource, Context(values), pset)
        return perf() - t0

    def clear_only(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for _j in jobs:
                for m in memos:
                    m.clear()
        return perf() - t0

    return {"cold_index": cold, "clear_only": clear_only}


def unseen_action_body(pset: PolicySet, principal: RequestPrincipal, per_loop: int) -> Body:
    """Each decision asks for an action name never seen before (``s3:GetObjectV<n>``, an
    implicit deny): the per-action memo misses every time and refills until its bound."""
    perf = time.perf_counter
    resource = "arn:aws:s3:::app-data/r/1.csv"
    values = {k: (v,) for k, v in BASE_CONTEXT.items()}
    counter = iter(range(10**12))

    def run(loops: int) -> float:
        actions = [f"s3:GetObjectV{next(counter)}" for _ in range(loops * per_loop)]
        t0 = perf()
        for action in actions:
            evaluate(principal, action, resource, Context(values), pset)
        return perf() - t0

    return run


def cedar_bodies(policy_set: Any, entities: Any, mix: list[Request]) -> dict[str, Body]:
    import cedarpy

    perf = time.perf_counter
    heads = [
        (
            {"type": "Role", "id": ROLE},
            {"type": "Action", "id": r.action.lower()},
            {"type": "Resource", "id": r.resource},
            r,
        )
        for r in mix
    ]

    def per_call(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for principal, action, resource, r in heads:
                request = {
                    "principal": principal,
                    "action": action,
                    "resource": resource,
                    "context": context_to_cedar(r.context, r.action, r.resource),
                }
                cedarpy.is_authorized(request, policy_set, entities)
        return perf() - t0

    requests = cedar_requests(mix)

    def batch(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            cedarpy.is_authorized_batch(requests, policy_set, entities)
        return perf() - t0

    return {"per_call": per_call, "batch": batch}


def moto_body(policies: list[Any], mix: list[Request]) -> Body:
    perf = time.perf_counter
    pairs = [(r.action, r.resource) for r in mix]

    def run(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            for action, resource in pairs:
                moto_decide(policies, action, resource)
        return perf() - t0

    return run


# -- the run -----------------------------------------------------------------------------------


def engine_revision() -> dict[str, Any]:
    """The commit measured, and whether sidecar/ had uncommitted changes at the time."""
    import subprocess

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT.parent, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "sidecar_uncommitted": git("status", "--porcelain", "--", "sidecar").splitlines(),
    }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for dist in ("cedarpy", "moto"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "not installed"
    return {
        **engine_revision(),
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        **versions,
    }


def speed_probe() -> float:
    """Milliseconds for a fixed pure-Python loop: taken at the start and the end of a run, it
    shows how fast the machine was meanwhile (shared hosts vary from run to run)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x = 0
        for i in range(1_000_000):
            x += i
        best = min(best, time.perf_counter() - t0)
    return round(best * 1e3, 2)


def agreement(ours: list[Decision], theirs: list[Decision], mix: list[Request]) -> dict[str, Any]:
    rows = [
        {"request": r.label, "ours": o.name, "peer": t.name}
        for r, o, t in zip(mix, ours, theirs, strict=True)
        if o != t
    ]
    return {"agreed": len(mix) - len(rows), "of": len(mix), "disagreements": rows}


def fmt(x: float) -> str:
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    principal = principal_from_arn(SESSION_ARN)
    assert principal is not None
    mix = request_mix()
    jobs = our_jobs(mix, principal)
    expected = [r.expect for r in mix]
    n = len(mix)
    sizes = tuple(args.sizes)
    repeats, target = args.repeats, args.target
    peer_repeats, peer_target = args.peer_repeats, args.peer_target
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "make bench",
        "mix": [
            {"label": r.label, "action": r.action, "resource": r.resource, "expect": r.expect.name}
            for r in mix
        ],
        "settings": {
            "repeats": repeats,
            "target_s": target,
            "peer_repeats": peer_repeats,
            "peer_target_s": peer_target,
        },
        "sizes": {},
    }
    link = {k.lower(): v for k, v in PRINCIPAL_KEYS.items()}
    probes = [speed_probe()]

    docs_by_size: dict[int, dict[str, dict[str, Any]]] = {}
    psets: dict[int, PolicySet] = {}
    for size in sizes:
        print(f"[bench] {size} statements: building", file=sys.stderr, flush=True)
        row: dict[str, Any] = {}
        docs_by_size[size] = docs = world(size)
        t0 = time.perf_counter()
        psets[size] = pset = compile_world(docs, quota=size <= 100)
        row["compile_s"] = round(time.perf_counter() - t0, 3)
        row["statements"] = sum(len(cp.statements) for cp in pset.identity)
        decisions = [ours_decide(pset, j) for j in jobs]
        row["ours_decisions"] = [d.name for d in decisions]
        row["ours_matches_expected"] = decisions == expected
        row["ours"] = {}
        out["sizes"][str(size)] = row

    print("[bench] timing ours (all figures in turn)", file=sys.stderr, flush=True)
    per_size = {size: ours_bodies(psets[size], jobs) for size in sizes}
    for size in sizes:
        per_size[size]["unseen_action"] = unseen_action_body(psets[size], principal, n)
    timings = measure_interleaved(
        {(size, name): body for size in sizes for name, body in per_size[size].items()},
        n,
        repeats=repeats,
        target_s=target,
    )
    for (size, name), timing in timings.items():
        out["sizes"][str(size)]["ours"][name] = timing.as_dict()
    big = max(sizes)
    for name, body in cold_index_bodies(psets[big], jobs).items():
        out["sizes"][str(big)]["ours"][name] = measure(
            body, n, repeats=repeats, target_s=target
        ).as_dict()

    for size in sizes:
        row = out["sizes"][str(size)]
        docs = docs_by_size[size]
        decisions = [Decision[d] for d in row["ours_decisions"]]
        # Each peer is timed in turn with ours (uncached) on the same world, so that a peer's
        # ratio compares figures taken in the same spell of the machine.
        paired: dict[str, Body] = {"ours": ours_bodies(psets[size], jobs)["uncached"]}
        if not args.no_cedar:
            import cedarpy

            print(f"[bench] {size}: cedar", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            text = policies_to_cedar(docs, link)
            policy_set = cedarpy.PolicySet.from_str(text)
            entities = cedarpy.Entities.from_json_str(
                json.dumps([{"uid": {"type": "Role", "id": ROLE}, "attrs": {}, "parents": []}])
            )
            row["cedar_build_s"] = round(time.perf_counter() - t0, 3)
            row["cedar_policies"] = len(policy_set)
            results = [cedarpy.is_authorized(q, policy_set, entities) for q in cedar_requests(mix)]
            cedar_dec = [cedar_decision(r) for r in results]
            row["cedar_agreement"] = agreement(decisions, cedar_dec, mix)
            cbodies = cedar_bodies(policy_set, entities, mix)
            paired["cedar"] = cbodies["per_call"]
            row["cedar"] = {}
            if size == min(sizes):
                row["cedar"]["batch"] = measure(
                    cbodies["batch"], n, repeats=peer_repeats, target_s=peer_target
                ).as_dict()
            # Cedar's own measures (whole µs, from its metrics) of building the request and of
            # the authorizer alone, without the Python calls and JSON conversions around them.
            metrics = [
                cedarpy.is_authorized(q, policy_set, entities).metrics
                for _ in range(20 if size <= 1000 else 3)
                for q in cedar_requests(mix)
            ]
            row["cedar_core_us_median"] = {
                key: statistics.median(m[key] for m in metrics)
                for key in ("build_request_duration_micros", "authz_duration_micros")
            }
            if size == min(sizes):
                (ROOT / "results").mkdir(exist_ok=True)
                (ROOT / "results" / "cedar-policies-100.cedar").write_text(text)

        if not args.no_moto:
            print(f"[bench] {size}: moto", file=sys.stderr, flush=True)
            mpol = moto_policies(docs)
            moto_dec = [moto_decide(mpol, r.action, r.resource) for r in mix]
            row["moto_agreement"] = agreement(decisions, moto_dec, mix)
            paired["moto"] = moto_body(mpol, mix)
            if size == min(sizes):
                # What moto can express: no conditions, variables already substituted.
                stripped = strip_for_moto(docs)
                spset = compile_world(stripped, quota=True)
                sdec = [ours_decide(spset, j) for j in jobs]
                smoto = moto_policies(stripped)
                smoto_dec = [moto_decide(smoto, r.action, r.resource) for r in mix]
                pair = measure_interleaved(
                    {
                        "ours": ours_bodies(spset, jobs)["uncached"],
                        "moto": moto_body(smoto, mix),
                    },
                    n,
                    repeats=peer_repeats,
                    target_s=peer_target,
                )
                row["stripped"] = {
                    "ours_decisions": [d.name for d in sdec],
                    "moto_agreement": agreement(sdec, smoto_dec, mix),
                    "ours_uncached": pair["ours"].as_dict(),
                    "moto": pair["moto"].as_dict(),
                }
        if len(paired) > 1:
            print(f"[bench] {size}: timing peers with ours", file=sys.stderr, flush=True)
            timings = measure_interleaved(paired, n, repeats=peer_repeats, target_s=peer_target)
            row["ours_paired"] = timings["ours"].as_dict()
            if "cedar" in timings:
                row["cedar"]["per_call"] = timings["cedar"].as_dict()
            if "moto" in timings:
                row["moto"] = {"full": timings["moto"].as_dict()}
        if time.perf_counter() - started > args.budget:
            print(f"[bench] time budget {args.budget}s spent: stopping", file=sys.stderr)
            out["stopped_early"] = True
            break
    probes.append(speed_probe())
    out["speed_probe_ms"] = {"start": probes[0], "end": probes[1]}
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    return out


def summarize(res: dict[str, Any]) -> str:
    sizes = res["sizes"]
    keys = sorted(sizes, key=int)
    small = sizes[keys[0]]
    base_us = small["ours"]["uncached"]["median_us"]
    base_min = small["ours"]["uncached"]["min_us"]
    lines = [
        f"Engine benchmark, {res['date']}, {res['machine']['cpu']} "
        f"({res['machine']['nproc']} cores), Python {res['machine']['python']}, commit "
        f"{res['machine']['commit']}"
        + (
            " with uncommitted changes in sidecar/" if res["machine"]["sidecar_uncommitted"] else ""
        ),
        "",
        "Per decision, µs (median of repeats; the request mix has "
        f"{len(res['mix'])} requests: allowed, explicit deny, implicit deny). The peer ratios "
        "divide by ours timed in turn with the peers (the *paired* figure below).",
        "",
        "| statements | ours uncached | (min) | ours Context() | ours evaluate | ours warm ctx "
        "| cedarpy | moto | ours / 100-case (min) | cedarpy / ours | moto / ours |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in keys:
        row = sizes[k]
        o = row["ours"]
        unc = o["uncached"]["median_us"]
        cedar = row.get("cedar", {}).get("per_call", {}).get("median_us")
        moto = row.get("moto", {}).get("full", {}).get("median_us")
        paired = row.get("ours_paired", {}).get("median_us", unc)
        cells = [
            f"{row['statements']:,}",
            fmt(unc),
            fmt(o["uncached"]["min_us"]),
            fmt(o["context_only"]["median_us"]),
            fmt(o["evaluate_only"]["median_us"]),
            fmt(o["warm_context"]["median_us"]),
            fmt(cedar) if cedar else "-",
            fmt(moto) if moto else "-",
            f"{unc / base_us:.2f} ({o['uncached']['min_us'] / base_min:.2f})",
            f"{cedar / paired:.1f}" if cedar else "-",
            f"{moto / paired:.1f}" if moto else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    big = sizes[keys[-1]]["ours"]
    if "cold_index" in big:
        cold = big["cold_index"]["median_us"] - big["clear_only"]["median_us"]
        lines.append(
            f"- ours, {sizes[keys[-1]]['statements']:,} statements, per-action memo emptied before "
            f"each decision (first request for an action): {fmt(cold)} µs "
            f"(after subtracting {fmt(big['clear_only']['median_us'])} µs for the emptying)"
        )
    paired_figs = [
        f"{sizes[k]['statements']:,} statements {fmt(sizes[k]['ours_paired']['median_us'])} µs"
        for k in keys
        if "ours_paired" in sizes[k]
    ]
    if paired_figs:
        lines.append("- ours uncached, paired with the peers: " + ", ".join(paired_figs))
    unseen = [
        f"{sizes[k]['statements']:,} statements "
        f"{fmt(sizes[k]['ours']['unseen_action']['median_us'])} µs"
        for k in keys
    ]
    lines.append(
        "- ours, a never-seen action name per request (per-action memo misses): "
        + ", ".join(unseen)
    )
    for k in keys:
        core = sizes[k].get("cedar_core_us_median")
        if core:
            lines.append(
                f"- cedarpy, {sizes[k]['statements']:,} statements, Cedar's own metrics (whole µs, "
                f"median): authorizer {core['authz_duration_micros']:g} µs, request building "
                f"{core['build_request_duration_micros']:g} µs"
            )
    if "batch" in small.get("cedar", {}):
        lines.append(
            f"- cedarpy is_authorized_batch over the whole mix, {small['statements']} statements: "
            f"{fmt(small['cedar']['batch']['median_us'])} µs per decision"
        )
    if "stripped" in small:
        s = small["stripped"]
        su, sm = s["ours_uncached"]["median_us"], s["moto"]["median_us"]
        ag = s["moto_agreement"]
        lines.append(
            f"- conditions stripped, variables substituted (what moto can express), "
            f"{small['statements']} statements: ours {fmt(su)} µs, moto {fmt(sm)} µs "
            f"(moto / ours {sm / su:.1f}); decisions agree on {ag['agreed']}/{ag['of']}"
        )
    lines.append("")
    lines.append("Agreement with our decisions (same requests, same policies):")
    seen: dict[str, list[Any]] = {}
    for k in keys:
        row = sizes[k]
        for peer in ("cedar", "moto"):
            ag = row.get(f"{peer}_agreement")
            if ag is None:
                continue
            rows = ag["disagreements"]
            if peer in seen and seen[peer] == rows:
                detail = " (the same requests as above)" if rows else ""
            else:
                detail = "; ".join(
                    f"{d['request']}: ours {d['ours']}, {peer} {d['peer']}" for d in rows
                )
                detail = f" (differ: {detail})" if detail else ""
            seen[peer] = rows
            lines.append(
                f"- {row['statements']:,} statements, {peer}: {ag['agreed']}/{ag['of']}{detail}"
            )
        if not row["ours_matches_expected"]:
            lines.append(
                f"- {row['statements']:,} statements: OUR DECISIONS DIFFER FROM THE EXPECTED "
                f"ONES: {row['ours_decisions']}"
            )
    lines.append("")
    if res.get("stopped_early"):
        lines.append("The run hit its time budget and stopped before the last sizes.")
    probe = res["speed_probe_ms"]
    lines.append(
        f"Total run time {res['elapsed_s']} s. Speed probe (1e6-step Python loop, best of 3): "
        f"{probe['start']} ms at the start, {probe['end']} ms at the end."
    )
    return "\n".join(lines)


def profile(args: argparse.Namespace) -> None:
    """cProfile of the uncached loop (not part of make bench)."""
    principal = principal_from_arn(SESSION_ARN)
    assert principal is not None
    jobs = our_jobs(request_mix(), principal)
    size = args.sizes[0]
    pset = compile_world(world(size), quota=size <= 100)
    body = ours_bodies(pset, jobs)["uncached"]
    body(10)
    prof = cProfile.Profile()
    prof.enable()
    body(2000)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per figure (ours)")
    parser.add_argument("--target", type=float, default=0.1, help="seconds per timed run (ours)")
    parser.add_argument("--peer-repeats", type=int, default=5, help="timed runs per peer figure")
    parser.add_argument("--peer-target", type=float, default=0.2, help="seconds per peer run")
    parser.add_argument("--budget", type=float, default=150.0, help="stop after this (s)")
    parser.add_argument("--no-cedar", action="store_true")
    parser.add_argument("--no-moto", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile ours and exit")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args)
        return 0
    res = run(args)
    text = summarize(res)
    print(text)
    path = args.out or ROOT / "results" / f"engine-{dt.date.today().isoformat()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    res["summary_markdown"] = text
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nResults written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
