"""Every DivQAT variant docs/divqat.md lists, its tuning side and held-out side in one table.

Issue 15 asks that no variant be shown by the thieves it was chosen on alone. The two sides come from
different scripts, so this one joins them, computing both the same way: the mean soft-label
fidelity of a variant's thieves over the seeds both sides have, over the same mean of plain QAT's
(a ratio of means: what `heldout_thieves.py` and the grid pool).

- Tuning side: `divqat_variants.py`'s rows (results/divqat-issue15.json), the three tuning thieves
  every row has (knockoff, probe-fields, textures), and the four-thief ratio (with `tempered`)
  where the variant's rows have it.
- Held-out side: `heldout_thieves.py`'s cells, the seven held-out thieves every variant was robbed
  by (the five costlier ones only ever robbed the default), from results/heldout (victims trained
  while weights used the fused fake-quant) or results/heldout-fq (after; docs/getting-started.md,
  "The int8 scheme").
- Honest cost: the tuning rows' int8 ONNX accuracy, clean and under each shift, minus plain QAT's,
  points, on the same seeds.

    python benchmarks/both_sides.py          # prints the markdown table, writes results/divqat-both-sides.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
TUNING = ("knockoff", "probe-fields", "textures")  # the tuning thieves every divqat_variants row has
TEMPERED = "tempered"  # the fourth, added with the tempered signature
SEVEN = ("other-photos", "lenet", "smoothing", "temperature", "faces", "small-crops", "terrain")
BUDGETS = (500, 1000)
HONEST = ("accuracy", "noise_0.1", "translate_2px", "rotate_10deg")
BEFORE, AFTER = "heldout", "heldout-fq"  # cells folders: int8 scheme before and after the fix


@dataclass(frozen=True)
class Variant:
    label: str  # as docs/divqat.md writes it
    tuning: str  # its name in divqat-issue15.json
    cells: str  # BEFORE or AFTER
    victim: str  # its victim name in those cells


VARIANTS = [
    Variant("`away`, lam 2 (the first default)", "away lam 2", BEFORE, "divqat"),
    Variant("`uniform`, lam 1", "uniform lam 1", AFTER, "div-uniform1"),
    Variant("`fixed`, lam 1", "fixed lam 1", AFTER, "div-fixed1"),
    Variant("`fixed`, lam 1, anchor 6", "fixed lam 1, anchor 6", AFTER, "div-fixed1a6"),
    Variant("`fixed`, lam 0.3", "fixed lam 0.3", BEFORE, "div-fixed03"),
    Variant("`fixed`, lam 0.1", "fixed lam 0.1", BEFORE, "div-fixed01"),
    Variant("`away` lam 2, sharpen 1", "sharpen 1", AFTER, "div-sharpen1"),
    Variant("`away` lam 2, sharpen 0.3", "sharpen 0.3", BEFORE, "div-sharpen03"),
    Variant("signature m 0.5, lam 0.3", "signature lam 0.3", AFTER, "div-sig05l03"),
    Variant("signature m 0.5, lam 1", "signature lam 1", AFTER, "div-sig05l1"),
    Variant("signature m 0.9, lam 0.3", "signature 0.9 lam 0.3", AFTER, "div-sig09l03"),
    Variant("signature m 0.98, lam 0.3 (T 1)", "signature 0.98 lam 0.3", BEFORE, "div-sig98"),
    Variant("signature T 1, lam 0.6", "signature lam 0.6", BEFORE, "div-sig98l06"),
    Variant("signature T 2, lam 0.3", "signature T2", BEFORE, "div-sigT2"),
    Variant("signature T 2, lam 1.2", "signature T2 lam 1.2", BEFORE, "div-sigT2l12"),
    Variant("signature T 2, lam 1.2, anchor 10", "signature T2 lam 1.2 anchor 10", BEFORE, "div-sigT2l12a10"),
    Variant("signature T 4, lam 4.8", "signature T4 lam 4.8", BEFORE, "div-sigT4l48"),
    Variant("**signature T 2, lam 2.4 (the default)**", "signature T2 lam 2.4", BEFORE, "div-sigT2l24"),
    Variant("**the default, int8 scheme fixed**", "signature T2 lam 2.4", AFTER, "divqat"),
]


def _ratio(mine: list[float], base: list[float]) -> float | None:
    return float(np.mean(mine) / np.mean(base)) if mine and base else None


def tuning_side(rows: list[dict[str, Any]], name: str, seeds: list[int]) -> dict[str, Any]:
    by = {(r["variant"], r["seed"]): r for r in rows}
    mine, base = [by[(name, s)] for s in seeds], [by[("plain QAT", s)] for s in seeds]
    out: dict[str, Any] = {}
    for b in BUDGETS:
        three = [f"fid_{t}_{b}" for t in TUNING]
        out[f"tuning_{b}"] = _ratio([r[k] for r in mine for k in three], [r[k] for r in base for k in three])
        four = [*three, f"fid_{TEMPERED}_{b}"]
        has_four = all(k in r for r in mine + base for k in four)
        out[f"tuning4_{b}"] = _ratio([r[k] for r in mine for k in four], [r[k] for r in base for k in four]) if has_four else None
    for k in HONEST:
        out[k] = 100 * float(np.mean([r[k] for r in mine]) - np.mean([r[k] for r in base]))
    return out


def soft_fidelity(cells: list[dict[str, Any]]) -> dict[tuple, float]:
    """(victim, thief, budget, seed) -> fidelity of the held-out cells, soft labels, no defense."""
    return {(c["victim"], c["thief"], c["budget"], c["seed"]): c["fidelity"] for c in cells if c["labels"] == "soft" and c["defense"] == "none" and "thief" in c}


def seeds_of(fid: dict[tuple, float], victim: str) -> set[int]:
    """The seeds on which every one of the seven thieves robbed the victim at every budget."""
    seeds = {s for v, _, _, s in fid if v == victim}
    return {s for s in seeds if all((victim, t, b, s) in fid for t in SEVEN for b in BUDGETS)}


def heldout_side(fid: dict[tuple, float], victim: str, seeds: list[int]) -> dict[str, Any]:
    """`seeds` are ones both the victim and plain QAT have every cell on (`seeds_of`)."""
    out: dict[str, Any] = {}
    for b in BUDGETS:
        out[f"heldout_{b}"] = _ratio([fid[(victim, t, b, s)] for t in SEVEN for s in seeds], [fid[("qat", t, b, s)] for t in SEVEN for s in seeds])
        per = {t: _ratio([fid[(victim, t, b, s)] for s in seeds], [fid[("qat", t, b, s)] for s in seeds]) for t in SEVEN}
        out[f"worst_{b}"] = max(per, key=per.__getitem__)
    return out


def table(results: list[dict[str, Any]]) -> str:
    def r(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}x"

    lines = [
        "| variant | seeds | tuning @500 / @1000 (3 thieves) | tuning @500 / @1000 (4 thieves) | held-out @500 / @1000 (7 thieves) | worst held-out @500 | int8 scheme (held-out victims) | acc / noise / +-2 px / +-10° vs QAT (tuning rows) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in results:
        honest = " / ".join(f"{x[k]:+.2f}" for k in HONEST)
        lines.append(
            f"| {x['variant']} | {','.join(map(str, x['seeds']))} | {r(x['tuning_500'])} / {r(x['tuning_1000'])} | {r(x['tuning4_500'])} / {r(x['tuning4_1000'])} "
            f"| {r(x['heldout_500'])} / {r(x['heldout_1000'])} | {x['worst_500']} | {'fixed' if x['cells'] == AFTER else 'before the fix'} | {honest} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "divqat-both-sides.json"))
    args = parser.parse_args()
    rows = json.loads((RESULTS / "divqat-issue15.json").read_text())["rows"]
    fid = {name: soft_fidelity([json.loads(line) for line in (RESULTS / name / "cells.jsonl").read_text().splitlines() if line]) for name in (BEFORE, AFTER)}
    results, missing = [], []
    for v in VARIANTS:
        tuned = {r["seed"] for r in rows if r["variant"] == v.tuning} & {r["seed"] for r in rows if r["variant"] == "plain QAT"}
        seeds = sorted(tuned & seeds_of(fid[v.cells], v.victim) & seeds_of(fid[v.cells], "qat"))
        if not seeds:
            missing.append(v.label)
            continue
        results.append({"variant": v.label, "tuning_name": v.tuning, "victim": v.victim, "cells": v.cells, "seeds": seeds,
                        **tuning_side(rows, v.tuning, seeds), **heldout_side(fid[v.cells], v.victim, seeds)})  # fmt: skip
    Path(args.out).write_text(json.dumps({"variants": results, "not_measured_on_both_sides": missing}, indent=1))
    print(table(results))
    if missing:
        print("\nnot yet on both sides:", ", ".join(missing))


if __name__ == "__main__":
    main()
