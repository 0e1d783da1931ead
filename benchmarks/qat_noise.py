"""How far does a student move from its teacher without quantization? Each run's recipe, fake-quant left out.

    python benchmarks/qat_noise.py --runs runs/imagefolder-mobilenet_v2-qat-s0 runs/imagefolder-mobilenet_v2-qat-s1

Issue 14's bar compares a run's int8 model with its fp32 teacher on the val split, one run at a
time. On a small folder whose teacher has not converged, the 8 QAT epochs go on training it, and a
student lands points above or below its teacher for reasons that have nothing to do with int8. This
control trains, for each run, an fp32 twin of its student: the same teacher, loss (plain CE or the
run's DivQAT loss), epochs, learning rate, batch size, seed and augmentation (`fit_student`, as
`train_student` calls it), without `prepare_qat` (so no observers, no fake-quant, no BN freeze).
Then int8 - fp32 (the run's own metrics) sits beside twin - fp32: if the twin moves as far, the
distance is fine-tuning's, and no quantization scheme removes it. Writes --out (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch

from edgeguard.bench.script import run_script
from edgeguard.runtime.preprocess import Normaliser
from edgeguard.train.loop import accuracy
from edgeguard.train.run import fit_student, load_run


def measure_run(path: str) -> dict[str, Any]:
    run = load_run(path)
    cfg = run.config
    data = run.dataset()
    norm = Normaliser(data.mean, data.std)
    twin = copy.deepcopy(run.teacher)
    fit_student(cfg, twin, run.teacher, data.train, norm)
    twin.cpu()
    acc = run.metrics["accuracy"]
    twin_acc = accuracy(twin, data.test, norm)
    return {
        "run": Path(path).name,
        "method": cfg.method,
        "seed": cfg.seed,
        "qat_lr": cfg.qat_lr,
        "val_images": len(data.test),
        "teacher": round(acc["fp32"], 4),
        "int8": round(acc["int8"], 4),
        "fp32_twin": round(twin_acc, 4),
        "int8_minus_teacher_points": round(100 * (acc["int8"] - acc["fp32"]), 1),
        "twin_minus_teacher_points": round(100 * (twin_acc - acc["fp32"]), 1),
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"{'run':<40}{'teacher':>9}{'int8':>8}{'twin':>8}{'int8-t':>8}{'twin-t':>8}"]
    for r in result["runs"]:
        lines.append(
            f"{r['run']:<40}{r['teacher']:>9.1%}{r['int8']:>8.1%}{r['fp32_twin']:>8.1%}"
            f"{r['int8_minus_teacher_points']:>+8.1f}{r['twin_minus_teacher_points']:>+8.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (edgeguard train's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/qat-noise.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return run_script(args, lambda: {"runs": [measure_run(p) for p in args.runs]}, render)


if __name__ == "__main__":
    sys.exit(main())
