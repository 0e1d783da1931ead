"""The benchmark as a picture: p50 latency against batch size, one line per runtime and precision.

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
    fig.suptitle(f"{result['export']}: {m['processor']}, {m['cpu_count']} CPUs, {m['machine']}", fontsize=10)
    fig.tight_layout()
    out = atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return out
