"""The model zoo: quantizable CNNs with QuantStub/DeQuantStub and fusable conv-bn-relu blocks."""

from edgeguard.models.zoo import MODELS, build_model

__all__ = ["MODELS", "build_model"]
