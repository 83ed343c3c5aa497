"""Where the session-token signing keys are (read by the shell, never here)."""

from __future__ import annotations

from sidecar.identity.load.toolkit import Reader


def read_signing(r: Reader, value: object, path: str) -> str:
    """The ``keys_file``; empty when the section has problems (reported)."""
    signing = r.fields(value, path, ("keys_file",), ("keys_file",))
    if signing is None:
        return ""
    return r.string(signing, "keys_file", path, empty=False) or ""
