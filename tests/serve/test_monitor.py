"""The serving monitor: Shapiro-Wilk against scipy, PRADA and the OOD share, calibration in the manifest,
and what `edgeguard serve` does with a flagged key (log, label-only, slow, block, a stack), across restarts."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from edgeguard.cli import main
from edgeguard.defenses import parse_stack
from edgeguard.errors import EdgeguardError
from edgeguard.manifest import Manifest
from edgeguard.monitor import Monitor, MonitorConfig, energy, shapiro_w
from edgeguard.monitor.ood import OodShare, out_of_distribution, signature, signature_distance
from edgeguard.monitor.prada import Prada
from edgeguard.runtime import DeployedModel
from edgeguard.serve import KeyStore, ServeConfig, Service
from edgeguard.serve.policy import FlagPolicy
from edgeguard.serve.server import summary

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.fixture(scope="module")
def local(export: Path) -> DeployedModel:
    return DeployedModel.load(export)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """An honest user's queries: the test split."""
    from edgeguard.data import load_dataset

    return load_dataset("digits").test.x


def config(**changes) -> MonitorConfig:
    base = dict(energy_threshold=0.0, ood_window=10, ood_count=3, prada_delta=0.9, prada_min_distances=100, prada_window=2000, prada_per_class=64)
    return MonitorConfig(**{**base, **changes})


# --- the statistics -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 11, 20, 50, 199, 200, 1000, 2000, 5000])
def test_shapiro_w_equals_scipy(n: int):
    rng = np.random.default_rng(n)
    for x in (rng.normal(size=n), rng.exponential(size=n), rng.uniform(size=n), np.round(rng.normal(size=n), 1)):
        assert shapiro_w(x) == pytest.approx(scipy_stats.shapiro(x).statistic, abs=1e-8)


def test_shapiro_w_edges():
    assert shapiro_w(np.ones(10)) == 1.0  # no spread: scipy answers 1.0 too
    for n in (2, 5001):
        with pytest.raises(ValueError, match="3 <= n <= 5000"):
            shapiro_w(np.arange(n, dtype=float))


def test_energy_is_minus_logsumexp():
    from scipy.special import logsumexp

    z = np.random.default_rng(0).normal(0, 20, (50, 10))
    np.testing.assert_allclose(energy(z), -logsumexp(z, axis=1), rtol=1e-12)


def test_ood_share_counts_over_a_sliding_window():
    share = OodShare(3)
    assert [share.add(v) for v in (True, True, False, False, True, True, True, False)] == [1, 2, 2, 1, 1, 2, 3, 2]


def test_prada_separates_synthetic_steps_from_natural_spread():
    """Random points give normal-looking nearest distances; seeds + sign steps (JBDA's pattern) do not."""
    rng = np.random.default_rng(0)
    dim, n = 64, 400

    def lowest_w(x: np.ndarray) -> float:
        prada = Prada(2, dim, per_class=64, window=2000, min_distances=100)
        return min(w for w in (prada.observe(row, c) for row, c in zip(x, rng.integers(2, size=n))) if w is not None)

    held = list(rng.random((40, dim), dtype=np.float32))
    while len(held) < n:
        held += [np.clip(x + 0.1 * np.sign(rng.standard_normal(dim)), 0, 1).astype(np.float32) for x in held[: n - len(held)]]
    assert lowest_w(rng.random((n, dim), dtype=np.float32)) > 0.98
    assert lowest_w(np.stack(held)) < 0.8


def test_prada_skips_repeats_and_bounds_its_memory():
    rng = np.random.default_rng(1)
    prada = Prada(1, 784, per_class=8, window=50, min_distances=20)
    x = rng.random(784, dtype=np.float32)
    for _ in range(5):
        assert prada.observe(x, 0) is None
    assert prada.recorded == 0  # an honest retry records nothing (float32 rounding included)
    for _ in range(300):
        prada.observe(rng.random(784, dtype=np.float32), 0)
    assert prada.sets[0].size == 8 and len(prada.sets[0].rows) == 8 and len(prada.distances) == 50


