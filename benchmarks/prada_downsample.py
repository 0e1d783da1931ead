"""What PRADA's downsampled copies change: calibrated delta and flag queries at several copy sides, one export.

    python benchmarks/prada_downsample.py --export export/digits-small-cnn-qat-x86-s0 --sides 32,14,7

For each side the monitor is recalibrated on the export's honest data exactly as `edgeguard export`
does (`calibrate_monitor` with PRADA comparing copies of at most side x side pixels), then the
detection streams of `edgeguard.evaluate.detection` (test split, Knockoff, pool and JBDA thieves,
--seeds) are replayed through it. Digits' 28x28 inputs are under the default side (32): the first
row is the deployed monitor unchanged; smaller sides show how far area averaging can go before
PRADA's evidence moves. Writes --out (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

from edgeguard.data import victim_data
from edgeguard.evaluate.detection import replay, streams
from edgeguard.export import monitor_thresholds
from edgeguard.monitor import MonitorConfig
from edgeguard.runtime import DeployedModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True)
    parser.add_argument("--sides", default="32,14,7")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="benchmarks/results/prada-downsample.json")
    args = parser.parse_args()
    model = DeployedModel.load(args.export)
    data = victim_data(model.manifest)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for side in (int(s) for s in args.sides.split(",")):
        with mock.patch.object(monitor_thresholds, "PRADA_SIDE", side):
            config = MonitorConfig.from_dict(monitor_thresholds.calibrate_monitor(model, data))
        for kind, who, seed, x in streams(model, data, seeds, honest_streams=0, thief_queries=2000, jbda_queries=600):
            rows.append({"side": side, "prada_delta": config.prada_delta, "kind": kind, "who": who, "seed": seed, **replay(model, config, x)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"export": model.manifest.name, "input_shape": model.manifest.input_shape, "rows": rows}, indent=1) + "\n")
    print("| side | delta | stream | seed | flagged at | by |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] in ("test", "knockoff", "pool", "jbda"):
            print(f"| {r['side']} | {r['prada_delta']} | {r['kind']} | {r['seed']} | {r['flagged_at'] or '-'} | {r['signal'] or '-'} |")


if __name__ == "__main__":
    main()
