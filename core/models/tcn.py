"""Temporal Convolutional Network (Bai, Kolter & Koltun 2018; document 004).

Data flow: `levels` residual blocks with dilations 1, 2, 4, ..., 2^(levels-1); each block is
`CausalConv1d(k, d) -> [weight norm] -> ReLU -> Dropout -> CausalConv1d(k, d) -> ReLU -> Dropout`, added to a
shortcut (identity, or a 1x1 conv when the width changes), then ReLU. The block stack is the causal feature
sequence `(B, C, T)` (`features_sequence`); the head is a linear layer on the LAST time step.
Receptive field: 1 + 2 * (k-1) * (2^levels - 1) (k=3, levels=4: 61 bars).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from core.models.blocks import CausalConv1d, Dropout, ZooModel


def _maybe_weight_norm(conv: nn.Conv1d, on: bool) -> nn.Conv1d:
    if on:
        from torch.nn.utils.parametrizations import weight_norm

        return weight_norm(conv)
    return conv


class TemporalBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int, dropout: float,
                 weight_norm: bool) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv1 = _maybe_weight_norm(CausalConv1d(cin, cout, kernel_size, dilation), weight_norm)
        self.relu1 = nn.ReLU()
        self.dropout1 = Dropout(dropout)
        self.conv2 = _maybe_weight_norm(CausalConv1d(cout, cout, kernel_size, dilation), weight_norm)
        self.relu2 = nn.ReLU()
        self.dropout2 = Dropout(dropout)
        self.downsample = nn.Conv1d(cin, cout, 1) if cin != cout else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout1(self.relu1(self.conv1(x)))
        out = self.dropout2(self.relu2(self.conv2(out)))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class TCN(ZooModel):
    def __init__(self, in_channels: int, n_classes: int, channels: int = 32, levels: int = 4,
                 kernel_size: int = 3, dropout: float = 0.2, weight_norm: bool = True) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for i in range(int(levels)):
            blocks.append(TemporalBlock(cin, channels, kernel_size, 2 ** i, dropout, weight_norm))
            cin = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, n_classes)
        self.out_channels = channels
        self.dilations = [b.dilation for b in blocks]

    def features_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Causal features `(B, channels, T)`: step t depends only on input steps <= t."""
        return self.blocks(x)

    forward_sequence = features_sequence
    forward_features = features_sequence

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features_sequence(x)[:, :, -1])

    def _rf_modules(self) -> Iterable[nn.Module]:
        for b in self.blocks:
            yield b.conv1
            yield b.conv2
