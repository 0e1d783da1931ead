"""The one interface attacks see: answer a batch of inputs; every answered input is counted."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from edgeguard.errors import EdgeguardError


class Victim(Protocol):
    queries: int

    def query(self, x: np.ndarray) -> np.ndarray: ...


class CountingVictim:
    """Wraps any `answer(x) -> probabilities` with an exact query counter and an optional budget."""

    def __init__(self, answer: Callable[[np.ndarray], np.ndarray], budget: int | None = None):
        self.answer = answer
        self.budget = budget
        self.queries = 0

    def query(self, x: np.ndarray) -> np.ndarray:
        if self.budget is not None and self.queries + len(x) > self.budget:
            raise EdgeguardError(f"query budget of {self.budget} exhausted ({self.queries} used, {len(x)} asked)")
        out = self.answer(x)
        self.queries += len(x)
        return out
