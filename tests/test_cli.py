import pytest
from click.testing import CliRunner

from edgeguard.cli import main


def test_bad_input_gives_one_sentence_and_nonzero_exit(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["export", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["export", "--runs-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no finished run" in r.output
    r = runner.invoke(main, ["train", "--dataset", "imagenet"])
    assert r.exit_code == 2 and "imagenet" in r.output


def test_export_cli_on_a_run(default_run, tmp_path):
    pytest.importorskip("torch")
    r = CliRunner().invoke(main, ["export", str(default_run.dir), "--int8", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "model.int8.onnx" in r.output
    assert (tmp_path / default_run.dir.name / "manifest.json").exists()
