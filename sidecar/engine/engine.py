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

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from sidecar.engine.authorize import TIME_KEYS, Authorizer, AuthzResult
from sidecar.engine.cache import BoundedCache
from sidecar.errors import ExpiredToken, InvalidClientTokenId
from sidecar.identity.model import World
from sidecar.policy.context import Context
from sidecar.sts.clock import Clock
from sidecar.sts.keys import KeyRing
from sidecar.sts.session import Session
from sidecar.sts.tokens import EXPIRED


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    world: World
    keys: KeyRing
    authorizer: Authorizer


class Engine:
    def __init__(
        self,
        world: World,
        keys: KeyRing,
        clock: Clock,
        *,
        decision_cache_size: int = 100_000,
        token_cache_size: int = 10_000,
        not_before_leeway: float = 30.0,
    ) -> None:
        self.clock = clock
        self.not_before_leeway = not_before_leeway
        self.tokens: BoundedCache[Session] = BoundedCache(token_cache_size)
        self.decisions: BoundedCache[AuthzResult] = BoundedCache(decision_cache_size)
        self._snapshot = self._build(1, world, keys)

    def _build(self, generation: int, world: World, keys: KeyRing) -> Snapshot:
        authorizer = Authorizer(world, keys, self.clock, not_before_leeway=self.not_before_leeway)
        return Snapshot(generation, world, keys, authorizer)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def swap(self, world: World, keys: KeyRing) -> int:
        """Install a new world and key set at once; returns the new generation. Requests that
        already hold the old snapshot finish on it, so none sees half of each."""
        current = self._snapshot
        self._snapshot = self._build(current.generation + 1, world, keys)
        return self._snapshot.generation

    def verify(self, token: str, snapshot: Snapshot | None = None) -> Session:
        snap = snapshot or self._snapshot
        key = (snap.generation, token)
        session = self.tokens.get(key)
        now = self.clock.now()
        if session is None:
            session = snap.authorizer.session(token)
            self.tokens.put(key, session)
            return session
        if now >= session.expires_at:
            raise ExpiredToken(EXPIRED, reason="expired")
        if now + self.not_before_leeway < session.issued_at:
            raise InvalidClientTokenId(
                "The security token included in the request is not valid yet",
                reason="not_yet_valid",
            )
        return session

    def authorize(
        self,
        token: str,
        action: str,
        resource: str,
        context: Context | None = None,
        transport: Mapping[str, str] | None = None,
    ) -> tuple[AuthzResult, bool]:
        """The decision, and whether it came from the cache."""
        snap = self._snapshot
        session = self.verify(token, snap)
        authorizer = snap.authorizer
        cache_key = self._cache_key(snap, token, session, action, resource, context, transport)
        if cache_key is not None:
            cached = self.decisions.get(cache_key)
            if cached is not None:
                return cached, True
        result = authorizer.authorize_session(session, action, resource, context, transport)
        if cache_key is not None:
            self.decisions.put(cache_key, result)
        return result, False

    def _cache_key(
        self,
        snap: Snapshot,
        token: str,
        session: Session,
        action: str,
        resource: str,
        context: Context | None,
        transport: Mapping[str, str] | None,
    ) -> Hashable | None:
        keys = snap.authorizer.referenced_keys(session, resource)
        if keys is None or not keys.isdisjoint(TIME_KEYS):
            return None
        values: list[tuple[str, tuple[str, ...], bool]] = []
        if context is not None:
            for key in sorted(keys & context.values.keys()):
                values.append((key, context.values[key], context.is_multi(key)))
        if transport:
            for name, value in sorted(transport.items()):
                if name.lower() in keys:
                    values.append((name.lower(), (value,), False))
        return (snap.generation, token, action, resource, tuple(values))
