from __future__ import annotations

import numpy as np
import pytest

from edgeguard.defenses import Noise
from edgeguard.defenses.base import row_rngs
from edgeguard.errors import EdgeguardError

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]])


def test_matches_gaussian_noise_clamped_and_renormalised() -> None:
    defense = Noise(scale=0.2, key="k")
    noisy = np.stack([p + rng.normal(0, 0.2, 3) for p, rng in zip(P, row_rngs("k", P, None))])
    expected = np.maximum(noisy, 0) / np.maximum(noisy, 0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(defense(P), expected, rtol=0, atol=1e-15)


def test_the_same_query_gets_the_same_answer_so_averaging_gains_nothing() -> None:
    defense = Noise(scale=0.3, key="k")
    repeated = defense(np.repeat(P[:1], 50, axis=0))
    assert (repeated == repeated[0]).all()
    assert not np.allclose(repeated[0], P[0])


def test_seeded_by_the_input_when_given() -> None:
    defense = Noise(scale=0.3, key="k")
    same_probs = np.repeat(P[:1], 2, axis=0)
    x = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    a = defense(same_probs, x)
    assert not np.allclose(a[0], a[1])  # same probabilities, different queries
    np.testing.assert_array_equal(defense(same_probs[::-1], x[::-1]), a[::-1])  # order is irrelevant


def test_the_key_changes_the_noise() -> None:
    assert not np.allclose(Noise(key="a")(P), Noise(key="b")(P))


@pytest.mark.parametrize("params", [{"scale": 0.0}, {"scale": -1.0}, {"key": ""}, {"key": 3}])
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(EdgeguardError, match="noise: (scale|key)"):
        Noise(**params)
