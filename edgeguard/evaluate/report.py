"""Render grid results: data first (JSON), then a markdown table and PNG plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("fidelity", "surrogate_accuracy", "victim_accuracy", "perturbation_l1")


def aggregate(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds for each (victim, defense, source, labels, budget)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        groups[(c["victim"], c["defense"], c["source"], c["labels"], c["budget"])].append(c)
    rows = []
    for (victim, defense, source, labels, budget), members in sorted(groups.items()):
        row = {"victim": victim, "defense": defense, "source": source, "labels": labels, "budget": budget, "seeds": len(members)}
        for m in METRICS:
            values = np.array([c[m] for c in members])
            row[m] = float(values.mean())
            row[m + "_std"] = float(values.std())
        rows.append(row)
    return rows


def summarize_victims(victims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per training method: int8 ONNX accuracy, benign-shift accuracy, divergence on the transfer set."""
    by: dict[str, list[dict]] = defaultdict(list)
    for v in victims:
        by[v["victim"]].append(v)
    out = []
    for name, runs in by.items():
        def stat(get):
            values = np.array([get(r) for r in runs])
            return float(values.mean()), float(values.std())

        row = {"victim": name, "seeds": len(runs), "accuracy": stat(lambda r: r["int8"]["int8_onnx_accuracy"])}
        for shift in runs[0]["int8"]["shifted_accuracy"]:
            row[shift] = stat(lambda r: r["int8"]["shifted_accuracy"][shift])
        for split in ("test", "transfer"):
            for k in ("kl", "js", "top1_agreement", "confidence"):
                row[f"{split}_{k}"] = stat(lambda r: r["int8"][split][k])
        row["seconds_per_epoch"] = stat(lambda r: r["seconds_per_epoch"][r["method"]])
        out.append(row)
    return out


def _pm(mean: float, std: float, pct: bool = True) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if pct else f"{mean:.3f} ± {std:.3f}"


def markdown(victims: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    lines = ["### Victims (int8 ONNX in onnxruntime; mean ± std over seeds)", ""]
    if victims:
        shifts = [k for k in victims[0] if k.startswith(("noise", "translate", "rotate"))]
        lines.append("| victim | accuracy % | " + " | ".join(f"{s} %" for s in shifts) + " | transfer KL | transfer top-1 = teacher % | s/epoch |")
        lines.append("|---" * (5 + len(shifts)) + "|")
        for v in victims:
            lines.append(
                f"| {v['victim']} | {_pm(*v['accuracy'])} | " + " | ".join(_pm(*v[s]) for s in shifts)
                + f" | {_pm(*v['transfer_kl'], pct=False)} | {_pm(*v['transfer_top1_agreement'])} | {v['seconds_per_epoch'][0]:.2f} |"
            )
    lines += ["", "### Thieves (Knockoff, random sampling; fidelity = % test inputs where the copy agrees with the served victim)", ""]
    lines.append("| victim | defense | queries from | labels | budget | fidelity % | surrogate acc % | victim acc % | L1 perturbation |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {r['victim']} | `{r['defense']}` | {r['source']} | {r['labels']} | {r['budget']} | {_pm(r['fidelity'], r['fidelity_std'])} "
            f"| {_pm(r['surrogate_accuracy'], r['surrogate_accuracy_std'])} | {_pm(r['victim_accuracy'], r['victim_accuracy_std'])} "
            f"| {r['perturbation_l1']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Fidelity vs budget: one panel per (query source, labels), one line per victim + defense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["source"], r["labels"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, (source, labels) in zip(axes[0], panels):
        lines: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if (r["source"], r["labels"]) == (source, labels):
                lines[f"{r['victim']} + {r['defense'].split('(')[0]}"].append(r)
        for name, pts in sorted(lines.items()):
            pts.sort(key=lambda r: r["budget"])
            ax.errorbar([p["budget"] for p in pts], [100 * p["fidelity"] for p in pts], yerr=[100 * p["fidelity_std"] for p in pts], marker="o", capsize=3, label=name)
        ax.set_title(f"{source} queries, {labels} labels")
        ax.set_xlabel("queries")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fidelity %")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
