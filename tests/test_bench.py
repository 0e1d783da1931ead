"""The model benchmark measures every file of an export, side by side (no timing assertions)."""

from click.testing import CliRunner

from edgeguard.bench import bench_export
from edgeguard.cli import main


def test_bench_times_int8_beside_fp32(default_export):
    folder, rows = default_export
    result = bench_export(folder, batches=(1, 4), threads=(1,), runs=20, warmup=2)
    assert {(r["precision"], r["batch"]) for r in result["rows"]} == {("int8", 1), ("int8", 4), ("fp32", 1), ("fp32", 4)}
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["items_per_s"] > 0 for r in result["rows"])
    size = [r["size"] for r in result["ratios"]]
    assert len(size) == 2 and abs(size[0] - rows["int8"]["size_bytes"] / rows["fp32"]["size_bytes"]) < 1e-3
    r = CliRunner().invoke(main, ["bench", str(folder), "--batches", "1", "--threads", "1", "--runs", "10"])
    assert r.exit_code == 0, r.output
    assert "int8/fp32 latency" in r.output
