"""manifest.json: everything the device needs to serve an exported model (stdlib only).

The export folder is the one thing that crosses from the training side to the device side, so the
manifest carries what a server would otherwise have to guess: input shape, normalisation, class
names, and for each model file its format, precision, quantization scheme, sha256 and the thresholds
of the serving monitor calibrated on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeguard.errors import EdgeguardError
from edgeguard.files import atomic_write_json, read_json
from edgeguard.formats import DEFAULT

MANIFEST = "manifest.json"
SCHEMA = 1


@dataclass
class ModelEntry:
    """One model file in an export folder."""

    file: str
    format: str  # a name in edgeguard.formats
    precision: str  # "int8" | "fp32"
    sha256: str
    size_bytes: int
    quantization: dict[str, Any] = field(default_factory=dict)
    verified: dict[str, Any] = field(default_factory=dict)  # what export measured on this file (export.pipeline.verify)
    monitor: dict[str, Any] = field(default_factory=dict)  # serving monitor thresholds fitted on this file (edgeguard.monitor)


@dataclass
class Manifest:
    name: str
    dataset: str
    model: str
    input_shape: list[int]  # (C, H, W); the batch dimension is dynamic
    mean: list[float]  # per channel, applied to inputs in [0, 1]
    std: list[float]
    classes: list[str]
    preprocessing: dict[str, Any] = field(default_factory=dict)  # how an image file becomes an input (runtime.preprocess.ImageSpec)
    models: list[ModelEntry] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def entry(self, precision: str = "int8", format: str = DEFAULT) -> ModelEntry:
        for m in self.models:
            if m.precision == precision and m.format == format:
                return m
        have = ", ".join(f"{m.precision}/{m.format}" for m in self.models) or "none"
        raise EdgeguardError(
            f"export '{self.name}' has no {precision} {format} model (it has: {have}); "
            f"run `edgeguard export{' --int8' if precision == 'int8' else ''} --format {format}`"
        )

    def add(self, entry: ModelEntry) -> None:
        """Add or replace the entry for the same precision and format."""
        self.models = [m for m in self.models if (m.precision, m.format) != (entry.precision, entry.format)]
        self.models.append(entry)

    def save(self, folder: str | Path) -> Path:
        return atomic_write_json(Path(folder) / MANIFEST, asdict(self))

    @classmethod
    def load(cls, folder: str | Path) -> "Manifest":
        path = Path(folder) / MANIFEST
        if not Path(folder).is_dir():
            raise EdgeguardError(f"export folder '{folder}' does not exist; run `edgeguard export` first")
        raw = read_json(path, "manifest")
        try:
            models = [ModelEntry(**m) for m in raw.pop("models", [])]
            return cls(models=models, **raw)
        except TypeError as e:
            raise EdgeguardError(f"manifest '{path}' is corrupt or from another version: {e}") from e
