"""Policy variables (docs/SEMANTICS.md §4): `${key}`, `${key, 'default'}` and the escapes
`${*}`, `${?}`, `${$}`.

A text is parsed once into parts: raw text (where `*`/`?` keep their wildcard meaning in Like
and Resource matching), literal text (escapes) and variable references. At evaluation the
references resolve against the request context; a substituted value is always literal text.
Malformed syntax (an unterminated `${`, a reference that is not a key) stays as raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.policy.context import Context
from sidecar.policy.wildcard import Token, tokenize

_REF = re.compile(r"\$\{([^}]*)\}")
_INNER = re.compile(r"^\s*([^\s,'{}$]+)\s*(?:,\s*'([^']*)'\s*)?\Z")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True, slots=True)
class Raw:
    text: str


@dataclass(frozen=True, slots=True)
class Lit:
    text: str


@dataclass(frozen=True, slots=True)
class Var:
    key: str  # lowercased
    default: str | None


Part = Raw | Lit | Var


def parse_template(text: str) -> tuple[Part, ...]:
    """Split ``text`` into parts. A text with no references is a single Raw part."""
    parts: list[Part] = []
    pos = 0
    for m in _REF.finditer(text):
        inner = m.group(1)
        if inner in _ESCAPES:
            part: Part = Lit(_ESCAPES[inner])
        else:
            km = _INNER.match(inner)
            if km is None:
                continue  # not a reference: stays raw text
            part = Var(km.group(1).lower(), km.group(2))
        if m.start() > pos:
            parts.append(Raw(text[pos : m.start()]))
        parts.append(part)
        pos = m.end()
    if pos < len(text) or not parts:
        parts.append(Raw(text[pos:]))
    return tuple(parts)


def has_variables(parts: tuple[Part, ...]) -> bool:
    return any(not isinstance(p, Raw) for p in parts)


def resolve_var(var: Var, ctx: Context) -> str | None:
    """The value of one reference, or None when it cannot resolve (missing, multivalued)."""
    value = ctx.single(var.key)
    if value is None:
        if var.key in ctx.values:  # present but multivalued: variables need single values
            return None
        return var.default
    return value


def substitute_text(parts: tuple[Part, ...], ctx: Context) -> str | None:
    """Plain text with references replaced; None if one does not resolve."""
    out: list[str] = []
    for p in parts:
        if isinstance(p, Var):
            value = resolve_var(p, ctx)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(p.text)
    return "".join(out)


def raw_tokens(parts: tuple[Part, ...]) -> list[Token | Part]:
    """Glob tokens for the raw parts, keeping Lit and Var parts for substitution later."""
    out: list[Token | Part] = []
    for p in parts:
        if isinstance(p, Raw):
            out.extend(tokenize(p.text))
        else:
            out.append(p)
    return out


def substitute_tokens(
    template: list[Token | Part], ctx: Context, *, lower: bool = False
) -> list[Token] | None:
    """Glob tokens with references replaced by literal text; None if one does not resolve."""
    out: list[Token] = []
    for t in template:
        if isinstance(t, Var):
            value = resolve_var(t, ctx)
            if value is None:
                return None
            out.append(value.lower() if lower else value)
        elif isinstance(t, Lit):
            out.append(t.text)
        elif isinstance(t, Raw):  # pragma: no cover - raw parts are tokenized already
            out.extend(tokenize(t.text))
        else:
            out.append(t)
    return out
