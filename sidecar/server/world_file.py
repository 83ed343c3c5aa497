"""Reading the world file: the shell around sidecar.identity.load (docs/API.md §5).

This is where the file, the environment and secret files are read; the pure loader gets the
parsed document and a secret lookup. A file that cannot be read or parsed becomes a WorldError
like any other problem, with the line and column of a syntax error.

The file is bounded before anything walks it: its size (a ConfigMap holds at most 1 MiB), how
far YAML aliases expand it, and how deep it nests. PyYAML resolves an alias to the very object
its anchor built, so a "billion laughs" file parses in milliseconds into a small graph of
shared lists; the blow-up comes later, in whatever walks that graph as a tree: the world
builder's ``plain`` (sidecar/identity/load/toolkit.py) copies each policy document into fresh
JSON data, then parses and re-serializes the copy. The bounds are checked on the composed node
graph, before any object is constructed (a ``<<`` merge counts as the alias it is), so nothing
downstream ever sees a tree larger than the file allows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from sidecar.errors import WorldError
from sidecar.identity.load import SecretSource, build_world
from sidecar.identity.model import World
from sidecar.policy.parse import load_json

MAX_WORLD_BYTES = 1024 * 1024  # a Kubernetes ConfigMap's limit; --max-world-bytes raises it
MAX_ALIAS_NODES = 100_000  # nodes YAML aliases may add to a document once expanded
MAX_DEPTH = 100  # nesting levels; a world file needs about a dozen

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SATURATED = 1 << 62  # expanded sizes stop growing here: the count only has to exceed a limit


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a key repeated in one map is an error (PyYAML keeps
    the last silently, which would hide a whole section), only JSON-shaped values are built
    (plus dates, which the world builder reads as text), and a scalar that does not convert is
    a YAML error with its position rather than a bare Python exception."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, TypeError, OverflowError) as err:
            # 2001-13-45 read as a date, a 5,000-digit integer, !!bool maybe, ...
            short = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise ConstructorError(
                None, None, f"not a valid {short} value ({err})", node.start_mark
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _refuse_tag(loader: yaml.SafeLoader, node: Node) -> Any:
    short = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise ConstructorError(
        None, None, f"{short} is not allowed: a world file holds plain data", node.start_mark
    )


# Values no world field takes and JSON cannot hold (bytes, sets, ordered pairs).
for _tag in ("binary", "set", "omap", "pairs"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


class _Refused(Exception):
    """A bound the document breaks; parse_world_text reports it as a WorldError."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _where(node: Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: "


def _check_node_graph(root: Node, *, max_alias_nodes: int, max_depth: int) -> None:
    """Refuse a composed YAML document that refers to itself, nests deeper than ``max_depth``,
    or whose aliases would add more than ``max_alias_nodes`` nodes once expanded.

    Aliases make the node graph a DAG (or a cycle); each distinct node is visited once and its
    expanded size computed from its children's, so this costs the size of the file, not of the
    expansion. Iterative, so no depth of nesting can exhaust the stack here.
    """
    size: dict[int, int] = {}  # id(node) -> nodes in its subtree with aliases expanded
    height: dict[int, int] = {}
    entered: set[int] = set()  # nodes on the current path: meeting one again is a cycle
    stack: list[tuple[Node, list[Node] | None]] = [(root, None)]
    while stack:
        node, kids = stack.pop()
        key = id(node)
        if kids is not None:  # every child is done
            size[key] = min(_SATURATED, 1 + sum([size[id(k)] for k in kids]))
            height[key] = 1 + max([height[id(k)] for k in kids], default=0)
            if height[key] > max_depth:
                raise _Refused(f"{_where(node)}nested more than {max_depth} levels deep")
            entered.discard(key)
            continue
        if key in size:
            continue
        if key in entered:
            raise _Refused(f"{_where(node)}a recursive alias: this anchor is used inside itself")
        entered.add(key)
        kids = _children(node)
        stack.append((node, kids))
        stack.extend((kid, None) for kid in kids if id(kid) not in size)
    if size[id(root)] - len(size) > max_alias_nodes:
        raise _Refused(
            f"YAML aliases expand the document by more than {max_alias_nodes:,} nodes "
            "(the limit for aliases)"
        )


def _load_yaml(text: str, max_alias_nodes: int, max_depth: int) -> Any:
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node_graph(node, max_alias_nodes=max_alias_nodes, max_depth=max_depth)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _json_depth_ok(doc: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


def parse_world_text(
    path: str,
    text: str,
    *,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The document in ``text``: JSON for a `.json` file, YAML otherwise (see the module
    docstring for the bounds)."""
    too_deep = f"nested more than {max_depth} levels deep"
    if path.lower().endswith(".json"):
        try:
            doc = load_json(text)  # strict: a repeated key or NaN is an error
        except json.JSONDecodeError as err:
            message = f"line {err.lineno}, column {err.colno}: {err.msg}"
            raise WorldError(path, [("", message)]) from None
        except RecursionError:
            raise WorldError(path, [("", too_deep)]) from None
        except ValueError as err:
            raise WorldError(path, [("", str(err))]) from None
        if not _json_depth_ok(doc, max_depth):
            raise WorldError(path, [("", too_deep)])
        return doc
    try:
        return _load_yaml(text, max_alias_nodes, max_depth)
    except _Refused as err:
        raise WorldError(path, [("", err.message)]) from None
    except RecursionError:  # PyYAML's composer recurses once per level
        raise WorldError(path, [("", too_deep)]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        context = f" ({err.context})" if err.context and err.problem else ""
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WorldError(path, [("", f"{where}{problem}{context}")]) from None
    except yaml.YAMLError as err:
        raise WorldError(path, [("", f"invalid YAML: {err}")]) from None


def read_world_text(path: str, max_bytes: int = MAX_WORLD_BYTES) -> str:
    """The file's text, refused beyond ``max_bytes`` (read no further than that)."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
            if len(data) > max_bytes:
                size = os.fstat(f.fileno()).st_size
                actual = f"{size:,} bytes" if size > max_bytes else "larger"
                raise WorldError(
                    path,
                    [("", f"the file is {actual}, over the limit of {max_bytes:,} bytes "
                          "(--max-world-bytes raises it)")],
                )  # fmt: skip
    except OSError as err:
        raise WorldError(path, [("", f"cannot read the file: {err.strerror or err}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise WorldError(path, [("", f"not UTF-8 text (byte {err.start})")]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


def _read_secret_file(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return None


def secret_source(environ: Mapping[str, str]) -> SecretSource:
    """Secrets from ``environ`` (kind "env") and from files (kind "file", the trailing newline
    dropped); None when absent or unreadable."""

    def lookup(kind: str, ref: str) -> str | None:
        if kind == "env":
            return environ.get(ref)
        if kind == "file":
            return _read_secret_file(ref)
        return None

    return lookup


def load_world_file(
    path: str,
    *,
    generation: int = 0,
    environ: Mapping[str, str] | None = None,
    max_bytes: int = MAX_WORLD_BYTES,
) -> World:
    """Read, parse and validate the world file at ``path``.

    ``environ`` holds the variables that ``secret_env`` and ``seed_env`` name (the process
    environment when None); ``max_bytes`` bounds the file. Raises WorldError listing every
    problem.
    """
    doc = parse_world_text(path, read_world_text(path, max_bytes))
    secrets = secret_source(os.environ if environ is None else environ)
    return build_world(doc, source=path, secrets=secrets, generation=generation)
