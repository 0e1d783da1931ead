"""Post-hoc defenses against model extraction: numpy only, one module per defense, stackable.

    from edgeguard.defenses import parse_stack
    stack = parse_stack("reverse_sigmoid(beta=0.7, gamma=0.4) | topk(k=3) | round(decimals=2)")
    served = stack(model.predict(x), x)

This package runs on the device: it imports numpy and the standard library (and onnxruntime lazily,
only for an adaptive-misinformation model file), never torch. docs/defenses.md describes each one.
"""

from edgeguard.defenses.adaptive_misinformation import AdaptiveMisinformation
from edgeguard.defenses.base import Defense
from edgeguard.defenses.dcp import DCP
from edgeguard.defenses.high_confidence import HighConfidence
from edgeguard.defenses.label_only import LabelOnly
from edgeguard.defenses.mad import MAD
from edgeguard.defenses.noise import Noise
from edgeguard.defenses.reverse_sigmoid import ReverseSigmoid
from edgeguard.defenses.round import Round
from edgeguard.defenses.stack import DEFENSES, DefenseStack, build_defense, parse_stack
from edgeguard.defenses.topk import TopK

__all__ = [
    "DEFENSES",
    "DCP",
    "MAD",
    "AdaptiveMisinformation",
    "Defense",
    "DefenseStack",
    "HighConfidence",
    "LabelOnly",
    "Noise",
    "ReverseSigmoid",
    "Round",
    "TopK",
    "build_defense",
    "parse_stack",
]
