"""Knockoff Nets, adaptive sampling (Orekondy et al., CVPR 2019, sec. 4.2): a gradient bandit picks
which part of the transfer set each query comes from, rewarded by what the answer taught the thief.

Arms. The paper's arms are the nodes of its transfer set's label hierarchy (ImageNet's); ours have
one level: the photo a natural patch is cut from (`edgeguard.data.natural`, 19 photos). The attacker
pool has no arms (it is unlabelled to a thief), so the strategy is natural-only
(`sources.ATTACK_SOURCES`).

Rewards for an answer y, the paper's three (each standardised by its running mean and std, then
averaged, as IBM ART's `reward="all"` combines them, so that no scale dominates):
- certainty: y's top-1 minus top-2 probability (the victim is sure of this input);
- diversity: sum_k max(0, y_k - mean of the last `window` answers_k) (not the class it keeps getting);
- loss: cross-entropy of the online surrogate's prediction against y (the thief did not know it yet).
The default leaves certainty out: a digits victim is surest on textures (brick, grass, gravel, moon)
and calls them all "8", so certainty steers the thief to the least informative photos. Against the
undefended QAT victim (500 natural queries, 4 seeds) all three rewards gave 48.7% mean fidelity,
diversity + loss 59.4%, random sampling 57.3% (docs/results.md).

Rounds. Each round draws its arms from the policy, cuts one patch per arm, asks them in one batch
(counted like any query), rewards each answer in order, then retrains the online surrogate on
everything answered (`train_surrogate`, a few steps: cost stays bounded). Round 0 is uniform: there
is no surrogate to score a loss yet. Each round draws a full round of arms from its own seeded
generator and the last round is cut to the budget, so a budget-b stream is a prefix of any larger
one: one stream serves every budget (`evaluate.cells.rob`), as for random Knockoff. The stolen copy
itself is trained by `train_surrogate` on all answers, as random Knockoff's is: the two strategies
differ only in which queries they asked.

A label-only thief turns each answer into a one-hot label on arrival, so its rewards see only labels.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edgeguard.attacks.knockoff import ask
from edgeguard.attacks.surrogate import train_surrogate
from edgeguard.attacks.victim import Victim
from edgeguard.data import Dataset
from edgeguard.data.natural import photo_patches, photos
from edgeguard.defenses.base import one_hot
from edgeguard.errors import EdgeguardError
from edgeguard.metrics import EPS

ROUND = 50  # queries per round: one batch, then one online retraining
ONLINE_STEPS = 20  # online surrogate steps per round (the final copy gets the full `steps`)
ALPHA = 0.1  # bandit step size


class GradientBandit:
    """Sutton & Barto's gradient bandit (sec. 2.8), the paper's policy: pi = softmax(H); a reward r for
    arm a moves H(a) by alpha (r - rbar)(1 - pi(a)) and every other H(b) by -alpha (r - rbar) pi(b),
    rbar being the mean of the earlier rewards."""

    def __init__(self, arms: int, alpha: float = ALPHA):
        self.h = np.zeros(arms)
        self.alpha = alpha
        self.baseline, self.pulls = 0.0, 0

    def probs(self) -> np.ndarray:
        z = np.exp(self.h - self.h.max())
        return z / z.sum()

    def update(self, arm: int, reward: float) -> None:
        step = self.alpha * (reward - self.baseline)
        self.h -= step * self.probs()
        self.h[arm] += step  # together: +step * (1 - pi(arm)) for the pulled arm
        self.pulls += 1
        self.baseline += (reward - self.baseline) / self.pulls


REWARDS = ("certainty", "diversity", "loss")
DEFAULT_REWARDS = ("diversity", "loss")  # why not certainty: the module docstring


class Rewards:
    """The chosen rewards of one answer, standardised (Welford running mean/std) and averaged."""

    def __init__(self, kinds: tuple[str, ...] = DEFAULT_REWARDS, window: int = ROUND):
        unknown = [k for k in kinds if k not in REWARDS]
        if unknown or not kinds:
            raise EdgeguardError(f"unknown or no rewards {list(kinds)}; choose some of: {', '.join(REWARDS)}")
        self.use = [REWARDS.index(k) for k in kinds]
        self.recent: deque[np.ndarray] = deque(maxlen=window)
        self.n, self.mean, self.m2 = 0, np.zeros(3), np.zeros(3)

    def __call__(self, answer: np.ndarray, predicted: np.ndarray) -> float:
        self.recent.append(answer)
        second, first = np.sort(answer)[-2:]
        raw = np.array([
            first - second,
            np.maximum(0.0, answer - np.mean(self.recent, axis=0)).sum(),
            -(answer * np.log(np.clip(predicted, EPS, 1.0))).sum(),
        ])  # fmt: skip
        self.n += 1
        delta = raw - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (raw - self.mean)
        std = np.sqrt(self.m2 / self.n)
        return float(np.mean(((raw - self.mean) / np.where(std > 0, std, 1.0))[self.use]))


@dataclass
class AdaptiveStream:
    x: np.ndarray  # (n, C, H, W) the queries, in the order asked
    answers: np.ndarray  # (n, classes) what the thief saw: one-hot rows for a label-only thief
    arms: np.ndarray  # (n,) the photo each query was cut from
    policy: np.ndarray  # (rounds, arms) the sampling probabilities each round started from


def adaptive_stream(
    victim: Victim, data: Dataset, n: int, soft: bool, seed: int,
    round_size: int = ROUND, online_steps: int = ONLINE_STEPS, alpha: float = ALPHA, rewards: tuple[str, ...] = DEFAULT_REWARDS,
) -> AdaptiveStream:  # fmt: skip
    """Ask exactly n queries chosen by the bandit; the caller trains the final copy on the answers."""
    bandit, reward = GradientBandit(len(photos()), alpha), Rewards(rewards, round_size)
    xs: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    arms: list[np.ndarray] = []
    policy: list[np.ndarray] = []
    online = None
    for r in range(-(-n // round_size)):
        rng = np.random.default_rng([seed, r])
        pi = bandit.probs()
        policy.append(pi)
        chosen = rng.choice(len(pi), size=round_size, p=pi)[: n - r * round_size]  # a full round's draws, cut
        x = photo_patches(chosen, data.input_shape, rng)
        y = ask(victim, x)
        y = y if soft else one_hot(y)
        if online is not None:
            for arm, answer, predicted in zip(chosen, y, online.predict(x)):
                bandit.update(int(arm), reward(answer, predicted))
        xs.append(x)
        answers.append(y)
        arms.append(chosen)
        if (r + 1) * round_size < n:
            online = train_surrogate(np.concatenate(xs), np.concatenate(answers), soft, y.shape[1], steps=online_steps, seed=seed)
    return AdaptiveStream(np.concatenate(xs), np.concatenate(answers), np.concatenate(arms), np.stack(policy))
