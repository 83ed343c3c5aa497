"""The world file's bounds (docs/SERVER.md, "Reloads"): file size, YAML alias expansion,
recursive aliases, nesting depth, and YAML values that are not plain data. Each is a WorldError
naming the problem, never a Python exception or a huge tree handed to the world builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidecar.cli import build_parser, main
from sidecar.errors import WorldError
from sidecar.server.app import ServeOptions
from sidecar.server.world_file import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_WORLD_BYTES,
    load_world_file,
    parse_world_text,
)

DEMO = Path(__file__).resolve().parents[2] / "sidecar" / "demo" / "world.yaml"
DEMO_ENV = {"IAM_SIDECAR_DEMO_SECRET": "DemoSecretForAliceDoNotUseInProduction00"}


def problem(text: str, path: str = "w.yaml", **limits: int) -> str:
    """The single issue parse_world_text reports for ``text``."""
    with pytest.raises(WorldError) as info:
        parse_world_text(path, text, **limits)
    ((where, message),) = info.value.issues
    assert where == ""
    return message


def laughs(levels: int, width: int = 9) -> str:
    """The "billion laughs" document: each level is a list of ``width`` aliases of the last."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# -- aliases ----------------------------------------------------------------------------------


def test_billion_laughs_is_refused_naming_the_limit() -> None:
    """Ten levels of nine aliases (3.5 billion nodes once expanded, in 540 bytes) are
    refused while parsing; nothing is expanded."""
    text = laughs(10)
    assert len(text) == 540
    assert problem(text) == (
        "YAML aliases expand the document by more than 100,000 nodes (the limit for aliases)"
    )


def test_alias_expansion_up_to_the_limit_is_accepted() -> None:
    """The limit counts the nodes aliases add: ``a`` (1 list + 10 items) used ten times adds
    exactly 110 nodes; 110 is accepted and 109 refused. Ordinary reuse stays well under the
    default."""
    text = "a: &a [" + ", ".join("x" * 10) + "]\nuses: [" + ", ".join(["*a"] * 10) + "]\n"
    doc = parse_world_text("w.yaml", text, max_alias_nodes=110)
    assert doc["uses"] == [["x"] * 10] * 10
    assert "more than 109 nodes" in problem(text, max_alias_nodes=109)
    assert MAX_ALIAS_NODES == 100_000
    assert parse_world_text("w.yaml", laughs(5))["l4"][0][0][0][0] == ["lol"] * 9  # 59,049


def test_merge_keys_count_as_alias_expansion() -> None:
    """A ``<<`` merge shares the merged map's values, as any alias does: a chain of doubling
    merges counts as its expansion."""
    lines = ["m0: &m0 {k: v}"]
    for i in range(1, 18):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}")
    assert "YAML aliases expand the document" in problem("\n".join(lines))


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]",
        "a: &a {b: *a}",
        "a: &a [x, {b: [*a]}]",
        "a: &a {<<: *a}",
    ],
)
def test_a_recursive_alias_is_refused_with_its_line(text: str) -> None:
    assert problem("x: 1\n" + text) == (
        "line 2, column 4: a recursive alias: this anchor is used inside itself"
    )


# -- values that are not plain data -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [{a: 1}]", "!!omap"),
        ("!!pairs [{a: 1}]", "!!pairs"),
    ],
)
def test_yaml_types_json_cannot_hold_are_refused(value: str, tag: str) -> None:
    assert problem(f"a: 1\nb: {value}\n") == (
        f"line 2, column 4: {tag} is not allowed: a world file holds plain data"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2001-13-45", "not a valid !!timestamp value (month must be in 1..12)"),
        ("!!bool maybe", "not a valid !!bool value ('maybe')"),
        ("!!float x", "not a valid !!float value (could not convert string to float: 'x')"),
        ("1" * 5000, "not a valid !!int value (Exceeds the limit (4300 digits)"),
    ],
)
def test_a_scalar_that_does_not_convert_is_a_yaml_error(value: str, message: str) -> None:
    """PyYAML raises bare ValueError/KeyError for these; they become problems with a place."""
    assert problem(f"a: {value}\n").startswith(f"line 1, column 4: {message}")


