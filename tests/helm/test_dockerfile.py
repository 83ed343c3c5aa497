"""The Dockerfile's shape: installed as the project installs itself, non-root, iam-sidecar."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _all(keyword: str) -> list[str]:
    return [i.split(None, 1)[1] for i in INSTRUCTIONS if i.split(None, 1)[0].upper() == keyword]


def test_slim_python_base_matching_requires_python() -> None:
    (base,) = _all("FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base)


def test_installs_the_project_with_pip_like_the_makefile() -> None:
    # The Makefile (which the README's commands run) installs with `pip install -e '.[dev]'`;
    # the image installs the same project, without the dev tools.
    assert "pip install" in (ROOT / "Makefile").read_text()
    assert any(re.search(r"pip install (\S+ )*\.(\s|$|&)", run) for run in _all("RUN"))
    copied = " ".join(_all("COPY"))
    for needed in ("pyproject.toml", "README.md", "sidecar"):
        assert needed in copied


def test_runs_as_a_numeric_non_root_user() -> None:
    users = _all("USER")
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    # The chart's securityContext runs as the same uid.
    values = (ROOT / "helm" / "iam-sidecar" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in values


def test_entrypoint_is_the_cli() -> None:
    (entrypoint,) = _all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["iam-sidecar"]


def test_nothing_written_at_run_time_outside_tmp() -> None:
    # A read-only root filesystem: no VOLUME the image expects to write, bytecode not written.
    assert not _all("VOLUME")
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE


def test_dockerignore_keeps_the_context_small() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*"
    assert "!sidecar/" in ignore
