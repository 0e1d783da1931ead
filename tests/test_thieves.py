"""The held-out protocol: the two sides share no photos and no recipe, every held-out thief really
steals from served answers, and reports keep the sides apart."""

from dataclasses import replace

import numpy as np
import pytest

from edgeguard.attacks import thieves as table
from edgeguard.attacks.sources import query_set
from edgeguard.attacks.thieves import HELD_OUT, HELD_OUT_THIEVES, POOLED, THIEVES, TUNING, TUNING_THIEF, TUNING_THIEVES
from edgeguard.attacks.transfer import HELDOUT_PHOTOS, TUNING_KINDS, TransferSet, images
from edgeguard.data.natural import SKIMAGE_PHOTOS, photos
from edgeguard.evaluate import grid
from edgeguard.evaluate.cells import Cell
from edgeguard.evaluate.report import against_baseline, aggregate, markdown, pooled


def test_the_tuning_thieves_and_every_other_held_out():
    assert TUNING_THIEVES == [TUNING_THIEF, "probe-fields", "textures", "tempered", "long"]
    assert set(HELD_OUT_THIEVES) == set(THIEVES) - set(TUNING_THIEVES)
    assert all(THIEVES[n].side == HELD_OUT for n in HELD_OUT_THIEVES)
    assert set(POOLED) < set(HELD_OUT_THIEVES)  # the 1/f control is held out but not pooled
    # the extra tuning thieves change the images only (the tuning thief's recipe, synthetic sets of
    # their own), or only the answers' temperature, to a value no held-out thief uses
    tuning = THIEVES[TUNING_THIEF]
    assert all(THIEVES[n].recipe == tuning.recipe and THIEVES[n].transfer.kind in TUNING_KINDS for n in ("probe-fields", "textures"))
    tempered = THIEVES["tempered"]
    assert tempered.transfer is None and tempered.recipe == replace(tuning.recipe, temperature=2.0)
    assert tempered.recipe.temperature not in {THIEVES[n].recipe.temperature for n in HELD_OUT_THIEVES}
    # the long tuning thief: the tuning photos, trained long by its own recipe, none a held-out thief's
    long = THIEVES["long"]
    assert long.transfer is None and long.recipe.own_loop and long.recipe.steps > 2 * tuning.recipe.steps
    assert all(replace(long.recipe, own_loop=False) != THIEVES[n].recipe for n in HELD_OUT_THIEVES)


def test_tuning_and_held_out_transfer_sets_share_no_kind_and_no_images():
    pytest.importorskip("torch")  # the probe-fields thief draws DivQAT's own probes
    from edgeguard.data import load_dataset

    digits = load_dataset("digits")
    held = {THIEVES[n].transfer.kind for n in HELD_OUT_THIEVES}
    assert not held & set(TUNING_KINDS) and {THIEVES[n].transfer.kind for n in ("probe-fields", "textures")} == set(TUNING_KINDS)
    shape = digits.input_shape
    held_images = np.concatenate([THIEVES[n].queries(digits, 20, 0) for n in HELD_OUT_THIEVES if n in ("fields-1f", "terrain", "small-crops")])
    for name in ("probe-fields", "textures"):
        q = THIEVES[name].queries(digits, 20, 0)
        assert q.shape == (20, *shape) and q.dtype == np.float32 and 0 <= q.min() and q.max() <= 1
        np.testing.assert_array_equal(q[:5], THIEVES[name].queries(digits, 5, 0))  # budgets are prefixes
        assert not np.array_equal(q, THIEVES[name].queries(digits, 20, 1))
        assert min(np.abs(a - b).max() for a in q for b in held_images) > 0.05  # no query is a held-out one
        assert q.std((1, 2, 3)).min() > 0.01  # every query is an image, not a flat grey
    # a thief without its own images draws the grid's source, as the grid's cells always have
    for source in ("natural", "pool"):
        np.testing.assert_array_equal(THIEVES["tempered"].queries(digits, 20, 1, source), query_set(source, digits, 20, 1))


def test_the_grid_robs_no_extra_tuning_thief():
    spec = grid.GridSpec(seeds=[0], defenses=["none"], labels=["soft"])
    assert not {c.thief for _, cells in grid.groups(spec) for c in cells} & set(TUNING_THIEVES[1:])
    with pytest.raises(Exception, match="tuning-side thief"):
        grid.GridSpec(thieves=["lenet", "probe-fields"])


def test_held_out_photos_are_not_the_tuning_photos():
    stems = {file.split(".")[0] for file, _ in HELDOUT_PHOTOS.values()}
    assert not stems & set(SKIMAGE_PHOTOS) and not set(HELDOUT_PHOTOS) & set(SKIMAGE_PHOTOS)
    tuning = {(p.shape, round(float(p.mean()), 4)) for p in photos()}
    for kind in ("other-photos", "faces", "terrain"):
        assert not tuning & {(p.shape, round(float(p.mean()), 4)) for p in images(kind)}, kind
    assert all(THIEVES[n].transfer is not None for n in HELD_OUT_THIEVES)  # none queries the tuning photos
    assert all(THIEVES[n].transfer.kind not in TUNING_KINDS for n in HELD_OUT_THIEVES)


