"""A user's credentials: access keys and virtual MFA devices, whose secrets (the secret access
key, the TOTP seed) are looked up through the injected SecretSource, never read here."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from sidecar.identity.load.naming import entity_name, iam_arn
from sidecar.identity.load.state import AccountParts, Loader
from sidecar.identity.load.toolkit import at
from sidecar.identity.model import AccessKey, MfaDevice

_ACCESS_KEY_ID = re.compile(r"AKIA[A-Z0-9]{12,124}")


def secret(
    ld: Loader, m: Mapping[Any, Any], path: str, keys: tuple[str, str], what: str
) -> str | None:
    """A secret named by ``keys[0]`` (an environment variable) or ``keys[1]`` (a file)."""
    key = ld.one_of(m, keys, path)
    if key is None:
        return None
    ref = ld.string(m, key, path, empty=False)
    if ref is None:
        return None
    env = key == keys[0]
    value = ld.secrets("env" if env else "file", ref)
    where = f"environment variable {ref}" if env else f"file {ref}"
    if value is None:
        ld.issue(at(path, key), f"{what} not found in {where}")
    elif not value:
        ld.issue(at(path, key), f"{what} is empty in {where}")
    else:
        return value
    return None


def read_access_key(ld: Loader, value: object, path: str) -> AccessKey | None:
    m = ld.fields(value, path, ("id", "secret_env", "secret_file"), ("id",))
    if m is None:
        return None
    key_id = ld.string(m, "id", path)
    if key_id is not None:
        if not _ACCESS_KEY_ID.fullmatch(key_id):
            ld.issue(
                at(path, "id"),
                f"access key id {key_id!r} must be AKIA followed by 12-124 upper-case "
                "letters and digits",
            )
        elif key_id in ld.key_ids:
            ld.issue(
                at(path, "id"), f"duplicate access key id {key_id} (also {ld.key_ids[key_id]})"
            )
        else:
            ld.key_ids[key_id] = path
    text = secret(ld, m, path, ("secret_env", "secret_file"), f"secret for access key {key_id}")
    if key_id is None or text is None:
        return None
    return AccessKey(access_key_id=key_id, secret=text)


def read_mfa_device(ld: Loader, value: object, path: str, acct: AccountParts) -> MfaDevice | None:
    m = ld.fields(value, path, ("name", "seed_env", "seed_file"), ("name",))
    if m is None:
        return None
    name = entity_name(ld, m, path, "MFA device", 128)
    serial = ""
    if name is not None:
        serial = iam_arn(ld.partition, acct.account_id, "mfa", name)
        if serial in acct.mfa_serials:
            ld.issue(at(path, "name"), f"duplicate MFA device name {name!r} in the account")
        acct.mfa_serials.add(serial)
    text = secret(ld, m, path, ("seed_env", "seed_file"), f"seed for MFA device {name}")
    if text is None:
        return None
    seed = _decode_base32(text)
    if not seed:
        ld.issue(path, f"seed for MFA device {name} is not valid base32 text")
        return None
    return MfaDevice(serial_number=serial, seed=seed) if name is not None else None


def _decode_base32(text: str) -> bytes | None:
    """A TOTP seed as authenticator apps show it: spaces, lower case and missing padding
    allowed."""
    cleaned = "".join(text.split()).upper().rstrip("=")
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        return None
