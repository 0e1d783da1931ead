"""What every defense refuses, with a sentence that says why."""

from __future__ import annotations

import numpy as np
import pytest

from edgeguard.defenses import LabelOnly, parse_stack
from edgeguard.errors import EdgeguardError


@pytest.mark.parametrize(
    "probs, message",
    [
        (np.array([0.5, 0.5]), "shape \\(n, classes\\).*probs\\[None\\]"),
        (np.array([[1.0]]), "classes >= 2"),
        (np.array([[0.5, np.nan]]), "finite"),
        (np.array([[2.0, -1.0]]), "pass softmax outputs, not logits"),
        (np.array([[0.5, 0.5], [0.0, 0.0]]), "row 1 is all zeros"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_refuses_what_is_not_a_batch_of_probabilities(probs, message: str) -> None:
    for defense in (LabelOnly(), parse_stack("topk(k=1) | round(decimals=1)")):
        with pytest.raises(EdgeguardError, match=message):
            defense(probs)


def test_inputs_need_one_row_per_probability_row() -> None:
    with pytest.raises(EdgeguardError, match="one query per probability row"):
        LabelOnly()(np.full((2, 2), 0.5), np.zeros((3, 4)))


def test_float32_rows_that_overshoot_one_by_rounding_are_accepted() -> None:
    probs = np.array([[1.0000001, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(LabelOnly()(probs), [[1.0, 0.0]])


def test_an_empty_batch_is_answered_with_an_empty_batch() -> None:
    stack = parse_stack("reverse_sigmoid | topk(k=2) | noise | mad | round(decimals=2)")
    assert stack(np.zeros((0, 5))).shape == (0, 5)


def test_the_callers_array_is_not_modified() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    parse_stack("reverse_sigmoid | topk(k=1, renormalize=false) | round(decimals=1) | high_confidence")(probs)
    np.testing.assert_array_equal(probs, [[0.7, 0.2, 0.1]])
