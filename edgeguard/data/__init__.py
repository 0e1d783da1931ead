"""Datasets by name, with fixed, seeded splits of images in [0, 1]: arrays in memory or files read on demand.

Every dataset comes as three splits: `train` (the victim's training data), `pool` (same
distribution, unlabelled to an attacker: a thief with in-distribution data draws from it) and
`test`. Natural-image transfer sets for out-of-distribution thieves live in `natural`; a thief's own
folder of images is `Dataset.transfer` (`load_dataset(..., transfer_dir=...)`).
"""

from edgeguard.data.base import ArraySplit, Dataset, FileSplit, Split
from edgeguard.data.registry import DATASETS, load_dataset, victim_data

__all__ = ["DATASETS", "ArraySplit", "Dataset", "FileSplit", "Split", "load_dataset", "victim_data"]
