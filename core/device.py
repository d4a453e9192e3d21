"""Pick the compute device: CUDA when present, else CPU."""
from __future__ import annotations

import torch


def best_device(prefer: str | None = None) -> torch.device:
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
