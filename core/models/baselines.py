"""Flat baselines on the same `(B, C, T)` windows: an MLP and multinomial logistic regression.

Both flatten the last `lookback` bars of every channel (`C * lookback` inputs). A longer window is cut to its
last `lookback` bars; a shorter one is zero-padded on the left, so any window length is accepted while the
parameter count stays fixed. Set `lookback` to the training window to use every bar.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from core.models.blocks import Dropout, ZooModel


class _Flat(ZooModel):
    lookback: int

    def flatten_window(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        if t >= self.lookback:
            x = x[..., t - self.lookback:]
        else:
            x = F.pad(x, (self.lookback - t, 0))
        return x.reshape(x.shape[0], -1)

    def _rf_modules(self) -> Iterable[nn.Module]:
        return []  # no convolutions: every output sees the whole (last `lookback` bars of the) window


class MLP(_Flat):
    def __init__(self, in_channels: int, n_classes: int, lookback: int = 64, hidden: int = 128,
                 layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.lookback = int(lookback)
        mods: list[nn.Module] = []
        cin = in_channels * self.lookback
        for i in range(int(layers)):
            h = max(1, int(hidden) // (2 ** i))
            mods += [nn.Linear(cin, h), nn.ReLU(inplace=True), Dropout(dropout)]
            cin = h
        mods.append(nn.Linear(cin, n_classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.flatten_window(x))


class Logistic(_Flat):
    """Multinomial logistic regression: one linear layer; train with cross-entropy (+ weight decay = L2)."""

    def __init__(self, in_channels: int, n_classes: int, lookback: int = 64) -> None:
        super().__init__()
        self.lookback = int(lookback)
        self.linear = nn.Linear(in_channels * self.lookback, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flatten_window(x))
