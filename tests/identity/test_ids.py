"""Deterministic unique ids for roles, users and managed policies."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from sidecar.identity.ids import managed_policy_id, role_id, user_id

ID_SHAPE = re.compile(r"[A-Z]{4}[A-Z2-7]{17}")


@pytest.mark.parametrize(
    ("make", "prefix"), [(role_id, "AROA"), (user_id, "AIDA"), (managed_policy_id, "ANPA")]
)
def test_ids_have_the_aws_prefix_and_17_base32_characters(
    make: Callable[[str, str, str], str], prefix: str
) -> None:
    """Each id is its type's prefix followed by 17 characters of [A-Z2-7]."""
    value = make("aws", "111111111111", "app")
    assert value.startswith(prefix)
    assert ID_SHAPE.fullmatch(value)


def test_ids_are_pinned() -> None:
    """The derivation never changes: ids outlive a process (tokens and logs name them)."""
    assert role_id("aws", "111111111111", "app") == "AROAJQJKTN5KX5E5BHQBJ"
    assert user_id("aws", "111111111111", "alice") == "AIDAQXVNOVK6KH6TDYSCN"
    assert managed_policy_id("aws", "111111111111", "S3Read") == "ANPAJ72WYTFN72KCKNUI6"


def test_ids_ignore_the_case_of_the_name() -> None:
    """IAM names are case-insensitively unique, so `App` and `app` share an id."""
    assert role_id("aws", "111111111111", "App") == role_id("aws", "111111111111", "app")
    assert user_id("aws", "111111111111", "Alice") == user_id("aws", "111111111111", "alice")


@pytest.mark.parametrize(
    "other",
    [
        ("aws-cn", "111111111111", "app"),
        ("aws", "111111111112", "app"),
        ("aws", "111111111111", "ap"),
    ],
)
def test_ids_differ_by_partition_account_and_name(other: tuple[str, str, str]) -> None:
    """Changing any input changes the id."""
    assert role_id(*other) != role_id("aws", "111111111111", "app")


def test_a_role_and_a_user_of_the_same_name_get_unrelated_ids() -> None:
    """The entity type is part of the hash, not only of the prefix."""
    role = role_id("aws", "111111111111", "app")
    user = user_id("aws", "111111111111", "app")
    assert role[4:] != user[4:]
