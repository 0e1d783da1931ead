"""Every model of an export side by side: ORT (and TFLite) int8 and fp32, torch for reference, one run.

    python benchmarks/bench_models.py                 # trains + exports the default run if missing
    python benchmarks/bench_models.py --export export/digits-small-cnn-qat-x86-s0 --runs 2000

Latency (p50/p90/p99), throughput, size, start-up at threads 1 and all, batches 1/8/64; peak memory
of each model in a fresh process; ratios first (int8/fp32, TFLite/ORT, torch/ORT). The same code as
`edgeguard bench`. Writes benchmarks/results/models.json, .md and .png, and DivQAT vs QAT seconds per
epoch (benchmarks/results/training-cost.json; --no-training-cost to skip). 2.5-4 minutes here,
training the default run included.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgeguard.bench.models import bench_export, markdown, save
from edgeguard.bench.torch_side import run_dir, training_cost
from edgeguard.export.pipeline import default_export
from edgeguard.files import atomic_write_json
from edgeguard.manifest import Manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, help="export folder (default: the default run's, made if missing)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the default run is trained if missing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/models.json"))
    parser.add_argument("--runs", type=int, default=2000, help="timed calls at batch 1 (batch b gets runs // b, at least 20)")
    parser.add_argument("--training-cost", action=argparse.BooleanOptionalAction, default=True, help="also time fp32, QAT and DivQAT epochs in turn")
    args = parser.parse_args()
    start = time.perf_counter()
    export = args.export or default_export(args.runs_dir, "export")
    result = bench_export(export, runs=args.runs, memory=True)
    print(markdown(result))
    print(f"saved {', '.join(map(str, save(result, args.out)))}")
    if args.training_cost:
        cost = training_cost(run_dir(Manifest.load(export)))
        print(f"training cost: {cost['seconds_per_epoch_median']} s/epoch, {cost['ratios']}")
        print(f"saved {atomic_write_json(args.out.with_name('training-cost.json'), cost)}")
    print(f"took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
