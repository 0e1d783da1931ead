"""A deployed model: manifest + verified model file + backend -> probabilities.

This is the victim interface every later piece talks to (serving, defenses, attacks): inputs are
images in [0, 1] with the manifest's (C, H, W) shape; normalisation happens here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeguard.errors import EdgeguardError
from edgeguard.files import sha256_file
from edgeguard.manifest import Manifest, ModelEntry
from edgeguard.runtime.onnx import OnnxBackend
from edgeguard.runtime.tflite import TFLiteBackend


class Backend(Protocol):
    """A loaded model file: normalised float32 (n, C, H, W) in, float32 (n, classes) logits out."""

    def logits(self, x: np.ndarray) -> np.ndarray: ...


# each backend imports its runtime package when it loads a file, so a missing one fails only there
BACKENDS: dict[str, type] = {"onnx": OnnxBackend, "tflite": TFLiteBackend}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class DeployedModel:
    manifest: Manifest
    entry: ModelEntry
    backend: Backend
    path: Path

    def __post_init__(self) -> None:
        # built once: normalise() runs on every served request
        self._mean = np.asarray(self.manifest.mean, np.float32).reshape(1, -1, 1, 1)
        self._std = np.asarray(self.manifest.std, np.float32).reshape(1, -1, 1, 1)

    @classmethod
    def load(
        cls, folder: str | Path, precision: str = "int8", format: str = "onnx", threads: int = 1
    ) -> "DeployedModel":
        """Load and verify: a file whose sha256 differs from the manifest is refused."""
        folder = Path(folder)
        manifest = Manifest.load(folder)
        entry = manifest.entry(precision, format)
        path = folder / entry.file
        if not path.is_file():
            raise EdgeguardError(f"model file '{path}' named in the manifest is missing")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise EdgeguardError(
                f"model file '{path}' does not match its manifest (sha256 {digest[:12]}... != "
                f"{entry.sha256[:12]}...): it was modified or corrupted; re-export it"
            )
        if format not in BACKENDS:
            raise EdgeguardError(f"no runtime backend for format '{format}' (have: {', '.join(BACKENDS)})")
        return cls(manifest, entry, BACKENDS[format](path, threads=threads), path)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest.input_shape)

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return ((x - self._mean) / self._std).astype(np.float32, copy=False)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: (n, C, H, W) float32 in [0, 1] -> (n, classes) logits. Validates the shape."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise EdgeguardError(f"expected inputs of shape (n, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        return self.backend.logits(self.normalise(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, C, H, W) in [0, 1] -> (n, classes) probabilities (rows sum to 1)."""
        return softmax(self.logits(x))
