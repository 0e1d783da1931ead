"""The attack tests rob real servers: the serve tests' fixtures (a default export, keys, servers)."""

from serve.conftest import export, keys, serve, server_process  # noqa: F401  (fixtures, by name)
