"""The `edgeguard` command: a thin layer that parses options and calls one library function each.

Heavy imports (torch) happen inside the commands, so `edgeguard --help` and the device-side
commands stay fast and torch-free.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from edgeguard.errors import EdgeguardError
from edgeguard.formats import DEFAULT, FORMATS


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
        click.option("--model", default="small-cnn", show_default=True, help="small-cnn | lenet | resnet8 | resnet18-cifar | torchvision's mobilenet_v2, mobilenet_v3_large, resnet18, resnet50, shufflenet_v2_x1_0"),
        click.option("--teacher", default="", type=click.Path(dir_okay=False), help="A state_dict of fp32 weights for --model (torchvision's key names work): no teacher training; a classifier head of another class count is replaced and fine-tuned for --epochs."),
        click.option("--weights", default="", type=click.Choice(["", "DEFAULT"]), help="DEFAULT: torchvision's released weights for --model (needs the network; offline, save them to a file and pass --teacher)."),
        click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]), help="Where training runs (conversion, export and checks stay on the CPU)."),
        click.option("--batch-size", type=click.IntRange(1), help="Training batch size (default 64)."),
        click.option("--lr", type=float, help="fp32 teacher learning rate (default 2e-3; lower it to fine-tune a given --teacher)."),
        click.option("--qat-lr", type=float, help="QAT / DivQAT learning rate (default 5e-4)."),
        click.option("--backend", default="x86", show_default=True, help="Quantized engine / qconfig: x86 (fbgemm) or qnnpack (ARM)."),
        click.option("--method", default="qat", show_default=True, type=click.Choice(["qat", "divqat"]), help="Plain QAT, or DivQAT (docs/divqat.md)."),
        click.option("--lam", type=float, help="DivQAT: weight of the probe term (default 2.4; 0.3 on --dataset imagefolder, whose photos the probes resemble; `--probe-target away` was measured at 2)."),
        click.option("--temperature", type=float, help="DivQAT: softmax temperature of the signature and the probe answers compared with it (default 2), or of the divergence (default 1, as `--probe-target away` was measured)."),
        click.option("--margin", type=float, help="DivQAT: bound on the per-sample divergence (nats)."),
        click.option("--direction", type=click.Choice(["reverse", "forward"]), help="DivQAT: KL(student||teacher) (reverse) or KL(teacher||student)."),
        click.option("--div-inputs", type=click.Choice(["fields", "mixup", "both", "clean"]), help="DivQAT: where the divergence is applied (probe inputs)."),
        click.option("--probe-bn", type=click.Choice(["batch", "running"]), help="DivQAT: BatchNorm statistics of the probe pass (running ones are never updated by probes)."),
        click.option("--mass", type=click.Choice(["full", "non-top1"]), help="DivQAT: diverge on the whole distribution or the non-top-1 part."),
        click.option("--div-noise", type=float, help="DivQAT: noise amplitude of mixup probe inputs."),
        click.option("--smooth", type=int, help="DivQAT: coarseness of mixup probe noise (1 = pixel noise)."),
        click.option("--anchor", type=float, help="DivQAT: weight of KL(teacher||student) on clean data."),
        click.option("--sharpen", type=float, help="DivQAT: weight of the entropy of probe answers (concentrates each on one class)."),
        click.option("--probe-target", type=click.Choice(["away", "uniform", "fixed", "signature"]), help="DivQAT: pull probe answers to a fixed soft answer the monitor recognises (signature, the default), to one fixed class (hides thieves from the OOD monitor) or to the uniform distribution, or push them away from the teacher (away, the first default): docs/divqat.md."),
        click.option("--signature-mass", type=float, help="DivQAT, --probe-target signature: the signature's probability of class 0 (the rest is spread evenly)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--epochs", type=click.IntRange(1), help="fp32 teacher epochs [default: 20; on a small training split, as many as give the 340 optimizer steps 20 give on digits]."),
        click.option("--qat-epochs", type=click.IntRange(1), help="QAT / DivQAT epochs [default: 8; on a small training split, as many as give 136 optimizer steps]."),
        click.option("--threads", default=1, show_default=True, help="torch threads (set explicitly: oversubscription is slow)."),
        click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False), help="Where the dataset is; for imagefolder DIR/<class>/<images> or DIR/train/<class>/... + DIR/val/<class>/... (docs/bring-your-own.md)."),
        click.option("--download", is_flag=True, help="Download a torchvision dataset if it is not in --data-dir."),
        click.option("--image-size", type=click.IntRange(8), help="imagefolder: the model's input side in pixels [default: the median image size, or 224 for mixed or large sizes]."),
        click.option("--workers", default=0, show_default=True, type=click.IntRange(0), help="DataLoader processes decoding images ahead of training (0: in the training process)."),
        click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False)),
        click.option("--name", default="", help="Run folder name (default: dataset-model-method-backend-seed)."),
    ]
    return functools.reduce(lambda acc, opt: opt(acc), reversed(options), f)


TUNING_OPTIONS = ("batch_size", "lr", "qat_lr", "epochs", "qat_epochs")
DIVQAT_OPTIONS = {"lam": "lam", "temperature": "temperature", "margin": "margin", "direction": "direction", "div_inputs": "inputs", "mass": "mass", "div_noise": "probe_noise", "smooth": "smooth", "anchor": "anchor", "probe_bn": "probe_bn", "probe_target": "target", "sharpen": "sharpen", "signature_mass": "signature_mass"}


def _config(**kw: Any):
    """TrainConfig from CLI options; DivQAT options left unset keep the library's defaults."""
    from edgeguard.train.run import TrainConfig

    given = {opt: value for opt in DIVQAT_OPTIONS if (value := kw.pop(opt)) is not None}
    kw = {k: v for k, v in kw.items() if v is not None or k not in TUNING_OPTIONS}  # unset: TrainConfig's defaults
    if given and kw["method"] != "divqat":
        raise EdgeguardError(f"options {', '.join('--' + o.replace('_', '-') for o in given)} apply to --method divqat only")
    return TrainConfig(method_options={DIVQAT_OPTIONS[opt]: v for opt, v in given.items()}, **kw)


