"""One measured cell of the grid: a victim (export + defense stack) robbed by one thief."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeguard.attacks.jbda import jbda_theft
from edgeguard.attacks.knockoff import ask
from edgeguard.attacks.sources import query_set
from edgeguard.attacks.surrogate import train_surrogate
from edgeguard.attacks.victim import CountingVictim
from edgeguard.data import Dataset
from edgeguard.defenses import parse_stack
from edgeguard.metrics import accuracy, agreement
from edgeguard.runtime import DeployedModel


@dataclass(frozen=True)
class Cell:
    victim: str  # run name of the exported victim
    defense: str  # stack spec, "none" for the bare model
    source: str  # "pool" | "natural" (JBDA always starts from pool seeds)
    labels: str  # "soft" | "argmax"
    budget: int
    seed: int
    attack: str = "knockoff"  # "knockoff" | "jbda"

    @property
    def key(self) -> str:
        return "|".join(str(v) for v in asdict(self).values())


class ServedVictim:
    """An exported model plus a defense stack: what a thief (and an honest user) is answered."""

    def __init__(self, model: DeployedModel, defense: str):
        self.model, self.stack = model, parse_stack(defense)

    def bare(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.stack(self.bare(x), x)


def honest_cost(victim: ServedVictim, data: Dataset) -> dict[str, float]:
    """What the defense costs honest users on the test split: accuracy of served answers, L1 change."""
    bare = victim.bare(data.test.x)
    served = victim(data.test.x)
    return {"victim_accuracy": accuracy(served, data.test.y), "perturbation_l1": float(np.abs(served - bare).sum(1).mean())}


def rob(victim: ServedVictim, data: Dataset, cells: list[Cell], steps: int = 250) -> list[dict[str, Any]]:
    """Thieves that differ only in budget and labels.

    Knockoff: one query stream, answered once; the largest budget is queried and each cell's
    surrogate trains on its prefix of the stream. JBDA chooses its queries from its own substitute,
    so each of its cells queries on its own.
    """
    first = cells[0]
    largest = max(c.budget for c in cells)
    knockoff = first.attack == "knockoff"
    if knockoff:
        x = query_set(first.source, data, largest, first.seed)
        stream = CountingVictim(victim, budget=largest)
        answers = ask(stream, x)
    served_test = victim(data.test.x)
    cost = honest_cost(victim, data)
    rows = []
    for cell in cells:
        if cell.attack == "jbda":  # adaptive queries: no shared stream, each cell robs on its own
            counter = CountingVictim(victim, budget=cell.budget)
            surrogate = jbda_theft(counter, data, cell.budget, cell.labels == "soft", cell.seed, steps)
            assert counter.queries == cell.budget
        else:
            surrogate = train_surrogate(x[: cell.budget], answers[: cell.budget], cell.labels == "soft", answers.shape[1], steps=steps, seed=cell.seed)
        stolen = surrogate.predict(data.test.x)
        rows.append({
            "key": cell.key, **asdict(cell), **cost, "queries": cell.budget,
            "surrogate_accuracy": accuracy(stolen, data.test.y),
            "fidelity": agreement(served_test, stolen),
        })  # fmt: skip
    assert not knockoff or stream.queries == largest
    return rows
