"""DivQAT vs plain QAT against the held-out thieves (edgeguard/attacks/thieves.py), beside the tuning thief.

The grid restricted to what issue 15's bar asks: digits, small-cnn, victims qat and divqat (the
name its first cells were stored under: DivQAT's first defaults, `--probe-target away --lam 2`;
today's defaults are measured as a --variant, e.g. div-sig98), no defense stack, natural-image queries, budgets 500 and 1,000. Victims are the
grid's (`prepare_victim`: trained once per seed and reused from --runs-dir / --export-dir), cells
are stored as they finish in --cells (resumable: run it again per seed or per label kind). The
summary compares, per thief, labels and budget, the seed means of the two victims (ratio =
DivQAT / QAT fidelity) and pools the held-out thieves (controls left out), next to the honest
cost from each export's `verified` numbers.

    python benchmarks/heldout_thieves.py --seeds 0 --labels soft      # then --seeds 1, 2; --labels argmax
    python benchmarks/heldout_thieves.py --summary-only               # the table from stored cells
    python benchmarks/heldout_thieves.py --seeds 0 --variants '{"div-uniform1": {"target": "uniform", "lam": 1}}'

--variants adds DivQAT victims with other options (their runs are reused from --runs-dir when
`benchmarks/divqat_variants.py --runs-dir` saved them under the same name); each is summarised
against plain QAT as the defaults are, under "variants" in --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.attacks.thieves import HELD_OUT_THIEVES, POOLED, THIEVES, TUNING_THIEF
from edgeguard.evaluate.grid import GridSpec, VictimRecipe, prepare_victim, run_grid
from edgeguard.evaluate.store import CellStore

SHIFTS = ("noise_0.1", "translate_2px", "rotate_10deg")
FIRST_DEFAULTS = {"target": "away", "lam": 2.0}  # the stored `divqat` victim's options


def summary(cells: list[dict[str, Any]], victims: dict[str, list[dict]], victim: str = "divqat") -> dict[str, Any]:
    """Per (thief, labels, budget) and pooled: each victim's mean fidelity over seeds, the ratio.

    Pooled = mean over held-out thieves (controls and thieves run on fewer seeds left out) of
    DivQAT's fidelity, over the same mean of QAT's. `victim` names the DivQAT victim (the defaults,
    or a --variants one); QAT's seeds are those the victim has, so a variant run on fewer seeds is
    compared on the same ones."""
    by: dict[tuple, dict[str, dict[int, float]]] = {}
    for c in cells:
        key = (c.get("thief", TUNING_THIEF), c["labels"], c["budget"])
        by.setdefault(key, {}).setdefault(c["victim"], {})[c["seed"]] = c["fidelity"]
    rows = []
    for (thief, labels, budget), fid in sorted(by.items(), key=lambda kv: (list(THIEVES).index(kv[0][0]), kv[0][1], kv[0][2])):
        if {"qat", victim} <= fid.keys():
            seeds = sorted(fid["qat"].keys() & fid[victim].keys())
            if not seeds:
                continue
            q, d = [fid["qat"][s] for s in seeds], [fid[victim][s] for s in seeds]
            qat, div = np.mean(q), np.mean(d)
            rows.append({
                "thief": thief, "side": THIEVES[thief].side, "control": THIEVES[thief].control, "labels": labels, "budget": budget,
                "seeds": len(seeds), "qat": float(qat), "divqat": float(div), "ratio": float(div / qat),
                "qat_std": float(np.std(q)), "divqat_std": float(np.std(d)),
            })  # fmt: skip
    pooled = []
    full = max((r["seeds"] for r in rows), default=0)  # a thief measured on fewer seeds is shown, not pooled
    for labels, budget in sorted({(r["labels"], r["budget"]) for r in rows}):
        mine = [r for r in rows if (r["labels"], r["budget"]) == (labels, budget) and r["thief"] in POOLED and r["seeds"] == full]
        if mine:
            qat, div = np.mean([r["qat"] for r in mine]), np.mean([r["divqat"] for r in mine])
            worst = max(mine, key=lambda r: r["ratio"])
            pooled.append({"labels": labels, "budget": budget, "thieves": len(mine), "qat": float(qat), "divqat": float(div), "ratio": float(div / qat), "worst_thief": worst["thief"], "worst_ratio": worst["ratio"]})
    honest = {}
    for name, runs in victims.items():
        if name not in ("qat", victim):
            continue
        honest[name] = {"seeds": [r["seed"] for r in runs], "accuracy": float(np.mean([r["verified"]["accuracy"] for r in runs]))}
        honest[name].update({s: float(np.mean([r["verified"]["shifted_accuracy"][s] for r in runs])) for s in SHIFTS})
        honest[name]["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"][r["method"]] for r in runs]))
    return {"rows": rows, "pooled": pooled, "honest": honest}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| thief | side | labels | queries | seeds | QAT fidelity % | DivQAT fidelity % | ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        side = r["side"] + (" (control)" if r["control"] else "")
        lines.append(
            f"| {r['thief']} | {side} | {r['labels']} | {r['budget']} | {r['seeds']} | {100 * r['qat']:.1f} ± {100 * r['qat_std']:.1f} "
            f"| {100 * r['divqat']:.1f} ± {100 * r['divqat_std']:.1f} | {r['ratio']:.2f}x |"
        )
    lines += ["", "| pooled held-out | queries | thieves | QAT % | DivQAT % | ratio | worst thief (ratio) |", "|---|---|---|---|---|---|---|"]
    for p in result["pooled"]:
        lines.append(f"| {p['labels']} | {p['budget']} | {p['thieves']} | {100 * p['qat']:.1f} | {100 * p['divqat']:.1f} | {p['ratio']:.2f}x | {p['worst_thief']} ({p['worst_ratio']:.2f}x) |")
    lines += ["", "| victim | seeds | int8 acc % | " + " | ".join(f"{s} %" for s in SHIFTS) + " | s/epoch |", "|---" * (4 + len(SHIFTS)) + "|"]
    for name, h in result["honest"].items():
        shifts = " | ".join(f"{100 * h[s]:.2f}" for s in SHIFTS)
        lines.append(f"| {name} | {len(h['seeds'])} | {100 * h['accuracy']:.2f} | {shifts} | {h['seconds_per_epoch']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--labels", default="soft", help="soft, argmax or soft,argmax")
    parser.add_argument("--thieves", default=",".join(HELD_OUT_THIEVES), help="held-out thieves (the tuning thief always runs)")
    parser.add_argument("--budgets", default="500,1000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--cells", default="benchmarks/results/heldout", help="folder of the resumable cells.jsonl")
    parser.add_argument("--out", default="benchmarks/results/divqat-heldout.json")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--variants", default="{}", help="JSON {victim name: DivQAT options}: more DivQAT victims beside the defaults")
    parser.add_argument("--no-first-defaults", action="store_true", help="rob only plain QAT and the --variants, not the stored `divqat` victim")
    args = parser.parse_args()
    variants = json.loads(args.variants)
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [int(b) for b in args.budgets.split(",")]
    first = [] if args.no_first_defaults else [VictimRecipe("divqat", "divqat", FIRST_DEFAULTS)]
    spec = GridSpec(
        attacks=["knockoff"], sources=["natural"], defenses=["none"], labels=args.labels.split(","), budgets=budgets,
        heldout_budgets=budgets, seeds=seeds, thieves=args.thieves.split(","), workers=args.workers,
        victims=[VictimRecipe("qat", "qat"), *first, *(VictimRecipe(n, "divqat", o) for n, o in variants.items())],
    )  # fmt: skip
    folder = Path(args.cells)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not args.summary_only:
        run_grid(spec, folder, Path(args.runs_dir), Path(args.export_dir))
    victims: dict[str, list[dict]] = {}
    rows = CellStore(folder / "cells.jsonl").rows
    for recipe in spec.victims:
        for seed in sorted({c["seed"] for c in rows if c["victim"] == recipe.name}):
            _, record = prepare_victim(spec, recipe, seed, Path(args.runs_dir), Path(args.export_dir))
            victims.setdefault(recipe.name, []).append({"seed": seed, **record})
    out = Path(args.out)
    stored = json.loads(out.read_text()) if out.exists() else {}
    # without the first defaults' victim this call has not loaded its runs: keep its stored summary
    result = {k: stored[k] for k in ("rows", "pooled", "honest")} if not first and stored else summary(rows, victims)
    result["variants"] = {**stored.get("variants", {}), **{name: summary(rows, victims, name) for name in variants}}
    result["seconds_this_call"] = time.perf_counter() - start
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    for name in variants:
        print(f"\n#### {name}: {variants[name]}\n")
        print(markdown(result["variants"][name]))


if __name__ == "__main__":
    main()
