"""Attacks really learn from served answers; queries are counted exactly; label thieves see labels only."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeguard.attacks.sources import query_set  # noqa: E402
from edgeguard.attacks.victim import CountingVictim  # noqa: E402
from edgeguard.data import load_dataset  # noqa: E402
from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.evaluate import grid, jobs  # noqa: E402
from edgeguard.evaluate.cells import Cell, ServedVictim, rob  # noqa: E402
from edgeguard.evaluate.store import CellStore  # noqa: E402
from edgeguard.runtime import DeployedModel  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def victim_model(default_export):
    return DeployedModel.load(default_export[0])


def test_knockoff_thieves_learn_from_an_undefended_victim(victim_model, digits, torch_threads):
    cells = [Cell("v", "none", source, "soft", 300, 0) for source in ("pool", "natural")]
    rows = {}
    for cell in cells:
        rows[cell.source] = rob(ServedVictim(victim_model, "none"), digits, [cell], steps=150)[0]
    print({k: round(r["fidelity"], 3) for k, r in rows.items()})
    assert rows["pool"]["fidelity"] >= 0.85  # same-distribution thief: a near-perfect copy
    assert rows["natural"]["fidelity"] >= 0.2  # natural photos only: clearly above chance (0.1)
    assert rows["pool"]["queries"] == 300


def test_label_thief_sees_only_labels(victim_model, digits, torch_threads):
    """An argmax thief of the bare model and a soft thief of a label-only server learn the same copy."""
    argmax = rob(ServedVictim(victim_model, "none"), digits, [Cell("v", "none", "natural", "argmax", 64, 0)], steps=20)[0]
    labels = rob(ServedVictim(victim_model, "label_only"), digits, [Cell("v", "label_only", "natural", "soft", 64, 0)], steps=20)[0]
    assert argmax["fidelity"] == pytest.approx(labels["fidelity"])
    assert argmax["surrogate_accuracy"] == pytest.approx(labels["surrogate_accuracy"])


def test_query_counter_is_exact_and_budget_enforced():
    victim = CountingVictim(lambda x: np.full((len(x), 10), 0.1), budget=100)
    victim.query(np.zeros((64, 1, 28, 28), np.float32))
    victim.query(np.zeros((36, 1, 28, 28), np.float32))
    assert victim.queries == 100
    with pytest.raises(EdgeguardError, match="budget of 100 exhausted"):
        victim.query(np.zeros((1, 1, 28, 28), np.float32))
    assert victim.queries == 100


def test_query_sources_are_seeded_prefixes(digits):
    big, small = query_set("pool", digits, 500, seed=3), query_set("pool", digits, 200, seed=3)
    np.testing.assert_array_equal(big[:200], small)
    assert len(big) == 500  # a 360-image pool stretched with translated copies
    assert query_set("natural", digits, 10, seed=1).shape == (10, 1, 28, 28)


def test_store_resumes_and_survives_a_torn_line(tmp_path):
    store = CellStore(tmp_path / "cells.jsonl")
    store.add([{"key": "a", "fidelity": 0.5}])
    with open(tmp_path / "cells.jsonl", "a") as f:
        f.write('{"key": "b", "fid')  # a crash mid-write
    again = CellStore(tmp_path / "cells.jsonl")
    assert again.done == {"a"}
    again.add([{"key": "b", "fidelity": 0.1}])
    assert CellStore(tmp_path / "cells.jsonl").done == {"a", "b"}
    json.loads((tmp_path / "cells.jsonl").read_text().splitlines()[0])


def test_jbda_thief_learns_and_spends_exactly_its_budget(victim_model, digits, torch_threads):
    """JBDA starts from 100 pool seeds and grows by substitute-gradient steps: 100 -> 200 -> 250."""
    row = rob(ServedVictim(victim_model, "none"), digits, [Cell("v", "none", "pool", "soft", 250, 0, "jbda")], steps=100)[0]
    print("jbda fidelity", row["fidelity"])
    assert row["queries"] == 250
    assert row["fidelity"] >= 0.6  # clearly above chance (0.1) from 100 labelled seeds


def test_grid_gives_each_attack_its_sources_and_budgets_and_keeps_stored_keys():
    cells = [c for _, group in grid.groups(grid.GridSpec()) for c in group]
    by_attack = {a: [c for c in cells if c.attack == a and c.thief == "knockoff"] for a in ("knockoff", "knockoff-adaptive", "jbda")}
    assert len(by_attack["knockoff"]) == 2 * 3 * 2 * 2 * 2 * 3  # victims x seeds x defenses x sources x labels x budgets
    held_out = [c for c in cells if c.thief != "knockoff"]  # natural queries only, budgets 500 and 1,000
    assert len(held_out) == 2 * 3 * 2 * 2 * 2 * len(grid.GridSpec().thieves)
    assert {(c.source, c.budget) for c in by_attack["knockoff-adaptive"]} == {("natural", 500)}
    assert {(c.source, c.budget) for c in by_attack["jbda"]} == {("pool", 500)}  # one source: no twin cells
    assert len(by_attack["jbda"]) == len(by_attack["knockoff-adaptive"]) == 2 * 3 * 2 * 2
    keys = {c.key for c in cells}
    assert len(keys) == len(cells)
    stored = CellStore(Path(__file__).parents[1] / "docs" / "results" / "cells.jsonl").done
    assert stored <= keys  # the committed results are cells of the default grid: nothing is recomputed
    with pytest.raises(EdgeguardError, match="unknown attack"):
        grid.GridSpec(attacks=["knockoff", "copycat"])


@pytest.fixture
def tiny_grid(grid_dirs, tmp_path):
    """run(attacks, out, workers) -> stored rows of a one-victim, one-seed grid on the session's export."""

    def run(attacks, out="out", workers=1):
        spec = grid.GridSpec(victims=[grid.VictimRecipe("qat", "qat")], defenses=["none"], attacks=attacks, labels=["argmax"], budgets=[40, 60], adaptive_budgets=[60], seeds=[0], thief_steps=5, workers=workers, thieves=[])
        return grid.run_grid(spec, tmp_path / out, *grid_dirs)["cells"]

    return run


