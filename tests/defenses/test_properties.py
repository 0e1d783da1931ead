"""Properties every defense and every stack keeps, on random probability batches (hypothesis)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.defenses import AdaptiveMisinformation, DefenseStack, parse_stack

from .helpers import defenses, inputs_for, probability_batches

# derandomize: the same examples on every run, so a failure reproduces and CI never flakes
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


def check_answer(defense, probs: np.ndarray, inputs: np.ndarray) -> None:
    out = defense(probs, inputs)
    assert out.shape == probs.shape
    assert np.isfinite(out).all()
    assert (out >= 0).all()
    assert (out.sum(axis=1) > 0).all()
    if defense.sums_to_one:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    if defense.keeps_top1:
        # argmax with numpy's first-index rule on both sides: what a label reader sees
        np.testing.assert_array_equal(out.argmax(axis=1), probs.argmax(axis=1))
    for i in range(len(probs)):  # bit for bit: the rest of the batch must not change a row's answer
        np.testing.assert_array_equal(defense(probs[i : i + 1], inputs[i : i + 1])[0], out[i])
    np.testing.assert_array_equal(defense(probs, inputs), out)  # same query, same answer


@SETTINGS
@given(st.data(), defenses)
def test_every_defense_keeps_its_promises(data: st.DataObject, defense) -> None:
    probs = data.draw(probability_batches())
    check_answer(defense, probs, data.draw(inputs_for(probs)))


@SETTINGS
@given(st.data(), st.lists(defenses, min_size=1, max_size=4))
def test_every_stack_keeps_its_promises(data: st.DataObject, stages: list) -> None:
    probs = data.draw(probability_batches())
    check_answer(DefenseStack(tuple(stages)), probs, data.draw(inputs_for(probs)))


@SETTINGS
@given(st.lists(defenses.filter(lambda d: not isinstance(d, AdaptiveMisinformation)), max_size=4))
def test_spec_and_config_round_trip(stages: list) -> None:
    stack = DefenseStack(tuple(stages))
    assert parse_stack(stack.spec) == stack
    assert parse_stack(stack.spec).spec == stack.spec
    assert DefenseStack.from_config(stack.to_config()) == stack


@SETTINGS
@given(probability_batches(), st.floats(0.01, 1.0), st.text(min_size=1, max_size=8))
def test_noise_reproducible_from_probabilities_alone(probs: np.ndarray, scale: float, key: str) -> None:
    stack = parse_stack(f"noise(scale={scale!r}, key={json.dumps(key)})")
    np.testing.assert_array_equal(stack(probs), stack(probs.copy()))
