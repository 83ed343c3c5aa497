"""Caches bounded in bytes, not only in entries: requests of maximum size (2,048-character
resources, 2,048-character context values the policies read, distinct session policies) fill
each cache up to its byte budget and no further, and the weights the caches use are upper
estimates of the memory their entries hold (measured with tracemalloc)."""

from __future__ import annotations

import json
from collections.abc import Callable

from sidecar.engine.authorize import Authorizer
from sidecar.engine.cache import BoundedCache
from sidecar.engine.engine import MAX_VARIANT_BYTES, Engine
from sidecar.engine.weights import policies_bytes, response_bytes, session_bytes, token_bytes
from sidecar.policy.compile import SESSION_MEMO_LIMIT
from sidecar.policy.context import Context
from sidecar.policy.evaluate import Decision
from sidecar.server.metrics import Metrics
from sidecar.server.servicers import ServerDeps, Services
from sidecar.sts.assume import AssumeRoleParams, StsEnv, assume_role, compile_session_policies
from sidecar.sts.callers import UserCaller
from sidecar.sts.session import Session
from sidecar.sts.tokens import verify_token
from tests.engine.test_authorize import APP
from tests.fakes import CountingEntropy
from tests.sts.world import ALICE

MiB = 1 << 20


def token_for(env: StsEnv, name: str = "s1", **kw: object) -> str:
    p = AssumeRoleParams(role_arn=APP, role_session_name=name, **kw)  # type: ignore[arg-type]
    return assume_role(env, UserCaller(env.world.users_by_arn[ALICE]), p).credentials.session_token


READS_CONTEXT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"StringLike": {"ex:a": "*", "ex:b": "*", "ex:c": "*"}},
        },
    }
)


def resource(i: int) -> str:
    """A distinct resource of the maximum length, 2,048 characters."""
    head = f"arn:aws:s3:::reports/{i}/"
    return head + "x" * (2048 - len(head))


def big_context(i: int) -> Context:
    """Three keys the session policy reads, each with a distinct 2,048-character value."""
    c = Context()
    for key in ("ex:a", "ex:b", "ex:c"):
        c.set(key, f"{i}:{key}:".ljust(2048, "v"))
    return c


class TestBoundedCache:
    def test_bytes_and_entries_both_bound(self) -> None:
        cache: BoundedCache[int] = BoundedCache(100, 10_000, lambda w: w)
        for i in range(1000):
            cache.put(i, 700)
            assert cache.weight <= 10_000
        assert len(cache) == 10_000 // 700
        light: BoundedCache[int] = BoundedCache(100, 10_000, lambda w: w)
        for i in range(1000):
            light.put(i, 1)  # each counts at least 10,000 / 100: the entry bound holds
        assert len(light) == 100

    def test_too_heavy_is_not_kept(self) -> None:
        cache: BoundedCache[int] = BoundedCache(10, 1000, lambda w: w)
        cache.put("a", 500)
        cache.put("b", 5000)
        assert cache.get("b") is None
        assert cache.get("a") == 500
        cache.put("a", 5000)  # an entry grown past the budget is dropped
        assert cache.get("a") is None
        assert cache.weight == 0

    def test_re_put_re_weighs_and_evicts(self) -> None:
        cache: BoundedCache[list[int]] = BoundedCache(10, 1000, lambda v: v[0])
        cache.put("old", [300])
        cache.put("new", [300])
        grown = cache.get("new")
        assert grown is not None
        grown[0] = 900
        cache.put("new", grown)
        assert cache.get("old") is None
        assert cache.weight == 900