def test_every_held_out_thief_differs_from_the_tuning_recipe_and_the_axes_are_covered():
    tuning = THIEVES[TUNING_THIEF]
    held = [THIEVES[n] for n in HELD_OUT_THIEVES]
    assert all((t.recipe, t.transfer) != (tuning.recipe, tuning.transfer) for t in held)
    assert {"lenet", "resnet8", table.WIDE_CNN} <= {t.recipe.arch for t in held}
    assert {"sgd"} <= {t.recipe.optimizer for t in held}
    assert any(t.recipe.mixup > 0 for t in held) and any(t.recipe.smoothing > 0 for t in held)
    assert any(t.recipe.temperature != 1 for t in held) and any(t.recipe.candidates for t in held)
    assert {"other-photos", "faces", "terrain", "fields"} == {t.transfer.kind for t in held}
    assert len({t.transfer.grey for t in held}) >= 2 and len({t.transfer.crop for t in held}) >= 3


def test_transfer_sets_are_seeded_prefixes():
    ts = TransferSet()
    big, small = ts.build(12, (1, 28, 28), 5), ts.build(4, (1, 28, 28), 5)
    np.testing.assert_array_equal(big[:4], small)
    assert big.dtype == np.float32 and 0 <= big.min() and big.max() <= 1
    assert not np.array_equal(big, ts.build(12, (1, 28, 28), 6))


def test_tuning_cells_keep_their_keys_and_held_out_cells_get_a_suffix():
    assert Cell("qat", "none", "natural", "soft", 500, 0).key == "qat|none|natural|soft|500|0|knockoff"
    assert Cell("qat", "none", "natural", "soft", 500, 0, thief="lenet").key == "qat|none|natural|soft|500|0|knockoff|lenet"
    with pytest.raises(Exception, match="random Knockoff"):
        Cell("qat", "none", "pool", "soft", 500, 0, thief="lenet")
    with pytest.raises(Exception, match="unknown thief"):
        Cell("qat", "none", "natural", "soft", 500, 0, thief="nobody")


def test_grid_robs_each_held_out_thief_in_its_own_natural_knockoff_group():
    spec = grid.GridSpec(seeds=[0], defenses=["none"], labels=["soft"])
    held = [cells for _, cells in grid.groups(spec) if cells[0].thief != TUNING_THIEF]
    assert [cells[0].thief for cells in held] == HELD_OUT_THIEVES * 2  # two victims
    assert all(len({c.thief for c in cells}) == 1 and {c.budget for c in cells} == {500, 1000} for cells in held)


@pytest.mark.parametrize("name", HELD_OUT_THIEVES)
def test_each_held_out_thief_steals_from_served_answers(name, default_export, monkeypatch, torch_threads):
    pytest.importorskip("torch")
    from edgeguard.data import load_dataset
    from edgeguard.evaluate.cells import ServedVictim, rob
    from edgeguard.runtime import DeployedModel

    thief = THIEVES[name]
    monkeypatch.setitem(THIEVES, name, replace(thief, recipe=replace(thief.recipe, steps=8)))
    data = load_dataset("digits")
    cells = [Cell("v", "none", "natural", labels, budget, 0, thief=name) for labels in ("soft", "argmax") for budget in (30, 60)]
    rows = rob(ServedVictim(DeployedModel.load(default_export[0]), "none"), data, cells, steps=8)
    assert [r["queries"] for r in rows] == [30, 60, 30, 60] and all(r["thief"] == name for r in rows)
    assert all(0.0 <= r["fidelity"] <= 1.0 and 0.0 <= r["surrogate_accuracy"] <= 1.0 for r in rows)


def test_report_keeps_the_sides_apart():
    cells = []
    for thief in (TUNING_THIEF, "lenet", "fields-1f"):
        for seed in (0, 1):
            row = {"attack": "knockoff", "victim": "qat", "defense": "none", "source": "natural", "labels": "soft", "budget": 500, "seed": seed}
            row.update({"fidelity": 0.5, "surrogate_accuracy": 0.5, "victim_accuracy": 0.99, "perturbation_l1": 0.0})
            cells.append(row if thief == TUNING_THIEF else {**row, "thief": thief})  # old rows have no thief field
    rows = aggregate(cells)
    assert {(r["thief"], r["side"]) for r in rows} == {(TUNING_THIEF, TUNING), ("lenet", HELD_OUT), ("fields-1f", HELD_OUT)}
    text = markdown([], rows)
    held, tuning = text.split("### Tuning-side thieves")
    assert "| lenet |" in held and "| fields-1f |" in held and "| pooled |" in held
    assert "lenet" not in tuning and "fields-1f" not in tuning and "| qat | `none` | natural |" in tuning


