import json

import pytest

from edgeguard.errors import EdgeguardError
from edgeguard.files import atomic_write, atomic_write_json, ensure_dir, read_json


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")

    def broken(p):
        p.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temp file left behind


def test_read_json_errors_are_sentences(tmp_path):
    with pytest.raises(EdgeguardError, match="does not exist"):
        read_json(tmp_path / "missing.json", "manifest")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EdgeguardError, match="corrupt"):
        read_json(tmp_path / "bad.json", "manifest")
    atomic_write_json(tmp_path / "ok.json", {"a": 1})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"a": 1}


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgeguardError, match="cannot create output folder"):
        ensure_dir(blocker / "sub")
