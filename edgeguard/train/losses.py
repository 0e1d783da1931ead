"""Training losses: a loss is a callable (x, y, student, teacher) -> scalar tensor.

It receives the modules, not just logits, because some losses (DivQAT) must run the student or the
teacher on inputs other than the batch itself.
"""

from __future__ import annotations

from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn


class Loss(Protocol):
    def __call__(self, x: torch.Tensor, y: torch.Tensor, student: nn.Module, teacher: Optional[nn.Module]) -> torch.Tensor: ...


def cross_entropy(x: torch.Tensor, y: torch.Tensor, student: nn.Module, teacher: Optional[nn.Module] = None) -> torch.Tensor:
    """Plain (QA) training: CE of the (fake-quantized) student on the clean batch."""
    return F.cross_entropy(student(x), y)