def test_report_states_the_held_out_ratio_and_the_honest_cost():
    """The bar's numbers, read off the grid: pooled held-out fidelity over plain QAT's (the control
    left out), and accuracy minus plain QAT's in points."""
    from edgeguard.evaluate.report import honest_cost

    fid = {("qat", "lenet"): 0.6, ("qat", "faces"): 0.4, ("qat", "fields-1f"): 0.1, ("divqat", "lenet"): 0.2, ("divqat", "faces"): 0.3, ("divqat", "fields-1f"): 0.9}
    cells = [
        {"attack": "knockoff", "thief": thief, "victim": victim, "defense": "none", "source": "natural", "labels": "soft", "budget": 500, "seed": seed,
         "fidelity": f, "surrogate_accuracy": f, "victim_accuracy": 1.0, "perturbation_l1": 0.0}
        for (victim, thief), f in fid.items() for seed in (0, 1)
    ]  # fmt: skip
    victims = [{"victim": v, "seeds": 2, "accuracy": (acc, 0.0), "rotate_10deg": (rot, 0.0)} for v, acc, rot in (("qat", 1.0, 0.99), ("divqat", 0.997, 0.98))]
    [ratio] = against_baseline(pooled(aggregate(cells)))
    assert (ratio["victim"], ratio["thieves"], ratio["seeds"]) == ("divqat", 2, 2) and ratio["ratio"] == pytest.approx(0.25 / 0.5)
    [cost] = honest_cost(victims)
    assert cost["accuracy"] == pytest.approx(-0.3) and cost["rotate_10deg"] == pytest.approx(-1.0)
    text = markdown([], aggregate(cells))
    assert "| divqat | `none` | soft | 500 | 2 | 2 | 25.0 | 50.0 | 0.50x |" in text


def test_the_thieves_option_takes_a_preset_or_names():
    from edgeguard.errors import EdgeguardError

    assert table.parse_thieves("held-out") == HELD_OUT_THIEVES and table.parse_thieves("none") == []
    assert table.parse_thieves("lenet, faces,") == ["lenet", "faces"]
    with pytest.raises(EdgeguardError, match="unknown thief 'nope'"):
        table.parse_thieves("lenet,nope")


def _queries_and_answers() -> tuple[np.ndarray, np.ndarray]:
    """40 random 28x28 queries and peaked soft answers over 10 classes: enough to tell two trainers apart."""
    rng = np.random.default_rng(0)
    return rng.random((40, 1, 28, 28), dtype=np.float32), rng.dirichlet(np.full(10, 0.2), 40).astype(np.float32)


def weights(copy):
    import torch

    return torch.cat([p.detach().flatten() for p in copy.model.parameters()])


def test_the_tempered_tuning_thief_trains_on_flattened_answers(torch_threads):
    """Its copy is the tuning thief's, trained on p^(1/2) renormalised; argmax answers are left alone."""
    torch = pytest.importorskip("torch")
    from edgeguard.attacks.surrogate import train_surrogate
    from edgeguard.attacks.thief_training import train_copy

    x, answers = _queries_and_answers()
    flat = np.sqrt(answers) / np.sqrt(answers).sum(1, keepdims=True)
    tempered = weights(train_copy(THIEVES["tempered"], x, answers, True, 10, 0, steps=3))
    assert torch.allclose(tempered, weights(train_surrogate(x, flat, True, 10, steps=3, seed=0)), atol=1e-5)
    assert not torch.allclose(tempered, weights(train_copy(THIEVES[TUNING_THIEF], x, answers, True, 10, 0, steps=3)), atol=1e-5)
    hard = (train_copy(THIEVES[name], x, answers, False, 10, 0, steps=3) for name in ("tempered", TUNING_THIEF))
    assert torch.equal(*map(weights, hard))


def test_the_long_tuning_thief_trains_by_its_own_recipe(torch_threads):
    """Not the grid's trainer: its recipe's steps, batch and flips, whatever the grid's step budget."""
    torch = pytest.importorskip("torch")
    from edgeguard.attacks.thief_training import train_copy, train_thief

    x, answers = _queries_and_answers()
    long = replace(THIEVES["long"], recipe=replace(THIEVES["long"].recipe, steps=3))
    mine = weights(train_copy(long, x, answers, True, 10, 0, steps=250))
    assert torch.allclose(mine, weights(train_thief(long.recipe, x, answers, True, 10, 0)))
    assert not torch.allclose(mine, weights(train_copy(THIEVES[TUNING_THIEF], x, answers, True, 10, 0, steps=3)), atol=1e-5)
