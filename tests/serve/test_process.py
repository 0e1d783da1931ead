"""`edgeguard serve` and `edgeguard keys` as a user runs them: processes, kill -9, no torch, the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from edgeguard.cli import main
from edgeguard.serve import KeyStore


def predict(url: str, key: str, n: int = 1) -> int:
    x = np.full((n, 1, 28, 28), 0.5).tolist()
    return httpx.post(f"{url}/predict", json={"inputs": x}, headers={"X-API-Key": key}, timeout=10).status_code


def test_counts_survive_kill_9_and_restart(server_process, tmp_path: Path):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("alice", budget=10)
    server = server_process(db)
    assert [predict(server.url, key, n) for n in (1, 3, 2)] == [200, 200, 200]
    server.kill9()  # no shutdown, no checkpoint: only what was committed survives
    server = server_process(db)
    assert KeyStore(db).record_named("alice").used == 6
    assert predict(server.url, key, 5) == 403  # 4 left: the budget was not reset by the crash
    assert [predict(server.url, key, 4), predict(server.url, key)] == [200, 403]


def test_the_running_server_never_loads_torch_nor_logs_secrets(server_process, tmp_path: Path, export: Path):
    db = tmp_path / "keys.db"
    key = KeyStore(db, create=True).add("alice")
    server = server_process(db, "--defense", "noise(scale=0.1, key=s3cret) | topk(k=3)")
    assert predict(server.url, key) == 200
    maps = Path(f"/proc/{server.proc.pid}/maps")
    if maps.exists():  # Linux: every shared library the process has loaded
        assert "torch" not in maps.read_text()
    server.proc.terminate()
    printed = server.proc.stdout.read()
    assert "sha256 verified" in printed and "defense: noise | topk" in printed
    assert "s3cret" not in printed  # start-up lines end up in logs: no defense parameters
    code = (
        "import sys\n"
        "from edgeguard.serve import ServeConfig, Service, create_app\n"
        f"create_app(Service.load(ServeConfig(folder={str(export)!r}, keys={str(db)!r}, defense='noise')))\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_tampered_model_is_refused_in_one_line(tmp_path: Path, export: Path):
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    model = folder / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    KeyStore(tmp_path / "keys.db", create=True).add("alice")
    r = CliRunner().invoke(main, ["serve", str(folder), "--keys", str(tmp_path / "keys.db")])
    assert r.exit_code == 1 and "does not match its manifest" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_serve_refuses_a_missing_keys_database_and_a_bad_spec(tmp_path: Path, export: Path):
    r = CliRunner().invoke(main, ["serve", str(export), "--keys", str(tmp_path / "none.db")])
    assert r.exit_code == 1 and "keys add" in r.output
    KeyStore(tmp_path / "keys.db", create=True)
    r = CliRunner().invoke(main, ["serve", str(export), "--keys", str(tmp_path / "keys.db"), "--defense", "topk(k=)"])
    assert r.exit_code == 1 and "defense spec" in r.output
    r = CliRunner().invoke(main, ["serve", str(export), "--keys", str(tmp_path / "keys.db"), "--format", "tflite"])
    assert r.exit_code == 1 and "no int8 tflite model" in r.output


def test_keys_cli_add_list_revoke(tmp_path: Path):
    db = str(tmp_path / "keys.db")
    runner = CliRunner()
    r = runner.invoke(main, ["keys", "add", "alice", "--budget", "100", "--daily", "20", "--rate", "5", "--db", db])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    assert key.startswith("eg_") and "shown only now" in r.stderr
    assert KeyStore(db).lookup(key).budget == 100
    assert runner.invoke(main, ["keys", "add", "bob", "--db", db]).exit_code == 0
    r = runner.invoke(main, ["keys", "list", "--db", db])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and lines[0].split()[:4] == ["name", "status", "used", "budget"]
    assert lines[1].split()[:8] == ["alice", "active", "0", "100", "0", "20", "5", "5"]
    assert lines[2].split()[:4] == ["bob", "active", "0", "-"] and key not in r.stdout
    assert runner.invoke(main, ["keys", "revoke", "bob", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["keys", "list", "--db", db]).stdout.splitlines()[2].split()[1] == "revoked"
    r = runner.invoke(main, ["keys", "revoke", "carol", "--db", db])
    assert r.exit_code == 1 and "no key named 'carol'" in r.output
    r = runner.invoke(main, ["keys", "add", "alice", "--db", db])
    assert r.exit_code == 1 and "already exists" in r.output


@pytest.mark.parametrize("env", [True, False])
def test_keys_db_defaults_to_the_current_folder_or_the_environment(tmp_path: Path, monkeypatch, env):
    monkeypatch.chdir(tmp_path)
    if env:
        monkeypatch.setenv("EDGEGUARD_KEYS", str(tmp_path / "elsewhere.db"))
    else:
        monkeypatch.delenv("EDGEGUARD_KEYS", raising=False)
    assert CliRunner().invoke(main, ["keys", "add", "alice"]).exit_code == 0
    assert (tmp_path / ("elsewhere.db" if env else "keys.db")).is_file()
