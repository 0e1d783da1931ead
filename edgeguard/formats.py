"""The one table of model file formats: what each is called, holds, needs and is run by (stdlib only).

Read by the runtime (which backend loads a file), serve (the platform name its metadata reports), bench
(the runtime's short name, the library whose memory is not the model's), the CLI (choices) and export
(the writer). Adding a format is one row here plus its exporter module (edgeguard/export/: `write`,
`contents`, `INT8_NOTES`) and its backend class (edgeguard/runtime/: `logits(x)`). Both are named as
import paths and imported only when used, so reading the table imports neither torch nor a runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from edgeguard.errors import EdgeguardError

PRECISIONS = ("int8", "fp32")


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    backend: str  # "module:Class" of the device-side runtime backend
    exporter: str  # module of the training-side writer: write(run, model, int8, path), contents(path), INT8_NOTES
    runtime: str  # the runtime's short name in benchmark ratios
    runtime_modules: tuple[str, ...]  # what the backend imports, in its order of preference (any one will do)
    export_modules: tuple[str, ...]  # what the exporter needs beyond torch (all of them)
    export_extra: str  # the pip extra that installs them
    platform: str  # the name serve's v2 metadata reports (KServe's, where it has one)

    def filename(self, precision: str) -> str:
        return f"model.{precision}{self.suffix}"

    def backend_class(self) -> type:
        module, name = self.backend.split(":")
        return getattr(importlib.import_module(module), name)

    def exporter_module(self) -> ModuleType:
        """The writer, after checking its packages are installed (found without importing them)."""
        missing = [m for m in self.export_modules if importlib.util.find_spec(m) is None]
        if missing:
            raise EdgeguardError(f"{self.name} export needs {', '.join(missing)}: pip install 'edgeguard[{self.export_extra}]'")
        return importlib.import_module(self.exporter)


FORMATS = {
    "onnx": Format(
        "onnx", ".onnx", PRECISIONS, "edgeguard.runtime.onnx:OnnxBackend", "edgeguard.export.onnx", "ORT",
        ("onnxruntime",), ("onnx", "onnxruntime"), "train", "onnxruntime_onnx",
    ),
    "tflite": Format(
        "tflite", ".tflite", PRECISIONS, "edgeguard.runtime.tflite:TFLiteBackend", "edgeguard.export.tflite", "TFLite",
        ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"), ("litert_torch", "torchao", "ai_edge_litert"), "tflite-export", "tflite",
    ),
}  # fmt: skip
DEFAULT = "onnx"  # what export writes and serve loads unless told otherwise


def format_of(path: str | Path) -> Format | None:
    """The format whose suffix a bare model file has (a file outside an export folder), if any."""
    return next((f for f in FORMATS.values() if Path(path).suffix == f.suffix), None)


def get_format(name: str, precision: str | None = None) -> Format:
    """The row for `name`; one clear sentence for an unknown name or a precision it cannot hold."""
    if name not in FORMATS:
        raise EdgeguardError(f"unknown model format '{name}'; choose from: {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    if precision is not None and precision not in fmt.precisions:
        raise EdgeguardError(f"format '{name}' does not support {precision}; it holds: {', '.join(fmt.precisions)}")
    return fmt
