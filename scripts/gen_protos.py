"""Regenerate the Python code for proto/ (the one command: `make proto`).

protoc runs with `-I proto`, and proto/ mirrors the Python package, so the generated modules land
in sidecar/api/... with absolute imports that work unedited. `--out DIR` writes elsewhere, which
the drift test uses to compare a fresh generation with the committed files.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources, util
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def googleapis_include() -> str:
    """The folder holding google/rpc/status.proto, from googleapis-common-protos (installed with
    grpcio-status), which the Envoy Check messages import rather than copy."""
    spec = util.find_spec("google.rpc.status_pb2")
    if spec is None or spec.origin is None:
        raise SystemExit("googleapis-common-protos is not installed")
    root = Path(spec.origin).parent.parent.parent
    if not (root / "google" / "rpc" / "status.proto").is_file():
        raise SystemExit(f"google/rpc/status.proto is not under {root}")
    return str(root)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTO_DIR)) for p in proto_files()]
    # mypy-protobuf's plugins sit beside this interpreter, whether or not the venv is on PATH.
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"-I{googleapis_include()}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repo)")
    args = parser.parse_args(argv)
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
