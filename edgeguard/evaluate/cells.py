"""One measured cell of the grid: a victim (export + defense stack) robbed by one thief."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from edgeguard.attacks.adaptive import adaptive_stream
from edgeguard.attacks.jbda import jbda_theft
from edgeguard.attacks.knockoff import ask
from edgeguard.attacks.sources import ATTACK_SOURCES
from edgeguard.attacks.thief_training import train_copy
from edgeguard.attacks.thieves import TUNING, TUNING_THIEF, thief
from edgeguard.attacks.victim import CountingVictim
from edgeguard.data import Dataset, victim_data
from edgeguard.defenses import parse_stack
from edgeguard.errors import EdgeguardError
from edgeguard.metrics import accuracy, agreement
from edgeguard.runtime import DeployedModel


@dataclass(frozen=True)
class Cell:
    victim: str  # run name of the exported victim
    defense: str  # stack spec, "none" for the bare model
    source: str  # the thief's data: "pool" | "natural" (sources.ATTACK_SOURCES: which attack takes which)
    labels: str  # "soft" | "argmax"
    budget: int
    seed: int
    attack: str = "knockoff"  # "knockoff" (random sampling) | "knockoff-adaptive" | "jbda"
    thief: str = TUNING_THIEF  # a random-Knockoff cell's recipe (attacks.thieves.THIEVES)

    def __post_init__(self) -> None:
        thief(self.thief)  # an unknown name fails here
        if self.thief != TUNING_THIEF and (self.attack, self.source) != ("knockoff", "natural"):
            raise EdgeguardError(f"held-out thief '{self.thief}' is a random Knockoff thief with its own images: attack 'knockoff', source 'natural'")
        if self.attack not in ATTACK_SOURCES:
            raise EdgeguardError(f"unknown attack '{self.attack}'; choose one of: {', '.join(ATTACK_SOURCES)}")
        if self.source not in ATTACK_SOURCES[self.attack]:
            raise EdgeguardError(f"the {self.attack} thief cannot start from '{self.source}' queries; it takes: {', '.join(ATTACK_SOURCES[self.attack])}")

    @property
    def key(self) -> str:
        """Every field's value, in order: the store's key. A new field would change every key, and a
        grid would then recompute the cells it has stored, so `thief` joins the key only when it is
        not the tuning thief: the tuning side's stored cells keep their keys."""
        values = asdict(self)
        if values.pop("thief") != TUNING_THIEF:
            values["thief"] = self.thief
        return "|".join(str(v) for v in values.values())

    @property
    def stream(self) -> tuple:
        """Cells with equal stream keys share one answered query stream, each training on its prefix."""
        shared_by_labels = self.attack == "knockoff"  # an adaptive thief's labels steer its queries
        return (self.attack, self.source, self.seed, None if shared_by_labels else self.labels, self.thief)


THIEF_MODEL = "small-cnn"  # the copy's architecture unless a thief picks another from the zoo


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
    bare = data.test.apply(victim.bare)
    served = data.test.apply(victim)
    return {"victim_accuracy": accuracy(served, data.test.y), "perturbation_l1": float(np.abs(served - bare).sum(1).mean())}


def answered_stream(victim: ServedVictim, data: Dataset, cell: Cell, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n queries of `cell`'s Knockoff thief and the answers it saw, counted exactly against a budget of n."""
    counter = CountingVictim(victim, budget=n)
    if cell.attack == "knockoff-adaptive":
        stream = adaptive_stream(counter, data, n, cell.labels == "soft", cell.seed)
        x, answers = stream.x, stream.answers
    else:
        x = thief(cell.thief).queries(data, n, cell.seed, cell.source)
        answers = ask(counter, x)
    assert counter.queries == n
    return x, answers


def rob(victim: ServedVictim, data: Dataset, cells: list[Cell], steps: int = 250, thief_model: str = THIEF_MODEL) -> list[dict[str, Any]]:
    """Thieves of one served victim, each copy a `thief_model` (a zoo name); fidelity and accuracy
    over the whole test split, batch by batch.

    Knockoff (random or adaptive) asks a budget-b thief's queries as a prefix of a larger one's, so
    each stream (`Cell.stream`) is answered once, to its largest budget, and each cell's surrogate
    trains on its prefix. JBDA retrains its substitute on every prefix it steps from: each of its
    cells robs on its own.
    """
    served_test = data.test.apply(victim)
    cost = honest_cost(victim, data)
    streams: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    for cell in cells:
        soft = cell.labels == "soft"
        if cell.attack == "jbda":
            counter = CountingVictim(victim, budget=cell.budget)
            surrogate = jbda_theft(counter, data, cell.budget, soft, cell.seed, steps, arch=thief_model)
            assert counter.queries == cell.budget
        else:
            if cell.stream not in streams:
                largest = max(c.budget for c in cells if c.stream == cell.stream)
                streams[cell.stream] = answered_stream(victim, data, cell, largest)
            x, answers = streams[cell.stream]
            chosen = thief(cell.thief)
            if chosen.side == TUNING:  # --thief-model picks the tuning thief's architecture
                chosen = replace(chosen, recipe=replace(chosen.recipe, arch=thief_model))
            surrogate = train_copy(chosen, x[: cell.budget], answers[: cell.budget], soft, answers.shape[1], cell.seed, steps)
        stolen = data.test.apply(surrogate.predict)
        rows.append({
            "key": cell.key, **asdict(cell), **cost, "queries": cell.budget,
            "surrogate_accuracy": accuracy(stolen, data.test.y),
            "fidelity": agreement(served_test, stolen),
        })  # fmt: skip
    return rows


def steal(
    export_dir: str, defense: str = "none", url: str | None = None, api_key: str | None = None, attack: str = "knockoff",
    source: str = "natural", labels: str = "soft", budget: int = 500, seed: int = 0, steps: int = 250,
    transfer_dir: str | None = None, thief_model: str = THIEF_MODEL, transfer_dataset: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One thief against an export behind a defense stack, or against a running server of that export.

    JBDA always starts from pool seeds; `transfer_dir` (the thief's own images, decoded to the
    victim's input by its manifest) is the `transfer` source. The row is `rob`'s, plus `label` (what was robbed) and, for a
    server, `answered`: every query it answered, the thief's and the test split's.
    """
    model = DeployedModel.load(export_dir)
    if url is None:
        victim: Any = ServedVictim(model, defense)
        label = victim.stack.spec or "none"
    else:
        from edgeguard.attacks.http import HttpVictim, RemoteServedVictim

        if defense.strip().lower() != "none":
            raise EdgeguardError("with --url the server applies its own defense stack; leave out --defense")
        if not api_key:
            raise EdgeguardError("--url needs an API key: pass --api-key or set $EDGEGUARD_API_KEY")
        victim = RemoteServedVictim(HttpVictim(url, api_key, model.manifest.name), model)
        label = f"served by {url}"
    source = "pool" if attack == "jbda" else source
    data = victim_data(model.manifest, transfer_dir, transfer_dataset)
    row = rob(victim, data, [Cell(model.manifest.name, label, source, labels, budget, seed, attack)], steps, thief_model)[0]
    return {**row, "label": label, **({"answered": victim.client.queries} if url else {})}
