"""Datasets by name, as in-memory numpy arrays in [0, 1] with fixed, seeded splits.

Every dataset comes as three splits: `train` (the victim's training data), `pool` (same
distribution, unlabelled to an attacker: a thief with in-distribution data draws from it) and
`test`. Natural-image transfer sets for out-of-distribution thieves live in `natural`.
"""

from edgeguard.data.base import Dataset, Split
from edgeguard.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset"]