def test_monitor_flags_a_key_once_counting_queries_across_batches():
    monitor = Monitor(config(), classes=2, input_shape=(1, 2, 2))
    odd = np.array([[-5.0, -5.0]])  # energy 5 - log 2 > 0: out of distribution
    usual = np.array([[9.0, 0.0]])
    x = np.zeros((1, 1, 2, 2), np.float32)
    assert monitor.observe("k", x, odd) is None and monitor.observe("k", x, usual) is None
    assert monitor.observe("other", np.repeat(x, 2, 0), np.repeat(odd, 2, 0)) is None  # keys are apart
    flag = monitor.observe("k", np.repeat(x, 3, 0), np.concatenate([usual, odd, odd]))
    assert flag is not None and flag.signal == "ood" and flag.query == 5
    assert str(flag) == "ood at query 5: 3 of the last 5 queries scored out of distribution (flag at 3 of 10)"
    assert "k" not in monitor.keys and "other" in monitor.keys  # a flagged key's state is dropped


def test_a_signature_model_also_scores_answers_close_to_its_signature():
    q = signature(4, 0.5)
    assert q[0] == 0.5 and q.sum() == pytest.approx(1.0) and len(set(q[1:])) == 1
    on_it, honest, flat = np.log(q)[None] + 3.0, np.array([[12.0, 0.0, 0.0, 0.0]]), np.zeros((1, 4))
    assert signature_distance(on_it, 0.5)[0] == pytest.approx(0.0, abs=1e-12)
    assert signature_distance(honest, 0.5)[0] > 4 and signature_distance(flat, 0.5)[0] > 0.1  # a confident class 0 is not the signature
    logits = np.concatenate([on_it, honest, flat])
    # energy alone passes the signature answer as honest; with a signature threshold it is OOD, the honest answer is not
    assert out_of_distribution(logits, energy_threshold=-2.0).tolist() == [False, False, True]
    assert out_of_distribution(logits, energy_threshold=-2.0, signature=(0.5, 0.05)).tolist() == [True, False, True]
    monitor = Monitor(config(signature=(0.5, 0.05)), classes=4, input_shape=(1, 2, 2))
    flag = monitor.observe("k", np.zeros((3, 1, 2, 2), np.float32), np.repeat(on_it, 3, 0))
    assert flag is not None and flag.signal == "ood" and flag.query == 3
    assert config().signature is None  # models trained otherwise are scored by energy alone, as before


def test_invalid_thresholds_are_refused_in_a_sentence():
    with pytest.raises(EdgeguardError, match="ood_count must be between 1 and ood_window"):
        config(ood_count=11)
    with pytest.raises(EdgeguardError, match="re-export"):
        MonitorConfig.from_dict({"energy_threshold": 1.0})


# --- calibration at export -------------------------------------------------------------------------


def test_export_calibrates_each_model_file_and_stores_it_in_the_manifest(export: Path, local: DeployedModel, digits: np.ndarray, natural: np.ndarray):
    manifest = Manifest.load(export)
    raw = json.loads((export / "manifest.json").read_text())
    assert {(m["precision"], bool(m["monitor"])) for m in raw["models"]} == {("int8", True), ("fp32", True)}
    cfg = MonitorConfig.from_dict(manifest.entry("int8", "onnx").monitor)
    cal = cfg.calibration
    lowest = [s["lowest_w"] for s in cal["prada_lowest_w_by_stream"]]
    assert cal["data"].startswith("digits test + pool") and len(lowest) == 13
    assert cfg.prada_delta == pytest.approx(min(lowest) - cal["prada_margin"], abs=1e-4)
    assert 1 < cfg.ood_count < cfg.ood_window and 0.5 < cfg.prada_delta < 1
    # the threshold is the 98th percentile of honest energies: honest digits rarely exceed it, photos often do
    assert (energy(local.logits(digits)) > cfg.energy_threshold).mean() < 0.05
    assert (energy(local.logits(natural)) > cfg.energy_threshold).mean() > 0.1


# --- the server -------------------------------------------------------------------------------------


def predict(url: str, key: str, x: np.ndarray) -> httpx.Response:
    return httpx.post(f"{url}/predict", json={"inputs": x.tolist()}, headers={"X-API-Key": key}, timeout=30)


def steal(url: str, key: str, natural: np.ndarray) -> list[httpx.Response]:
    """A Knockoff thief: 500 natural patches in requests of 50."""
    return [predict(url, key, natural[i : i + 50]) for i in range(0, len(natural), 50)]


def flag_reason(store: KeyStore, name: str, timeout: float = 5.0) -> str | None:
    """The key's flag, once the server's watch (after the response) has written it."""
    deadline = time.monotonic() + timeout
    while (record := store.record_named(name)).flagged is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return record.flag_reason


def flagged_at(reason: str) -> int:
    return int(re.match(r"\w+ at query (\d+):", reason).group(1))


