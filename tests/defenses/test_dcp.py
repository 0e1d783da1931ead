from __future__ import annotations

import math

import numpy as np
import pytest

from edgeguard.defenses import DCP, ReverseSigmoid
from edgeguard.errors import EdgeguardError


def by_hand(p: list[float], beta_gate: float, rs_beta: float, rs_gamma: float) -> list[float]:
    """Khaled et al.'s method_dcp, one scalar at a time with the math module (plus our clip)."""
    alpha = 1 / (1 + math.exp(1000 * (max(p) - beta_gate)))
    out = []
    for q in p:
        r = rs_beta * (1 / (1 + math.exp(-rs_gamma * math.log(q / (1 - q)))) - 0.5)
        out.append(min(max(q - alpha * r, 0.0), 1.0))
    return [v / sum(out) for v in out]


@pytest.mark.parametrize(
    "p, gate", [([0.5, 0.3, 0.2], 0.5), ([0.5, 0.3, 0.2], 0.501), ([0.4, 0.35, 0.25], 0.5), ([0.9, 0.05, 0.05], 0.5)]
)
def test_matches_the_published_formula(p: list[float], gate: float) -> None:
    out = DCP(beta_gate=gate, rs_beta=0.8, rs_gamma=0.5)(np.array([p]))
    np.testing.assert_allclose(out[0], by_hand(p, gate, 0.8, 0.5), rtol=0, atol=1e-12)


def test_unsure_queries_get_reverse_sigmoid_and_confident_ones_the_truth() -> None:
    p = np.array([[0.4, 0.35, 0.25], [0.9, 0.05, 0.05]])
    out = DCP(beta_gate=0.6)(p)
    np.testing.assert_allclose(out[0], ReverseSigmoid(1.0, 0.1)(p[:1])[0], atol=1e-12)
    np.testing.assert_allclose(out[1], p[1], atol=1e-12)


@pytest.mark.parametrize(
    "params",
    [{"beta_gate": 0.0}, {"beta_gate": 1.2}, {"beta_gate": 0.5, "rs_beta": 0.0}, {"beta_gate": 0.5, "rs_gamma": -1.0}],
)
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(EdgeguardError, match="dcp: (beta_gate|rs_beta|rs_gamma)"):
        DCP(**params)
