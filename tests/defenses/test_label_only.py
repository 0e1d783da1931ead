from __future__ import annotations

import numpy as np

from edgeguard.defenses import LabelOnly


def test_each_row_gets_its_own_label() -> None:
    # ART's ClassLabels would answer [[1, 0, 1], [1, 0, 1]] here (every row gets every row's label)
    out = LabelOnly()(np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1]])


def test_ties_go_to_the_first_class_like_argmax() -> None:
    np.testing.assert_array_equal(LabelOnly()(np.array([[0.4, 0.4, 0.2]])), [[1, 0, 0]])


def test_spec_has_no_parentheses() -> None:
    assert LabelOnly().spec == "label_only"