def test_label_only_switches_a_flagged_thief_and_leaves_honest_users_alone(serve, keys, local, natural, digits):
    thief, honest = keys.add("thief"), keys.add("alice")
    url = serve(on_flag="label-only")
    replies = steal(url, thief, natural)
    reason = flag_reason(keys.store, "thief")
    assert reason.startswith("ood at query ") and flagged_at(reason) < 500  # before the thief's 500th query
    assert all(r.status_code == 200 for r in replies)
    np.testing.assert_array_equal(replies[0].json()["probabilities"], local.predict(natural[:50]))  # soft until the flag
    last = natural[450:]
    np.testing.assert_array_equal(replies[-1].json()["probabilities"], np.eye(local.num_classes)[local.predict(last).argmax(1)])
    for i in range(0, len(digits), 60):
        answer = predict(url, honest, digits[i : i + 60]).json()["probabilities"]
        np.testing.assert_array_equal(answer, local.predict(digits[i : i + 60]))
    assert flag_reason(keys.store, "alice", timeout=0.2) is None


def test_block_refuses_a_flagged_key_with_403_before_charging_it(serve, keys, natural):
    thief = keys.add("thief")
    url = serve(on_flag="block")
    statuses = [r.status_code for r in steal(url, thief, natural)]
    blocked = statuses.index(403)  # from the request after the one whose watch raised the flag
    assert statuses == [200] * blocked + [403] * (len(statuses) - blocked) and blocked * 50 < 500
    assert keys.used("thief") == 50 * blocked  # refused requests cost nothing
    r = predict(url, thief, natural[:1])
    assert r.status_code == 403 and r.json()["error"].startswith("API key 'thief' is blocked: its queries look like an attempt to copy the model")
    assert "ood" not in r.text and "Shapiro" not in r.text  # the evidence stays with the operator


def test_slow_holds_a_flagged_key_to_one_item_per_second(serve, keys, natural):
    thief = keys.add("thief")
    url = serve(on_flag="slow")
    statuses = [r.status_code for r in steal(url, thief, natural)]
    slowed = statuses.index(429)  # one request after the flag is let through (a full bucket of 1), then the debt
    assert statuses == [200] * slowed + [429] * (len(statuses) - slowed) and flagged_at(flag_reason(keys.store, "thief")) < 50 * (slowed - 1)
    r = predict(url, thief, natural[:1])
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 1 and "1 items per second (bursts of 1)" in r.json()["error"]


def test_without_the_app_a_query_waits_at_most_one_request_to_be_watched(tmp_path: Path, export: Path, natural):
    store = KeyStore(tmp_path / "keys.db", create=True)
    key = store.add("thief")
    service = Service.load(ServeConfig(folder=export, keys=tmp_path / "keys.db"))
    for i in range(0, len(natural), 50):
        service.predict(service.authenticate(key), json.dumps({"inputs": natural[i : i + 50].tolist()}).encode())
        assert len(service.unwatched) <= 1
    assert flagged_at(store.record_named("thief").flag_reason) < 500


def test_a_stack_spec_policy_adds_defenses_for_flagged_keys_only(serve, keys, local, natural):
    thief = keys.add("thief")
    keys.store.flag("thief", "set by hand")
    url = serve(on_flag="round(decimals=1)")
    x = natural[:8]
    np.testing.assert_array_equal(predict(url, thief, x).json()["probabilities"], parse_stack("round(decimals=1)")(local.predict(x), x))
    honest = keys.add("alice")
    np.testing.assert_array_equal(predict(url, honest, x).json()["probabilities"], local.predict(x))
    metrics = httpx.get(f"{url}/metrics").text
    assert 'edgeguard_key_flagged{key="thief"} 1' in metrics and 'edgeguard_key_flagged{key="alice"} 0' in metrics


def test_policies_parse_or_fail_in_a_sentence(tmp_path: Path, export: Path):
    assert FlagPolicy.parse("label-only").stack.spec == "label_only"
    assert FlagPolicy.parse("noise(scale=0.1, key=s3cret) | topk(k=2)").name == "noise | topk"  # no secrets in logs
    for spec in ("drop", "topk(k=)", "none"):
        with pytest.raises(EdgeguardError, match="--on-flag must be one of log, label-only, slow, block or a defense stack spec"):
            FlagPolicy.parse(spec)
    KeyStore(tmp_path / "keys.db", create=True)
    r = CliRunner().invoke(main, ["serve", str(export), "--keys", str(tmp_path / "keys.db"), "--on-flag", "drop"])
    assert r.exit_code == 1 and "--on-flag must be one of" in r.output and len(r.output.strip().splitlines()) == 1


