"""2D CNNs on image encodings (document 004).

`CNNTA` (CNN-TA, Sezer & Ozbayoglu 2018) reads indicator images `(B, 1, T, C)`: rows are bars, columns are
indicators. Data flow: `Conv2d(3x3) -> ReLU -> Conv2d(3x3) -> ReLU -> MaxPool2d(2) -> Dropout ->
AdaptiveAvgPool2d(pool) -> Linear -> ReLU -> Dropout -> Linear`.

`OrderBookCNN` reads order-book depth heatmaps `(B, 1, T, L)` (T snapshots x L price levels). Data flow:
a stem `Conv2d(3x3, stride 2) -> BN -> ReLU`, then `stages` stages of `[Conv2d(3x3) -> BN -> ReLU] x 2` with
`MaxPool2d(2)` between stages, global average pooling, dropout, linear head. Both are sequential (no branches).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from core.models.blocks import Dropout, ZooModel, is_rf_layer


class CNNTA(ZooModel):
    def __init__(self, in_channels: int, n_classes: int, channels: int = 32, hidden: int = 128,
                 dropout: float = 0.25, pool: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True), Dropout(dropout))
        self.pool = nn.AdaptiveAvgPool2d((int(pool), int(pool)))
        self.head = nn.Sequential(nn.Linear(2 * channels * int(pool) ** 2, hidden), nn.ReLU(inplace=True),
                                  Dropout(2 * dropout), nn.Linear(hidden, n_classes))
        self.out_channels = 2 * channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))

    def _rf_modules(self) -> Iterable[nn.Module]:
        return [m for m in self.features if is_rf_layer(m)]


class OrderBookCNN(ZooModel):
    def __init__(self, in_channels: int, n_classes: int, channels: int = 16, stages: int = 3,
                 dropout: float = 0.3) -> None:
        super().__init__()
        # a stride-2 stem quarters the pixels (64 x 100 heatmaps train ~4x faster on CPU)
        mods: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        cin = channels
        for i in range(int(stages)):
            cout = channels * 2 ** i
            if i > 0:
                mods.append(nn.MaxPool2d(2, ceil_mode=True))
            for _ in range(2):
                mods += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*mods)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)
        self.out_channels = cin

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.avgpool(self.features(x)).flatten(1)))

    def _rf_modules(self) -> Iterable[nn.Module]:
        return [m for m in self.features if is_rf_layer(m)]
