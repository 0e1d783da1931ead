"""Which key store `--keys` names: a URL scheme in STORES, or else a SQLite file (the default).

    open_store("keys.db")                           # one device: a SQLite file (keys.py)
    open_store("redis://:PASSWORD@10.0.0.5:6379/0")  # a fleet: one shared Redis (redis_keys.py)

A new store is a `BaseKeyStore` subclass taking (url, create) and a row here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgeguard.errors import EdgeguardError
from edgeguard.serve.keys import BaseKeyStore, KeyStore
from edgeguard.serve.redis_keys import RedisKeyStore

STORES: dict[str, Callable[..., BaseKeyStore]] = {"redis": RedisKeyStore, "rediss": RedisKeyStore}


def open_store(location: str | Path, create: bool = False, serving: bool = False) -> BaseKeyStore:
    """The store at `location`; create: it may be empty (`keys add`); serving: for a server, which
    runs the store's background work (`BaseKeyStore.serving`)."""
    scheme, sep, _ = str(location).partition("://")
    if not sep:
        return KeyStore(location, create=create, autocheckpoint=not serving)
    if scheme not in STORES:
        raise EdgeguardError(f"--keys must be a SQLite file or a {' / '.join(f'{s}://' for s in STORES)} URL, got a {scheme}:// URL")
    return STORES[scheme](str(location), create=create)
