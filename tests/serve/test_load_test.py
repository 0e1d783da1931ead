"""benchmarks/load_test.py runs end to end, as a user runs it (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_test_checks_every_answer_and_writes_json(export: Path, tmp_path: Path):
    out = tmp_path / "serve.json"
    args = ["--export", str(export), "--requests", "1000", "--clients", "8", "--latency-requests", "20", "--bare-reps", "20", "--out", str(out)]
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load_test.py"), *args], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert {"platform", "processor", "cpu_count", "onnxruntime", "uvicorn"} <= set(result["machine"])
    assert [d["defense"] for d in result["deployments"]] == ["none", "reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k=3, renormalize=true) | round(decimals=2)"]
    for d in result["deployments"]:
        checks = d["checks"]
        assert d["load"]["requests"] == 1000 and d["load"]["invalid_requests"] > 100
        assert checks["server_errors_5xx"] == 0 and checks["wrong_status"] == 0
        assert checks["valid_answers_checked"] > 500 and checks["valid_answers_differing_from_local"] == 0
        assert d["server_overhead_p50_us"] == round(d["latency_single_client"]["p50_us"] - d["in_process"]["onnxruntime_session_run_p50_us"], 1)
    over = result["defense_overhead"]  # issue 4's bar, measured in the same run
    assert over["stack"] == result["deployments"][1]["defense"] and over["bar"] == 0.05
    assert set(over["batches"]) == {"1", "64"}
    for b in over["batches"].values():
        assert b["ratio"] == round(b["stack_us"] / b["served_p50_us_no_defense"], 4) and b["requests_each"] >= 10
    assert over["within_bar"] == all(b["ratio"] <= 0.05 for b in over["batches"].values())


def test_image_load_test_checks_every_answer_and_times_decode_apart(export: Path, tmp_path: Path):
    out = tmp_path / "serve-images.json"
    args = ["--export", str(export), "--requests", "200", "--clients", "4", "--latency-requests", "20", "--reps", "10", "--out", str(out)]
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load_test_images.py"), *args], capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    sizes = json.loads(out.read_text())["sizes"]
    assert [s["image"] for s in sizes] == ["28x28 RGB JPEG, quality 90", "224x224 RGB JPEG, quality 90"] and "synthetic" in sizes[1]["model"]
    for s in sizes:
        assert s["answers_differing_from_local_or_not_200"] == 0 and s["load"]["requests"] == 200
        assert s["in_process_p50_us"]["decode"] > 0 and s["in_process_p50_us"]["inference"] > 0
