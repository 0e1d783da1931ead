"""The monitor's thresholds: fitted at export on honest data, stored with the model file in the manifest.

They belong to one model file (an fp32 and an int8 file score the same query differently), so they
live in that file's manifest entry (`ModelEntry.monitor`), written by `edgeguard.export.monitor_thresholds`
and read by `edgeguard serve`. The window sizes travel with the thresholds because each threshold
was fitted for its window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from edgeguard.errors import EdgeguardError
from edgeguard.monitor.prada import PRADA_SIDE


@dataclass(frozen=True)
class MonitorConfig:
    energy_threshold: float  # a query with energy -logsumexp(logits) above this scores out of distribution
    ood_window: int  # the sliding window of a key's queries the OOD share is counted over
    ood_count: int  # this many OOD queries within the window flag the key
    prada_delta: float  # a Shapiro-Wilk W of the key's distances below this flags it
    prada_min_distances: int  # W is trusted once this many distances are recorded
    prada_window: int  # the most recent distances W is computed over
    prada_per_class: int  # most samples kept in a class's growing set
    calibration: dict[str, Any] = field(default_factory=dict)  # what the thresholds were fitted on
    prada_side: int = PRADA_SIDE  # PRADA compares copies of at most this many pixels a side (prada.Downsample)
    # DivQAT `signature` models: the signature's mass, and how close to it (ood.signature_distance) an answer scores OOD too
    signature: Optional[tuple[float, float]] = None

    def __post_init__(self) -> None:
        checks = [
            (math.isfinite(self.energy_threshold), "energy_threshold must be a finite number"),
            (self.ood_window >= 1 and 1 <= self.ood_count <= self.ood_window, "ood_count must be between 1 and ood_window"),
            (0.0 < self.prada_delta <= 1.0, "prada_delta must be in (0, 1]"),
            (20 <= self.prada_min_distances <= self.prada_window <= 5000, "20 <= prada_min_distances <= prada_window <= 5000 must hold"),
            (self.prada_per_class >= 1, "prada_per_class must be >= 1"),
            (self.prada_side >= 1, "prada_side must be >= 1"),
            (self.signature is None or (len(self.signature) == 2 and 0 < self.signature[0] < 1 and math.isfinite(self.signature[1])), "signature must be null or [mass in (0, 1), finite threshold]"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgeguardError(f"monitor thresholds in the manifest are invalid: {message}; re-export the model to recalibrate them")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "MonitorConfig":
        try:
            return cls(**raw)
        except TypeError as e:
            raise EdgeguardError(f"monitor thresholds in the manifest are corrupt or from another version ({e}); re-export the model") from e
