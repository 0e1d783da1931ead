"""The grid on Ray (evaluate/cluster.py), real Ray throughout: the rows of one process, on a local
cluster and on a joined one whose worker is killed mid-grid. Each cluster starts in ~10 s and each
of its workers imports torch: these tests share one head and keep to two clusters."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from edgeguard.cli import main  # noqa: E402
from edgeguard.evaluate import grid  # noqa: E402

# Loopback only, read when Ray is imported: by the local cluster, the test head and this driver alike.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='needs Ray: pip install "edgeguard[cluster]"')

# One seed, one attack, one budget; two defenses x two sources: four groups of two cells.
SPEC = grid.GridSpec(victims=[grid.VictimRecipe("qat", "qat")], defenses=["none", "reverse_sigmoid(beta=1.0,gamma=0.2)"], attacks=["knockoff"], budgets=[40], seeds=[0], thief_steps=5, workers=1, thieves=[])


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in rows}


@pytest.fixture(scope="module")
def one_process(grid_dirs, tmp_path_factory) -> dict[str, dict]:
    """The small grid's rows robbed in this process: what every cluster must reproduce."""
    rows = grid.run_grid(SPEC, tmp_path_factory.mktemp("one"), *grid_dirs)["cells"]
    assert len(rows) == 8
    return by_key(rows)


@pytest.fixture(scope="module")
def head() -> Iterator[tuple[str, subprocess.Popen]]:
    """A one-CPU Ray head on loopback with token authentication, started as a user would; yields
    (address, its process) to a driver told to send its token (`RAY_AUTH_MODE=token`).

    Stopped by killing its process group: `ray stop` would stop every Ray on the machine.
    """
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "get-auth-token", "--generate"], check=True, capture_output=True)  # ~/.ray/auth_token unless there
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths live under it
    cmd = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", "1", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp]  # fmt: skip
    log = Path(temp) / "head.log"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "token")
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while "Ray runtime started" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            yield f"127.0.0.1:{port}", proc
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            shutil.rmtree(temp, ignore_errors=True)


@needs_ray
def test_local_cluster_gives_the_rows_of_one_process(one_process, grid_dirs, tmp_path):
    rows = grid.run_grid(replace(SPEC, ray="local"), tmp_path, *grid_dirs)["cells"]
    assert by_key(rows) == one_process


@needs_ray
def test_a_joined_cluster_gives_the_same_rows_though_a_worker_is_killed(head, one_process, grid_dirs, tmp_path):
    """The grid joins the head by its address. SIGKILL the worker robbing a group once a row is
    stored: the stored lines stay as they were, Ray retries the group (same seeds, same rows), and
    the same command run again completes nothing more and recomputes nothing."""
    address, proc = head
    store = tmp_path / "cells.jsonl"
    killed: list[str] = []  # the store's text at the moment of the kill
    finished = threading.Event()

    def kill_a_robbing_worker() -> None:
        while not killed and not finished.is_set():
            stored = store.read_text() if store.exists() else ""
            pids = _robbing_workers(proc.pid) if stored else []
            if pids:
                killed.append(stored)
                os.kill(pids[0], signal.SIGKILL)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_robbing_worker)
    killer.start()
    try:
        rows = grid.run_grid(replace(SPEC, ray=address), tmp_path, *grid_dirs)["cells"]
    finally:
        finished.set()
        killer.join()
    assert killed, "no worker was robbing once a row was stored"
    assert store.read_text().startswith(killed[0])
    assert by_key(rows) == one_process and len(rows) == len(one_process)
    before = store.read_text()
    assert by_key(grid.run_grid(replace(SPEC, ray=address), tmp_path, *grid_dirs)["cells"]) == one_process
    assert store.read_text() == before


def _robbing_workers(head_group: int) -> list[int]:
    """Worker processes of the head whose process group is `head_group` that are running a group now
    (Ray titles a busy worker after its task's function)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes()
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if title.startswith(b"ray::rob_shipped") and os.getpgid(parent) == head_group:
                pids.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue  # not a process, or gone meanwhile
    return pids


def test_ray_without_ray_installed_is_one_sentence_saying_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    r = CliRunner().invoke(main, ["evaluate", "--ray", "local", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert 'pip install "edgeguard[cluster]"' in r.output
    assert not (tmp_path / "runs").exists()  # it failed before training anything
