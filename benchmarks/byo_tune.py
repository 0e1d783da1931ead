"""DivQAT options screened on byo_models' TUNING folder (never the report folder), one run at a time.

For one --model: the folder is written once under --dir (byo_models.write_photo_folder with
TUNING_PHOTOS, seed 0, 100 train / 50 val per class). The first run trains the fp32 teacher; it is
saved in torchvision's key names and exported/scored as fp32 once. Every later run passes it back
with --teacher (same seed: the same student as if it had trained the teacher itself, minus the
teacher epochs), is exported --int8 and scored from manifest.json alone (byo_models.score_from_manifest).
Each finished run is written into --out under --section at once, so a stopped screen keeps its rows.

    python benchmarks/byo_tune.py --model mobilenet_v2 --dir /tmp/tune --section temperature \\
        --options "" "--temperature 2" "--temperature 4" "--temperature 4 --lam 1"
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, from any working directory
from byo_models import TUNING_PHOTOS, edgeguard, save_torchvision_teacher, score_from_manifest, train_command, write_photo_folder  # noqa: E402

OUT = Path(__file__).parent / "results" / "byo-tuning.json"


def slug(options: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", options.lower()).strip("-") or "defaults"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--options",
        nargs="+",
        required=True,
        help='DivQAT option strings, one run each ("" = the defaults)',
    )
    parser.add_argument(
        "--dir",
        type=Path,
        required=True,
        help="kept between calls: the folder, runs, exports, the teacher",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--qat-epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--section",
        required=True,
        help="key under which the runs are recorded in --out",
    )
    args = parser.parse_args()

    data = args.dir / "photos"
    if not (data / "val").exists():
        write_photo_folder(
            data, {"train": 100, "val": 50}, 64, seed=0, photos=TUNING_PHOTOS
        )
    runs, export = args.dir / "runs", args.dir / "export"
    teacher, fp32_file = (
        args.dir / f"{args.model}-teacher.pt",
        args.dir / f"{args.model}-fp32.json",
    )
    schedule = [
        "--epochs",
        str(args.epochs),
        "--qat-epochs",
        str(args.qat_epochs),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        "1",
    ]

    for options in args.options:
        name = f"{args.model}-{slug(options)}"
        train = train_command(args.model, data, runs, [*schedule, *options.split()], name, "divqat", teacher if teacher.exists() else None)
        seconds = {"train": edgeguard(*train)}
        if not teacher.exists():  # this run trained it: keep it for the others, score it once
            save_torchvision_teacher(runs / name, teacher)
            seconds["export_fp32"] = edgeguard(
                "export", "--fp32", str(runs / name), "--out", str(export / "fp32")
            )
            fp32_file.write_text(
                json.dumps(
                    {
                        "fp32": score_from_manifest(
                            export / "fp32" / name, data / "val"
                        )["fp32"],
                        "from_run": name,
                    }
                )
            )
        seconds["export_int8"] = edgeguard(
            "export", "--int8", str(runs / name), "--out", str(export)
        )
        int8 = score_from_manifest(export / name, data / "val")["int8"]
        fp32 = json.loads(fp32_file.read_text())["fp32"]
        metrics = json.loads((runs / name / "metrics.json").read_text())
        row = {
            "folder": "tuning",
            "model": args.model,
            "options": options or "(defaults)",
            "int8": int8,
            "fp32": fp32,
            "int8_minus_fp32_points": round(100 * (int8 - fp32), 1),
            "torch": {k: round(v, 4) for k, v in metrics["accuracy"].items()},
            "teacher_source": metrics["teacher_source"],
            "seconds": {k: round(v) for k, v in seconds.items()},
            "seconds_per_epoch": {
                k: round(v, 1) for k, v in metrics["seconds_per_epoch"].items()
            },
        }
        print(json.dumps(row), flush=True)
        result = json.loads(args.out.read_text()) if args.out.exists() else {}
        section = result.setdefault(args.section, {"runs": {}})
        section["common"] = (
            f"tuning folder (TUNING_PHOTOS, seed 0, 100 train / 50 val per class); edgeguard train --dataset imagefolder "
            f"--model M --image-size 64 --method divqat {' '.join(schedule)} [options]; the first run of each model trains the "
            "fp32 teacher, the rest get it with --teacher (same fp32); int8 and fp32 scored from manifest.json alone "
            "(byo_models.score_from_manifest); one seed, 1 thread, a shared 2-core CPU (two other 1-thread jobs running)"
        )
        section["runs"][name] = row
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
