"""The attack tests rob real servers: the serve tests' fixtures (a default export, keys, servers)."""

import pytest
from serve.conftest import export, keys, serve, server_process  # noqa: F401  (fixtures, by name)


@pytest.fixture(scope="module")
def digits():
    from edgeguard.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def served(default_export, torch_threads):
    """served(defense) -> the session's default int8 export behind that defense stack."""
    from edgeguard.evaluate.cells import ServedVictim
    from edgeguard.runtime import DeployedModel

    return lambda defense="none": ServedVictim(DeployedModel.load(default_export[0]), defense)
