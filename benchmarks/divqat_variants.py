"""DivQAT's options side by side: honest accuracy and what a natural-image thief gets, per variant.

Regenerates the tuning-side tables of docs/divqat.md and of the first search (docs/divqat-log.md,
measured when the defaults were `away`; the "defaults" row is DivQATLoss's defaults when it runs). Each seed's fp32 teacher is
trained once and shared by every variant (`train_teacher`, as `train_run` does, so the row with the
defaults equals the grid's DivQAT victims); each variant's student is `train_student`, converted
to true int8, exported to ONNX and measured in onnxruntime. The thieves are the tuning side's only
(`attacks.thieves.TUNING_THIEVES`, never a held-out one): the grid's Knockoff with natural-patch
queries (`fidelity_soft` / `fidelity_argmax`: 500 queries, 250 steps, its seed the victim's), and
with the same recipe the `probe-fields` and `textures` thieves, each soft at 500 and 1,000 queries
(`fid_<thief>_<budget>`); `tuning_ratio_<budget>` pools them per seed against plain QAT's.

With --runs-dir each variant's run is saved as the grid saves its victims (plain QAT as `qat`, the
defaults as `divqat`, any other variant under --names' name), so `benchmarks/heldout_thieves.py
--variants` robs the very same models. --append keeps the rows already in --out and trains only
the (variant, seed) pairs missing there (or whose row misses a tuning thief added since); rows are
written as they finish.

    python benchmarks/divqat_variants.py                       # the default variant list, seeds 0-2
    python benchmarks/divqat_variants.py --variants '{"lam2 m4": {"lam": 2, "margin": 4}}' --seeds 0
    python benchmarks/divqat_variants.py --model lenet --variants '{"plain QAT": null, "defaults": {}}'
    python benchmarks/divqat_variants.py --seeds 0 --variants '{"plain QAT": null, "uniform": {"target": "uniform"}}' \
        --names '{"uniform": "div-uniform"}' --runs-dir runs --append --out benchmarks/results/divqat-issue15.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from edgeguard.attacks.surrogate import train_surrogate
from edgeguard.attacks.thief_training import train_copy
from edgeguard.attacks.thieves import THIEVES, TUNING_THIEF, TUNING_THIEVES
from edgeguard.data import load_dataset
from edgeguard.data.natural import natural_patches
from edgeguard.data.shifts import shifted
from edgeguard.export.onnx import export_onnx
from edgeguard.export.pipeline import TRANSFER_SEED, TRANSFER_SIZE
from edgeguard.formats import DEFAULT, FORMATS
from edgeguard.metrics import accuracy, agreement
from edgeguard.runtime import softmax
from edgeguard.runtime.onnx import OnnxBackend
from edgeguard.runtime.preprocess import Normaliser
from edgeguard.train.quantize import convert_int8
from edgeguard.train.run import TrainConfig, save_run, train_student, train_teacher

FIRST = {"inputs": "mixup", "lam": 0.5, "anchor": 1.0, "probe_bn": "running"}  # the first default
FIELDS_BATCH = {"inputs": "fields", "probe_bn": "batch"}
# None = plain QAT; every other entry is DivQATLoss options
VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain QAT": None,
    "first default": FIRST,
    "--mass non-top1": {**FIRST, "mass": "non-top1"},
    "--lam 1 --margin 4": {**FIRST, "lam": 1.0, "margin": 4.0},
    "probes use BN batch statistics": {**FIRST, "probe_bn": "batch"},
    "--div-inputs fields": {**FIRST, "inputs": "fields"},
    "--div-inputs both": {**FIRST, "inputs": "both"},
    "fields, --lam 2": {**FIRST, "inputs": "fields", "lam": 2.0},
    "fields, --lam 2 --anchor 3": {**FIRST, "inputs": "fields", "lam": 2.0, "anchor": 3.0},
    "fields, --lam 2, batch BN": {**FIRST, **FIELDS_BATCH, "lam": 2.0},
    "fields, --lam 1 --margin 4 --anchor 3, batch BN": {**FIRST, **FIELDS_BATCH, "lam": 1.0, "margin": 4.0, "anchor": 3.0},
    "defaults": {},
}
COLUMNS = ("accuracy", "noise_0.1", "translate_2px", "rotate_10deg", "photo_top_share", "photo_teacher_agreement", "fidelity_soft", "fidelity_argmax")
BUDGETS = (500, 1000)  # the tuning thieves' soft-label budgets (issue 15's bar: 500 and 1,000)
GRID_NAMES = {"plain QAT": "qat", "defaults": "divqat"}  # the grid's victim names (evaluate.grid.VictimRecipe)


def fid_columns() -> list[str]:
    return [f"fid_{t}_{b}" for t in TUNING_THIEVES for b in BUDGETS]


def measure_variant(cfg: TrainConfig, teacher: torch.nn.Module, data, scratch: Path, runs_dir: Path | None = None, fp32_times: list[float] | None = None) -> dict[str, float]:
    norm = Normaliser(data.mean, data.std)  # as `train_run` trains
    qat, qat_times = train_student(cfg, teacher, data.train, norm)
    if runs_dir is not None:  # the grid's run folder: `prepare_victim` then only exports it
        save_run(replace(cfg, runs_dir=str(runs_dir)), data, teacher, qat, fp32_times or [], qat_times)
    backend = OnnxBackend(export_onnx(convert_int8(qat, cfg.backend), data.input_shape, scratch / FORMATS[DEFAULT].filename("int8")))

    def served(a: np.ndarray) -> np.ndarray:
        return softmax(backend.logits(norm(a)))

    test = served(data.test.x)
    photos = natural_patches(TRANSFER_SIZE, data.input_shape, seed=TRANSFER_SEED)
    labels = served(photos).argmax(1)
    with torch.no_grad():
        teacher_labels = teacher(torch.from_numpy(norm(photos))).argmax(1).numpy()
    row = {"accuracy": accuracy(test, data.test.y), **{k: accuracy(served(v), data.test.y) for k, v in shifted(data.test.x).items()}}
    row["photo_top_share"] = float(np.bincount(labels).max() / len(labels))
    row["photo_teacher_agreement"] = float((labels == teacher_labels).mean())
    queries = THIEVES[TUNING_THIEF].queries(data, 500, cfg.seed)
    answers = served(queries)
    for soft in (True, False):
        thief = train_surrogate(queries, answers, soft, len(data.classes), steps=250, seed=cfg.seed)
        row["fidelity_soft" if soft else "fidelity_argmax"] = agreement(test, thief.predict(data.test.x))
    for name in TUNING_THIEVES:  # soft-label tuning thieves at both budgets (a budget's queries are a prefix)
        x = THIEVES[name].queries(data, max(BUDGETS), cfg.seed)
        answers = served(x)
        for b in BUDGETS:
            copy = train_copy(THIEVES[name], x[:b], answers[:b], True, len(data.classes), cfg.seed, steps=250)
            row[f"fid_{name}_{b}"] = agreement(test, copy.predict(data.test.x))
    row["seconds_per_epoch"] = float(np.median(qat_times))
    return row


def tuning_ratios(rows: list[dict[str, Any]]) -> None:
    """Per row: its tuning thieves' mean soft fidelity over plain QAT's (same seed), per budget."""
    qat = {r["seed"]: r for r in rows if r["options"] is None}
    for r in rows:
        if r["seed"] in qat and all(f"fid_{t}_{b}" in r for t in TUNING_THIEVES for b in BUDGETS):
            for b in BUDGETS:
                mine, base = (np.mean([x[f"fid_{t}_{b}"] for t in TUNING_THIEVES]) for x in (r, qat[r["seed"]]))
                r[f"tuning_ratio_{b}"] = float(mine / base)


def markdown(rows: list[dict[str, Any]]) -> str:
    columns = [c for c in (*COLUMNS, *fid_columns(), *(f"tuning_ratio_{b}" for b in BUDGETS)) if any(c in r for r in rows)]
    lines = ["| variant | n | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        cells = []
        for c in columns:
            v = [r[c] for r in mine if c in r]
            scale = 1 if c.startswith("tuning_ratio") else 100
            cells.append(f"{scale * np.mean(v):.2f}" if scale == 1 and v else f"{scale * np.mean(v):.1f} ± {scale * np.std(v):.1f}" if v else "")
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", help="JSON {name: DivQAT options or null for plain QAT}; default: the docs' list")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--model", default="small-cnn", help="the victim architecture (the thief stays small-cnn)")
    parser.add_argument("--out", default="benchmarks/results/divqat-variants.json")
    parser.add_argument("--runs-dir", help="save each variant's run here, as the grid's victims (for heldout_thieves.py --variants)")
    parser.add_argument("--names", default="{}", help="JSON {variant: grid victim name} for --runs-dir (plain QAT: qat, defaults: divqat)")
    parser.add_argument("--append", action="store_true", help="keep --out's rows; train only the (variant, seed) pairs it lacks or whose row misses a tuning thief")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = json.loads(args.variants) if args.variants else VARIANTS
    names = {**GRID_NAMES, **json.loads(args.names)}
    cfg = TrainConfig(method="divqat", model=args.model)
    data = load_dataset(cfg.dataset)
    cfg = cfg.with_epochs(len(data.train))  # the epoch counts train_run would use
    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if args.append and out.exists() else []
    # a listed variant's row that misses a tuning thief (one added since) is measured again
    rows = [r for r in rows if r["variant"] not in variants or all(c in r for c in fid_columns())]
    with tempfile.TemporaryDirectory() as scratch:
        for seed in [int(s) for s in args.seeds.split(",")]:
            todo = {n: o for n, o in variants.items() if not any((r["variant"], r["seed"]) == (n, seed) for r in rows)}
            if not todo:
                continue
            seeded = replace(cfg, seed=seed)
            teacher, fp32_times, _ = train_teacher(seeded, data, Normaliser(data.mean, data.std))
            for name, options in tqdm(todo.items(), desc=f"seed {seed}", unit="variant"):
                variant = replace(seeded, method="qat" if options is None else "divqat", method_options=options or {})
                if args.runs_dir:
                    variant = replace(variant, name=f"{variant.dataset}-{variant.model}-{names.get(name, name)}-s{seed}")
                runs = Path(args.runs_dir) if args.runs_dir else None
                rows.append({"variant": name, "options": options, "seed": seed, **measure_variant(variant, teacher.eval(), data, Path(scratch), runs, fp32_times)})
                tuning_ratios(rows)
                out.write_text(json.dumps({"rows": rows}, indent=1))
    tuning_ratios(rows)
    out.write_text(json.dumps({"rows": rows}, indent=1))
    print(markdown(rows))


if __name__ == "__main__":
    main()
