"""ConvNeXt-1D (document 001, after Liu et al. 2022 "A ConvNet for the 2020s").

Data flow (sequential): patchify stem `Conv1d(k=s, stride=s)` (s=4) + channels-last LayerNorm; stage 1 of
ConvNeXt blocks; then for stages 2-4 a separate downsampling layer (LayerNorm + `Conv1d(k2, s2)`) followed by
the stage's blocks; global average pooling over time -> LayerNorm -> linear head.

A block: depthwise `Conv1d(k7, groups=C, padding 3)` -> LayerNorm (channels-last) -> Linear C->4C (the
inverted bottleneck) -> GELU -> Linear 4C->C -> layer scale (gamma, initialised to `layer_scale_init`) ->
drop path -> + input. The pointwise layers are `nn.Linear` on channels-last tensors (1x1 convolutions; they do
not change the receptive field).

Inputs of any length work: before the stem and each downsampling layer the sequence is zero-padded on the
LEFT to a multiple of the stride (and to at least one patch), so the most recent bar is never dropped.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from core.models.blocks import ChannelLayerNorm, DropPath, Dropout, ZooModel, left_pad_to_multiple

# The document's sizes (channels per stage, blocks per stage).
SIZES = {
    "tiny": ([96, 192, 384, 768], [3, 3, 9, 3]),
    "small": ([96, 192, 384, 768], [3, 3, 27, 3]),
    "base": ([128, 256, 512, 1024], [3, 3, 27, 3]),
    "compact": ([32, 64, 128, 256], [1, 1, 3, 1]),
}


class ConvNeXtBlock1d(nn.Module):
    def __init__(self, dim: int, kernel_size: int = 7, drop_path: float = 0.0, layer_scale_init: float = 1e-6,
                 expansion: int = 4) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expansion * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim)) if layer_scale_init > 0 else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.transpose(1, 2))


class ConvNeXt1d(ZooModel):
    def __init__(self, in_channels: int, n_classes: int, dims: Sequence[int] = (32, 64, 128, 256),
                 depths: Sequence[int] = (1, 1, 3, 1), kernel_size: int = 7, stem_stride: int = 4,
                 drop_path: float = 0.0, layer_scale_init: float = 1e-6, dropout: float = 0.0) -> None:
        super().__init__()
        dims, depths = [int(d) for d in dims], [int(d) for d in depths]
        if len(dims) != len(depths) or not dims:
            raise ValueError("dims and depths must be lists of the same, non-zero length")
        self.stem_stride = int(stem_stride)
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv1d(in_channels, dims[0], self.stem_stride, stride=self.stem_stride),
            ChannelLayerNorm(dims[0])))
        for i in range(1, len(dims)):
            self.downsample_layers.append(nn.Sequential(ChannelLayerNorm(dims[i - 1]),
                                                        nn.Conv1d(dims[i - 1], dims[i], 2, stride=2)))
        n = sum(depths)  # drop path grows linearly with depth, 0 .. drop_path (plain floats: meta-device safe)
        rates = [float(drop_path) * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
        self.stages = nn.ModuleList()
        k = 0
        for dim, depth in zip(dims, depths):
            self.stages.append(nn.Sequential(*[ConvNeXtBlock1d(dim, kernel_size, rates[k + j], layer_scale_init)
                                               for j in range(depth)]))
            k += depth
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(dims[-1], n_classes)
        self.out_channels = dims[-1]
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map `(B, dims[-1], T')`, T' ~ T / (stem_stride * 2**(stages-1))."""
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            s = self.stem_stride if i == 0 else 2
            x = stage(down(left_pad_to_multiple(x, s, s)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.forward_features(x).mean(dim=-1))
        return self.head(self.dropout(h))

    def _rf_modules(self) -> Iterable[nn.Module]:
        for down, stage in zip(self.downsample_layers, self.stages):
            yield next(m for m in down if isinstance(m, nn.Conv1d))
            for blk in stage:
                yield blk.dwconv