def _print_train(run: Any) -> None:
    acc = run.metrics["accuracy"]
    click.echo(f"run {run.dir}: accuracy fp32 {acc['fp32']:.2%}  fake-quant {acc['fake_quant']:.2%}  int8 {acc['int8']:.2%}")
    shortfall = run.int8_shortfall()
    if shortfall:
        click.secho(f"warning: {shortfall}", fg="yellow", err=True)


def _print_export(folder: Path, report: list[dict[str, Any]]) -> None:
    click.echo(f"exported to {folder}/ (manifest.json + model files)")
    click.echo(f"{'file':<18}{'size':>10}{'accuracy':>10}{'p50 b=1':>10}{'argmax=torch (test/ood)':>26}")
    for r in report:
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
@click.option("--format", "formats", default=DEFAULT, show_default=True, help=f"Comma-separated formats: {', '.join(FORMATS)} (docs/tflite.md).")
@click.option("--out", default="export", show_default=True, type=click.Path(file_okay=False))
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
def export(run_dir: str | None, int8: bool, formats: str, out: str, runs_dir: str) -> None:
    """Export a run (default: the newest in --runs-dir) to out/<run>/ with manifest.json."""
    from edgeguard.export.pipeline import export_run

    run = Path(run_dir) if run_dir else _latest_run(Path(runs_dir))
    result = export_run(run, out, int8=int8, formats=tuple(f.strip() for f in formats.split(",") if f.strip()))
    _print_export(result.folder, result.report)


