"""Shared by the defense tests: probability strategies, a misinformation model, every defense."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeguard.defenses import (
    DCP,
    MAD,
    AdaptiveMisinformation,
    Defense,
    HighConfidence,
    LabelOnly,
    Noise,
    ReverseSigmoid,
    Round,
    TopK,
)
from edgeguard.runtime import softmax

ROOT = Path(__file__).resolve().parents[2]


def misinformation(x: np.ndarray) -> np.ndarray:
    """A stand-in misinformation model: inputs (n, classes) -> probabilities, row by row."""
    return softmax(-4.0 * np.asarray(x, dtype=np.float64))


def bench_module() -> ModuleType:
    """benchmarks/bench_defenses.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_defenses", ROOT / "benchmarks" / "bench_defenses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@st.composite
def probability_batches(draw: st.DrawFn) -> np.ndarray:
    """(n, classes) rows summing to 1: softmax of wide logits (from near-uniform to one-hot), or
    small integer weights, which make exact ties and exact zeros common."""
    n = draw(st.integers(1, 16))
    k = draw(st.integers(2, 20))
    if draw(st.booleans()):
        logits = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-30, 30)))
        return softmax(logits)
    weights = draw(hnp.arrays(np.float64, (n, k), elements=st.integers(0, 3).map(float)))
    weights[weights.sum(axis=1) == 0, 0] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


def inputs_for(probs: np.ndarray) -> st.SearchStrategy[np.ndarray]:
    """Query inputs, one (classes,) row per probability row (`misinformation` needs that width)."""
    return hnp.arrays(np.float64, probs.shape, elements=st.floats(0, 1))


unit = st.floats(0.01, 1.0)
defenses: st.SearchStrategy[Defense] = st.one_of(
    st.builds(ReverseSigmoid, beta=st.floats(0.05, 3.0), gamma=st.floats(0.01, 2.0)),
    st.builds(TopK, k=st.integers(1, 25), renormalize=st.booleans()),
    st.builds(Round, decimals=st.integers(0, 6)),
    st.just(LabelOnly()),
    st.builds(HighConfidence, cutoff=unit),
    st.builds(Noise, scale=st.floats(0.01, 1.0), key=st.text(min_size=1, max_size=8)),
    st.builds(AdaptiveMisinformation, tau=unit, misinformation=st.just(misinformation), nu=st.floats(1.0, 2000.0)),
    st.builds(DCP, beta_gate=unit, rs_beta=st.floats(0.05, 3.0), rs_gamma=st.floats(0.01, 2.0)),
    st.builds(MAD, eps=st.floats(0.01, 2.0), seed=st.integers(0, 1000)),
)