class TestEngine:
    def test_decisions_stay_within_their_byte_budget(
        self, env: StsEnv, measure: Callable[[], int]
    ) -> None:
        """Distinct 128-character actions with 2,048-character resources and context values
        (the resources cycle, so that only the decision cache can grow; the per-policy action
        memos fill at MEMO_LIMIT): the decision cache holds what its budget allows, and the
        memory held stops growing there."""
        token = token_for(env, policy=READS_CONTEXT)
        engine = Engine(env.world, env.keys, env.clock, decision_cache_bytes=2 * MiB)
        engine.authorize(token, "s3:GetObject", resource(0), big_context(0))
        baseline = measure()
        held = []
        for i in range(1, 1601):
            action = f"s3:GetObject{i}".ljust(128, "x")
            result, _ = engine.authorize(token, action, resource(i % 20), big_context(i))
            assert result.decision is Decision.IMPLICIT_DENY
            assert engine.decisions.weight <= 2 * MiB
            if i % 400 == 0:
                held.append(measure() - baseline)
        assert engine.decisions.stats.evictions > 0
        assert max(held) < 3 * MiB, held
        assert held[-1] - held[0] < MiB // 4, held  # flat once the budget is reached

    def test_weights_are_upper_estimates(self, env: StsEnv, measure: Callable[[], int]) -> None:
        """With room for everything, the memory the decision and token caches hold is at most
        their total weight (tokens verified apart: each entry counts its token)."""
        tokens = [token_for(env, policy=READS_CONTEXT, name=f"s{i}") for i in range(20)]
        engine = Engine(env.world, env.keys, env.clock)
        engine.authorize(tokens[0], "s3:GetObject", resource(0), big_context(0))
        before = measure()
        weight0 = engine.decisions.weight + engine.tokens.weight
        for i in range(1, 401):
            for variant in range(3):
                engine.authorize(
                    tokens[i % 20], "s3:GetObject", resource(i), big_context(i * 3 + variant)
                )
        held = measure() - before
        weight = engine.decisions.weight + engine.tokens.weight - weight0
        assert engine.decisions.stats.evictions == 0
        assert held <= weight, (held, weight)
        assert held > weight // 4, (held, weight)  # an estimate, not a wild guess

    def test_a_heavy_variant_is_decided_but_not_kept(self, env: StsEnv) -> None:
        """Context values the policies read that weigh over MAX_VARIANT_BYTES: answered, not
        remembered."""
        token = token_for(env, policy=READS_CONTEXT)
        engine = Engine(env.world, env.keys, env.clock)
        heavy = Context()
        heavy.set_multi("ex:a", ["v" * 2048] * ((MAX_VARIANT_BYTES // 2048) + 1))
        heavy.set("ex:b", "b")
        heavy.set("ex:c", "c")
        for _ in range(2):
            result, cached = engine.authorize(token, "s3:GetObject", resource(1), heavy)
            assert not cached
        assert result.decision is Decision.IMPLICIT_DENY  # a multivalued key: plain StringLike
        small = big_context(1)
        engine.authorize(token, "s3:GetObject", resource(1), small)
        assert engine.authorize(token, "s3:GetObject", resource(1), small)[1]


class TestAuthorizerScopes:
    def test_session_scopes_within_their_budget(self, env: StsEnv) -> None:
        """Distinct session policies (one per session) compile into scopes kept up to their
        byte budget, their action memos counted full."""
        authz = Authorizer(env.world, env.keys, env.clock, session_scope_bytes=2 * MiB)
        for i in range(60):
            policy = READS_CONTEXT.replace("s3:GetObject", f"s3:GetObject{i}")
            session, _ = verify_token(
                token_for(env, policy=policy, name=f"s{i}"), env.keys, env.clock.now()
            )
            authz.session_scope(session)
            assert authz._sessions.weight <= 2 * MiB
        assert 0 < len(authz._sessions) < 60

    def test_resource_scopes_within_their_budget(self, env: StsEnv) -> None:
        authz = Authorizer(env.world, env.keys, env.clock, resource_scope_bytes=MiB)
        for i in range(2000):
            authz.resource_scope(resource(i))
        assert authz._resources.weight <= MiB
        assert len(authz._resources) < 2000


class TestEstimates:
    def test_session_estimate(self, env: StsEnv, measure: Callable[[], int]) -> None:
        """Sessions with many tags, claims and session policies weigh at least what they hold."""
        token = token_for(
            env, policy=READS_CONTEXT, tags=tuple((f"k{i}", f"value{i}") for i in range(40))
        )
        before = measure()
        sessions: list[Session] = [
            verify_token(token, env.keys, env.clock.now())[0] for _ in range(50)
        ]
        held = measure() - before
        assert held <= 50 * session_bytes(sessions[0]) <= 50 * token_bytes(token, sessions[0])

    def test_compiled_policy_estimate(self, measure: Callable[[], int]) -> None:
        """The worst shapes measured (a pattern of many `*`) with a full action memo stay
        within the estimate."""
        doc = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:" + "*a" * 400, "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"StringLike": {"aws:userid": "*b" * 400}},
                    },
                ],
            }
        )
        texts = (("SessionPolicy", doc),)
        before = measure()
        compiled = compile_session_policies(texts)
        for i in range(3 * SESSION_MEMO_LIMIT):
            compiled[0].candidates(f"svc{i}:".ljust(128, "x"))
        assert len(compiled[0]._memo) <= SESSION_MEMO_LIMIT
        held = measure() - before
        assert held <= policies_bytes(texts, compiled), held

    def test_response_estimate(self, env: StsEnv, measure: Callable[[], int]) -> None:
        """A cached wire response and its result weigh at least what they hold."""
        engine = Engine(env.world, env.keys, env.clock)
        services = Services(ServerDeps(engine, env.clock, CountingEntropy(5), Metrics()))
        token = token_for(env)
        results = [
            engine.authorize(token, "s3:GetObject", resource(i).replace("reports", "other"))[0]
            for i in range(200)
        ]
        assert all(r.decision is Decision.IMPLICIT_DENY for r in results)
        before = measure()
        for r in results:
            services._kept(r, keep=True)
        held = measure() - before
        assert held <= sum(response_bytes(r) for r in results)
