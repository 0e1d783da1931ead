from __future__ import annotations

import numpy as np
import pytest

from edgeguard.defenses import Round
from edgeguard.errors import EdgeguardError


def test_rounds_to_the_given_decimals() -> None:
    out = Round(decimals=2)(np.array([[0.12345, 0.67890, 0.19765]]))
    np.testing.assert_allclose(out[0], [0.12, 0.68, 0.20], atol=1e-15)
    assert Round().decimals == 3  # ART's default


def test_a_row_rounded_to_nothing_becomes_the_label() -> None:
    out = Round(decimals=0)(np.array([[0.4, 0.3, 0.3], [0.6, 0.3, 0.1]]))
    np.testing.assert_array_equal(out, [[1, 0, 0], [1, 0, 0]])


def test_rounding_can_tie_the_top_class_with_a_lower_index() -> None:
    out = Round(decimals=1)(np.array([[0.444, 0.446, 0.110]]))
    np.testing.assert_allclose(out[0], [0.4, 0.4, 0.1])
    assert out.argmax() == 0  # the input's top was 1: why keeps_top1 is False


@pytest.mark.parametrize("decimals", [-1, 16, 1.5])
def test_rejects_bad_decimals(decimals) -> None:
    with pytest.raises(EdgeguardError, match="round: decimals"):
        Round(decimals=decimals)