@main.command()
@train_options
@click.option("--out", default="export", show_default=True, type=click.Path(file_okay=False))
def quickstart(out: str, **kw: Any) -> None:
    """The whole pipeline on the built-in default: train, export fp32 and int8 ONNX, compare."""
    from edgeguard.export.pipeline import quickstart as run_quickstart

    run, rows, ratio = run_quickstart(_config(**kw), out)
    _print_train(run)
    _print_export(Path(out) / run.dir.name, rows)
    click.echo(f"int8 vs fp32: size {ratio['size']:.2f}x, accuracy {ratio['accuracy_points']:+.2f} points, latency {ratio['latency']:.2f}x")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise EdgeguardError(f"expected comma-separated integers, got '{text}'") from e


@main.command()
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--defense", default="none", show_default=True, help='Defense stack spec, e.g. "reverse_sigmoid(beta=1,gamma=0.2) | round(decimals=2)".')
@click.option("--url", help="Rob a running `edgeguard serve` (e.g. http://127.0.0.1:8000) instead of EXPORT_DIR + --defense; EXPORT_DIR is the export it serves (dataset, classes, bare model).")
@click.option("--api-key", envvar="EDGEGUARD_API_KEY", help="API key for --url (default: $EDGEGUARD_API_KEY). Its budget must cover --budget plus the test split.")
@click.option("--attack", "attack_name", default="knockoff", show_default=True, type=click.Choice(["knockoff", "knockoff-adaptive", "jbda"]), help="Knockoff (random sampling of --source), Knockoff with adaptive sampling (a bandit over the natural photos) or JBDA (pool seeds + Jacobian augmentation).")
@click.option("--source", type=click.Choice(["natural", "pool", "transfer"]), help="Knockoff's queries: natural photo patches, the dataset's attacker pool, or the images of --transfer-dir (knockoff-adaptive: natural only; jbda always starts from pool seeds) [default: transfer with --transfer-dir, else natural].")
@click.option("--transfer-dir", type=click.Path(exists=True, file_okay=False), help="The thief's own images: any folder of image files (searched recursively), decoded to the victim's input by its manifest.")
@click.option("--transfer-dataset", help="--transfer-dir holds this dataset (e.g. cifar100, its train split) rather than image files.")
@click.option("--thief-model", default="small-cnn", show_default=True, help="The copy's architecture, a name from the model zoo.")
@click.option("--labels", default="soft", show_default=True, type=click.Choice(["soft", "argmax"]))
@click.option("--budget", default=500, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True)
@click.option("--steps", default=250, show_default=True, help="Surrogate training steps.")
@click.option("--threads", default=1, show_default=True)
def attack(export_dir: str, defense: str, url: str | None, api_key: str | None, attack_name: str, source: str | None, transfer_dir: str | None, transfer_dataset: str | None, thief_model: str, labels: str, budget: int, seed: int, steps: int, threads: int) -> None:
    """A Knockoff (random or adaptive) or JBDA thief against an exported int8 model behind a defense stack, or a running server: how good is the copy?"""
    import torch

    from edgeguard.evaluate.cells import steal

    torch.set_num_threads(threads)
    source = source or ("transfer" if transfer_dir else "natural")
    row = steal(export_dir, defense, url, api_key, attack_name, source, labels, budget, seed, steps, transfer_dir, thief_model, transfer_dataset)
    click.echo(
        f"{labels}-label {attack_name} thief, {row['queries']} {row['source']} queries vs `{row['label']}`: fidelity {row['fidelity']:.1%}, "
        f"surrogate accuracy {row['surrogate_accuracy']:.1%} (victim serves {row['victim_accuracy']:.1%}, mean L1 change {row['perturbation_l1']:.3f})"
    )
    if url is not None:
        click.echo(f"the server at {url} answered {row['answered']} queries: {budget} for the thief, {row['answered'] - budget} for the test split")


