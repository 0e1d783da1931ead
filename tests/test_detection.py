"""Detection evaluation: streams replayed through the monitor of the exported default model, seeded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeguard.attacks.jbda import jbda_stream
from edgeguard.attacks.sources import query_set
from edgeguard.data.shifts import random_shifts
from edgeguard.evaluate.detection import markdown, replay, run_detection
from edgeguard.monitor import MonitorConfig
from edgeguard.runtime import DeployedModel


@pytest.fixture(scope="module")
def model(default_export) -> DeployedModel:
    return DeployedModel.load(default_export[0])


@pytest.fixture(scope="module")
def config(model: DeployedModel) -> MonitorConfig:
    return MonitorConfig.from_dict(model.entry.monitor)


@pytest.fixture(scope="module")
def data():
    from edgeguard.data import load_dataset

    return load_dataset("digits")


@pytest.mark.parametrize("seed", [0, 1])
def test_a_knockoff_thief_is_flagged_before_its_500th_query(model, config, data, seed):
    result = replay(model, config, query_set("natural", data, 500, seed))
    assert result["flagged_at"] is not None and result["flagged_at"] < 500 and result["signal"] == "ood"


def test_honest_test_split_streams_are_not_flagged(model, config, data):
    rng = np.random.default_rng(0)
    for seed in range(3):
        x = data.test.x[np.random.default_rng(seed).permutation(len(data.test))]
        assert replay(model, config, x)["flagged_at"] is None
    honest = np.concatenate([data.test.x, data.pool.x])
    assert replay(model, config, random_shifts(honest[rng.integers(len(honest), size=2000)], rng))["flagged_at"] is None


def test_jbda_children_are_one_sign_step_from_their_parents(model, data):
    x = jbda_stream(model.logits, data, 130, seed=0, seeds_per_class=10)
    seeds, children = x[:100], x[100:]
    steps = np.abs(children - seeds[:30])
    inside = (children > 0) & (children < 1)  # where [0, 1] did not clip the step
    moved = steps[inside]
    assert steps.max() <= 0.1 + 1e-6 and (np.isclose(moved, 0.0) | np.isclose(moved, 0.1, atol=1e-6)).all()  # lam = 0.1
    assert (steps > 0).any(axis=(1, 2, 3)).all()  # every child moved
    np.testing.assert_array_equal(x, jbda_stream(model.logits, data, 130, seed=0))  # seeded


def test_run_detection_reports_every_stream_kind(default_export):
    result = run_detection(str(default_export[0]), seeds=[0], honest_streams=2, thief_queries=500, jbda_queries=120)
    kinds = [s["kind"] for s in result["summary"]]
    assert kinds == ["test", "test/noise_0.1", "test/translate_2px", "test/rotate_10deg", "knockoff", "pool", "jbda", "honest-2000"]
    by = {s["kind"]: s for s in result["summary"]}
    assert by["knockoff"]["flagged_before_deadline"] == 1 and by["honest-2000"]["runs"] == 2 and by["honest-2000"]["flagged"] == 0
    assert len(result["streams"]) == 9 and result["thresholds"]["prada_window"] == 2000
    table = markdown(result)
    assert table.splitlines()[0].startswith("| stream | client | runs |") and "| knockoff | thief | 1 | 500 | 1 / 1 | 1 / 1 |" in table


def test_the_benchmark_runs_end_to_end_and_writes_json(default_export, tmp_path):
    """benchmarks/detection.py as a user runs it, small (a smoke test: no timing is asserted)."""
    out = tmp_path / "detection.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "detection.py"
    args = ["--export", str(default_export[0]), "--seeds", "0", "--honest-streams", "1", "--thief-queries", "300", "--jbda-queries", "0", "--overhead-queries", "100", "--out", str(out)]
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert [s["kind"] for s in result["detection"]["summary"]][-1] == "honest-2000" and set(result["ood_scores"]) == {"energy", "max-softmax", "monitor"}
    over = result["overhead"]
    assert over["bar"] == 0.1 and over["over_http"]["requests_each"] == 100 and not over["over_http"]["honest_key_flagged"]
    assert over["within_bar"] == (over["over_http"]["p50_difference_ratio"] <= 0.1) and over["in_process"]["1"]["still_watched"]
