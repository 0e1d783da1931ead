"""Where int8 pays: the digits default beside torchvision's MobileNetV2 and ResNet-18, with the peers and the CPU's limit.

    nice -n 5 python benchmarks/bench_real_size.py                      # ~30 min on the shared 2-core VM
    python benchmarks/bench_real_size.py --runs 30 --sweep 32,64,128,160

For each model: an export folder (edgeguard.bench.real_size: torchvision's quantizable network,
random weights, edgeguard's eager QAT qconfig, calibration passes, convert; fp32 and int8 ONNX and
TFLite where the route converts; onnxruntime's quantize_static and LiteRT's PTQ of the same float
network as peers; torch's modules), then `edgeguard bench`'s measurement of it (bench_export: every
contender interleaved, p50/p90/p99, threads 1 and all cores, batch 1 and --batch; MACs, G MAC/s,
share of the per-core peak). Then MobileNetV2 at the --sweep sizes (ORT fp32 and int8 only): where int8
starts to pay. Then `edgeguard serve` for the 224x224 models: requests/s and p50/p99 at 1 and 8
clients (JSON bodies), the server's peak RSS, its overhead over a bare onnxruntime call.
Writes benchmarks/results/real-size.json (with this command), .md and .png.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeguard.bench.loopback import serve_throughput
from edgeguard.bench.models import bench_export, markdown
from edgeguard.bench.plot import plot_real_size
from edgeguard.bench.real_size import real_size_export
from edgeguard.bench.timing import machine
from edgeguard.export.pipeline import default_export
from edgeguard.files import atomic_write_bytes, atomic_write_json
from edgeguard.formats import DEFAULT
from edgeguard.manifest import MANIFEST

MODELS = (("mobilenet_v2", 224), ("resnet18", 224), ("mobilenet_v2", 96))
SERVED = (("mobilenet_v2", 224), ("resnet18", 224))


def export(name: str, size: int, out: Path, formats: tuple[str, ...] | None = None) -> Path:
    """The export folder, made once (the conversions take minutes here)."""
    folder = out / f"torchvision-{name}-{size}"
    if (folder / MANIFEST).is_file():
        return folder
    print(f"exporting {name} at {size}x{size} ...", flush=True)
    return real_size_export(name, size, out, **({"formats": formats} if formats else {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", type=Path, default=Path("export/real-size"), help="where the export folders are made (kept)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/real-size.json"))
    parser.add_argument("--runs", type=int, default=16, help="timed calls per contender at batch 1 (batch b: runs // b, at least --min-runs)")
    parser.add_argument("--min-runs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4, help="the larger batch")
    parser.add_argument("--sweep", default="32,64,128,160", help="MobileNetV2 input sizes for where int8 starts to pay")
    parser.add_argument("--serve-requests", type=int, default=24)
    args = parser.parse_args()
    start = time.perf_counter()
    bench: dict[str, Any] = dict(batches=(1, args.batch), threads=(1, 0), warmup=2, min_runs=args.min_runs)
    results: dict[str, Any] = {"command": shlex.join(["python", *sys.argv]), "machine_at_start": machine(), "models": {}}
    digits = default_export("runs", "export")
    results["models"]["digits-default"] = bench_export(digits, runs=max(200, args.runs), **{**bench, "batches": (1, 64), "warmup": 20, "min_runs": 20})
    for name, size in MODELS:
        folder = export(name, size, args.exports)
        results["models"][folder.name] = result = bench_export(folder, runs=args.runs, **bench)
        print(markdown(result), flush=True)
    sweep = {}
    for size in (int(s) for s in args.sweep.split(",")):
        folder = export("mobilenet_v2", size, args.exports / "sweep", formats=(DEFAULT,))
        sweep[size] = bench_export(folder, runs=max(args.runs, 4000 // size), batches=(1,), threads=(1,), warmup=3, torch=False, min_runs=args.min_runs)
        print(markdown(sweep[size]), flush=True)
    results["mobilenet_v2_sweep"] = sweep
    with tempfile.TemporaryDirectory() as tmp:
        results["serve"] = {
            f"torchvision-{name}-{size}": [
                serve_throughput(args.exports / f"torchvision-{name}-{size}", Path(tmp) / f"keys-{name}-{precision}.db", precision, requests=args.serve_requests)
                for precision in ("int8", "fp32")
            ]
            for name, size in SERVED
        }  # fmt: skip
    results["machine_at_end"] = machine()
    results["seconds"] = round(time.perf_counter() - start)
    atomic_write_json(args.out, results)
    atomic_write_bytes(args.out.with_suffix(".md"), "\n".join(markdown(r) for r in results["models"].values()).encode())
    print(f"saved {args.out}, {plot_real_size(results, args.out.with_suffix('.png'))}; took {results['seconds']} s")


if __name__ == "__main__":
    main()
