"""Multi-scale (inception-style) 1D CNN (document 004).

Data flow: PARALLEL branches, one per kernel size (default 3, 7, 15, 31); each branch is
`Conv1d(k, same padding) -> ReLU -> BN -> Conv1d(k, same) -> ReLU -> BN`; the branch outputs are
concatenated over channels, averaged over time, then `Linear -> ReLU -> Dropout -> Linear -> ReLU -> Linear`.
For receptive-field analysis the longest path is the branch with the largest kernel (`rf_path()`).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from core.models.blocks import Dropout, ZooModel


def _branch(cin: int, filters: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, filters, k, padding=k // 2), nn.ReLU(), nn.BatchNorm1d(filters),
                         nn.Conv1d(filters, filters, k, padding=k // 2), nn.ReLU(),
                         nn.BatchNorm1d(filters))


class MultiScaleCNN(ZooModel):
    cam_input = "avgpool"  # Grad-CAM's map: what the head pools, all branches (the last conv is one branch)

    def __init__(self, in_channels: int, n_classes: int, filters: int = 32,
                 kernels: Sequence[int] = (3, 7, 15, 31), hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.kernels = [int(k) for k in kernels]
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError("kernels must be odd positive sizes, e.g. [3, 7, 15, 31]")
        self.branches = nn.ModuleList([_branch(in_channels, filters, k) for k in self.kernels])
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        width = filters * len(self.kernels)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), Dropout(dropout),
                                  nn.Linear(hidden, max(1, hidden // 2)), nn.ReLU(inplace=True),
                                  nn.Linear(max(1, hidden // 2), n_classes))
        self.out_channels = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated branch outputs `(B, filters * len(kernels), T)`."""
        return torch.cat([b(x) for b in self.branches], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.avgpool(self.forward_features(x)).flatten(1))

    def _rf_modules(self) -> Iterable[nn.Module]:
        widest = self.branches[max(range(len(self.kernels)), key=lambda i: self.kernels[i])]
        return [m for m in widest if isinstance(m, nn.Conv1d)]
