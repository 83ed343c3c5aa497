"""Action and resource templates (`orders:{op}`, `arn:aws:orders:::order/{id}`), compiled once.

A template with one placeholder fills by concatenation; one with more becomes a str.format string
(literal braces escaped), filled by one format_map call.
A value filled into the action, or into an ARN's fields before the resource part (partition,
service, region, account), must not hold ':': it would move the fields after it, and a request
could pick the account its resource belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.mesh.refusals import BadRequest

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ARN_FIELDS_BEFORE_RESOURCE = 5  # arn:partition:service:region:account:resource


@dataclass(frozen=True, slots=True)
class Template:
    text: str  # as written
    fmt: str | None  # None: no placeholders, ``text`` is the value
    names: frozenset[str]  # the placeholders it fills
    colon_free: tuple[str, ...]  # placeholders whose value may not hold ':'

    # One placeholder, the common case: prefix + value + suffix (faster than format_map).
    single: tuple[str, str, str] | None = None

    def fill(self, values: Mapping[str, str]) -> str:
        if self.fmt is None:
            return self.text
        for name in self.colon_free:
            if ":" in values[name]:
                raise BadRequest(
                    f"The request gives {{{name}}} a value with ':' where {self.text!r} "
                    "takes a whole field"
                )
        if self.single is not None:
            prefix, name, suffix = self.single
            return prefix + values[name] + suffix
        return self.fmt.format_map(values)


def compile_template(text: str, *, action: bool) -> Template:
    """Compile ``text``; every placeholder must be filled by the caller of ``fill``."""
    parts: list[str] = []
    names: set[str] = set()
    colon_free: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[pos : match.start()]
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        name = match.group(1)
        parts.append("{" + name + "}")
        names.add(name)
        before = text[: match.start()].count(":")
        if (action or before < _ARN_FIELDS_BEFORE_RESOURCE) and name not in colon_free:
            colon_free.append(name)
        pos = match.end()
    if not names:
        return Template(text, None, frozenset(), ())
    parts.append(text[pos:].replace("{", "{{").replace("}", "}}"))
    matches = list(_PLACEHOLDER.finditer(text))
    single = None
    if len(matches) == 1:
        m = matches[0]
        single = (text[: m.start()], m.group(1), text[m.end() :])
    return Template(text, "".join(parts), frozenset(names), tuple(colon_free), single)
