"""The benchmark script runs end to end on a synthetic model (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import bench_module


def test_synthetic_run_writes_labelled_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "defenses.json"
    assert bench_module().main(["--synthetic", "--reps", "2", "--warmup", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["synthetic"] is True and result["export"] is None
    assert {"platform", "processor", "cpu_count", "numpy", "onnxruntime"} <= set(result["machine"])
    assert set(result["inference_us"]) == {"1", "64"}
    assert len(result["defenses"]) == 10 and result["defenses"][-1]["stack"]
    assert all(set(row["ratio_to_inference"]) == {"1", "64"} for row in result["defenses"])
    assert "SYNTHETIC" in capsys.readouterr().out


def test_a_missing_export_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    assert bench_module().main(["--export", str(tmp_path / "nope"), "--out", str(tmp_path / "x.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
