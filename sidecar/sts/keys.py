"""Session-token keys: Ed25519 signing keys with ids, in a ring that rotates without breaking
live sessions.

Each key has an id (``kid``), an Ed25519 public key, optionally its private key (only on
replicas that mint sessions), and a 32-byte secret from which the secret access keys of the
sessions it signed are derived (every replica that verifies SigV4 needs it). One key is active
for signing; the others only verify. A ring with no private keys is verify-only.

The key-set document (what `iam-sidecar keys generate` writes):

    {"active": "k2", "keys": [{"kid": "k2", "private_key": "<b64>", "public_key": "<b64>",
                               "secret": "<b64>"}, {"kid": "k1", "public_key": ..., ...}]}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sidecar.errors import KeySetError
from sidecar.sts.clock import Entropy

_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise KeySetError(f"{what} is not base64") from None
    if len(raw) != size:
        raise KeySetError(f"{what} must be {size} bytes, not {len(raw)}")
    return raw


def _public_raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class TokenKey:
    kid: str
    public: Ed25519PublicKey = field(repr=False)
    secret: bytes = field(repr=False)  # derives the sessions' secret access keys
    private: Ed25519PrivateKey | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """Short id of the public key: tells a wrong key from a tampered token."""
        return hashlib.sha256(_public_raw(self.public)).hexdigest()[:16]

    @classmethod
    def generate(cls, kid: str, entropy: Entropy) -> TokenKey:
        private = Ed25519PrivateKey.from_private_bytes(entropy.token_bytes(32))
        return cls(kid, private.public_key(), entropy.token_bytes(32), private)

    def to_dict(self, *, include_private: bool = True) -> dict[str, str]:
        out = {"kid": self.kid, "public_key": _b64(_public_raw(self.public))}
        if include_private and self.private is not None:
            from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

            raw = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            out["private_key"] = _b64(raw)
        out["secret"] = _b64(self.secret)
        return out


class KeyRing:
    """The key set: lookup by kid, and the active signing key."""

    __slots__ = ("_by_kid", "active_kid")

    def __init__(self, keys: Sequence[TokenKey], active: str | None) -> None:
        self._by_kid = {k.kid: k for k in keys}
        if len(self._by_kid) != len(keys):
            raise KeySetError("key ids must be unique")
        if active is not None:
            key = self._by_kid.get(active)
            if key is None:
                raise KeySetError(f"active key {active!r} is not in the key set")
            if key.private is None:
                raise KeySetError(f"active key {active!r} has no private key")
        self.active_kid = active

    @property
    def can_sign(self) -> bool:
        return self.active_kid is not None

    @property
    def active(self) -> TokenKey:
        if self.active_kid is None:
            raise KeySetError("this key set is verify-only: it has no active signing key")
        return self._by_kid[self.active_kid]

    def get(self, kid: str) -> TokenKey | None:
        return self._by_kid.get(kid)

    def kids(self) -> list[str]:
        return list(self._by_kid)

    @classmethod
    def generate(cls, entropy: Entropy, kid: str = "k1") -> KeyRing:
        return cls([TokenKey.generate(kid, entropy)], kid)

    def rotated(self, entropy: Entropy, kid: str) -> KeyRing:
        """A new active key; every current key stays for verification."""
        if kid in self._by_kid:
            raise KeySetError(f"key id {kid!r} is already in the key set")
        return KeyRing([TokenKey.generate(kid, entropy), *self._by_kid.values()], kid)

    def verify_only(self) -> KeyRing:
        """The same keys without private parts (for replicas that must not mint tokens)."""
        keys = [TokenKey(k.kid, k.public, k.secret) for k in self._by_kid.values()]
        return KeyRing(keys, None)

    def to_dict(self, *, include_private: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if include_private and self.active_kid is not None:
            out["active"] = self.active_kid
        out["keys"] = [k.to_dict(include_private=include_private) for k in self._by_kid.values()]
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> KeyRing:
        """Read a key-set document; refuse anything inconsistent (a private key that does not
        belong to its public key, a missing secret, duplicate ids)."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
            raise KeySetError("a key set is an object with a 'keys' list")
        keys = []
        for n, item in enumerate(doc["keys"]):
            if not isinstance(item, Mapping):
                raise KeySetError(f"keys[{n}] must be an object")
            kid = item.get("kid")
            if not isinstance(kid, str) or not _KID.match(kid):
                raise KeySetError(f"keys[{n}].kid must be 1-64 of [A-Za-z0-9._-]")
            public = Ed25519PublicKey.from_public_bytes(
                _unb64(item.get("public_key"), f"keys[{n}].public_key", 32)
            )
            secret = _unb64(item.get("secret"), f"keys[{n}].secret", 32)
            private = None
            if item.get("private_key") is not None:
                private = Ed25519PrivateKey.from_private_bytes(
                    _unb64(item["private_key"], f"keys[{n}].private_key", 32)
                )
                if _public_raw(private.public_key()) != _public_raw(public):
                    raise KeySetError(f"keys[{n}]: private_key does not match public_key")
            keys.append(TokenKey(kid, public, secret, private))
        active = doc.get("active")
        if active is not None and not isinstance(active, str):
            raise KeySetError("'active' must be a key id")
        return cls(keys, active)
