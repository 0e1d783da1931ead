"""Real servers on loopback for the serve tests: uvicorn in a thread, `edgeguard serve` in a process, redis-server."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import uvicorn

from edgeguard.bench.loopback import RedisServer, Server, free_port
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


@pytest.fixture
def server_process(export: Path) -> Iterator[Any]:
    """server_process(keys, *serve options) -> a running `edgeguard serve` process (bench.loopback.Server)."""
    with contextlib.ExitStack() as stack:
        yield lambda keys, *options: stack.enter_context(Server(export, keys, *options))


@pytest.fixture
def needs_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server); the Redis key store is tested against a real one")


@pytest.fixture
def redis_server(needs_redis: None, tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (a free loopback port, its files in tmp_path): never a mock."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
