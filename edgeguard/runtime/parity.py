"""Parity of two models' answers on the same inputs (numpy only): implemented once, used everywhere.

Export checks each written file against the torch model it came from; a device checks each file
against the logits the workstation recorded (edgeguard.bench.parity). Both use the same inputs:
the test split and natural-image patches drawn with OOD_SEED, since quantization ranges are
calibrated on training data and int8 kernels that disagree do so first where inputs leave it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeguard.errors import EdgeguardError

OOD_SEED = 1234  # the natural patches every parity check uses
OOD_SIZE = 500
TEST_SAMPLE = 1000  # test images of every parity check: `Split.sample(TEST_SAMPLE)`, all of a smaller split


def compare(reference: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """Argmax agreement, max |difference| and bit-identity of two (n, classes) logit arrays."""
    if reference.shape != logits.shape:
        raise EdgeguardError(f"cannot compare logits of shape {logits.shape} with a reference of shape {reference.shape}")
    return {
        "n": len(reference),
        "argmax_agreement": round(float(np.mean(reference.argmax(1) == logits.argmax(1))), 6),
        "max_abs_diff": float(np.max(np.abs(reference.astype(np.float64) - logits), initial=0.0)),
        "identical": bool(np.array_equal(reference, logits)),
    }


def parity_inputs(test_x: np.ndarray, input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The inputs of every parity check: TEST_SAMPLE test images and OOD_SIZE natural patches (needs edgeguard.data)."""
    from edgeguard.data.natural import natural_patches

    return {"test": test_x, "ood": natural_patches(OOD_SIZE, input_shape, seed=OOD_SEED)}
