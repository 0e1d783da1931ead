"""The `edgeguard` command: a thin layer that parses options and calls one library function each.

Heavy imports (torch) happen inside the commands, so `edgeguard --help` and the device-side
commands stay fast and torch-free.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import click

from edgeguard.errors import EdgeguardError


class EdgeguardGroup(click.Group):
    """Turns an EdgeguardError anywhere in a command into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeguardError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=EdgeguardGroup)
@click.version_option(package_name="edgeguard")
def main() -> None:
    """edgeguard: true int8 image classifiers for edge devices, hard to steal."""


def train_options(f: Callable) -> Callable:
    from edgeguard.data.registry import DATASETS

    # model and backend names are checked by the library (their tables live on the torch side)
    options = [
        click.option("--dataset", default="digits", show_default=True, type=click.Choice(list(DATASETS))),
        click.option("--model", default="small-cnn", show_default=True, help="small-cnn | lenet | resnet8"),
        click.option("--backend", default="x86", show_default=True, help="Quantized engine / qconfig: x86 (fbgemm) or qnnpack (ARM)."),
        click.option("--method", default="qat", show_default=True, type=click.Choice(["qat", "divqat"]), help="Plain QAT, or DivQAT (docs/divqat.md)."),
        click.option("--lam", type=float, help="DivQAT: weight of the divergence term."),
        click.option("--temperature", type=float, help="DivQAT: softmax temperature of the divergence."),
        click.option("--margin", type=float, help="DivQAT: bound on the per-sample divergence (nats)."),
        click.option("--direction", type=click.Choice(["forward", "reverse"]), help="DivQAT: KL(teacher||student) or the reverse."),
        click.option("--div-inputs", type=click.Choice(["offmanifold", "clean"]), help="DivQAT: where the divergence is applied."),
        click.option("--mass", type=click.Choice(["full", "non-top1"]), help="DivQAT: diverge on the whole distribution or the non-top-1 part."),
        click.option("--noise", type=float, help="DivQAT: noise amplitude of off-manifold inputs."),
        click.option("--smooth", type=int, help="DivQAT: coarseness of off-manifold noise (1 = pixel noise)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--epochs", default=20, show_default=True, help="fp32 teacher epochs."),
        click.option("--qat-epochs", default=8, show_default=True),
        click.option("--threads", default=os.cpu_count() or 1, show_default=True, help="torch threads (set explicitly: oversubscription is slow)."),
        click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False)),
        click.option("--download", is_flag=True, help="Download a torchvision dataset if it is not in --data-dir."),
        click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False)),
        click.option("--name", default="", help="Run folder name (default: dataset-model-method-backend-seed)."),
    ]
    return functools.reduce(lambda acc, opt: opt(acc), reversed(options), f)


DIVQAT_OPTIONS = {"lam": "lam", "temperature": "temperature", "margin": "margin", "direction": "direction", "div_inputs": "inputs", "mass": "mass", "noise": "noise", "smooth": "smooth"}


def _config(**kw: Any):
    """TrainConfig from CLI options; DivQAT options left unset keep the library's defaults."""
    from edgeguard.train.run import TrainConfig

    given = {opt: value for opt in DIVQAT_OPTIONS if (value := kw.pop(opt)) is not None}
    if given and kw["method"] != "divqat":
        raise EdgeguardError(f"options {', '.join('--' + o.replace('_', '-') for o in given)} apply to --method divqat only")
    return TrainConfig(method_options={DIVQAT_OPTIONS[opt]: v for opt, v in given.items()}, **kw)


def _print_train(run: Any) -> None:
    acc = run.metrics["accuracy"]
    click.echo(f"run {run.dir}: accuracy fp32 {acc['fp32']:.2%}  fake-quant {acc['fake_quant']:.2%}  int8 {acc['int8']:.2%}")


def _print_export(result: Any) -> None:
    click.echo(f"exported to {result.folder}/ (manifest.json + model files)")
    click.echo(f"{'file':<18}{'size':>10}{'accuracy':>10}{'p50 b=1':>10}{'argmax=torch (test/ood)':>26}")
    for r in result.report:
        p = r["parity"]
        click.echo(
            f"{r['file']:<18}{r['size_bytes'] / 1024:>8.1f}KB{r['accuracy']:>10.2%}{r['latency_ms_p50_batch1'] * 1e3:>8.0f}us"
            f"{p['test']['argmax_agreement']:>15.1%} / {p['ood']['argmax_agreement']:.1%}"
        )


@main.command()
@train_options
def train(**kw: Any) -> None:
    """Train an fp32 teacher, then QAT (or DivQAT) it to true int8. Writes runs/<name>/."""
    from edgeguard.train.run import train_run

    _print_train(train_run(_config(**kw)))


@main.command()
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option("--int8/--fp32", "int8", default=False, help="Export the true int8 model (default: the fp32 teacher, for comparison).")
@click.option("--format", "formats", default="onnx", show_default=True, help="Comma-separated formats.")
@click.option("--out", default="export", show_default=True, type=click.Path(file_okay=False))
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
def export(run_dir: str | None, int8: bool, formats: str, out: str, runs_dir: str) -> None:
    """Export a run (default: the newest in --runs-dir) to out/<run>/ with manifest.json."""
    from edgeguard.export.pipeline import export_run

    run = Path(run_dir) if run_dir else _latest_run(Path(runs_dir))
    _print_export(export_run(run, out, int8=int8, formats=tuple(f.strip() for f in formats.split(",") if f.strip())))


@main.command()
@train_options
@click.option("--out", default="export", show_default=True, type=click.Path(file_okay=False))
def quickstart(out: str, **kw: Any) -> None:
    """The whole pipeline on the built-in default: train, export fp32 and int8 ONNX, compare."""
    from edgeguard.export.pipeline import export_run
    from edgeguard.train.run import train_run

    run = train_run(_config(**kw))
    _print_train(run)
    fp32 = export_run(run.dir, out, int8=False)
    int8 = export_run(run.dir, out, int8=True)
    int8.report = fp32.report + int8.report
    _print_export(int8)
    f, q = fp32.report[0], int8.report[-1]
    click.echo(
        f"int8 vs fp32: size {q['size_bytes'] / f['size_bytes']:.2f}x, accuracy {100 * (q['accuracy'] - f['accuracy']):+.2f} points, "
        f"latency {q['latency_ms_p50_batch1'] / f['latency_ms_p50_batch1']:.2f}x"
    )


def _latest_run(runs_dir: Path) -> Path:
    runs = sorted((p for p in runs_dir.glob("*") if (p / "metrics.json").exists()), key=lambda p: (p / "metrics.json").stat().st_mtime)
    if not runs:
        raise EdgeguardError(f"no finished run in '{runs_dir}'; run `edgeguard train` first or pass a run folder")
    return runs[-1]
