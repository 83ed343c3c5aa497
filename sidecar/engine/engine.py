"""The decision engine: the current world snapshot, swapped atomically on reload, with a
verified-token cache and a decision cache in front of the Authorizer.

The decision cache can never change an answer. Its key holds the snapshot generation (a reload
makes every older entry unreachable), the token (which fixes everything in the session that
policies can see: role, session name, session policies, tags, source identity, issue time), the
action, the resource, and the values of the caller's and transport's context keys that the
policies in scope read. Decisions whose policies read a key that moves with the clock
(aws:CurrentTime, aws:EpochTime, aws:MultiFactorAuthAge) are not cached. A token is taken from
the token cache only inside its validity window, so expiry is exact to the second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.engine.authorize import TIME_KEYS, Authorizer, AuthzResult
from sidecar.engine.cache import BoundedCache
from sidecar.engine.weights import TOKEN_ENTRY, entry_bytes, token_bytes, variant_bytes
from sidecar.identity.model import World
from sidecar.policy.context import Context
from sidecar.sts.clock import Clock
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from sidecar.sts.tokens import check_window


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    world: World
    keys: KeyRing
    authorizer: Authorizer


class _Entry:
    """What the decision cache holds for one (generation, token, action, resource): the
    verified session (so a hit needs no token lookup), the context keys the decision depends
    on (None: it reads the clock, so it is never cached), and results by their values."""

    __slots__ = ("keys", "results", "session", "weight")

    def __init__(self, session: Session, keys: tuple[str, ...] | None, weight: int) -> None:
        self.session = session
        self.keys = keys
        self.results: dict[tuple[object, ...], AuthzResult] = {}
        self.weight = weight  # estimated bytes, grown with each variant kept


MAX_VARIANTS = 32  # distinct context values remembered per (token, action, resource)
MAX_VARIANT_BYTES = 16 << 10  # a variant weighing more (large context values) is not kept
DECISION_CACHE_BYTES = 128 << 20
TOKEN_CACHE_BYTES = 32 << 20


class Engine:
    def __init__(
        self,
        world: World,
        keys: KeyRing,
        clock: Clock,
        *,
        decision_cache_size: int = 50_000,
        token_cache_size: int = 10_000,
        decision_cache_bytes: int = DECISION_CACHE_BYTES,
        token_cache_bytes: int = TOKEN_CACHE_BYTES,
        not_before_leeway: float = 30.0,
    ) -> None:
        self.clock = clock
        self.not_before_leeway = not_before_leeway
        # Both bounded in entries and in estimated bytes (docs/SERVER.md, "Memory bounds").
        # token -> (the token string kept once, its session, their weight)
        self.tokens: BoundedCache[tuple[str, Session, int]] = BoundedCache(
            token_cache_size, token_cache_bytes, lambda found: TOKEN_ENTRY + found[2]
        )
        self.decisions: BoundedCache[_Entry] = BoundedCache(
            decision_cache_size, decision_cache_bytes, lambda entry: entry.weight
        )
        # The snapshot being served: a plain attribute (read on every call), replaced whole.
        self.snapshot = self._build(1, world, keys)

    def _build(self, generation: int, world: World, keys: KeyRing) -> Snapshot:
        authorizer = Authorizer(world, keys, self.clock, not_before_leeway=self.not_before_leeway)
        authorizer.warm()  # compile every role's policies now, not on a request
        return Snapshot(generation, world, keys, authorizer)

    def prepare(self, world: World, keys: KeyRing) -> Snapshot:
        """Build (and compile) the next snapshot without installing it: the CPU-heavy part of
        a reload, which the server runs off its event loop."""
        return self._build(self.snapshot.generation + 1, world, keys)

    def install(self, snapshot: Snapshot) -> int:
        """Make a prepared snapshot the current one at once; returns its generation. Requests
        that already hold the old snapshot finish on it, so none sees half of each."""
        if snapshot.generation <= self.snapshot.generation:  # prepared before another swap
            snapshot = Snapshot(
                self.snapshot.generation + 1, snapshot.world, snapshot.keys, snapshot.authorizer
            )
        self.snapshot = snapshot
        return snapshot.generation

    def swap(self, world: World, keys: KeyRing) -> int:
        """Prepare and install a new world and key set; returns the new generation."""
        return self.install(self.prepare(world, keys))

    def _verify(self, token: str, snap: Snapshot) -> tuple[str, Session, int]:
        key = (snap.generation, token)
        found = self.tokens.get(key)
        if found is None:
            session = snap.authorizer.session(token)
            found = (token, session, token_bytes(token, session))
            self.tokens.put(key, found)
            return found
        check_window(found[1], self.clock.now(), not_before_leeway=self.not_before_leeway)
        return found

    def verify(self, token: str, snapshot: Snapshot | None = None) -> Session:
        """A verified session (cached; the validity window is checked on every use)."""
        return self._verify(token, snapshot or self.snapshot)[1]

    def authorize(
        self,
        token: str,
        action: str,
        resource: str,
        context: Context | None = None,
        transport: Mapping[str, str] | None = None,
    ) -> tuple[AuthzResult, bool]:
        """The decision, and whether it came from the cache."""
        snap = self.snapshot
        authorizer = snap.authorizer
        authorizer.check_request(action, resource, context)
        key = (snap.generation, token, action, resource)
        entry = self.decisions.get(key)
        new = entry is None  # put (weighed) once its first result is in
        if entry is None:
            canonical, session, token_weight = self._verify(token, snap)
            keys = authorizer.referenced_keys(session, resource)
            depends_on = None  # decisions that read the clock (or lost their role) are not kept
            if keys is not None and keys.isdisjoint(TIME_KEYS):
                depends_on = tuple(sorted(keys))
            weight = entry_bytes(token_weight, action, resource, depends_on)
            entry = _Entry(session, depends_on, weight)
            # The key holds the token string kept by the token cache: one copy per token.
            key = (snap.generation, canonical, action, resource)
            if depends_on is None:
                self.decisions.put(key, entry)
        else:  # a cache hit skips verification, not the validity window
            check_window(entry.session, self.clock.now(), not_before_leeway=self.not_before_leeway)
        if entry.keys is None:
            return authorizer.authorize_session(
                entry.session, action, resource, context, transport
            ), False
        values = _values(entry.keys, context, transport) if entry.keys else ()
        cached = entry.results.get(values)
        if cached is not None:
            return cached, True
        result = authorizer.authorize_session(entry.session, action, resource, context, transport)
        if len(entry.results) < MAX_VARIANTS:
            weight = variant_bytes(values, result)
            if weight <= MAX_VARIANT_BYTES:
                entry.results[values] = result
                entry.weight += weight
                new = True  # (re-)weighed; may evict older entries
        if new:
            self.decisions.put(key, entry)
        return result, False


def _values(
    keys: tuple[str, ...], context: Context | None, transport: Mapping[str, str] | None
) -> tuple[object, ...]:
    """The values (as the decision can see them) of the keys a decision depends on."""
    if not keys:
        return ()
    out: list[object] = []
    lowered = {k.lower(): v for k, v in transport.items()} if transport else {}
    for key in keys:
        if context is not None and key in context.values:
            out.append((context.values[key], context.is_multi(key)))
        else:
            out.append(None)
        out.append(lowered.get(key))
    return tuple(out)
