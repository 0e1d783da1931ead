"""Render grid results: data first (JSON), then a markdown table and PNG plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.attacks.thieves import POOLED, THIEVES, TUNING_THIEF
from edgeguard.files import atomic_write_bytes, atomic_write_json

BASELINE = "qat"  # the victim every other is compared with: plain QAT, trained like the others
SHIFTS = ("noise", "translate", "rotate")  # the benign shifts export measures, by name prefix
METRICS = ("fidelity", "surrogate_accuracy", "victim_accuracy", "perturbation_l1")
# the report's order of attacks, and each one's table heading
ATTACKS = {
    "knockoff": "Knockoff, random sampling",
    "knockoff-adaptive": "Knockoff, adaptive sampling (gradient bandit over the source photos)",
    "jbda": "JBDA (10 pool seeds per class, then Jacobian augmentation)",
}


def aggregate(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds for each (attack, thief, victim, defense, source, labels, budget).

    Rows stored before thieves had names are the tuning thief's; each row says its side."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        thief = c.get("thief", TUNING_THIEF)
        groups[(list(ATTACKS).index(c["attack"]), list(THIEVES).index(thief), c["victim"], c["defense"], c["source"], c["labels"], c["budget"])].append(c)
    rows = []
    for (attack, thief, victim, defense, source, labels, budget), members in sorted(groups.items()):
        name = list(THIEVES)[thief]
        row = {"attack": list(ATTACKS)[attack], "thief": name, "side": THIEVES[name].side, "victim": victim, "defense": defense, "source": source, "labels": labels, "budget": budget, "seeds": len(members)}
        for m in METRICS:
            values = np.array([c[m] for c in members])
            row[m] = float(values.mean())
            row[m + "_std"] = float(values.std())
        rows.append(row)
    return rows


def summarize_victims(victims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per training method, from what export measured on each int8 file: accuracy, benign-shift
    accuracy, divergence from the teacher on the test split and the transfer set."""
    by: dict[str, list[dict]] = defaultdict(list)
    for v in victims:
        by[v["victim"]].append(v)
    out = []
    for name, runs in by.items():
        def stat(get):
            values = np.array([get(r) for r in runs])
            return float(values.mean()), float(values.std())

        row = {"victim": name, "seeds": len(runs), "accuracy": stat(lambda r: r["verified"]["accuracy"])}
        for shift in runs[0]["verified"]["shifted_accuracy"]:
            row[shift] = stat(lambda r: r["verified"]["shifted_accuracy"][shift])
        for split in ("test", "transfer"):
            for k in ("kl", "js", "top1_agreement", "confidence"):
                row[f"{split}_{k}"] = stat(lambda r: r["verified"]["teacher"][split][k])
        row["seconds_per_epoch"] = stat(lambda r: r["seconds_per_epoch"][r["method"]])
        out.append(row)
    return out


