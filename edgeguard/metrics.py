"""Metrics on probability arrays (numpy only): what a teacher/student pair and a thief are scored by."""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row KL(p || q), in nats."""
    p, q = np.clip(p, EPS, 1), np.clip(q, EPS, 1)
    return (p * (np.log(p) - np.log(q))).sum(1)


def js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence, in nats (bounded by ln 2)."""
    m = (p + q) / 2
    return (kl(p, m) + kl(q, m)) / 2


def agreement(p: np.ndarray, q: np.ndarray) -> float:
    """Share of rows whose argmax is the same: fidelity when q is a surrogate and p the victim."""
    return float((p.argmax(1) == q.argmax(1)).mean())


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def compare(teacher: np.ndarray, student: np.ndarray) -> dict[str, float]:
    """How far a (quantized) student's answers are from its fp32 teacher's on the same inputs."""
    return {
        "kl": float(kl(teacher, student).mean()),
        "js": float(js(teacher, student).mean()),
        "top1_agreement": agreement(teacher, student),
        "confidence": float(student.max(1).mean()),
    }
