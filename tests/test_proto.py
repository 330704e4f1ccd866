"""The committed generated modules match proto/ and import as package modules."""

from __future__ import annotations

from pathlib import Path

from sloth_core.proto.generate import PROTO_FILES, REPO, generate

GENERATED = ["sloth_pb2.py", "sloth_pb2.pyi", "sloth_pb2_grpc.py"]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in PROTO_FILES:
        package = Path(name).parent
        for module in GENERATED:
            fresh = (tmp_path / package / module).read_text()
            committed = (REPO / package / module).read_text()
            assert fresh == committed, f"{package / module} is stale: run `python -m sloth_core.proto.generate`"


def test_generated_imports_are_absolute() -> None:
    grpc_module = (REPO / "sloth_core/proto/sloth_pb2_grpc.py").read_text()
    assert "from sloth_core.proto import sloth_pb2" in grpc_module
    assert "\nimport sloth_pb2" not in grpc_module
