from __future__ import annotations

import numpy as np
import pytest

from edgeguard.defenses import TopK
from edgeguard.errors import EdgeguardError

P = np.array([[0.1, 0.5, 0.15, 0.25]])


def test_keeps_the_k_largest_and_renormalises() -> None:
    np.testing.assert_allclose(TopK(k=2)(P)[0], [0, 0.5 / 0.75, 0, 0.25 / 0.75], atol=1e-15)


def test_without_renormalising_keeps_the_values() -> None:
    defense = TopK(k=2, renormalize=False)
    np.testing.assert_array_equal(defense(P)[0], [0, 0.5, 0, 0.25])
    assert not defense.sums_to_one and TopK(k=2).sums_to_one


def test_ties_go_to_the_lower_class_index_like_argmax() -> None:
    out = TopK(k=1)(np.array([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(TopK(k=2)(np.array([[0.3, 0.3, 0.4]]))[0], [3 / 7, 0, 4 / 7])


def test_k_above_the_class_count_keeps_everything() -> None:
    np.testing.assert_allclose(TopK(k=10)(P), P)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_rejects_bad_k(k) -> None:
    with pytest.raises(EdgeguardError, match="topk: k must"):
        TopK(k=k)
