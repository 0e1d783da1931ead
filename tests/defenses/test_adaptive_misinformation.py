from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgeguard.bench.defenses import synthetic_export
from edgeguard.defenses import AdaptiveMisinformation
from edgeguard.errors import EdgeguardError
from edgeguard.runtime import DeployedModel, softmax

Y_MIS = np.array([0.1, 0.1, 0.8])


def fixed_misinformation(x: np.ndarray) -> np.ndarray:
    return np.tile(Y_MIS, (len(x), 1))


def defense(tau: float, nu: float = 1000.0) -> AdaptiveMisinformation:
    return AdaptiveMisinformation(tau=tau, misinformation=fixed_misinformation, nu=nu)


def test_matches_the_published_formula() -> None:
    p = np.array([[0.5, 0.3, 0.2]])
    alpha = 1 / (1 + math.exp(10 * (0.5 - 0.6)))  # nu=10, tau=0.6, max p = 0.5: 0.7311
    expected = (1 - alpha) * p[0] + alpha * Y_MIS
    np.testing.assert_allclose(defense(0.6, nu=10)(p, np.zeros((1, 2)))[0], expected, atol=1e-12)


def test_gate_at_the_threshold_averages() -> None:
    p = np.array([[0.5, 0.3, 0.2]])
    np.testing.assert_allclose(defense(0.5)(p, np.zeros((1, 2)))[0], [0.3, 0.2, 0.5], atol=1e-12)


def test_confident_queries_get_the_truth_and_unsure_ones_misinformation() -> None:
    p = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])
    out = defense(0.6)(p, np.zeros((2, 2)))
    np.testing.assert_allclose(out, [p[0], Y_MIS], atol=1e-12)  # nu=1000: exp(-300) and exp(-200)


def test_needs_the_query_inputs() -> None:
    with pytest.raises(EdgeguardError, match="needs the query inputs"):
        defense(0.5)(np.array([[0.5, 0.5]]))


def test_the_misinformation_model_must_answer_the_same_classes() -> None:
    with pytest.raises(EdgeguardError, match="same classes"):
        defense(0.5)(np.array([[0.5, 0.5]]), np.zeros((1, 2)))


def test_a_bad_model_path_fails_when_built(tmp_path: Path) -> None:
    with pytest.raises(EdgeguardError, match="export folder .* an .onnx file, or a callable"):
        AdaptiveMisinformation(tau=0.5, misinformation=str(tmp_path / "missing.onnx"))


@pytest.mark.parametrize("params", [{"tau": 0.0}, {"tau": 1.5}, {"tau": 0.5, "nu": 0.0}])
def test_rejects_bad_parameters(params: dict) -> None:
    with pytest.raises(EdgeguardError, match="adaptive_misinformation: (tau|nu)"):
        AdaptiveMisinformation(misinformation=fixed_misinformation, **params)


def test_loads_an_export_folder_or_an_onnx_file(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    folder = synthetic_export(tmp_path / "mis", classes=4)
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    unsure = np.full((3, 4), 0.25)  # max p far below tau: the answer is the misinformation's

    from_folder = AdaptiveMisinformation(tau=0.9, misinformation=str(folder))(unsure, x)
    np.testing.assert_allclose(from_folder, DeployedModel.load(folder).predict(x), atol=1e-6)

    onnx_file = AdaptiveMisinformation(tau=0.9, misinformation=str(folder / "model.int8.onnx"))
    raw = DeployedModel.load(folder).backend.logits(x)  # the file alone: inputs fed as given
    np.testing.assert_allclose(onnx_file(unsure, x), softmax(raw), atol=1e-6)
