"""What each post-hoc defense, and a typical stack, adds to a query, next to the model's own inference.

    python benchmarks/bench_defenses.py --export export/<run> --out benchmarks/results/defenses.json
    python benchmarks/bench_defenses.py --synthetic   # no export yet: a tiny random ONNX model

What is timed and how: edgeguard/bench/defenses.py.

What a stack adds to one *served* request (issue 4's bar: at most 5%) needs the server's latency in
the same run: benchmarks/load_test.py measures both and writes the ratio (`defense_overhead`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edgeguard.bench.defenses import render, synthetic_export, time_defenses
from edgeguard.bench.script import run_script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path, help="export folder holding manifest.json and its int8 model")
    source.add_argument("--synthetic", action="store_true", help="time against a tiny random ONNX model instead")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/defenses.json"))
    parser.add_argument("--reps", type=int, default=500, help="timed calls per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before each measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        parser.error("--reps must be >= 1 and --warmup >= 0")

    def measure() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            export = synthetic_export(Path(tmp) / "synthetic") if args.synthetic else args.export
            return time_defenses(export, args.synthetic, args.reps, args.warmup, args.seed)

    return run_script(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
