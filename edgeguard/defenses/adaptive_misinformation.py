"""Adaptive misinformation (Kariyappa, Qureshi; "Defending Against Model Stealing Attacks with
Adaptive Misinformation", CVPR 2020, https://arxiv.org/abs/1911.07100).

Why: thieves query with data from another distribution (Knockoff, Copycat, JBDA), on which the
victim is unsure; honest users mostly send in-distribution inputs, on which it is confident. Gate on
the confidence: confident queries get the true answer, unsure ones get the answer of a
misinformation model (trained to be wrong), so a surrogate learns wrong labels where it learns most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from edgeguard.defenses.base import Defense, as_probs, confidence_gate, normalize_rows
from edgeguard.errors import EdgeguardError
from edgeguard.formats import format_of

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AdaptiveMisinformation(Defense):
    """out = (1 - a) y + a y_mis, a = 1 / (1 + exp(nu (max y - tau))); renormalised.

    Source: Kariyappa & Qureshi, CVPR 2020 (https://arxiv.org/abs/1911.07100).

    `misinformation` is an export folder (with manifest.json: loaded as a DeployedModel, inputs in
    [0, 1], normalised per its manifest), a bare model file of a format in edgeguard.formats (an
    .onnx file, say: fed the inputs as given, outputs taken as logits), or a callable inputs ->
    (n, classes) probabilities. Only the first two fit in a spec.
    The model is loaded when the defense is built, so a bad path fails at start-up, not mid-query.
    It needs the query inputs: call it as defense(probs, inputs). tau is the paper's threshold
    (choose it on honest data: the max-probability below which queries count as out of
    distribution); nu = 1000 is the paper's sharpness.
    """

    name: ClassVar[str] = "adaptive_misinformation"
    keeps_top1: ClassVar[bool] = False
    sums_to_one: ClassVar[bool] = True

    tau: float
    misinformation: str | Predict = field(
        metadata={"kind": "path to an export folder or .onnx file"}
    )
    nu: float = 1000.0

    def check(self) -> None:
        self.require(0 < self.tau <= 1, f"tau must be in (0, 1] (a max-probability threshold), got {self.tau}")
        self.require(self.nu > 0, f"nu must be > 0 (the gate's sharpness), got {self.nu}")
        self.predict_misinformation  # load now: a missing or corrupt model fails at start-up

    @cached_property
    def predict_misinformation(self) -> Predict:
        if callable(self.misinformation):
            return self.misinformation
        path = Path(str(self.misinformation))
        if (path / "manifest.json").is_file():
            from edgeguard.runtime.model import DeployedModel

            return DeployedModel.load(path).predict
        if (fmt := format_of(path)) is not None and path.is_file():
            from edgeguard.runtime.model import softmax

            backend = fmt.backend_class()(path)
            return lambda x: softmax(backend.logits(np.asarray(x, dtype=np.float32)))
        raise EdgeguardError(
            f"{self.name}: misinformation must be an export folder (holding manifest.json), an .onnx "
            f"file, or a callable inputs -> probabilities; '{self.misinformation}' is none of these"
        )

    def apply(self, probs: np.ndarray, inputs: np.ndarray | None) -> np.ndarray:
        if inputs is None:
            raise EdgeguardError(
                f"{self.name} needs the query inputs to run its misinformation model: "
                f"call defense(probs, inputs)"
            )
        try:
            mis = as_probs(self.predict_misinformation(inputs))
        except EdgeguardError as e:
            raise EdgeguardError(f"{self.name}: the misinformation model failed: {e}") from e
        if mis.shape != probs.shape:
            raise EdgeguardError(
                f"{self.name}: the misinformation model answered shape {mis.shape} for probabilities "
                f"of shape {probs.shape}; it must classify the same classes"
            )
        alpha = confidence_gate(probs, self.tau, self.nu)
        return normalize_rows((1.0 - alpha) * probs + alpha * mis, probs)
