"""Start from trained fp32 weights: a state_dict file (`--teacher PATH`) or torchvision's release (`--weights DEFAULT`).

A state_dict fits when every tensor of the model is there with its shape. Two differences are
expected and handled rather than refused: the classifier head of another class count (it is left
freshly initialised, to be fine-tuned on the user's classes), and an RGB stem for a grey model
(its filters are summed over colour: a grey image is R = G = B, so the summed filter responds to it
exactly as the RGB filter responds to the grey image's colour copy).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeguard.errors import EdgeguardError
from edgeguard.models.blocks import QuantizableNet

OPTIONAL = ("num_batches_tracked",)  # older torchvision releases predate BatchNorm's step counter


def head_keys(model: nn.Module) -> set[str]:
    """The classifier head's tensors: the last Linear layer's weight and bias."""
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return {f"{name}.weight", f"{name}.bias"}


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from disk, or a dict holding one under 'state_dict' / 'model' (common checkpoint layouts)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise EdgeguardError(f"teacher weights '{path}' do not exist") from e
    except Exception as e:  # torch raises many types for a foreign or truncated file
        raise EdgeguardError(f"teacher weights '{path}' are not a readable state_dict ({type(e).__name__}: {e})") from e
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgeguardError(f"teacher weights '{path}' hold a {type(state).__name__}, not a state_dict of tensors; save `model.state_dict()`")
    return state


def released_weights(model: QuantizableNet, name: str) -> dict[str, torch.Tensor]:
    """torchvision's released weights for `model`; offline, one sentence on how to bring them as a file."""
    try:
        return model.released_weights()
    except EdgeguardError:
        raise
    except Exception as e:  # urllib / ssl / http errors when the machine is offline
        raise EdgeguardError(
            f"cannot download torchvision's released weights for {name} ({type(e).__name__}); on a machine that is online run "
            f"`python -c \"import torch, torchvision; torch.save(torchvision.models.{model.arch}(weights='DEFAULT').state_dict(), '{name}.pt')\"`, "
            f"copy {name}.pt here and pass --teacher {name}.pt"
        ) from e


def load_teacher(model: QuantizableNet, state: dict[str, torch.Tensor], source: str) -> bool:
    """Load `state` into `model` in place; returns True when the classifier head was replaced (fine-tune it)."""
    state = model.own_keys(dict(state))
    own, head = model.state_dict(), head_keys(model)
    replaced = False
    for key, tensor in own.items():
        if key not in state:
            if key.endswith(OPTIONAL):
                state[key] = tensor
                continue
            raise EdgeguardError(f"'{source}' does not fit {type(model).__name__}: it has no tensor '{key}' {tuple(tensor.shape)}")
        given = state[key]
        if given.shape == tensor.shape:
            continue
        if key in head:
            state[key], replaced = tensor, True
        elif given.dim() == 4 and given.shape[1] == 3 and tensor.shape[1] == 1 and given.shape[0] == tensor.shape[0]:
            state[key] = given.sum(1, keepdim=True)  # an RGB stem for a grey model
        else:
            raise EdgeguardError(
                f"'{source}' does not fit {type(model).__name__}: tensor '{key}' has shape {tuple(given.shape)}, the model needs {tuple(tensor.shape)}"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise EdgeguardError(f"'{source}' does not fit {type(model).__name__}: tensor '{extra[0]}' has no place in it (is it another architecture?)")
    model.load_state_dict(state)
    return replaced
