"""The model benchmark measures every runtime of an export side by side (no timing assertions)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgeguard.bench.models import bench_export, ratios
from edgeguard.bench.parity import check_parity, write_reference
from edgeguard.cli import main
from edgeguard.runtime.parity import compare


def test_bench_times_every_runtime_side_by_side(default_export, tmp_path):
    folder, rows = default_export
    result = bench_export(folder, batches=(1, 4), threads=(1,), runs=10, warmup=1, torch=True)
    cells = {(r["runtime"], r["precision"], r["batch"]) for r in result["rows"]}
    assert cells == {(rt, p, b) for rt in ("ORT", "torch") for p in ("int8", "fp32") for b in (1, 4)}
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["items_per_s"] > 0 for r in result["rows"])
    by = {(r["ratio"], r["batch"]): r for r in result["ratios"]}
    assert set(by) == {(k, b) for k in ("int8/fp32 ORT", "int8/fp32 torch", "torch/ORT fp32", "torch/ORT int8") for b in (1, 4)}
    assert abs(by["int8/fp32 ORT", 1]["size"] - rows["int8"]["size_bytes"] / rows["fp32"]["size_bytes"]) < 1e-3


def test_cli_bench_writes_json_markdown_plot_and_memory(default_export, tmp_path):
    args = ["bench", str(default_export[0]), "--batches", "1,2", "--threads", "1", "--runs", "10", "--no-torch", "--out", str(tmp_path / "m.json")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "int8/fp32 ORT" in r.output and "torch/ORT" not in r.output
    assert {p.name for p in tmp_path.iterdir()} == {"m.json", "m.md", "m.png"}
    memory = json.loads((tmp_path / "m.json").read_text())["memory"]
    assert {(m["format"], m["precision"]) for m in memory} == {("onnx", "int8"), ("onnx", "fp32")}
    assert all(m["peak_rss_mb"] >= m["import_rss_mb"] > 0 and m["model_mb"] >= 0 for m in memory)


def test_ratios_pair_each_runtime_with_fp32_and_with_ort():
    def row(runtime, precision, ms, size):
        return {"runtime": runtime, "precision": precision, "threads": 1, "batch": 1, "p50_ms": ms, "size_bytes": size}

    rows = [row("ORT", "fp32", 2.0, 400), row("ORT", "int8", 1.0, 100), row("TFLite", "int8", 0.5, 50)]
    got = {r["ratio"]: (r["latency_p50"], r["size"]) for r in ratios(rows)}
    assert got == {"int8/fp32 ORT": (0.5, 0.25), "TFLite/ORT int8": (0.5, 0.5)}


def test_what_cannot_run_here_is_skipped_with_the_reason(default_export, tmp_path):
    import shutil

    from edgeguard.manifest import Manifest

    folder = tmp_path / "export"
    shutil.copytree(default_export[0], folder)
    manifest = Manifest.load(folder)
    fake = manifest.entry("int8", "onnx")
    manifest.models.append(type(fake)(**{**fake.__dict__, "file": "model.int8.foo", "format": "foo"}))
    manifest.extra["run"] = str(tmp_path / "gone")  # the run folder did not travel with the export
    manifest.save(folder)
    (folder / "model.int8.foo").write_bytes((folder / fake.file).read_bytes())
    result = bench_export(folder, batches=(1,), threads=(1,), runs=10, warmup=1)
    reasons = {s["file"]: s["reason"] for s in result["skipped"]}
    assert set(reasons) == {"model.int8.foo", "torch reference"}
    assert "unknown model format 'foo'" in reasons["model.int8.foo"] and "names no finished run folder" in reasons["torch reference"]
    assert {r["file"] for r in result["rows"]} == {"model.int8.onnx", "model.fp32.onnx"}


def test_compare_counts_argmax_flips_and_bit_identity():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]], np.float32)
    assert compare(ref, ref.copy()) == {"n": 3, "argmax_agreement": 1.0, "max_abs_diff": 0.0, "identical": True}
    moved = ref + np.array([[0, 0], [0, 0], [0, 1.5]], np.float32)  # the last row's argmax flips
    got = compare(ref, moved)
    assert got["argmax_agreement"] == pytest.approx(2 / 3, abs=1e-6) and got["max_abs_diff"] == 1.5 and not got["identical"]


def test_parity_against_its_own_reference_is_exact(default_export, tmp_path):
    folder, _ = default_export
    reference = write_reference(folder, tmp_path / "ref.npz")
    result = check_parity(folder, reference)
    assert set(result["models"]) == {"model.int8.onnx", "model.fp32.onnx"}
    assert all(r["exact"] and r["test"]["n"] > 100 and r["ood"]["n"] == 500 for r in result["models"].values())


@pytest.mark.parametrize("module", ["edgeguard.bench.models", "edgeguard.bench.memory", "edgeguard.bench.parity", "edgeguard.bench.loopback"])
def test_device_side_bench_modules_do_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
