"""On-device benchmarks of an export folder: latency, throughput, size, start-up, peak memory.

Every model of the folder (int8 and fp32; ONNX, and TFLite where its backend is installed) is timed
in the same run, and torch's own fp32 and int8 modules beside them when torch and the export's run
folder are there. Contenders are timed in turn, a slice each, so that whatever else the machine does
slows them alike: the headline numbers are ratios measured side by side (int8 / fp32, TFLite / ORT,
torch / ORT), not absolute times from different moments of a busy machine. `timing.machine()` records
what the run ran on. This module is device-side (numpy + the runtime): torch is imported only by
`edgeguard.bench.torch_side`, and only when asked for.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeguard.bench.macs import available as macs_available
from edgeguard.bench.macs import count_macs
from edgeguard.bench.peak import gemm_ceiling, peak
from edgeguard.bench.timing import interleaved, machine, percentiles_ms, time_calls
from edgeguard.errors import EdgeguardError
from edgeguard.files import atomic_write_bytes, atomic_write_json
from edgeguard.formats import DEFAULT, FORMATS
from edgeguard.manifest import Manifest, ModelEntry
from edgeguard.runtime import DeployedModel

Logits = Callable[[np.ndarray], np.ndarray]  # images (n, C, H, W) in [0, 1] -> logits
TORCH = "torch"  # the contenders that are torch modules, not model files (their runtime's short name too)


def runtime_name(format: str) -> str:
    """The short name ratios use: the format table's for a model file, "torch" for torch's modules."""
    return FORMATS[format].runtime if format in FORMATS else format


@dataclass(frozen=True)
class Contender:
    """One model on one runtime: `load(threads)` returns its logits function (loading is timed).

    A peer (another toolkit's int8 file of the same network, manifest extra.peers) carries its label,
    which stands for the runtime in rows and ratios ("ORT quantize_static").
    """

    format: str  # a format of edgeguard.formats, or TORCH
    precision: str
    file: str
    size_bytes: int
    load: Callable[[int], Logits]
    peer: str | None = None

    @property
    def runtime(self) -> str:
        return self.peer or runtime_name(self.format)

    @property
    def name(self) -> str:
        return f"{self.runtime} {self.precision}"


def deployed_loader(manifest: Manifest, folder: str | Path, entry: ModelEntry) -> Callable[[int], Logits]:
    """What a device runs: manifest-verified file, its runtime backend, normalisation included."""
    return lambda threads: DeployedModel.open(manifest, entry, folder, threads=threads).logits


def entries(manifest: Manifest) -> list[tuple[str | None, ModelEntry]]:
    """(label, entry) of every model file: the manifest's own (label None), then each peer file (another
    toolkit's int8 route for the same network, labelled by it)."""
    peers = [(p["label"], ModelEntry(**{k: v for k, v in p.items() if k != "label"})) for p in manifest.extra.get("peers", [])]
    return [(None, e) for e in manifest.models] + peers


def contenders(folder: str | Path, torch: bool | None = None) -> tuple[list[Contender], list[dict[str, Any]]]:
    """Every model file of the manifest, its peers, then torch's modules; and what was left out.

    torch=None: include torch when it is installed and its modules can be had; True: require them.
    """
    manifest = Manifest.load(folder)
    out = [Contender(e.format, e.precision, e.file, e.size_bytes, deployed_loader(manifest, folder, e), label) for label, e in entries(manifest)]
    if torch is False or (torch is None and importlib.util.find_spec("torch") is None):
        return out, []
    from edgeguard.bench.torch_side import torch_contenders  # torch side: imported only here

    try:
        return out + [Contender(TORCH, *row) for row in torch_contenders(manifest, folder)], []
    except EdgeguardError as e:
        if torch:
            raise
        return out, [{"file": "torch reference", "format": TORCH, "precision": "fp32, int8", "reason": str(e)}]


def bench_export(
    folder: str | Path, batches: tuple[int, ...] = (1, 8, 64), threads: tuple[int, ...] = (1, 0), runs: int = 200,
    warmup: int = 20, torch: bool | None = None, memory: bool = False, min_runs: int = 20,
) -> dict[str, Any]:  # fmt: skip
    """Time every contender of an export folder. threads 0 means all cores; batch b gets runs // b calls (at least min_runs).

    A contender whose runtime is not installed (e.g. TFLite without its package) is skipped and
    listed with the reason. memory=True also measures each one's peak RSS in a fresh process.
    """
    manifest = Manifest.load(folder)
    candidates, skipped = contenders(folder, torch)
    ready, startup = [], {}
    for c in candidates:
        try:
            startup[c.name] = time_calls(lambda c=c: c.load(1), runs=5, warmup=0)
        except (EdgeguardError, ImportError) as e:  # a backend whose package is missing, an unknown format
            skipped.append({"file": c.file, "format": c.format, "precision": c.precision, "reason": str(e)})
            continue
        ready.append(c)
    work = network_macs(folder, manifest)
    limit = peak()
    if macs_available():
        limit["measured_gemm_ceiling"] = gemm_ceiling()  # at the start of the run: the same load as what follows
    rng = np.random.default_rng(0)
    rows = []
    for n_threads in threads:
        n = n_threads or os.cpu_count() or 1
        models = {c.name: c.load(n) for c in ready}
        for batch in batches:
            x = rng.random((batch, *manifest.input_shape), dtype=np.float32)
            samples = interleaved({name: (lambda f=f, x=x: f(x)) for name, f in models.items()}, max(min_runs, runs // batch), warmup)
            for c in ready:
                p = percentiles_ms(samples[c.name])
                rows.append({
                    "runtime": c.runtime, "format": c.format, "precision": c.precision, "file": c.file, "peer": c.peer is not None,
                    "size_bytes": c.size_bytes, "threads": n, "batch": batch, **p,
                    "items_per_s": round(batch / (p["p50_ms"] / 1e3), 1),
                    "startup_ms_median": round(float(np.median(startup[c.name])) / 1e6, 2),
                    **throughput(work.get("macs"), batch, p["p50_ms"], n, limit.get(f"{c.precision}_gmacs_per_core")),
                })  # fmt: skip
    result = {
        "export": manifest.name, "machine": machine(), "peak": limit, "macs": work, "files": files(manifest),
        "rows": rows, "ratios": ratios(rows), "skipped": skipped,
    }  # fmt: skip
    if memory:
        from edgeguard.bench.memory import peak_memory

        result["memory"] = [peak_memory(folder, c.format, c.precision) for c in ready]
    return result


def network_macs(folder: str | Path, manifest: Manifest) -> dict[str, Any]:
    """MACs per image of the export's network, counted from its fp32 file of the default format (every file
    of an export holds the same network; each such file's own count is listed to show it)."""
    counted = [e for _, e in entries(manifest) if e.format == DEFAULT]
    if not counted or not macs_available():
        return {"macs": None, "reason": f"needs a {DEFAULT} file and the onnx package (the train extra)"}

    each = {e.file: count_macs(Path(folder) / e.file) for e in counted}
    source = next((e.file for e in counted if e.precision == "fp32"), counted[0].file)
    return {**each[source], "counted_from": source, "per_file": {f: c["macs"] for f, c in each.items()}}


def throughput(macs: int | None, batch: int, p50_ms: float, threads: int, peak_gmacs: float | None) -> dict[str, Any]:
    """Achieved G MAC/s at the p50, and its share of the per-core peak of the row's precision (per thread used)."""
    if not macs:
        return {}
    gmacs = macs * batch / (p50_ms / 1e3) / 1e9
    return {"gmacs_per_s": round(gmacs, 2), "share_of_peak_per_core": round(gmacs / threads / peak_gmacs, 3) if peak_gmacs else None}


def files(manifest: Manifest) -> dict[str, Any]:
    """What each file is (label, quantization) and what export measured on it (`verified`: agreement, accuracy)."""
    return {e.file: {"peer": label, "format": e.format, "precision": e.precision, "quantization": e.quantization, "verified": e.verified} for label, e in entries(manifest)}


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (threads, batch): int8 / fp32 on each runtime, each runtime / ORT at the same precision, and
    edgeguard's int8 file / each peer's (a peer's int8 / fp32 is against its format's fp32 file)."""
    by = {(r["runtime"], r["precision"], r["threads"], r["batch"]): r for r in rows}
    base = {r["runtime"]: runtime_name(r["format"]) for r in rows}
    peers = {r["runtime"] for r in rows if r.get("peer")}
    pairs = []
    for runtime, precision, n, b in by:
        own = base[runtime]
        if precision == "int8" and (own, "fp32", n, b) in by:
            pairs.append((f"int8/fp32 {runtime}", (runtime, "int8", n, b), (own, "fp32", n, b)))
        if runtime in peers:
            ours = own if (own, "int8", n, b) in by else "ORT"
            if (ours, "int8", n, b) in by:
                pairs.append((f"{ours} int8/{runtime}", (ours, "int8", n, b), (runtime, "int8", n, b)))
        elif runtime != "ORT" and ("ORT", precision, n, b) in by:
            pairs.append((f"{runtime}/ORT {precision}", (runtime, precision, n, b), ("ORT", precision, n, b)))
    out = []
    for name, num, den in sorted(pairs, key=lambda p: (p[1][2], p[1][3], p[0])):
        latency, size = by[num]["p50_ms"] / by[den]["p50_ms"], by[num]["size_bytes"] / by[den]["size_bytes"]
        out.append({"ratio": name, "threads": num[2], "batch": num[3], "latency_p50": round(latency, 3), "size": round(size, 3)})
    return out


def markdown(result: dict[str, Any]) -> str:
    """The ratios first (latency per threads x batch, then size), the full table, memory, skips."""
    m = result["machine"]
    names = list(dict.fromkeys(r["ratio"] for r in result["ratios"]))
    cells = {(r["threads"], r["batch"], r["ratio"]): r["latency_p50"] for r in result["ratios"]}
    sizes = {r["ratio"]: r["size"] for r in result["ratios"]}
    lines = [
        f"### {result['export']} on {m['processor']} ({m['cpu_count']} CPUs, {m['machine']}), "
        f"load average {m['load_average_1_5_15_min']}, onnxruntime {m['onnxruntime']}" + (f", torch {m['torch']}" if "torch" in m else ""),
        "",
        "p50 latency ratios (below 1: the first is faster):",
        "",
        "| threads | batch | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for n, b in dict.fromkeys((r["threads"], r["batch"]) for r in result["ratios"]):
        lines.append(f"| {n} | {b} | " + " | ".join(f"{cells[n, b, k]:.2f}x" if (n, b, k) in cells else "-" for k in names) + " |")
    lines += ["", "size ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in sizes.items()), ""]
    pk, work = result.get("peak", {}), result.get("macs", {})
    if work.get("macs"):
        lines.append(f"work: {work['macs'] / 1e6:.1f} M MACs per image (counted from {work['counted_from']})")
    if pk.get("isa"):
        lines.append(
            f"peak per core: {pk['isa']}, int8 {pk['int8_macs_per_cycle']} / fp32 {pk['fp32_macs_per_cycle']} MACs per cycle x "
            f"{pk['clock_ghz']:.2f} GHz = int8 {pk['int8_gmacs_per_core']} / fp32 {pk['fp32_gmacs_per_core']} G MAC/s ({pk['why']}; clock: {pk['clock_source']})"
        )
    if "measured_gemm_ceiling" in pk:
        g = pk["measured_gemm_ceiling"]
        lines.append(f"measured here, onnxruntime GEMM {'x'.join(map(str, g['shape_m_k_n']))}, 1 thread: int8 {g['int8_gmacs_per_s']} / fp32 {g['fp32_gmacs_per_s']} G MAC/s")
    agreement = {f: v["verified"]["calibration_vs_fp32"] for f, v in result.get("files", {}).items() if "calibration_vs_fp32" in v.get("verified", {})}
    if agreement:
        lines += ["", "| file | argmax agreement with fp32 (calibration images) | SQNR of logits dB | max abs diff |", "|---|---|---|---|"]
        lines += [f"| {f} | {a['argmax_agreement']:.1%} of {a['n']} | {a.get('sqnr_db', '-')} | {a['max_abs_diff']:.3g} |" for f, a in agreement.items()]
    lines += ["", "| runtime | precision | file | threads | batch | p50 ms | p90 ms | p99 ms | items/s | G MAC/s | % of peak/core | size KB | start-up ms |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        share = f"{r['share_of_peak_per_core']:.0%}" if r.get("share_of_peak_per_core") is not None else "-"
        lines.append(
            f"| {r['runtime']} | {r['precision']} | {r['file']} | {r['threads']} | {r['batch']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['items_per_s']:.0f} | {r.get('gmacs_per_s', '-')} | {share} | {r['size_bytes'] / 1024:.1f} | {r['startup_ms_median']:.1f} |"
        )
    if result.get("memory"):
        lines += ["", "| runtime | precision | peak RSS MB | after import MB | model + inference MB |", "|---|---|---|---|---|"]
        for r in result["memory"]:
            lines.append(f"| {runtime_name(r['format'])} | {r['precision']} | {r['peak_rss_mb']:.1f} | {r['import_rss_mb']:.1f} | {r['model_mb']:.1f} |")
    lines += [f"\nskipped {s['file']} ({s['format']} {s['precision']}): {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def save(result: dict[str, Any], out: str | Path) -> list[Path]:
    """The result as data (JSON), then rendered beside it: markdown, and a PNG where matplotlib is installed."""
    out = Path(out)
    written = [atomic_write_json(out, result), atomic_write_bytes(out.with_suffix(".md"), markdown(result).encode())]
    if importlib.util.find_spec("matplotlib") is not None:
        from edgeguard.bench.plot import plot_latency

        written.append(plot_latency(result, out.with_suffix(".png")))
    return written
