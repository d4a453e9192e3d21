"""WaveNet-style causal dilated network (document 002).

Data flow: input projection `Conv1d(k1)` -> `stacks` x `layers` residual blocks with dilations
1, 2, 4, ..., 2^(layers-1) (repeated per stack) -> sum of the blocks' skip outputs -> ReLU -> `Conv1d(k1)` ->
ReLU = the causal feature sequence `(B, hidden, T)` (`features_sequence`). The head reads only the LAST time
step of that sequence: a linear layer for the direction logits, plus linear magnitude and volatility heads for
`wavenet_multitask`.

A residual block: `filter = CausalConv1d(k, d)`, `gate = CausalConv1d(k, d)` (parallel, same shape),
`z = tanh(filter(x)) * sigmoid(gate(x))`, `skip = Conv1d(k1)(z)`, `x = x + Conv1d(k1)(z)` (the last block has no residual conv: nothing reads it). Causal
convolutions pad only on the left (`CausalConv1d.causal_padding = (k-1)*d`), so output step t depends on
inputs <= t. Receptive field: 1 + stacks * (k-1) * (2^layers - 1) (k=3, layers=6: 127 bars; layers=8: 511).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from core.models.blocks import CausalConv1d, Dropout, ZooModel


class WaveNetBlock(nn.Module):
    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int,
                 dropout: float = 0.0, residual: bool = True) -> None:
        super().__init__()
        self.dilation = dilation
        self.filter_conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.gate_conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.dropout = Dropout(dropout)
        # the last block's residual output feeds nothing, so it has no residual conv
        self.residual_conv = nn.Conv1d(channels, channels, 1) if residual else None
        self.skip_conv = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.dropout(torch.tanh(self.filter_conv(x)) * torch.sigmoid(self.gate_conv(x)))
        res = x if self.residual_conv is None else x + self.residual_conv(z)
        return res, self.skip_conv(z)


class WaveNet(ZooModel):
    def __init__(self, in_channels: int, n_classes: int, channels: int = 32, skip_channels: int = 64,
                 hidden: int = 64, layers: int = 8, stacks: int = 1, kernel_size: int = 3, dropout: float = 0.0,
                 multitask: bool = False) -> None:
        super().__init__()
        self.multitask = bool(multitask)
        self.input_conv = nn.Conv1d(in_channels, channels, 1)
        dil = [2 ** i for _ in range(int(stacks)) for i in range(int(layers))]
        self.blocks = nn.ModuleList([WaveNetBlock(channels, skip_channels, kernel_size, d, dropout,
                                                  residual=j < len(dil) - 1) for j, d in enumerate(dil)])
        self.relu = nn.ReLU()
        self.output_conv = nn.Conv1d(skip_channels, hidden, 1)
        self.direction = nn.Linear(hidden, n_classes)
        if self.multitask:
            self.magnitude = nn.Linear(hidden, 1)
            self.volatility = nn.Linear(hidden, 1)
        self.out_channels = hidden
        self.dilations = [b.dilation for b in self.blocks]

    def features_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Causal features `(B, hidden, T)`: step t depends only on input steps <= t."""
        h = self.input_conv(x)
        skip = None
        for block in self.blocks:
            h, s = block(h)
            skip = s if skip is None else skip + s
        return self.relu(self.output_conv(self.relu(skip)))

    forward_sequence = features_sequence
    forward_features = features_sequence

    def forward(self, x: torch.Tensor):
        last = self.features_sequence(x)[:, :, -1]
        logits = self.direction(last)
        if not self.multitask:
            return logits
        return {"direction": logits, "magnitude": self.magnitude(last).squeeze(-1),
                "volatility": self.volatility(last).squeeze(-1)}

    def _rf_modules(self) -> Iterable[nn.Module]:
        yield self.input_conv
        for b in self.blocks:
            yield b.filter_conv
            if b.residual_conv is not None:
                yield b.residual_conv
        # the skip of the last block carries the deepest path to the output
        yield self.blocks[-1].skip_conv
        yield self.output_conv
