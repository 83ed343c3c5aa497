"""Key-set files: read, and write with owner-only permissions (they hold private keys)."""

from __future__ import annotations

import json
import os
import random
import secrets
from pathlib import Path

from sidecar.errors import KeySetError
from sidecar.sts.keys import KeyRing


class SystemEntropy:
    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def random(self) -> float:
        return random.random()  # sampling only: no need for the OS's randomness


def read_key_ring(path: str | Path) -> KeyRing:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise KeySetError(f"{path}: cannot read the key set: {exc.strerror}") from None
    except ValueError as exc:
        raise KeySetError(f"{path}: the key set is not JSON: {exc}") from None
    try:
        return KeyRing.from_dict(doc)
    except KeySetError as exc:
        raise KeySetError(f"{path}: {exc.message}") from None


def write_key_ring(ring: KeyRing, path: str | Path, *, include_private: bool = True) -> None:
    """Write atomically (temp file + rename), readable by the owner only."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(ring.to_dict(include_private=include_private), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, target)