def honest_cost(victims: list[dict[str, Any]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Each other victim's seed-mean accuracy, clean and under each benign shift, minus the
    baseline's, in points: the other half of DivQAT's bar (what it costs honest users)."""
    base = next((v for v in victims if v["victim"] == baseline), None)
    if base is None:
        return []
    keys = ["accuracy", *(k for k in base if k.startswith(SHIFTS))]
    return [{"victim": v["victim"], **{k: 100 * (v[k][0] - base[k][0]) for k in keys}} for v in victims if v["victim"] != baseline]


def _pm(mean: float, std: float, pct: bool = True) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if pct else f"{mean:.3f} ± {std:.3f}"


def markdown(victims: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    lines = ["### Victims (int8 ONNX in onnxruntime; mean ± std over seeds)", ""]
    if victims:
        shifts = [k for k in victims[0] if k.startswith(SHIFTS)]
        lines.append("| victim | accuracy % | " + " | ".join(f"{s} %" for s in shifts) + " | transfer KL | transfer top-1 = teacher % | s/epoch |")
        lines.append("|---" * (5 + len(shifts)) + "|")
        for v in victims:
            lines.append(
                f"| {v['victim']} | {_pm(*v['accuracy'])} | " + " | ".join(_pm(*v[s]) for s in shifts)
                + f" | {_pm(*v['transfer_kl'], pct=False)} | {_pm(*v['transfer_top1_agreement'])} | {v['seconds_per_epoch'][0]:.2f} |"
            )
        costs = honest_cost(victims)
        if costs:
            lines += ["", f"Honest cost: seed-mean accuracy minus `{BASELINE}`'s, points", ""]
            lines += ["| victim | accuracy | " + " | ".join(shifts) + " |", "|---" * (2 + len(shifts)) + "|"]
            lines += [f"| {c['victim']} | " + " | ".join(f"{c[k]:+.2f}" for k in ["accuracy", *shifts]) + " |" for c in costs]
    heldout = [r for r in rows if r["thief"] != TUNING_THIEF]
    if heldout:
        pools = pooled(heldout)
        lines += ["", "### Held-out thieves (no default was chosen on them: attacks/thieves.py)", ""]
        lines += _ratio_table(against_baseline(pools))
        lines += ["", *_heldout_table(heldout + pools)]
    lines += ["", "### Tuning-side thieves (DivQAT's defaults were chosen on the natural-image Knockoff thief)"]
    lines += ["", "Fidelity = % test inputs where the copy agrees with the served victim."]
    for attack, title in ATTACKS.items():
        lines += _thief_table(title, [r for r in rows if r["attack"] == attack and r["thief"] == TUNING_THIEF])
    return "\n".join(lines) + "\n"


def pooled(heldout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (victim, defense, labels, budget): the mean over held-out thieves of their seed
    means (std: across thieves), thief "pooled". Controls (`Thief.control`) stay out of it."""
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in (r for r in heldout if r["thief"] in POOLED):
        by[(r["victim"], r["defense"], r["labels"], r["budget"])].append(r)
    out = []
    for (victim, defense, labels, budget), members in by.items():
        row = {"thief": "pooled", "victim": victim, "defense": defense, "labels": labels, "budget": budget, "seeds": min(m["seeds"] for m in members), "thieves": len(members)}
        for m in METRICS:
            values = np.array([r[m] for r in members])
            row[m], row[m + "_std"] = float(values.mean()), float(values.std())
        out.append(row)
    return out


def against_baseline(pooled_rows: list[dict[str, Any]], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Each other victim's pooled held-out fidelity over the baseline's (plain QAT), per (defense,
    labels, budget): the ratio DivQAT's bar (issue 15) is stated in, read off the grid itself."""
    base = {(r["defense"], r["labels"], r["budget"]): r for r in pooled_rows if r["victim"] == baseline}
    out = []
    for r in pooled_rows:
        b = base.get((r["defense"], r["labels"], r["budget"]))
        if r["victim"] != baseline and b is not None and b["fidelity"] > 0:
            out.append({
                **{k: r[k] for k in ("victim", "defense", "labels", "budget", "thieves")}, "seeds": min(r["seeds"], b["seeds"]),
                "baseline": b["fidelity"], "fidelity": r["fidelity"], "ratio": r["fidelity"] / b["fidelity"],
            })  # fmt: skip
    return out


def _ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [f"Pooled over the held-out thieves (controls left out), each victim against `{BASELINE}`:", ""]
    lines += ["| victim | defense | labels | budget | thieves | seeds | fidelity % | " + BASELINE + " % | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['victim']} | `{r['defense']}` | {r['labels']} | {r['budget']} | {r['thieves']} | {r['seeds']} "
            f"| {100 * r['fidelity']:.1f} | {100 * r['baseline']:.1f} | {r['ratio']:.2f}x |"
        )
    return lines


def _heldout_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| thief | victim | defense | labels | budget | seeds | fidelity % | surrogate acc % |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['thief']} | {r['victim']} | `{r['defense']}` | {r['labels']} | {r['budget']} | {r['seeds']} "
            f"| {_pm(r['fidelity'], r['fidelity_std'])} | {_pm(r['surrogate_accuracy'], r['surrogate_accuracy_std'])} |"
        )
    return lines


def _thief_table(title: str, rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", f"#### {title}", ""]
    lines.append("| victim | defense | queries from | labels | budget | fidelity % | surrogate acc % | victim acc % | L1 perturbation |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {r['victim']} | `{r['defense']}` | {r['source']} | {r['labels']} | {r['budget']} | {_pm(r['fidelity'], r['fidelity_std'])} "
            f"| {_pm(r['surrogate_accuracy'], r['surrogate_accuracy_std'])} | {_pm(r['victim_accuracy'], r['victim_accuracy_std'])} "
            f"| {r['perturbation_l1']:.3f} |"
        )
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """The tuning side's fidelity vs budget: a column per thief (attack + query source), a row per label kind (soft,
    argmax), a line per victim + defense (a single point where an attack ran at one budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["thief"] == TUNING_THIEF]
    thieves = list(dict.fromkeys((r["attack"], r["source"]) for r in rows))  # rows come in report order
    kinds = [k for k in ("soft", "argmax") if any(r["labels"] == k for r in rows)]
    fig, axes = plt.subplots(len(kinds), len(thieves), figsize=(3.8 * len(thieves), 3.3 * len(kinds)), sharey=True, squeeze=False)
    for row_axes, labels in zip(axes, kinds):
        for ax, (attack, source) in zip(row_axes, thieves):
            lines: dict[str, list[dict]] = defaultdict(list)
            for r in rows:
                if (r["attack"], r["source"], r["labels"]) == (attack, source, labels):
                    lines[f"{r['victim']} + {r['defense'].split('(')[0]}"].append(r)
            for name, pts in sorted(lines.items()):
                pts.sort(key=lambda r: r["budget"])
                ax.errorbar([p["budget"] for p in pts], [100 * p["fidelity"] for p in pts], yerr=[100 * p["fidelity_std"] for p in pts], marker="o", capsize=3, label=name)
            ax.set_title(f"{attack}, {source} queries, {labels} labels", fontsize=9)
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("fidelity %")
    for ax in axes[-1]:
        ax.set_xlabel("queries")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_report(result: dict[str, Any], folder: Path) -> str:
    """A grid's result (`run_grid`) aggregated into results.json, then rendered: results.md and
    fidelity.png beside it. Returns the markdown."""
    rows, victims = aggregate(result["cells"]), summarize_victims(result["victims"])
    text = markdown(victims, rows)
    heldout = against_baseline(pooled([r for r in rows if r["thief"] != TUNING_THIEF]))
    atomic_write_json(folder / "results.json", {"victims": victims, "honest_cost": honest_cost(victims), "heldout_pooled": heldout, "cells": rows})
    atomic_write_bytes(folder / "results.md", text.encode())
    plot(rows, folder / "fidelity.png")
    return text
