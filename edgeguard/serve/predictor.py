"""What a deployment answers: the model's probabilities, through the defense stack, in one output form.

The output form is chosen per deployment, not per request, so a thief cannot ask for more than the
operator decided to reveal:
- `probabilities`: the defended probability vector (n, classes);
- `topk`: the k best classes of that vector and their probabilities, (n, k) each;
- `label`: the index of its top class only, (n,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeguard.defenses import DefenseStack
from edgeguard.errors import EdgeguardError
from edgeguard.runtime import DeployedModel, softmax
from edgeguard.serve.protocol import v2_datatype

OUTPUT_MODES = ("probabilities", "topk", "label")


@dataclass(frozen=True)
class Answer:
    tensors: dict[str, np.ndarray]  # the named outputs of the deployment's output mode
    top1: np.ndarray  # (n,) class index of each served row's top class


@dataclass(frozen=True)
class Predictor:
    model: DeployedModel
    stack: DefenseStack
    output: str = "probabilities"
    top_k: int = 3

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_MODES:
            raise EdgeguardError(f"output mode must be one of {', '.join(OUTPUT_MODES)}, got '{self.output}'")
        classes = self.model.num_classes
        if self.output == "topk" and not 1 <= self.top_k <= classes:
            raise EdgeguardError(f"--top-k must be between 1 and the model's {classes} classes, got {self.top_k}")

    def served(self, x: np.ndarray, logits: np.ndarray | None = None, extra: DefenseStack | None = None) -> np.ndarray:
        """(n, C, H, W) float32 in [0, 1] -> the defended probabilities (n, classes), float64.

        logits: the model's for x when the caller already has them (the monitor reads them too);
        extra: defenses run after the deployment's stack (a flagged key's, `serve.policy`).
        """
        p = self.stack(softmax(self.model.logits(x) if logits is None else logits), x)
        return p if extra is None else extra(p, x)

    def answer(self, x: np.ndarray, logits: np.ndarray | None = None, extra: DefenseStack | None = None) -> Answer:
        p = self.served(x, logits, extra)
        top1 = p.argmax(axis=1)
        if self.output == "probabilities":
            return Answer({"probabilities": p}, top1)
        if self.output == "label":
            return Answer({"label": top1}, top1)
        # stable sort on -p: ties keep index order, the same rule as argmax, so column 0 is top1
        idx = np.argsort(-p, axis=1, kind="stable")[:, : self.top_k]
        return Answer({"topk_indices": idx, "topk_probabilities": np.take_along_axis(p, idx, axis=1)}, top1)

    def output_metadata(self) -> list[dict[str, Any]]:
        """The v2 description of each output tensor, read off a real answer (so it cannot drift).

        Also warms the backend up, so the first client does not pay for lazy initialisation.
        """
        answer = self.answer(np.zeros((1, *self.model.input_shape), np.float32))
        return [
            {"name": name, "datatype": v2_datatype(value), "shape": [-1, *value.shape[1:]]}
            for name, value in answer.tensors.items()
        ]
