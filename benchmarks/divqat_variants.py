"""DivQAT's options side by side: honest accuracy and what a natural-image thief gets, per variant.

Regenerates the table of docs/divqat.md ("Why these defaults"). Each seed's fp32 teacher is
trained once and shared by every variant (`train_teacher`, as `train_run` does, so the row with the
defaults equals the grid's DivQAT victims); each variant's student is `train_student`, converted
to true int8, exported to ONNX and measured in onnxruntime. The thief is the grid's: Knockoff with
500 natural-patch queries, 250 steps, its seed the victim's.

    python benchmarks/divqat_variants.py                       # the default variant list, seeds 0-2
    python benchmarks/divqat_variants.py --variants '{"lam2 m4": {"lam": 2, "margin": 4}}' --seeds 0
    python benchmarks/divqat_variants.py --model lenet --variants '{"plain QAT": null, "defaults": {}}'
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

from edgeguard.attacks.sources import query_set
from edgeguard.attacks.surrogate import train_surrogate
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
from edgeguard.train.run import TrainConfig, train_student, train_teacher

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


def measure_variant(cfg: TrainConfig, teacher: torch.nn.Module, data, scratch: Path) -> dict[str, float]:
    norm = Normaliser(data.mean, data.std)  # as `train_run` trains
    qat, _ = train_student(cfg, teacher, data.train, norm)
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
    queries = query_set("natural", data, 500, cfg.seed)
    answers = served(queries)
    for soft in (True, False):
        thief = train_surrogate(queries, answers, soft, len(data.classes), steps=250, seed=cfg.seed)
        row["fidelity_soft" if soft else "fidelity_argmax"] = agreement(test, thief.predict(data.test.x))
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | n | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        cells = [f"{100 * np.mean([r[c] for r in mine]):.1f} ± {100 * np.std([r[c] for r in mine]):.1f}" for c in COLUMNS]
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", help="JSON {name: DivQAT options or null for plain QAT}; default: the docs' list")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--model", default="small-cnn", help="the victim architecture (the thief stays small-cnn)")
    parser.add_argument("--out", default="benchmarks/results/divqat-variants.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = json.loads(args.variants) if args.variants else VARIANTS
    cfg = TrainConfig(method="divqat", model=args.model)
    data = load_dataset(cfg.dataset)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in [int(s) for s in args.seeds.split(",")]:
            seeded = replace(cfg, seed=seed)
            teacher, _ = train_teacher(seeded, data, Normaliser(data.mean, data.std))
            for name, options in tqdm(variants.items(), desc=f"seed {seed}", unit="variant"):
                variant = replace(seeded, method="qat" if options is None else "divqat", method_options=options or {})
                rows.append({"variant": name, "options": options, "seed": seed, **measure_variant(variant, teacher.eval(), data, Path(scratch))})
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=1))
    print(markdown(rows))


if __name__ == "__main__":
    main()
