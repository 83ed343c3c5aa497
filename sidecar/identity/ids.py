"""Unique ids for roles, users and managed policies (docs/SEMANTICS.md §8).

AWS gives every entity a random unique id (AROA..., AIDA..., ANPA...). Here the id is derived
from the entity's partition, account and name, so reloading the same world gives the same ids
and a session token naming a role id stays valid across reloads. Names are lowercased first:
IAM names are unique regardless of case, so `App` and `app` are the same entity.
"""

from __future__ import annotations

import base64
import hashlib

ROLE_PREFIX = "AROA"
USER_PREFIX = "AIDA"
MANAGED_POLICY_PREFIX = "ANPA"
_SUFFIX_LENGTH = 17  # AWS's ids are the prefix plus 17 characters of [A-Z2-7]


def _unique_id(prefix: str, partition: str, account: str, name: str) -> str:
    # The prefix names the entity type, so a role and a user of the same name differ.
    material = "\x00".join((prefix, partition, account, name.lower())).encode()
    digest = hashlib.sha256(material).digest()
    return prefix + base64.b32encode(digest).decode("ascii")[:_SUFFIX_LENGTH]


def role_id(partition: str, account: str, name: str) -> str:
    """The role's unique id: `AROA` and 17 characters of [A-Z2-7]."""
    return _unique_id(ROLE_PREFIX, partition, account, name)


def user_id(partition: str, account: str, name: str) -> str:
    """The user's unique id: `AIDA` and 17 characters of [A-Z2-7]."""
    return _unique_id(USER_PREFIX, partition, account, name)


def managed_policy_id(partition: str, account: str, name: str) -> str:
    """The managed policy's unique id: `ANPA` and 17 characters of [A-Z2-7]."""
    return _unique_id(MANAGED_POLICY_PREFIX, partition, account, name)
