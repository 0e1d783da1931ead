from __future__ import annotations

import math

import numpy as np
import pytest

from edgeguard.defenses import ReverseSigmoid
from edgeguard.errors import EdgeguardError


def by_hand(p: list[float], beta: float, gamma: float) -> list[float]:
    """Lee et al.'s formula, one scalar at a time with the math module (independent of numpy)."""
    out = []
    for q in p:
        q_clipped = min(max(q, 1e-9), 1 - 1e-9)
        r = beta * (1 / (1 + math.exp(-gamma * math.log(q_clipped / (1 - q_clipped)))) - 0.5)
        out.append(min(max(q - r, 0.0), 1.0))
    return [v / sum(out) for v in out]


@pytest.mark.parametrize(
    "p, beta, gamma",
    [
        ([0.7, 0.2, 0.1], 1.0, 0.1),
        ([0.7, 0.2, 0.1], 0.7, 0.4),
        ([0.98, 0.015, 0.005], 1.0, 0.2),
        ([1.0, 0.0, 0.0], 1.0, 0.1),  # exact 0 and 1: the clip to [1e-9, 1 - 1e-9] keeps the logit finite
    ],
)
def test_matches_the_published_formula(p: list[float], beta: float, gamma: float) -> None:
    out = ReverseSigmoid(beta, gamma)(np.array([p]))
    np.testing.assert_allclose(out[0], by_hand(p, beta, gamma), rtol=0, atol=1e-12)


def test_art_defaults_on_a_three_class_vector() -> None:
    # beta=1, gamma=0.1: r = (0.0212, -0.0346, -0.0547), p - r = (0.6788, 0.2346, 0.1547), sum 1.0681
    out = ReverseSigmoid()(np.array([[0.7, 0.2, 0.1]]))
    np.testing.assert_allclose(out[0], [0.6355, 0.2196, 0.1448], atol=5e-5)


def test_large_beta_gamma_flips_top1() -> None:
    # gamma=1 makes sigmoid(logit p) = p, so out ~ p - beta (p - 1/2): beta=2 reverses the order
    out = ReverseSigmoid(beta=2.0, gamma=1.0)(np.array([[0.7, 0.2, 0.1]]))
    np.testing.assert_allclose(out[0], [0.15, 0.40, 0.45], atol=1e-9)
    assert out.argmax() == 2  # why keeps_top1 is False


@pytest.mark.parametrize(
    "params", [{"beta": 0.0}, {"beta": -1.0}, {"gamma": 0.0}, {"beta": float("nan")}, {"beta": "1"}]
)
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(EdgeguardError, match="reverse_sigmoid: (beta|gamma)"):
        ReverseSigmoid(**params)