def test_without_thresholds_the_monitor_is_off_with_a_warning(tmp_path: Path, export: Path, keys):
    folder = tmp_path / export.name
    shutil.copytree(export, folder)
    manifest = Manifest.load(folder)
    for entry in manifest.models:
        entry.monitor = {}
    manifest.save(folder)
    config = ServeConfig(folder=folder, keys=keys.path)
    service = Service.load(config)
    assert service.monitor is None
    assert "WARNING: monitor off: the manifest has no monitor thresholds for model.int8.onnx" in summary(service, config, "http://x")
    on = Service.load(ServeConfig(folder=export, keys=keys.path, on_flag="block"))
    assert "monitor: on (PRADA + OOD share, thresholds from the manifest); on flag: block" in summary(on, config, "http://x")


def test_a_flag_survives_a_restart_until_an_operator_clears_it(server_process, tmp_path: Path, natural):
    db = tmp_path / "keys.db"
    thief = KeyStore(db, create=True).add("thief")
    server = server_process(db, "--on-flag", "block")
    assert [r.status_code for r in steal(server.url, thief, natural)][-1] == 403
    server.kill9()
    server = server_process(db, "--on-flag", "block")
    assert predict(server.url, thief, natural[:1]).status_code == 403  # crashing the server sheds no flag
    runner = CliRunner()
    listed = runner.invoke(main, ["keys", "list", "--db", str(db)]).stdout.splitlines()
    assert listed[0].split()[-1] == "flag" and listed[1].split()[1] == "flagged" and "ood at query" in listed[1]
    r = runner.invoke(main, ["keys", "clear-flag", "thief", "--db", str(db)])
    assert r.exit_code == 0 and "cleared the flag of key 'thief'" in r.output
    assert predict(server.url, thief, natural[:1]).status_code == 200  # the running server reads the row per request
    assert runner.invoke(main, ["keys", "list", "--db", str(db)]).stdout.splitlines()[1].split()[1] == "active"
    r = runner.invoke(main, ["keys", "clear-flag", "thief", "--db", str(db)])
    assert r.exit_code == 1 and "key 'thief' is not flagged" in r.output
    r = runner.invoke(main, ["keys", "clear-flag", "carol", "--db", str(db)])
    assert r.exit_code == 1 and "no key named 'carol'" in r.output


def test_a_schema_1_keys_file_is_upgraded_in_place(tmp_path: Path):
    """Keys files written before flags existed keep their keys and counts."""
    path = tmp_path / "keys.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE keys (name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, created TEXT NOT NULL, revoked TEXT, budget INTEGER,"
        " daily INTEGER, rate REAL, burst INTEGER, used INTEGER NOT NULL DEFAULT 0, day TEXT NOT NULL DEFAULT '', day_used INTEGER NOT NULL DEFAULT 0)"
    )
    old.execute("INSERT INTO keys (name, key_hash, created, budget, used) VALUES ('alice', 'h', '2026-01-01T00:00:00+00:00', 10, 4)")
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    store = KeyStore(path)
    record = store.record_named("alice")
    assert (record.used, record.budget, record.flagged) == (4, 10, None)
    store.flag("alice", "ood at query 1: test")
    assert KeyStore(path).record_named("alice").flag_reason == "ood at query 1: test"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_prada_compares_area_averaged_copies_of_large_inputs():
    """At most 32x32 per channel: exact block means where the side divides (224 -> 7x7 blocks, 64 -> 2x2),
    area weights where it does not, and inputs already that small (digits' 28x28) as they are."""
    from edgeguard.monitor.prada import Downsample

    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 224, 224), dtype=np.float32)
    down = Downsample((3, 224, 224))
    assert down.dim == 3 * 32 * 32
    np.testing.assert_allclose(down(x).reshape(2, 3, 32, 32), x.reshape(2, 3, 32, 7, 32, 7).mean(axis=(3, 5)), atol=1e-6)
    np.testing.assert_allclose(Downsample((1, 64, 48))(np.full((1, 1, 64, 48), 0.25, np.float32)), 0.25, atol=1e-6)  # 48 -> 32: fractional weights
    small = rng.random((4, 1, 28, 28), dtype=np.float32)
    assert np.array_equal(Downsample((1, 28, 28))(small), small.reshape(4, 784))
