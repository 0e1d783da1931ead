"""Real servers on loopback for the serve tests: uvicorn in a thread, `edgeguard serve` in a process, redis-server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest
import uvicorn

from edgeguard.bench.loopback import RedisServer
from edgeguard.manifest import Manifest
from edgeguard.serve import KeyStore, ServeConfig, Service, create_app

HOST = "127.0.0.1"
STACK = "reverse_sigmoid(beta=0.7, gamma=0.4) | noise(scale=0.05, key=test-secret) | round(decimals=3)"


@pytest.fixture(scope="session")
def export(default_export) -> Path:
    return Path(default_export[0])


@pytest.fixture(scope="session")
def natural(export: Path) -> np.ndarray:
    """A Knockoff thief's queries: natural photo patches."""
    from edgeguard.data.natural import natural_patches

    return natural_patches(500, tuple(Manifest.load(export).input_shape), seed=7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Keys:
    """A fresh keys database; `add` returns the plaintext key."""

    def __init__(self, path: Path):
        self.path = path
        self.store = KeyStore(path, create=True)

    def add(self, name: str, **limits: Any) -> str:
        return self.store.add(name, **limits)

    def used(self, name: str) -> int:
        record = self.store.record_named(name)
        assert record is not None
        return record.used


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys.db")


@contextlib.contextmanager
def thread_server(service: Service) -> Iterator[str]:
    """uvicorn serving `service` on a free loopback port from a thread; yields the base URL."""
    config = uvicorn.Config(create_app(service), host=HOST, port=free_port(), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://{HOST}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def serve(export: Path, keys: Keys) -> Iterator[Any]:
    """serve(**ServeConfig fields, clock=...) -> base URL of a live server for that deployment."""
    with contextlib.ExitStack() as stack:

        def start(clock: Any = None, **config: Any) -> str:
            service = Service.load(ServeConfig(folder=export, keys=keys.path, **config))
            if clock is not None:
                service.clock = clock
            return stack.enter_context(thread_server(service))

        yield start


class ServerProcess:
    """`edgeguard serve` as a subprocess (the real CLI), on a free port."""

    def __init__(self, export: Path, keys: str | Path, *options: str):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        command = "from edgeguard.cli import main; main()"
        args = [sys.executable, "-c", command, "serve", str(export), "--keys", str(keys), "--port", str(self.port), *options]
        self.proc = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"server exited: {self.proc.stdout.read()}"
            assert time.monotonic() < deadline, "server did not become ready in 60 s"
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc.stdout.close()


@pytest.fixture
def server_process(export: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(keys: str | Path, *options: str) -> ServerProcess:
        started.append(ServerProcess(export, keys, *options))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def needs_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server); the Redis key store is tested against a real one")


@pytest.fixture
def redis_server(needs_redis: None, tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (a free loopback port, its files in tmp_path): never a mock."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