def test_grid_adds_an_attack_without_recomputing_stored_cells(tiny_grid, monkeypatch, torch_threads):
    first = tiny_grid(["knockoff"])
    assert sorted((r["source"], r["budget"]) for r in first) == [("natural", 40), ("natural", 60), ("pool", 40), ("pool", 60)]
    both = tiny_grid(["knockoff", "knockoff-adaptive", "jbda"])
    assert both[:4] == first
    assert [(r["attack"], r["source"], r["queries"]) for r in both[4:]] == [("knockoff-adaptive", "natural", 60), ("jbda", "pool", 60)]
    monkeypatch.setattr(jobs, "rob", lambda *a, **k: pytest.fail("a stored cell was robbed again"))
    assert tiny_grid(["knockoff", "knockoff-adaptive", "jbda"]) == both


def test_grid_refuses_to_reuse_a_run_trained_with_other_options(grid_dirs, default_run, torch_threads):
    spec = grid.GridSpec(seeds=[0], thieves=[])
    assert grid.prepare_victim(spec, grid.VictimRecipe("qat", "qat"), 0, *grid_dirs)[0].name == "digits-small-cnn-qat-s0"
    # the same folder asked for as a DivQAT victim (a changed recipe, or changed defaults) is not reused silently
    with pytest.raises(EdgeguardError, match="was trained as qat"):
        grid.prepare_victim(spec, grid.VictimRecipe("qat", "divqat", {"lam": 0.3}), 0, *grid_dirs)
    # a run records every DivQAT option, defaults included
    from edgeguard.train.losses import DivQATLoss
    from edgeguard.train.run import TrainConfig

    spelled = TrainConfig(method="divqat", method_options={"lam": 0.3}).spelled_out().method_options
    assert spelled == {**vars(DivQATLoss()), "lam": 0.3}
    assert TrainConfig().spelled_out() == TrainConfig()


def test_a_store_filled_by_another_grid_is_refused(tmp_path):
    """Cells are keyed by victim name: a store robbed from `divqat` with other options (a changed
    default), another architecture or another thief is not resumed as if it were this grid's."""
    spec = grid.GridSpec(victims=[grid.VictimRecipe("qat", "qat"), grid.VictimRecipe("divqat", "divqat", {"lam": 0.3})])
    grid.claim_store(spec, tmp_path)
    grid.claim_store(spec, tmp_path)  # the same grid resumes
    recorded = json.loads((tmp_path / grid.GRID_FILE).read_text())
    assert recorded["victims"]["divqat"]["options"]["lam"] == 0.3 and "temperature" in recorded["victims"]["divqat"]["options"]
    with pytest.raises(EdgeguardError, match="its victim 'divqat' is not this one's"):
        grid.claim_store(replace(spec, victims=[grid.VictimRecipe("divqat", "divqat")]), tmp_path)
    with pytest.raises(EdgeguardError, match="its model, thief_steps are not"):
        grid.claim_store(replace(spec, model="lenet", thief_steps=100), tmp_path)
    grid.claim_store(replace(spec, victims=[grid.VictimRecipe("div-fixed", "divqat", {"target": "fixed"})]), tmp_path)  # a store may gain victims
    assert set(json.loads((tmp_path / grid.GRID_FILE).read_text())["victims"]) == {"qat", "divqat", "div-fixed"}


@pytest.mark.slow  # two spawned workers import torch afresh: ~20 s
def test_grid_rows_do_not_depend_on_the_number_of_workers(tiny_grid, torch_threads):
    attacks = ["knockoff", "knockoff-adaptive", "jbda"]
    two, one = tiny_grid(attacks, "two", workers=2), tiny_grid(attacks, "one", workers=1)
    assert {r["key"]: r for r in two} == {r["key"]: r for r in one}  # stored as they finish: in any order