@main.command()
@click.option("--out", default="docs/results", show_default=True, type=click.Path(file_okay=False), help="Where cells.jsonl, results.json, results.md and fidelity.png go.")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--attacks", default="knockoff,knockoff-adaptive,jbda", show_default=True, help="Comma-separated: knockoff (pool and natural queries), knockoff-adaptive (natural), jbda (pool seeds).")
@click.option("--budgets", default="100,500,1000", show_default=True, help="Random Knockoff's query budgets.")
@click.option("--adaptive-budgets", default="500", show_default=True, help="knockoff-adaptive's and jbda's budgets (they train while they query: costlier per cell).")
@click.option("--defense", "defenses", multiple=True, help="Defense stack spec (repeatable); default: none and reverse_sigmoid(beta=1.0,gamma=0.2).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--export-dir", default="export", show_default=True, type=click.Path(file_okay=False))
@click.option("--threads", default=1, show_default=True, help="torch threads per worker.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Processes robbing at once without --ray (the results do not depend on it).")
@click.option("--ray", metavar="local|auto|ADDRESS", help='Rob as Ray tasks: on a cluster started here (local), the one RAY_ADDRESS names (auto), or the one at ADDRESS. Needs pip install "edgeguard[cluster]".')
@click.option("--dataset", default="digits", show_default=True, help="The victims' dataset (as for `train`).")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(file_okay=False), help="Where the victims' dataset is.")
@click.option("--model", default="small-cnn", show_default=True, help="The victims' architecture, a name from the model zoo.")
@click.option("--transfer-dir", type=click.Path(exists=True, file_okay=False), help="A thief's own images (any folder of image files): adds the `transfer` query source.")
@click.option("--transfer-dataset", help="--transfer-dir holds this dataset (e.g. cifar100) rather than image files.")
@click.option("--thief-model", default="small-cnn", show_default=True, help="The copies' architecture, a name from the model zoo.")
@click.option("--thieves", default="held-out", show_default=True, help="Held-out thieves beside natural-image Knockoff (edgeguard/attacks/thieves.py): held-out (all), none, or names.")
@click.option("--heldout-budgets", default="500,1000", show_default=True, help="The held-out thieves' query budgets.")
def evaluate(
    out: str, seeds: str, attacks: str, budgets: str, adaptive_budgets: str, defenses: tuple[str, ...], runs_dir: str, export_dir: str,
    threads: int, workers: int, ray: str | None, thieves: str, heldout_budgets: str, **data: Any,
) -> None:  # fmt: skip
    """The grid {QAT, DivQAT} x defenses x thieves (attack x query source) x {soft, argmax} x budgets x seeds. Resumable.

    Held-out thieves (no default was chosen on them) are reported in a section of their own."""
    from edgeguard.attacks.thieves import parse_thieves
    from edgeguard.defenses import parse_stack
    from edgeguard.evaluate.grid import GridSpec, run_grid
    from edgeguard.evaluate.report import save_report
    from edgeguard.files import ensure_dir

    names = [a.strip() for a in attacks.split(",") if a.strip()]
    spec = GridSpec(
        attacks=names, seeds=_ints(seeds), budgets=_ints(budgets), adaptive_budgets=_ints(adaptive_budgets), threads=threads, workers=workers,
        ray=ray, thieves=parse_thieves(thieves), heldout_budgets=_ints(heldout_budgets), **data,
    )  # fmt: skip
    if defenses:
        spec.defenses = [parse_stack(d).spec or "none" for d in defenses]  # fail on a bad spec before any work
    folder = ensure_dir(out)
    click.echo(save_report(run_grid(spec, folder, Path(runs_dir), Path(export_dir)), folder))
    click.echo(f"wrote {folder}/results.json, results.md, fidelity.png")


