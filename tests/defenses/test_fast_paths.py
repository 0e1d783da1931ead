"""The per-call fast paths give the same bits as the plain formulas they replaced (the oracle here).

The hot defenses avoid numpy's slow wrappers (np.clip, put/take_along_axis, boolean any() over
row masses) and validate a stack's input once. None of that may change an answer: every output is
compared with the straightforward numpy form, bit for bit, on random batches with ties and zeros.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgeguard.defenses.stack as stack_module
from edgeguard.defenses import DCP, ReverseSigmoid, Round, TopK, parse_stack
from edgeguard.defenses.base import as_probs

from .helpers import probability_batches

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
EPS = 1e-9


def plain_as_probs(probs: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(probs, dtype=np.float64), 1.0)


def plain_normalize(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    x = plain_fill(x, probs)
    return x / x.sum(axis=1, keepdims=True)


def plain_fill(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    empty = x.sum(axis=1) <= 0
    if empty.any():
        x = x.copy()
        x[empty] = np.eye(x.shape[1])[probs[empty].argmax(axis=1)]
    return x


def plain_perturbation(p: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    q = np.clip(p, EPS, 1.0 - EPS)
    z = gamma * (np.log(q) - np.log1p(-q))
    return beta * (np.exp(-np.logaddexp(0.0, -z)) - 0.5)


def plain_reverse_sigmoid(p: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    return plain_normalize(np.clip(p - plain_perturbation(p, beta, gamma), 0.0, 1.0), p)


def plain_topk(p: np.ndarray, k: int, renormalize: bool) -> np.ndarray:
    keep = np.argsort(-p, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(p)
    np.put_along_axis(out, keep, np.take_along_axis(p, keep, axis=1), axis=1)
    return plain_normalize(out, p) if renormalize else out


def plain_round(p: np.ndarray, decimals: int) -> np.ndarray:
    return plain_fill(np.round(p, decimals), p)


def plain_dcp(p: np.ndarray, beta_gate: float, rs_beta: float, rs_gamma: float) -> np.ndarray:
    z = -1000.0 * (p.max(axis=1, keepdims=True) - beta_gate)
    alpha = np.exp(-np.logaddexp(0.0, -z))
    return plain_normalize(np.clip(p - alpha * plain_perturbation(p, rs_beta, rs_gamma), 0.0, 1.0), p)


@SETTINGS
@given(probability_batches(), st.floats(0.05, 3.0), st.floats(0.01, 2.0))
def test_reverse_sigmoid_is_the_plain_formula_bit_for_bit(probs: np.ndarray, beta: float, gamma: float) -> None:
    np.testing.assert_array_equal(ReverseSigmoid(beta, gamma)(probs), plain_reverse_sigmoid(plain_as_probs(probs), beta, gamma))


@SETTINGS
@given(probability_batches(), st.integers(1, 25), st.booleans())
def test_topk_is_the_plain_formula_bit_for_bit(probs: np.ndarray, k: int, renormalize: bool) -> None:
    np.testing.assert_array_equal(TopK(k, renormalize)(probs), plain_topk(plain_as_probs(probs), k, renormalize))


@SETTINGS
@given(probability_batches(), st.integers(0, 6))
def test_round_is_the_plain_formula_bit_for_bit(probs: np.ndarray, decimals: int) -> None:
    np.testing.assert_array_equal(Round(decimals)(probs), plain_round(plain_as_probs(probs), decimals))


@SETTINGS
@given(probability_batches(), st.floats(0.01, 1.0), st.floats(0.05, 3.0), st.floats(0.01, 2.0))
def test_dcp_shares_the_helpers_and_is_unchanged(probs: np.ndarray, gate: float, beta: float, gamma: float) -> None:
    np.testing.assert_array_equal(DCP(gate, beta, gamma)(probs), plain_dcp(plain_as_probs(probs), gate, beta, gamma))


@SETTINGS
@given(probability_batches(), st.integers(1, 4), st.integers(0, 4))
def test_the_benchmarked_stack_is_the_plain_formulas_in_order(probs: np.ndarray, k: int, decimals: int) -> None:
    stack = parse_stack(f"reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k={k}) | round(decimals={decimals})")
    expected = plain_round(plain_topk(plain_reverse_sigmoid(plain_as_probs(probs), 0.7, 0.4), k, True), decimals)
    np.testing.assert_array_equal(stack(probs), expected)
    np.testing.assert_array_equal(stack(probs.astype(np.float32)), stack(probs.astype(np.float32).astype(np.float64)))


def test_a_stack_validates_its_input_once_not_once_per_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counting(probs: np.ndarray) -> np.ndarray:
        calls.append(1)
        return as_probs(probs)

    monkeypatch.setattr(stack_module, "as_probs", counting)
    parse_stack("reverse_sigmoid | topk(k=3) | round(decimals=2)")(np.full((2, 10), 0.1))
    assert len(calls) == 1


def test_validation_copies_and_clips_like_before() -> None:
    probs = np.array([[0.25, 0.75]])
    out = parse_stack("none")(probs)
    assert not np.shares_memory(out, probs)  # an empty stack still answers a copy
    overshoot = np.array([[1.0 + 5e-7, 0.0], [0.0, 0.5]])
    np.testing.assert_array_equal(as_probs(overshoot), [[1.0, 0.0], [0.0, 0.5]])
    assert overshoot[0, 0] > 1  # clipped in the copy only
