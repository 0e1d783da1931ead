"""Latency, throughput, size and start-up of an export folder's models, int8 beside fp32, one run.

    edgeguard quickstart --runs-dir /tmp/final_runs --out /tmp/final_export
    python benchmarks/bench_models.py --export /tmp/final_export/digits-small-cnn-qat-x86-s0

The same code as `edgeguard bench`; writes benchmarks/results/models.json and models.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeguard.bench import bench_export, markdown
from edgeguard.files import atomic_write_bytes, atomic_write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/models.json"))
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    result = bench_export(args.export, runs=args.runs)
    atomic_write_json(args.out, result)
    atomic_write_bytes(args.out.with_suffix(".md"), markdown(result).encode())
    print(markdown(result))
    print(f"saved {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
