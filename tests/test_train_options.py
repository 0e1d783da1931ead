"""Training from a given teacher (--teacher, --weights) and on a chosen device (--device)."""

import pytest

torch = pytest.importorskip("torch")

from edgeguard.errors import EdgeguardError  # noqa: E402
from edgeguard.models import build_model  # noqa: E402
from edgeguard.train import loop  # noqa: E402
from edgeguard.train.run import TrainConfig, train_run  # noqa: E402


def test_a_given_teacher_with_another_head_is_fine_tuned_then_quantized(tmp_path, torch_threads):
    """A 1000-class state_dict -> the 10-class digits run: the body is the file's, the head is new and trained."""
    torch.manual_seed(1)
    source = build_model("small-cnn", (1, 28, 28), 1000).state_dict()
    torch.save(source, tmp_path / "teacher.pt")
    run = train_run(TrainConfig(runs_dir=str(tmp_path), teacher=str(tmp_path / "teacher.pt"), epochs=1, qat_epochs=1, device="cpu"))
    assert run.metrics["teacher_source"].endswith("(classifier head replaced for 10 classes, fine-tuned)")
    assert run.metrics["device"] == "cpu" and run.metrics["accuracy"]["int8"] > 0.5
    assert run.teacher.fc2.weight.shape == (10, 128)
    assert not torch.equal(run.teacher.features[0][0].weight, source["features.0.0.weight"])  # fine-tuned, from the file's start


def test_a_teacher_that_fits_skips_teacher_training(tmp_path, torch_threads):
    torch.manual_seed(2)
    given = build_model("small-cnn", (1, 28, 28), 10).state_dict()
    torch.save(given, tmp_path / "teacher.pt")
    run = train_run(TrainConfig(runs_dir=str(tmp_path), teacher=str(tmp_path / "teacher.pt"), epochs=5, qat_epochs=1))
    assert run.metrics["teacher_source"] == str(tmp_path / "teacher.pt")
    assert all(torch.equal(v, given[k]) for k, v in run.teacher.state_dict().items())
    assert run.metrics["seconds_per_epoch"]["fp32"] == 0.0


def test_devices(monkeypatch):
    assert loop.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loop.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(EdgeguardError, match="--device cuda: torch sees no CUDA GPU here"):
        TrainConfig(device="cuda").validate()
    with pytest.raises(EdgeguardError, match="unknown device 'tpu'"):
        loop.resolve_device("tpu")


def test_bad_weight_options_are_sentences():
    with pytest.raises(EdgeguardError, match="--weights takes DEFAULT"):
        TrainConfig(weights="IMAGENET").validate()
    with pytest.raises(EdgeguardError, match="either --teacher FILE or --weights DEFAULT"):
        TrainConfig(teacher="t.pt", weights="DEFAULT").validate()
    with pytest.raises(EdgeguardError, match="own models have no released weights"):
        build_model("small-cnn", (1, 28, 28), 10).released_weights()


def test_unset_epochs_give_a_small_split_the_steps_digits_gets(default_run):
    """The defaults were chosen at 17 batches per epoch: a 320-image split at batch 64 (5 batches)
    gets as many optimizer steps, not 40 QAT steps; explicit counts and larger splits are kept."""

    def counts(cfg: TrainConfig, n_train: int) -> tuple:
        filled = cfg.with_epochs(n_train)
        return filled.epochs, filled.qat_epochs

    assert (default_run.config.epochs, default_run.config.qat_epochs) == (20, 8)  # digits: unchanged, recorded
    assert counts(TrainConfig(), 320) == (68, 28)
    assert counts(TrainConfig(batch_size=16), 320) == (20, 8)  # 20 batches per epoch: already more steps than digits
    assert counts(TrainConfig(epochs=3, qat_epochs=2), 10) == (3, 2)


def test_an_int8_model_far_below_its_teacher_is_reported_with_where_its_answers_went(tmp_path, torch_threads, default_run):
    """DivQAT pulled hard to its fixed class: `train` names the class that drew the answers and the option to turn down."""
    assert default_run.int8_shortfall() is None  # plain QAT on digits: int8 within 2 points
    assert sum(default_run.metrics["answers_per_class"]["int8"]) == len(default_run.dataset().test)
    cfg = TrainConfig(runs_dir=str(tmp_path), method="divqat", epochs=3, qat_epochs=2, method_options={"target": "fixed", "lam": 40.0, "inputs": "clean"})
    run = train_run(cfg)
    answers = run.metrics["answers_per_class"]
    assert answers["int8"][0] > answers["fp32"][0]
    warning = run.int8_shortfall()
    assert warning is not None and "went most to '0'" in warning and "--lam 40" in warning
