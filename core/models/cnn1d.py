"""A plain 1D CNN (document 004's "1D CNN" row).

Data flow (sequential): `layers` x [`Conv1d(k5, padding 2)` -> BN -> ReLU -> (MaxPool1d(2) if `pool`)] with
widths c, 2c, 2c, ...; global average pooling over time; dropout; linear head.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from core.models.blocks import Dropout, ZooModel


class CNN1d(ZooModel):
    def __init__(self, in_channels: int, n_classes: int, channels: int = 32, layers: int = 3,
                 kernel_size: int = 5, dropout: float = 0.2, pool: bool = True) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        cin = in_channels
        for i in range(int(layers)):
            cout = channels if i == 0 else 2 * channels
            mods += [nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2), nn.BatchNorm1d(cout),
                     nn.ReLU(inplace=True)]
            if pool:
                mods.append(nn.MaxPool1d(2, ceil_mode=True))
            cin = cout
        self.features = nn.Sequential(*mods)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)
        self.out_channels = cin

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.avgpool(self.features(x)).flatten(1)))

    def _rf_modules(self) -> Iterable[nn.Module]:
        return [m for m in self.features if isinstance(m, (nn.Conv1d, nn.MaxPool1d))]
