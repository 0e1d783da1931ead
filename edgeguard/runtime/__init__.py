"""The device side: load an export folder and answer queries. numpy + onnxruntime or LiteRT only, never torch."""

from edgeguard.runtime.model import DeployedModel, softmax

__all__ = ["DeployedModel", "softmax"]
