"""Thieves against photo-folder victims: QAT vs DivQAT's defaults on byo_models' report folder.

What DivQAT's defaults leave a Knockoff thief when the victim is a torchvision model on a folder of
photos, measured with the product's own grid (`edgeguard.evaluate.grid.run_grid`, what `edgeguard evaluate`
runs, restricted to random Knockoff, soft labels and no defense: a 64 px surrogate costs minutes). Per --models: the QAT victim trains the fp32 teacher, which is passed back with
--teacher to the DivQAT victim (same fp32, as byo_models does), both named as the grid names its
victims so that `evaluate` robs them rather than retraining. The thief's own images (`--transfer-dir`)
are crops of the TUNING photos (byo_models.TUNING_PHOTOS): natural colour photos the report
victims never saw, and on which no thief was ever run while DivQAT's options were chosen (the
tuning folder chose them by accuracy alone). The grid's `natural` source is kept too: its patch pool
holds the report folder's own four photos among its 19, so it is partly in-distribution here.

    python benchmarks/byo_thieves.py --dir /tmp/byo-thieves --models mobilenet_v2,resnet18
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, from any working directory
from edgeguard.evaluate.grid import GridSpec, run_grid, victim_run  # noqa: E402

from byo_models import TUNING_PHOTOS, edgeguard, save_torchvision_teacher, score_from_manifest, train_command, write_photo_folder  # noqa: E402

OUT = Path(__file__).parent / "results" / "byo-thieves.json"


def ratios(cells: list[dict]) -> list[dict]:
    """Per query source and budget: each victim's seed-mean fidelity, and DivQAT's over QAT's."""
    out = []
    for source, budget in sorted({(c["source"], c["budget"]) for c in cells}):
        mean = {v: float(np.mean([c["fidelity"] for c in cells if (c["source"], c["budget"], c["victim"]) == (source, budget, v)])) for v in ("qat", "divqat")}
        out.append({"source": source, "budget": budget, **mean, "ratio": mean["divqat"] / mean["qat"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet18")
    parser.add_argument("--dir", type=Path, required=True, help="kept between calls: folders, runs, exports, grids")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--qat-epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--budgets", default="500,1000")
    parser.add_argument("--seeds", default="0", help="the grid's seeds (victims and thieves)")
    parser.add_argument("--transfer", type=int, default=250, help="thief images per tuning photo")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    data, transfer = args.dir / "photos", args.dir / "thief-photos"
    if not (data / "val").exists():
        write_photo_folder(data, {"train": 100, "val": 50}, 64, seed=0)
    if not transfer.exists():
        write_photo_folder(transfer, {"train": args.transfer, "val": 0}, 64, seed=1, photos=TUNING_PHOTOS)
    runs, export = args.dir / "runs", args.dir / "export"
    schedule = ["--epochs", str(args.epochs), "--qat-epochs", str(args.qat_epochs), "--batch-size", str(args.batch_size), "--threads", "1"]
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    seeds, budgets = [int(s) for s in args.seeds.split(",")], [int(b) for b in args.budgets.split(",")]
    for model in args.models.split(","):
        for seed in seeds:
            names = {method: victim_run("imagefolder", model, method, seed) for method in ("qat", "divqat")}
            teacher = args.dir / f"{model}-s{seed}-teacher.pt"
            for method, name in names.items():
                if not (runs / name / "metrics.json").exists():
                    seed_option = ["--seed", str(seed)]
                    edgeguard(*train_command(model, data, runs, schedule + seed_option, name, method, teacher if method == "divqat" else None))
                    if method == "qat":
                        save_torchvision_teacher(runs / name, teacher)
        grid = args.dir / f"grid-{model}"
        start = time.perf_counter()
        spec = GridSpec(
            dataset="imagefolder", model=model, data_dir=str(data), transfer_dir=str(transfer), attacks=["knockoff"], sources=["natural"],
            labels=["soft"], budgets=budgets, defenses=["none"], seeds=seeds, thieves=[], workers=1,
        )  # fmt: skip
        report = run_grid(spec, grid, runs, export)
        seconds = time.perf_counter() - start
        accuracy = {}  # issue 14's bar, as byo_models scores it: each int8 file against the teacher's fp32 file
        for seed in seeds:
            qat = victim_run("imagefolder", model, "qat", seed)
            if not (export / "fp32" / qat / "manifest.json").exists():
                edgeguard("export", "--fp32", str(runs / qat), "--out", str(export / "fp32"))
            fp32 = score_from_manifest(export / "fp32" / qat, data / "val")["fp32"]
            for method in ("qat", "divqat"):
                int8 = score_from_manifest(export / victim_run("imagefolder", model, method, seed), data / "val")["int8"]
                accuracy[f"{method}-s{seed}"] = {"int8": int8, "fp32": fp32, "int8_minus_fp32_points": round(100 * (int8 - fp32), 1)}
        config = json.loads((runs / victim_run("imagefolder", model, "divqat", seeds[0]) / "config.json").read_text())
        results[model] = {
            "divqat_options": config["method_options"],
            "val_from_manifest": accuracy,
            "victims": report["victims"],
            "cells": report["cells"],
            "ratios": ratios(report["cells"]),
            "grid_seconds": round(seconds),
        }
        results["common"] = (
            f"report folder (byo_models.PHOTOS, seed 0, 100 train / 50 val per class, 64 px); victims: edgeguard train "
            f"--dataset imagefolder --image-size 64 {' '.join(schedule)} (DivQAT with the QAT run's teacher); thief images: "
            f"{args.transfer} crops per TUNING photo (seed 1); the grid (edgeguard.evaluate.grid.run_grid, as edgeguard evaluate) "
            f"restricted to random Knockoff, natural and transfer queries, soft labels, budgets {args.budgets}, no defense, "
            f"seeds {args.seeds} (small-cnn thief, 250 steps)"
        )
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
