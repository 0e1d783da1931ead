"""A deployed model: manifest + verified model file + backend -> probabilities.

This is the victim interface every later piece talks to (serving, defenses, attacks): inputs are
images in [0, 1] with the manifest's (C, H, W) shape; normalisation (runtime.preprocess) happens here.
Which backend runs a file is the format table's answer (edgeguard.formats).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeguard.errors import EdgeguardError
from edgeguard.files import sha256_file
from edgeguard.formats import DEFAULT, get_format
from edgeguard.manifest import Manifest, ModelEntry
from edgeguard.runtime.preprocess import ImageSpec, Normaliser


class Backend(Protocol):
    """A loaded model file: normalised float32 (n, C, H, W) in, float32 (n, classes) logits out."""

    def logits(self, x: np.ndarray) -> np.ndarray: ...



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
        self.normalise = Normaliser(self.manifest.mean, self.manifest.std)  # built once: it runs on every request
        self.image_spec = ImageSpec.from_manifest(self.manifest.preprocessing, self.manifest.input_shape)

    @classmethod
    def load(cls, folder: str | Path, precision: str = "int8", format: str = DEFAULT, threads: int = 1) -> "DeployedModel":
        """Load and verify: a file whose sha256 differs from the manifest is refused."""
        manifest = Manifest.load(folder)
        return cls.open(manifest, manifest.entry(precision, format), folder, threads)

    @classmethod
    def open(cls, manifest: Manifest, entry: ModelEntry, folder: str | Path, threads: int = 1) -> "DeployedModel":
        """One entry of a manifest held in memory (export verifies files before it writes the manifest)."""
        path = Path(folder) / entry.file
        if not path.is_file():
            raise EdgeguardError(f"model file '{path}' named in the manifest is missing")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise EdgeguardError(
                f"model file '{path}' does not match its manifest (sha256 {digest[:12]}... != "
                f"{entry.sha256[:12]}...): it was modified or corrupted; re-export it"
            )
        backend = get_format(entry.format).backend_class()  # imports the runtime package only now
        return cls(manifest, entry, backend(path, threads=threads), path)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest.input_shape)

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x: (n, C, H, W) float32 in [0, 1] -> (n, classes) logits. Validates the shape."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise EdgeguardError(f"expected inputs of shape (n, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        return self.backend.logits(self.normalise(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: (n, C, H, W) in [0, 1] -> (n, classes) probabilities (rows sum to 1)."""
        return softmax(self.logits(x))
