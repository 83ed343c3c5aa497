"""No token is issued that the sidecar would refuse: the token's length counts toward the packed
size, against the same MAX_TOKEN_CHARS that verification enforces."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sidecar.engine.authorize import Authorizer
from sidecar.errors import InvalidClientTokenId, PackedPolicyTooLarge
from sidecar.policy.evaluate import Decision
from sidecar.sts.assume import AssumeRoleResult, StsEnv, assume_role, create_session
from sidecar.sts.tokens import MAX_TOKEN_CHARS, encode_token, verify_token
from tests.sts.test_assume import APP, alice, params

TOO_LARGE = "Packed policy consumes 101% of allotted space, please use smaller policy for session."


def value_tags(chars: int) -> tuple[tuple[str, str], ...]:
    """50 tags (the most AssumeRole takes) holding ``chars`` characters of values in all,
    filled in order up to 256 each: compressible, so only the token's length limits them."""
    return tuple((f"t{i:02d}", "v" * max(0, min(256, chars - 256 * i))) for i in range(50))


def largest(issue: Callable[[int], object | None]) -> int:
    """The most value characters ``issue`` accepts (it returns None on PackedPolicyTooLarge),
    by bisection: issuance is monotonic in the tags' size."""
    low, high = 0, 50 * 256
    assert issue(low) is not None
    assert issue(high) is None
    while high - low > 1:
        mid = (low + high) // 2
        if issue(mid) is not None:
            low = mid
        else:
            high = mid
    return low


def issue_with(env: StsEnv, chars: int) -> AssumeRoleResult | None:
    try:
        return assume_role(env, alice(env.world), params(name="s" * 64, tags=value_tags(chars)))
    except PackedPolicyTooLarge:
        return None


class TestIssuance:
    def test_compressible_maximum_tags_are_refused(self, env: StsEnv) -> None:
        """50 tags of 128 + 256 repeated characters compress far under the packed budget but
        make a ~26 KB token: refused (it was issued, and Authorize then refused it)."""
        tags = tuple((f"{i:02d}" + "k" * 126, "v" * 256) for i in range(50))
        with pytest.raises(PackedPolicyTooLarge) as info:
            assume_role(env, alice(env.world), params(tags=tags))
        assert info.value.message.startswith("Packed policy consumes ")
        assert info.value.message.endswith(
            "% of allotted space, please use smaller policy for session."
        )
        percent = int(info.value.message.split()[3].rstrip("%"))
        assert percent > 400  # about 26,500 characters against 6,144

    def test_the_largest_token_issued_is_accepted(self, env: StsEnv) -> None:
        """At the boundary the token is MAX_TOKEN_CHARS long (base64 steps by 1-2 characters),
        reports 100 %, and verifies and authorizes; one character of tags more is refused."""
        chars = largest(lambda n: issue_with(env, n))
        result = issue_with(env, chars)
        assert result is not None
        token = result.credentials.session_token
        assert MAX_TOKEN_CHARS - 2 <= len(token) <= MAX_TOKEN_CHARS
        assert result.packed_policy_size == 100
        session, _ = verify_token(token, env.keys, env.clock.now())
        assert session == result.session
        authz = Authorizer(env.world, env.keys, env.clock)
        assert authz.authorize(token, "s3:GetObject", "arn:aws:s3:::reports/q1.csv").decision is (
            Decision.ALLOWED
        )
        with pytest.raises(PackedPolicyTooLarge) as info:
            assume_role(env, alice(env.world), params(name="s" * 64, tags=value_tags(chars + 1)))
        assert info.value.message == TOO_LARGE

    def test_packed_size_counts_the_token(self, env: StsEnv) -> None:
        """PackedPolicySize is at least the token's share of MAX_TOKEN_CHARS (0 without session
        policies or tags, as AWS reports it)."""
        half = issue_with(env, 1800)
        assert half is not None
        share = -(-100 * len(half.credentials.session_token) // MAX_TOKEN_CHARS)
        assert half.packed_policy_size == share > 40
        assert assume_role(env, alice(env.world), params()).packed_policy_size == 0

    def test_federated_claims_count_too(self, env: StsEnv) -> None:
        """Web identity and SAML create their sessions through create_session: claims that make
        the token too long are refused the same way."""
        role = env.world.roles_by_arn[APP]
        claims = (("issuer.example:groups", tuple(f"group-{i:04d}" for i in range(800))),)
        with pytest.raises(PackedPolicyTooLarge):
            create_session(env, role, session_name="fed", duration=0, federated_claims=claims)
        ok = create_session(env, role, session_name="fed", duration=0, federated_claims=claims[:0])
        assert len(ok.credentials.session_token) < MAX_TOKEN_CHARS


class TestVerification:
    def test_verification_refuses_longer_tokens(self, env: StsEnv) -> None:
        """A correctly signed token over MAX_TOKEN_CHARS (never issued) is refused: the same
        constant caps both sides."""
        result = issue_with(env, 100)
        assert result is not None
        tags = (("big", "x" * 4000), ("more", "y" * 2000))
        long_session = dataclasses.replace(result.session, tags=tags)
        token = encode_token(long_session, env.keys)
        assert len(token) > MAX_TOKEN_CHARS
        with pytest.raises(InvalidClientTokenId) as info:
            verify_token(token, env.keys, env.clock.now())
        assert info.value.reason == "malformed"
