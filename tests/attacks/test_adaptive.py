"""Adaptive Knockoff: its bandit moves toward what pays, the thief learns, every query is counted,
a smaller budget's stream is a prefix of a larger one's, and a label-only thief sees only labels."""

import numpy as np
import pytest
from click.testing import CliRunner

from edgeguard.cli import main
from edgeguard.errors import EdgeguardError
from edgeguard.metrics import agreement

torch = pytest.importorskip("torch")

from edgeguard.attacks.adaptive import GradientBandit, Rewards, adaptive_stream  # noqa: E402
from edgeguard.attacks.surrogate import train_surrogate  # noqa: E402
from edgeguard.attacks.victim import CountingVictim  # noqa: E402
from edgeguard.evaluate.cells import Cell  # noqa: E402


def test_bandit_moves_probability_to_the_arm_that_pays():
    rng = np.random.default_rng(0)
    bandit = GradientBandit(5, alpha=0.1)
    for _ in range(300):
        arm = int(rng.choice(5, p=bandit.probs()))
        bandit.update(arm, rng.normal(1.0 if arm == 3 else 0.0, 0.5))
    assert bandit.probs().argmax() == 3 and bandit.probs()[3] > 0.5


def test_rewards_favour_answers_the_thief_did_not_expect():
    reward, eight, three = Rewards(), np.eye(10)[8], np.eye(10)[3]
    for _ in range(20):
        reward(eight, eight)
    assert reward(three, eight) > reward(eight, eight)  # a new class the surrogate got wrong pays
    with pytest.raises(EdgeguardError, match="choose some of: certainty, diversity, loss"):
        Rewards(("novelty",))


def test_adaptive_thief_learns_counts_exactly_and_shifts_its_policy(served, digits):
    bare = served()
    victim = CountingVictim(bare, budget=300)
    stream = adaptive_stream(victim, digits, 300, soft=True, seed=0)
    assert victim.queries == 300 and len(stream.x) == len(stream.answers) == len(stream.arms) == 300
    uniform = 1 / stream.policy.shape[1]
    np.testing.assert_allclose(stream.policy[0], uniform)
    print("final policy", stream.policy[-1].round(3))
    assert stream.policy[-1].max() > 1.5 * uniform  # the bandit moved probability between photos
    copy = train_surrogate(stream.x, stream.answers, True, 10, steps=150)
    fidelity = agreement(bare(digits.test.x), copy.predict(digits.test.x))
    print("adaptive fidelity", fidelity)
    assert fidelity >= 0.2  # natural photos only: clearly above chance (0.1)


def test_a_smaller_budget_asks_a_prefix_and_never_more(served, digits):
    big = adaptive_stream(CountingVictim(served(), budget=130), digits, 130, soft=True, seed=1)
    small = adaptive_stream(CountingVictim(served(), budget=75), digits, 75, soft=True, seed=1)  # raises past 75
    np.testing.assert_array_equal(big.x[:75], small.x)
    np.testing.assert_array_equal(big.answers[:75], small.answers)


def test_label_only_adaptive_thief_sees_only_labels(served, digits):
    """Its rewards, its picks and its training data are those of a soft thief facing a label-only server."""
    argmax = adaptive_stream(CountingVictim(served()), digits, 100, soft=False, seed=2)
    labels = adaptive_stream(CountingVictim(served("label_only")), digits, 100, soft=True, seed=2)
    np.testing.assert_array_equal(argmax.answers, labels.answers)
    np.testing.assert_array_equal(argmax.policy, labels.policy)
    assert set(np.unique(argmax.answers)) == {0.0, 1.0}


def test_adaptive_thief_needs_natural_photos_and_attacks_are_named():
    with pytest.raises(EdgeguardError, match="cannot start from 'pool' queries; it takes: natural"):
        Cell("v", "none", "pool", "soft", 100, 0, "knockoff-adaptive")
    with pytest.raises(EdgeguardError, match="unknown attack 'copycat'"):
        Cell("v", "none", "natural", "soft", 100, 0, "copycat")


def test_attack_cli_runs_the_adaptive_thief(default_export, torch_threads):
    r = CliRunner().invoke(main, ["attack", str(default_export[0]), "--attack", "knockoff-adaptive", "--budget", "60", "--steps", "10"])
    assert r.exit_code == 0, r.output
    assert "knockoff-adaptive thief, 60 natural queries" in r.output
    r = CliRunner().invoke(main, ["attack", str(default_export[0]), "--attack", "knockoff-adaptive", "--source", "pool"])
    assert r.exit_code == 1 and "it takes: natural" in r.output
    r = CliRunner().invoke(main, ["evaluate", "--attacks", "knockoff,copycat"])
    assert r.exit_code == 1 and "unknown attack(s) copycat" in r.output
