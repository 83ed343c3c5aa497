"""Path normalization of the mesh mapping (sidecar/mesh/paths.py): one reading of each path,
and a refusal (400) wherever an upstream could read it another way."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.mesh.paths import _normalize, decode, joined, segments, split_target
from sidecar.mesh.refusals import BadRequest

NORMALIZED = [
    ("/", ()),
    ("/orders/1", ("orders", "1")),
    ("/orders/1/", ("orders", "1")),
    ("//orders///1", ("orders", "1")),
    ("/./orders/./1/.", ("orders", "1")),
    ("/orders/2/../1", ("orders", "1")),
    ("/a/b/c/../../orders/1", ("a", "orders", "1")),
    ("/orders/..", ()),
    ("/orders/%31", ("orders", "1")),
    ("/%6Frders/1", ("orders", "1")),
    ("/orders/a%20b", ("orders", "a b")),
    ("/orders/%2e/1", ("orders", "1")),
    ("/orders/2/%2E%2E/1", ("orders", "1")),
    ("/orders/...", ("orders", "...")),
    ("/orders/1.json", ("orders", "1.json")),
    ("/caf%C3%A9/%E2%82%AC", ("café", "€")),
    ("/orders/a+b", ("orders", "a+b")),  # '+' is a space only in a query
    ("/orders/%3F%23", ("orders", "?#")),
    ("/orders/%25", ("orders", "%")),
]


@pytest.mark.parametrize(("path", "expected"), NORMALIZED)
def test_normalization(path: str, expected: tuple[str, ...]) -> None:
    """//, '.', '..' and percent-escapes are resolved, and a trailing '/' dropped."""
    assert segments(path) == expected


REFUSED = [
    ("orders/1", "must start with '/'"),
    ("", "must start with '/'"),
    ("/..", "goes above the root"),
    ("/orders/../../etc", "goes above the root"),
    ("/%2e%2e/x", "goes above the root"),
    ("/files/a%2Fb", "holds a '/' or '\\'"),
    ("/files/a%2fb", "holds a '/' or '\\'"),
    ("/files/a%5Cb", "holds a '/' or '\\'"),
    ("/files/a\\b", "holds a '/' or '\\'"),
    ("/files/..\\secret", "holds a '/' or '\\'"),
    ("/files/%zz", "bad percent-escape"),
    ("/files/%4", "bad percent-escape"),
    ("/files/50%", "bad percent-escape"),
    ("/files/%00", "NUL"),
    ("/files/a\x00b", "NUL"),
    ("/files/%FF", "not UTF-8"),
    ("/files/%C3", "not UTF-8"),
    ("/files/%ED%A0%80", "not UTF-8"),  # a UTF-16 surrogate
    ("/orders/1#frag", "fragment"),
]


@pytest.mark.parametrize(("path", "message"), REFUSED)
def test_refusals(path: str, message: str) -> None:
    """What another server could read as another path is a 400, with its reason."""
    with pytest.raises(BadRequest) as info:
        segments(path)
    assert message in info.value.message
    assert (info.value.code, info.value.status) == ("InvalidRequest", 400)


def test_split_target_keeps_the_raw_query() -> None:
    """The query is split at the first '?' and left undecoded."""
    assert split_target("/a/b?x=%31&y=?z") == ("/a/b", "x=%31&y=?z")
    assert split_target("/a") == ("/a", "")


def test_joined() -> None:
    assert joined(()) == "/"
    assert joined(("a", "b c")) == "/a/b c"


def test_decode_plus_only_when_asked() -> None:
    assert decode("a+b%2B", "query parameter", plus=True) == "a b+"
    assert decode("a+b%2B", "path segment") == "a+b+"


def test_a_long_segment_is_cut_in_the_message() -> None:
    """Messages quote at most 64 characters of what they refuse."""
    with pytest.raises(BadRequest) as info:
        segments("/" + "a" * 5000 + "%zz")
    assert len(info.value.message) < 200


# -- properties ---------------------------------------------------------------------------------

_SEGMENT_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8
)
_RAW_PIECES = st.lists(
    st.one_of(
        st.sampled_from(["", ".", "..", "%2e", "%2E%2e", "a", "b.c", "%41", "x%20y", "~"]),
        st.text(alphabet="abz09-_.~%", max_size=6),
    ),
    max_size=8,
)


def _encoded(segs: tuple[str, ...]) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segs)


@given(_RAW_PIECES)
def test_normalization_is_idempotent(pieces: list[str]) -> None:
    """Normalizing the normalized path (re-encoded) changes nothing, and the result has no
    empty, '.' or '..' segment and no '/' inside a segment."""
    try:
        segs = segments("/" + "/".join(pieces))
    except BadRequest:
        return
    assert segments(_encoded(segs)) == segs
    assert all(s not in ("", ".", "..") and "/" not in s for s in segs)


@given(st.lists(_SEGMENT_TEXT.filter(lambda s: s not in ("", ".", "..")), max_size=6))
def test_any_encoded_segments_round_trip(segs: list[str]) -> None:
    """Segments without '/' or '\\' percent-encoded come back as they were; with one, 400."""
    path = _encoded(tuple(segs))
    if any("/" in s or "\\" in s for s in segs):
        with pytest.raises(BadRequest):
            segments(path)
    else:
        assert segments(path) == tuple(segs)


@given(st.text(alphabet="/abc.%2fFeE5C0", max_size=24))
def test_fast_path_agrees_with_full_normalization(tail: str) -> None:
    """The fast path (no '%', '/.', '//') gives what full normalization gives."""
    path = "/" + tail
    try:
        full: tuple[str, ...] | None = _normalize(path)
    except BadRequest:
        full = None
    try:
        fast: tuple[str, ...] | None = segments(path)
    except BadRequest:
        fast = None
    assert fast == full
