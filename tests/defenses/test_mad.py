"""MAD against the reference's objective, computed from an explicit, finite-difference Jacobian."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from edgeguard.defenses import MAD
from edgeguard.defenses.mad import argmax_preserving_target, surrogate_layer, surrogate_probs
from edgeguard.errors import EdgeguardError
from edgeguard.runtime import softmax


def explicit_jacobian(y: np.ndarray, seed: int) -> np.ndarray:
    """G (K, K*K): row k = d(-log softmax(W y + b)_k) / dW, central differences, features phi = y."""
    w, b = surrogate_layer(seed, len(y))
    h = 1e-6
    g = np.zeros((len(y), w.size))
    for j in range(w.size):
        step = np.zeros(w.size)
        step[j] = h
        plus = -np.log(softmax(((w + step.reshape(w.shape)) @ y + b)[None])[0])
        minus = -np.log(softmax(((w - step.reshape(w.shape)) @ y + b)[None])[0])
        g[:, j] = (plus - minus) / (2 * h)
    return g


def reference_objective(g: np.ndarray, y_tilde: np.ndarray, y: np.ndarray) -> float:
    """The reference code's calc_objective: ||u/|u| - v/|v|||^2, u = G^T y~, v = G^T y."""
    u, v = g.T @ y_tilde, g.T @ y
    return float(np.linalg.norm(u / np.linalg.norm(u) - v / np.linalg.norm(v)) ** 2)


def vertex(classes: tuple[int, ...], top: int, k: int) -> np.ndarray:
    """The reference's argmax-preserving candidate: uniform over `classes`, top raised by 1e-5."""
    c = np.zeros(k)
    c[list(classes)] = 1.0
    c[top] += 1e-5
    return c / c.sum()


def random_y(k: int, seed: int) -> np.ndarray:
    return softmax(np.random.default_rng(seed).normal(0, 2, (1, k)))[0]


@pytest.mark.parametrize("seed", range(5))
def test_the_angle_depends_only_on_the_surrogate_prediction(seed: int) -> None:
    """The module docstring's step 1: angle(G^T y~, G^T y) = angle(s - y~, s - y)."""
    y = random_y(4, seed)
    g = explicit_jacobian(y, seed)
    s = surrogate_probs(y[None], seed)[0]
    for y_tilde in np.random.default_rng(seed).dirichlet(np.ones(4), size=5):
        a, c = s - y_tilde, s - y
        closed_form = 2 - 2 * (a @ c) / (np.linalg.norm(a) * np.linalg.norm(c))
        assert reference_objective(g, y_tilde, y) == pytest.approx(closed_form, rel=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_three_classes_greedy_is_the_exhaustive_optimum(seed: int) -> None:
    y = random_y(3, seed)
    top = int(y.argmax())
    g = explicit_jacobian(y, seed)
    others = [c for c in range(3) if c != top]
    sets = [(top, *extra) for size in range(3) for extra in combinations(others, size)]
    best = max(reference_objective(g, vertex(s, top, 3), y) for s in sets)
    target = argmax_preserving_target(y[None], surrogate_probs(y[None], seed), np.array([top]))[0]
    assert reference_objective(g, target, y) == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_the_greedy_choice_beats_every_first_step_candidate(seed: int) -> None:
    y = random_y(6, seed)
    top = int(y.argmax())
    g = explicit_jacobian(y, seed)
    target = argmax_preserving_target(y[None], surrogate_probs(y[None], seed), np.array([top]))[0]
    chosen = reference_objective(g, target, y)
    for extra in [(), *((c,) for c in range(6) if c != top)]:
        assert chosen >= reference_objective(g, vertex((top, *extra), top, 6), y) - 1e-12


@pytest.mark.parametrize("eps", [0.05, 0.3, 0.5, 2.0])
def test_moves_towards_the_target_within_the_l1_budget(eps: float) -> None:
    probs = softmax(np.random.default_rng(1).normal(0, 2, (8, 5)))
    out = MAD(eps=eps, seed=3)(probs)
    target = argmax_preserving_target(probs, surrogate_probs(probs, 3), probs.argmax(axis=1))
    distance = np.abs(target - probs).sum(axis=1, keepdims=True)
    a = np.minimum(1.0, eps / distance)
    np.testing.assert_allclose(out, (1 - a) * probs + a * target, atol=1e-12)
    assert (np.abs(out - probs).sum(axis=1) <= eps + 1e-12).all()
    np.testing.assert_array_equal(out.argmax(axis=1), probs.argmax(axis=1))
    if eps == 2.0:  # every distance between distributions is <= 2: the answer is the vertex itself
        np.testing.assert_allclose(out, target, atol=1e-12)


def test_keeps_a_tied_top_class_strictly() -> None:
    out = MAD(eps=0.5)(np.array([[0.4, 0.4, 0.2]]))
    assert out[0, 0] > out[0, 1] and out.argmax() == 0


@pytest.mark.parametrize("params", [{"eps": 0.0}, {"eps": 2.5}, {"seed": -1}])
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(EdgeguardError, match="mad: (eps|seed)"):
        MAD(**params)
