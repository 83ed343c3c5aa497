"""Reading the world file: the shell around sidecar.identity.load (PRODUCT.md §5).

This is where the file, the environment and secret files are read; the pure loader gets the
parsed document and a secret lookup. A file that cannot be read or parsed becomes a WorldError
like any other problem, with the line and column of a syntax error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from sidecar.errors import WorldError
from sidecar.identity.load import SecretSource, build_world
from sidecar.identity.model import World
from sidecar.policy.parse import load_json

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a key repeated in one map is an error (PyYAML keeps
    the last silently, which would hide a whole section)."""

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


def parse_world_text(path: str, text: str) -> Any:
    """The document in ``text``: JSON for a `.json` file, YAML otherwise."""
    if path.lower().endswith(".json"):
        try:
            return load_json(text)  # strict: a repeated key or NaN is an error
        except json.JSONDecodeError as err:
            message = f"line {err.lineno}, column {err.colno}: {err.msg}"
            raise WorldError(path, [("", message)]) from None
        except ValueError as err:
            raise WorldError(path, [("", str(err))]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        context = f" ({err.context})" if err.context and err.problem else ""
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WorldError(path, [("", f"{where}{problem}{context}")]) from None
    except yaml.YAMLError as err:
        raise WorldError(path, [("", f"invalid YAML: {err}")]) from None


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
    path: str, *, generation: int = 0, environ: Mapping[str, str] | None = None
) -> World:
    """Read, parse and validate the world file at ``path``.

    ``environ`` holds the variables that ``secret_env`` and ``seed_env`` name (the process
    environment when None). Raises WorldError listing every problem.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise WorldError(path, [("", f"not UTF-8 text (byte {err.start})")]) from None
    except OSError as err:
        raise WorldError(path, [("", f"cannot read the file: {err.strerror or err}")]) from None
    doc = parse_world_text(path, text)
    secrets = secret_source(os.environ if environ is None else environ)
    return build_world(doc, source=path, secrets=secrets, generation=generation)
