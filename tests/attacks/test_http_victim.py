"""HttpVictim against a real `edgeguard serve` on loopback: exact answers, exact counts, budgets, 429s."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeguard.attacks.http import HttpVictim
from edgeguard.cli import main
from edgeguard.data import load_dataset
from edgeguard.defenses import parse_stack
from edgeguard.errors import EdgeguardError
from edgeguard.runtime import DeployedModel
from edgeguard.serve import KeyStore

STACK = "reverse_sigmoid(beta=0.7, gamma=0.4) | noise(scale=0.05, key=test-secret) | topk(k=3) | round(decimals=2)"


@pytest.fixture(scope="module")
def local(export: Path) -> DeployedModel:
    return DeployedModel.load(export)


def images(model: DeployedModel, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *model.input_shape), dtype=np.float32)


@pytest.mark.parametrize("by_name", [True, False], ids=["v2-infer", "predict"])
def test_answers_are_the_local_model_and_stack_and_every_input_is_counted(server_process, tmp_path, local, by_name):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("thief")
    server = server_process(db, "--defense", STACK)
    x = images(local, 70)
    with HttpVictim(server.url, key, local.manifest.name if by_name else None, batch=32) as victim:
        served = victim.query(x)  # 32 + 32 + 6: three requests
        again = victim.query(x[:5])
        assert victim.queries == 75
    np.testing.assert_array_equal(served, parse_stack(STACK)(local.predict(x), x))  # bit for bit
    np.testing.assert_array_equal(again, served[:5])  # same query, same answer
    assert KeyStore(db).record_named("thief").used == 75  # the server charged what the client counted


def test_budget_exhaustion_raises_after_exactly_the_budget(server_process, tmp_path, local):
    db = tmp_path / "keys.db"
    store = KeyStore(db, create=True)
    exact, partial = store.add("exact", budget=10), store.add("partial", budget=10)
    server = server_process(db)
    victim = HttpVictim(server.url, exact, local.manifest.name, batch=4)
    victim.query(images(local, 8))
    victim.query(images(local, 2, seed=1))
    assert victim.queries == 10
    with pytest.raises(EdgeguardError, match="refused to answer more queries: API key 'exact' has used all 10 queries.*answered 10 queries"):
        victim.query(images(local, 1, seed=2))
    assert victim.queries == 10
    # a query split into requests stops at the first refusal; the count is what was charged
    victim = HttpVictim(server.url, partial, local.manifest.name, batch=4)
    with pytest.raises(EdgeguardError, match="has 2 of its 10 queries left; this request holds 4 items.*answered 8 queries"):
        victim.query(images(local, 12))
    assert victim.queries == 8 and KeyStore(db).record_named("partial").used == 8


def test_rate_limit_is_waited_out_then_retried(server_process, tmp_path, local):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("slow", rate=2, burst=2)
    server = server_process(db)
    victim = HttpVictim(server.url, key, local.manifest.name, batch=2)
    x = images(local, 4)
    start = time.monotonic()
    served = victim.query(x)  # the second request finds the bucket empty: 429, Retry-After 1
    assert time.monotonic() - start >= 1.0 and victim.retries >= 1
    assert victim.queries == 4 and KeyStore(db).record_named("slow").used == 4
    np.testing.assert_array_equal(served, parse_stack("none")(local.predict(x)))
    # a wait beyond max_wait is not waited: the sentence says what the server asked for
    impatient = HttpVictim(server.url, KeyStore(db).add("impatient", rate=0.1, burst=1), local.manifest.name, batch=1, max_wait=5)
    with pytest.raises(EdgeguardError, match="still rate-limits this key after 0 retries.*asks for 10 s more.*0.1 items per second"):
        impatient.query(images(local, 2))  # the first answered at once, the second would wait 10 s
    assert impatient.queries == 1


def test_a_wrong_or_revoked_key_is_a_sentence(server_process, tmp_path, local):
    db = tmp_path / "keys.db"
    store = KeyStore(db, create=True)
    key = store.add("alice")
    server = server_process(db)
    with pytest.raises(EdgeguardError, match="does not accept this API key: unknown API key"):
        HttpVictim(server.url, "eg_wrong", local.manifest.name)  # metadata is read first: fails at once
    with pytest.raises(EdgeguardError, match="does not accept this API key.*answered 0 queries"):
        HttpVictim(server.url, "eg_wrong").query(images(local, 1))
    victim = HttpVictim(server.url, key)
    victim.query(images(local, 3))
    store.revoke("alice")
    with pytest.raises(EdgeguardError, match="refused to answer more queries: API key 'alice' was revoked.*answered 3 queries"):
        victim.query(images(local, 1))
    with pytest.raises(EdgeguardError, match="no model named 'nope' here"):
        HttpVictim(server.url, store.add("bob"), "nope")


def test_an_unreachable_server_is_a_sentence(local):
    with pytest.raises(EdgeguardError, match="cannot reach edgeguard serve at http://127.0.0.1:9"):
        HttpVictim("http://127.0.0.1:9/", "eg_x").query(images(local, 1))


@pytest.mark.parametrize("output", ["topk", "label"])
def test_less_revealing_outputs_become_probability_rows(serve, keys, local, output):
    url = serve(defense="reverse_sigmoid(beta=0.7, gamma=0.4)", output=output, top_k=2)
    x = images(local, 5)
    full = parse_stack("reverse_sigmoid(beta=0.7, gamma=0.4)")(local.predict(x), x)
    expected = np.zeros_like(full)
    for i, row in enumerate(full):
        keep = np.argsort(-row, kind="stable")[:2] if output == "topk" else [row.argmax()]
        expected[i, keep] = row[keep] if output == "topk" else 1.0
    victim = HttpVictim(url, keys.add("thief"), local.manifest.name)
    np.testing.assert_array_equal(victim.query(x), expected)
    with pytest.raises(EdgeguardError, match="not probabilities; give the model name"):
        HttpVictim(url, keys.add("other")).query(x)


def test_the_client_does_not_import_torch():
    code = "import sys, edgeguard.attacks.http; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_attack_cli_robs_a_running_server(server_process, tmp_path, export, local):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("thief", budget=5000)
    server = server_process(db, "--defense", "round(decimals=2)")
    args = ["attack", str(export), "--url", server.url, "--source", "pool", "--budget", "40", "--steps", "2"]
    r = CliRunner().invoke(main, args, env={"EDGEGUARD_API_KEY": key})
    assert r.exit_code == 0, r.output
    test_split = len(load_dataset(local.manifest.dataset).test.x)
    assert f"40 pool queries vs `served by {server.url}`: fidelity" in r.output
    assert f"answered {40 + test_split} queries: 40 for the thief, {test_split} for the test split" in r.output
    assert KeyStore(db).record_named("thief").used == 40 + test_split  # the test split was asked once
    r = CliRunner().invoke(main, [*args, "--defense", "topk(k=1)", "--api-key", key])
    assert r.exit_code == 1 and "leave out --defense" in r.output
    r = CliRunner().invoke(main, args, env={"EDGEGUARD_API_KEY": ""})
    assert r.exit_code == 1 and "--url needs an API key" in r.output