@main.command()
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--honest-streams", default=20, show_default=True, help="Honest 2,000-query streams (for the false-flag rate).")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the result as JSON here.")
def detect(export_dir: str, seeds: str, honest_streams: int, out: str | None) -> None:
    """Replay honest and thief query streams through the server's monitor: when is each flagged?"""
    from edgeguard.evaluate.detection import markdown, run_detection
    from edgeguard.files import atomic_write_json

    result = run_detection(export_dir, _ints(seeds), honest_streams=honest_streams)
    if out:
        atomic_write_json(out, result)
    click.echo(markdown(result))


@main.command()
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--batches", default="1,8,64", show_default=True)
@click.option("--threads", "thread_counts", default="1,0", show_default=True, help="Thread counts of every runtime; 0 = all cores.")
@click.option("--runs", default=200, show_default=True, help="Timed calls at batch 1 (fewer at larger batches).")
@click.option("--torch/--no-torch", "torch_ref", default=None, help="torch's fp32 and int8 modules beside the files [default: when torch and the export's run folder are there].")
@click.option("--memory/--no-memory", default=True, show_default=True, help="Peak memory of each model, each in a fresh process.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the result here as JSON, with .md and .png beside it.")
def bench(export_dir: str, batches: str, thread_counts: str, runs: int, torch_ref: bool | None, memory: bool, out: str | None) -> None:
    """Latency, throughput, size, start-up and memory of every model of an export, side by side (ratios first)."""
    from edgeguard.bench.models import bench_export, markdown, save

    result = bench_export(export_dir, tuple(_ints(batches)), tuple(_ints(thread_counts)), runs, torch=torch_ref, memory=memory)
    click.echo(markdown(result))
    if out:
        click.echo(f"saved {', '.join(map(str, save(result, out)))}")


def _latest_run(runs_dir: Path) -> Path:
    runs = sorted((p for p in runs_dir.glob("*") if (p / "metrics.json").exists()), key=lambda p: (p / "metrics.json").stat().st_mtime)
    if not runs:
        raise EdgeguardError(f"no finished run in '{runs_dir}'; run `edgeguard train` first or pass a run folder")
    return runs[-1]


KEYS_DB = click.option(
    "--db", "--keys", "db", default="keys.db", show_default=True, envvar="EDGEGUARD_KEYS", type=click.Path(dir_okay=False),
    help="API key store: a SQLite file, or redis://[:password@]host:port/db (rediss:// for TLS) shared by a fleet; "
    "default: keys.db in the current folder, or $EDGEGUARD_KEYS (the place for a URL with a password).",
)


@main.command("serve")
@click.argument("export_folder", type=click.Path(file_okay=False))
@KEYS_DB
@click.option("--defense", default="none", show_default=True, help="Defense stack spec applied to every answer (docs/defenses.md).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="onnxruntime threads (1 is fastest for small models).")
@click.option("--output", default="probabilities", show_default=True, type=click.Choice(["probabilities", "topk", "label"]), help="What each answer reveals.")
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(1), help="Classes per answer with --output topk.")
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(1), help="Most items one request may hold.")
@click.option("--max-body-bytes", type=click.IntRange(1), help="Largest request body (default: enough for --max-batch inputs).")
@click.option("--precision", default="int8", show_default=True, type=click.Choice(["int8", "fp32"]))
@click.option("--format", "format_", default=DEFAULT, show_default=True, type=click.Choice(list(FORMATS)), help="Model file to serve (needs its runtime backend).")
@click.option("--on-flag", default="log", show_default=True, help='What a key the monitor flags gets: log, label-only, slow, block, or a defense stack spec (docs/detection.md).')
def serve_command(export_folder: str, db: str, host: str, port: int, format_: str, **kw: Any) -> None:
    """Answer queries over HTTP (Open Inference Protocol v2 + /predict) behind API keys and budgets."""
    from edgeguard.serve import ServeConfig, serve

    serve(ServeConfig(folder=export_folder, keys=db, format=format_, **kw), host=host, port=port, echo=click.echo)