def test_dates_stay_dates_for_the_world_builder() -> None:
    """An unquoted ``Version: 2012-10-17`` is still read (the builder turns it into text)."""
    assert str(parse_world_text("w.yaml", "Version: 2012-10-17\n")["Version"]) == "2012-10-17"


# -- nesting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["w.yaml", "w.json"])
def test_nesting_is_limited(path: str) -> None:
    """100 levels are accepted; 101 are refused, and so are 5,000 (deeper than the parsers'
    own recursion can go)."""
    assert MAX_DEPTH == 100
    assert parse_world_text(path, "[" * 99 + "1" + "]" * 99) is not None  # 100 with the 1
    assert "nested more than 100 levels deep" in problem("[" * 100 + "1" + "]" * 100, path)
    assert problem("[" * 5000 + "]" * 5000, path) == "nested more than 100 levels deep"


def test_nesting_through_aliases_is_limited() -> None:
    """Depth is measured with aliases expanded: 12 levels of aliased 9-deep lists."""
    lines = ["d0: &d0 " + "[" * 9 + "x" + "]" * 9]
    for i in range(1, 12):
        lines.append(f"d{i}: &d{i} " + "[" * 9 + f"*d{i - 1}" + "]" * 9)
    assert "nested more than 100 levels deep" in problem("\n".join(lines))


# -- file size --------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "world.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    """The demo world padded to one byte over the limit is refused before it is parsed; at
    the limit exactly it loads."""
    demo = DEMO.read_text()
    limit = len(demo.encode()) + 100
    at_limit = demo + "#" * (limit - len(demo.encode()) - 1) + "\n"
    assert load_world_file(write(tmp_path, at_limit), environ=DEMO_ENV, max_bytes=limit)
    path = write(tmp_path, at_limit + "\n")
    with pytest.raises(WorldError) as info:
        load_world_file(path, environ=DEMO_ENV, max_bytes=limit)
    assert info.value.issues == [
        ("", f"the file is {limit + 1:,} bytes, over the limit of {limit:,} bytes "
             "(--max-world-bytes raises it)"),
    ]  # fmt: skip
    assert MAX_WORLD_BYTES == 1024 * 1024


def test_the_default_size_limit_is_one_mebibyte(tmp_path: Path) -> None:
    big = json.dumps({"accounts": [], "x": "a" * MAX_WORLD_BYTES})
    with pytest.raises(WorldError) as info:
        load_world_file(write(tmp_path, big, "w.json"))
    assert "over the limit of 1,048,576 bytes" in info.value.issues[0][1]


# -- the commands use the same bounds ---------------------------------------------------------


def test_validate_takes_max_world_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`iam-sidecar validate` refuses a file over the limit (the limit named), accepts it with
    --max-world-bytes raised, and refuses an alias bomb; the flag's default is the library's."""
    monkeypatch.setenv("IAM_SIDECAR_DEMO_SECRET", DEMO_ENV["IAM_SIDECAR_DEMO_SECRET"])
    path = write(tmp_path, DEMO.read_text())
    size = Path(path).stat().st_size
    assert main(["validate", "--max-world-bytes", str(size - 1), path]) == 1
    out = capsys.readouterr().out
    assert out == (
        f"{path}: the file is {size:,} bytes, over the limit of {size - 1:,} bytes "
        "(--max-world-bytes raises it)\n"
    )
    assert main(["validate", "--max-world-bytes", str(size), path]) == 0
    assert main(["validate", path]) == 0
    capsys.readouterr()
    assert main(["validate", write(tmp_path, laughs(10), "bomb.yaml")]) == 1
    assert "YAML aliases expand the document" in capsys.readouterr().out
    assert build_parser().parse_args(["validate", path]).max_world_bytes == MAX_WORLD_BYTES


def test_serve_flags_default_to_the_serve_options() -> None:
    args = build_parser().parse_args(["serve"])
    opts = ServeOptions()
    assert args.max_world_bytes == opts.max_world_bytes == MAX_WORLD_BYTES
    assert args.http_header_timeout == opts.http_header_timeout == 10.0
    assert args.http_idle_timeout == opts.http_idle_timeout == 75.0
    assert args.http_max_connections == opts.http_max_connections == 1024
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--http-max-connections", "0"])
