from __future__ import annotations

import numpy as np
import pytest

from edgeguard.defenses import HighConfidence
from edgeguard.errors import EdgeguardError


def test_zeroes_what_is_below_the_cutoff_without_renormalising() -> None:
    out = HighConfidence(cutoff=0.25)(np.array([[0.6, 0.25, 0.15], [0.3, 0.3, 0.4]]))
    np.testing.assert_array_equal(out, [[0.6, 0.25, 0.0], [0.3, 0.3, 0.4]])  # ART keeps p == cutoff


def test_a_row_entirely_below_the_cutoff_becomes_the_label() -> None:
    out = HighConfidence(cutoff=0.25)(np.full((1, 5), 0.2))
    np.testing.assert_array_equal(out, [[1, 0, 0, 0, 0]])


@pytest.mark.parametrize("cutoff", [0.0, -0.1, 1.5])
def test_rejects_bad_cutoff(cutoff: float) -> None:
    with pytest.raises(EdgeguardError, match="high_confidence: cutoff must be in"):
        HighConfidence(cutoff=cutoff)
