"""Where did a run's int8 answers go? Per-class answers of teacher and int8 model, on val and on DivQAT's probes.

    python benchmarks/answer_drift.py --runs runs/imagefolder-mobilenet_v2-divqat-x86-s0 runs/imagefolder-mobilenet_v2-qat-x86-s0

Issue 14: on the report photo folder DivQAT's int8 students score 7.5-21 points below their teachers
on val while plain QAT's do not. DivQAT's default probe target answers random 1/f fields with one
soft answer whose top class is class 0 (`monitor.signature`). If the probe pull reaches honest
images, the answers the student changed go to class 0; if the loss were quantization's or
fine-tuning's, they would scatter. This counts, for each run, how many val images each class is
given by the teacher and by the int8 model, and the same for `--probes` random fields
(`train.losses.random_fields`, seeded): how far the pull itself got. Writes --out (JSON), prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeguard.bench.script import run_script
from edgeguard.runtime.preprocess import Normaliser
from edgeguard.train.loop import predict
from edgeguard.train.losses import random_fields
from edgeguard.train.run import load_run


@torch.no_grad()
def measure_run(path: str, probes: int) -> dict[str, Any]:
    run = load_run(path)
    data = run.dataset()
    norm = Normaliser(data.mean, data.std)
    torch.manual_seed(0)
    fields = random_fields(torch.zeros(probes, *run.input_shape))  # already in normalised units, as training draws them
    row: dict[str, Any] = {"run": Path(path).name, "method": run.config.method, "seed": run.config.seed, "classes": data.classes}
    for name, model in (("teacher", run.teacher), ("int8", run.int8())):
        answers = predict(model, data.test, norm)
        p = model.eval()(fields).softmax(1)
        row[name] = {
            "val_accuracy": round(float(np.mean(answers == data.test.y)), 4),
            "val_answers_per_class": np.bincount(answers, minlength=len(data.classes)).tolist(),
            "probe_answers_per_class": torch.bincount(p.argmax(1), minlength=len(data.classes)).tolist(),
            "probe_mean_p_class0": round(float(p[:, 0].mean()), 3),
        }
    return row


def render(result: dict[str, Any]) -> str:
    lines = [f"{'run':<44}{'val acc t -> int8':>20}{'val class 0 t -> int8':>24}{'probe p0 t -> int8':>22}"]
    for r in result["runs"]:
        t, q = r["teacher"], r["int8"]
        lines.append(
            f"{r['run']:<44}{t['val_accuracy']:>10.1%} -> {q['val_accuracy']:<6.1%}{t['val_answers_per_class'][0]:>14} -> {q['val_answers_per_class'][0]:<6}"
            f"{t['probe_mean_p_class0']:>14.2f} -> {q['probe_mean_p_class0']:.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (edgeguard train's)")
    parser.add_argument("--probes", type=int, default=512, help="random 1/f fields to answer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/answer-drift.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return run_script(args, lambda: {"runs": [measure_run(p, args.probes) for p in args.runs]}, render)


if __name__ == "__main__":
    sys.exit(main())