@main.command("predict")
@click.argument("target")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--api-key", envvar="EDGEGUARD_API_KEY", help="API key when TARGET is a URL (default: $EDGEGUARD_API_KEY).")
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(1), help="Classes shown per image.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--precision", default="int8", show_default=True, type=click.Choice(["int8", "fp32"]), help="Model file of a local export.")
@click.option("--format", "format_", default=DEFAULT, show_default=True, type=click.Choice(list(FORMATS)), help="Model file of a local export.")
def predict_command(target: str, images: tuple[str, ...], api_key: str | None, top_k: int, as_json: bool, precision: str, format_: str) -> None:
    """Top classes of image files or folders (recursive): TARGET is an export folder (local runtime) or an edgeguard serve URL."""
    import json

    from edgeguard.predict import predict_files, render

    progress = any(Path(p).is_dir() for p in images)
    result = predict_files(target, images, api_key, top_k, precision, format_, progress=progress)
    click.echo(json.dumps(result, indent=2) if as_json else render(result))
    failed = sum("error" in r for r in result["files"])
    if failed:
        raise EdgeguardError(f"{failed} of {len(result['files'])} files could not be read")


@main.group("keys")
def keys_group() -> None:
    """Create, list, revoke and un-flag the API keys of `edgeguard serve` (stored hashed, with budgets)."""


@keys_group.command("add")
@click.argument("name")
@KEYS_DB
@click.option("--budget", type=int, help="Total items this key may be answered (default: no limit).")
@click.option("--daily", type=int, help="Items per UTC day (default: no limit).")
@click.option("--rate", type=float, help="Items per second, token bucket (default: no limit).")
@click.option("--burst", type=int, help="Bucket size in items (default: one second of --rate).")
def keys_add(name: str, db: str, **limits: Any) -> None:
    """Create a key; prints it once on stdout (only its sha256 is stored)."""
    from edgeguard.serve.stores import open_store

    store = open_store(db, create=True)
    key = store.add(name, **limits)
    click.echo(f"created key '{name}' in {store.location}; it is shown only now, store it:", err=True)
    click.echo(key)


@keys_group.command("list")
@KEYS_DB
def keys_list(db: str) -> None:
    """Every key with its limits, usage and monitor flag (never the key itself)."""
    from edgeguard.serve.keys import utc_day, utc_now
    from edgeguard.serve.stores import open_store

    records, today = open_store(db).records(), utc_day(utc_now())

    def limit(value: Any) -> str:
        return "-" if value is None else f"{value:g}"

    click.echo(f"{'name':<20}{'status':<10}{'used':>10}{'budget':>10}{'today':>10}{'daily':>10}{'rate/s':>8}{'burst':>7}  {'created':<27}flag")
    for r in records:
        status = "revoked" if r.revoked else "flagged" if r.flagged else "active"
        flag = f"{r.flagged} {r.flag_reason}" if r.flagged else "-"
        click.echo(
            f"{r.name:<20}{status:<10}{r.used:>10}{limit(r.budget):>10}{r.used_on(today):>10}"
            f"{limit(r.daily):>10}{limit(r.rate):>8}{limit(r.burst):>7}  {r.created:<27}{flag}"
        )


@keys_group.command("revoke")
@click.argument("name")
@KEYS_DB
def keys_revoke(name: str, db: str) -> None:
    """Revoke a key: its next request gets 403, even on a running server."""
    from edgeguard.serve.stores import open_store

    store = open_store(db)
    store.revoke(name)
    click.echo(f"revoked key '{name}' in {store.location}")


@keys_group.command("clear-flag")
@click.argument("name")
@KEYS_DB
def keys_clear_flag(name: str, db: str) -> None:
    """Lift the monitor's flag from a key after review; a running server watches it afresh from its next query."""
    from edgeguard.serve.stores import open_store

    store = open_store(db)
    store.clear_flag(name)
    click.echo(f"cleared the flag of key '{name}' in {store.location}")
