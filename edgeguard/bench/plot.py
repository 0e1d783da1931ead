"""The benchmarks as pictures: p50 latency against batch size, one line per runtime and precision; and
for the real-size models, where int8 starts to pay and how close each contender comes to the CPU's peak.

matplotlib is imported here only (the train extra has it; a device need not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeguard.files import atomic_write


def plot_latency(result: dict[str, Any], path: str | Path) -> Path:
    """One panel per thread count, log-log: the slope shows how a runtime amortises per-call cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in result["rows"]})
    fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4.2), sharey=True, squeeze=False)
    colours = {}
    for ax, n in zip(axes[0], threads):
        lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for r in result["rows"]:
            if r["threads"] == n:
                lines.setdefault((r["runtime"], r["precision"]), []).append((r["batch"], r["p50_ms"]))
        for (runtime, precision), points in lines.items():
            colour = colours.setdefault(runtime, f"C{len(colours)}")
            batches, ms = zip(*sorted(points))
            ax.plot(batches, ms, "o-" if precision == "int8" else "s--", color=colour, label=f"{runtime} {precision}")
        ax.set(xscale="log", yscale="log", xlabel="batch size", title=f"{n} thread{'s' if n > 1 else ''}")
        ticks = sorted({r["batch"] for r in result["rows"]})
        ax.set_xticks(ticks, [str(b) for b in ticks])
        ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("p50 latency per call (ms)")
    axes[0][-1].legend(fontsize=8)
    m = result["machine"]
    return _save(fig, f"{result['export']}: {m['processor']}, {m['cpu_count']} CPUs, {m['machine']}", path)


def _save(fig: Any, title: str, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return out


def plot_real_size(results: dict[str, Any], path: str | Path) -> Path:
    """Left: int8/fp32 ORT p50 against MACs per image (1 thread, batch 1), where int8 starts to pay.
    Right: G MAC/s of every contender per model against the per-core peaks the bench reports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def cell(result: dict[str, Any], runtime: str, precision: str) -> dict[str, Any] | None:
        return next((r for r in result["rows"] if (r["runtime"], r["precision"], r["threads"], r["batch"]) == (runtime, precision, 1, 1)), None)

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for label, group in (("MobileNetV2 sizes", results.get("mobilenet_v2_sweep", {})), ("models", results["models"])):
        points = []
        for key, res in group.items():
            int8, fp32 = cell(res, "ORT", "int8"), cell(res, "ORT", "fp32")
            if int8 and fp32 and res["macs"].get("macs"):
                points.append((res["macs"]["macs"] / 1e6, int8["p50_ms"] / fp32["p50_ms"], f"{key}" if label == "models" else f"{key}px"))
        if points:
            x, y, names = zip(*sorted(points))
            left.plot(x, y, "o-" if label != "models" else "s", label=label)
            for xi, yi, n in zip(x, y, names):
                left.annotate(n, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.axhline(1.0, color="grey", lw=0.8)
    left.set(xscale="log", xlabel="M MACs per image", ylabel="int8 / fp32 p50 latency, ORT (below 1: int8 faster)", title="where int8 pays (1 thread, batch 1)")
    left.legend(fontsize=8)
    models = list(results["models"])
    runtimes = sorted({(r["runtime"], r["precision"]) for res in results["models"].values() for r in res["rows"]})
    width = 0.8 / max(1, len(runtimes))
    for i, (runtime, precision) in enumerate(runtimes):
        ys = [(cell(results["models"][m], runtime, precision) or {}).get("gmacs_per_s", 0) for m in models]
        right.bar([j + i * width for j in range(len(models))], ys, width, label=f"{runtime} {precision}")
    peak = next(iter(results["models"].values()))["peak"]
    for precision, style in (("int8", "-"), ("fp32", "--")):
        if peak.get(f"{precision}_gmacs_per_core"):
            right.axhline(peak[f"{precision}_gmacs_per_core"], color="black", ls=style, lw=0.8, label=f"{precision} peak per core ({peak['isa']})")
    right.set_xticks([j + 0.4 - width / 2 for j in range(len(models))], models, fontsize=7)
    right.set(ylabel="G MAC/s at p50 (1 thread, batch 1)", title="achieved rate vs the CPU's peak")
    right.legend(fontsize=6, ncol=2)
    m = results["machine_at_start"]
    return _save(fig, f"{m['processor']}, {m['cpu_count']} CPUs, load average {m['load_average_1_5_15_min']} (random weights)", path)
