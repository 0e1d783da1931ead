"""torchvision architectures on RGB 64x64: int8 ONNX accuracy vs fp32, int8 share, DivQAT's divergence.

The data are GENERATED (numpy), not a real dataset: four classes of textured colour images
(horizontal stripes, vertical stripes, discs, checkerboards; random colours, frequencies, phases,
noise). It is fed through the training API directly (`train_teacher`, `train_student`), as an
ImageFolder run would feed it; export is measured as `edgeguard export` measures: onnxruntime on the
int8 and fp32 files. Brief training on 2 shared cores: it shows that the pipeline holds at real
architecture sizes (int8-ness, accuracy kept, DivQAT's divergence on natural photographs), not how
these models do on anyone's photos.

    python benchmarks/byo_models.py                       # mobilenet_v2 and resnet18, qat and divqat
    python benchmarks/byo_models.py --models resnet18 --epochs 2 --qat-epochs 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeguard.data.base import ArraySplit, Dataset, Split
from edgeguard.data.natural import natural_patches
from edgeguard.export.onnx import contents, export_onnx
from edgeguard.metrics import accuracy, compare
from edgeguard.runtime import softmax
from edgeguard.runtime.onnx import OnnxBackend
from edgeguard.runtime.preprocess import Normaliser
from edgeguard.train.quantize import convert_int8
from edgeguard.train.run import TrainConfig, train_student, train_teacher

OUT = Path(__file__).parent / "results" / "byo-models.json"
CLASSES = ["h-stripes", "v-stripes", "discs", "checkers"]


def generated(n: int, size: int, seed: int) -> Split:
    """n labelled RGB images in [0, 1]: a class-specific pattern in two random colours, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    x = np.empty((n, 3, size, size), np.float32)
    y = rng.integers(0, len(CLASSES), n)
    for i, label in enumerate(y):
        freq, phase = rng.uniform(2, 6), rng.uniform(0, 2 * np.pi)
        if label == 0:
            mask = np.sin(2 * np.pi * freq * yy + phase) > 0
        elif label == 1:
            mask = np.sin(2 * np.pi * freq * xx + phase) > 0
        elif label == 2:
            cy, cx, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.15, 0.35)]
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        else:
            mask = (np.sin(2 * np.pi * freq * yy + phase) > 0) ^ (np.sin(2 * np.pi * freq * xx + phase) > 0)
        fg, bg = rng.uniform(0, 1, (2, 3, 1, 1))
        x[i] = np.where(mask[None], fg, bg)
        x[i] += rng.normal(0, 0.08, (3, size, size))
    return ArraySplit(np.clip(x, 0, 1).astype(np.float32), y.astype(np.int64))


def measure(model_name: str, data: Dataset, cfg: TrainConfig, norm: Normaliser, tmp: Path) -> dict:
    start = time.perf_counter()
    teacher, _, _ = train_teacher(replace(cfg, model=model_name), data, norm)
    fp32_path = export_onnx(teacher.eval(), data.input_shape, tmp / f"{model_name}.fp32.onnx")
    fp32 = OnnxBackend(fp32_path, threads=1)
    natural = natural_patches(500, data.input_shape, seed=10_000)
    test_x = norm(data.test.x)
    row = {"fp32_accuracy": accuracy(softmax(fp32.logits(test_x)), data.test.y), "teacher_seconds": time.perf_counter() - start}
    teacher_natural = softmax(fp32.logits(norm(natural)))
    for method in ("qat", "divqat"):
        start = time.perf_counter()
        qat, _ = train_student(replace(cfg, model=model_name, method=method), teacher, data.train, norm)
        path = export_onnx(convert_int8(qat, cfg.backend), data.input_shape, tmp / f"{model_name}.{method}.onnx")
        info = contents(path)
        int8 = OnnxBackend(path, threads=1)
        row[method] = {
            "int8_onnx_accuracy": accuracy(softmax(int8.logits(test_x)), data.test.y),
            "int8_weight_share": info["weights"].get("int8", 0) / sum(info["weights"].values()),
            "integer_kernels": {k: v for k, v in info["runtime_ops"].items() if k.startswith("Q")},
            "float_kernels": {k: v for k, v in info["runtime_ops"].items() if k in ("Conv", "Gemm", "MatMul")},
            "teacher_vs_int8_on_natural_patches": compare(teacher_natural, softmax(int8.logits(norm(natural)))),
            "seconds": time.perf_counter() - start,
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train", type=int, default=480)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = generated(args.train, args.size, seed=0), generated(200, args.size, seed=1)
    data = Dataset(f"generated-{len(CLASSES)}-patterns-{args.size}px", CLASSES, train, train, test)
    norm = Normaliser(data.mean, data.std)
    cfg = TrainConfig(epochs=args.epochs, qat_epochs=args.qat_epochs, batch_size=args.batch_size, device="cpu")
    result = {
        "data": f"{data.name}: GENERATED (numpy), {args.train} train / {len(test)} test images, RGB {args.size}x{args.size}, classes {CLASSES}",
        "schedule": {"epochs": cfg.epochs, "qat_epochs": cfg.qat_epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "qat_lr": cfg.qat_lr, "backend": cfg.backend},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            result["models"][name] = measure(name, data, cfg, norm, Path(tmp))
            print(json.dumps({name: result["models"][name]}, indent=1))
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
