"""Regenerate the committed protobuf/gRPC modules from ``proto/``.

Run ``python -m sloth_core.proto.generate`` from the repository root (or pass
an output root). The test suite calls :func:`generate` into a temp dir and
compares, so stale generated code fails CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
PROTO_FILES = ["sloth_core/proto/sloth.proto"]


def generate(out_root: Path) -> None:
    """Write sloth_pb2.py, sloth_pb2.pyi and sloth_pb2_grpc.py under ``out_root``."""
    from grpc_tools import protoc  # test-only dependency

    include = str(Path(protoc.__file__).parent / "_proto")
    for name in PROTO_FILES:
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={out_root}",
                f"--pyi_out={out_root}",
                f"--grpc_python_out={out_root}",
                str(PROTO_ROOT / name),
            ]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed on {name} (exit {rc})")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO)
