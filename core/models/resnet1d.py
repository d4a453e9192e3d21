"""ResNet-1D (document 000): ResNet-18/34 with basic blocks, ResNet-50 with bottleneck blocks, and the
squeeze-and-excitation and multi-scale (k 3/5/7) residual variants.

Data flow: stem `Conv1d(k7, s2, p3) -> BN -> ReLU -> MaxPool(k3, s2, p1)`, then four stages of residual
blocks with widths `w, 2w, 4w, 8w` (full size: w=64 -> 64-128-256-512), the first block of stages 2-4
downsampling with stride 2 (on the block's first 3-wide conv, like torchvision) and a projection shortcut
(1x1 conv + BN) wherever the shape changes; then global average pooling over time, dropout and a linear
head. The residual path of each block is the longest path; shortcuts are parallel and shorter.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from core.models.blocks import Dropout, SqueezeExcite1d, ZooModel


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))


class BasicBlock1d(nn.Module):
    """Two k-wide convs with BN/ReLU and an identity or projection shortcut; optional squeeze-excitation."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, kernel_size: int = 3, se_reduction: int = 0):
        super().__init__()
        self.conv1 = _conv(cin, planes, kernel_size, stride)
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, kernel_size)
        self.bn2 = nn.BatchNorm1d(planes)
        self.se = SqueezeExcite1d(planes, se_reduction) if se_reduction else None
        self.downsample = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)

    def rf_modules(self) -> list[nn.Module]:
        return [self.conv1, self.conv2]


class MultiScaleBlock1d(nn.Module):
    """Residual block whose first conv is three parallel branches (k 3, 5, 7) fused by a 1x1 conv."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, kernel_size: int = 3, se_reduction: int = 0,
                 kernels: Sequence[int] = (3, 5, 7)):
        super().__init__()
        self.branches = nn.ModuleList([_conv(cin, planes, int(k), stride) for k in kernels])
        self.fusion = nn.Conv1d(planes * len(self.branches), planes, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, kernel_size)
        self.bn2 = nn.BatchNorm1d(planes)
        self.se = SqueezeExcite1d(planes, se_reduction) if se_reduction else None
        self.downsample = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([b(x) for b in self.branches], dim=1)
        out = self.relu(self.bn1(self.fusion(out)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)

    def rf_modules(self) -> list[nn.Module]:
        widest = max(self.branches, key=lambda c: c.kernel_size[0])
        return [widest, self.fusion, self.conv2]


class Bottleneck1d(nn.Module):
    """1x1 reduce -> k-wide conv (carries the stride) -> 1x1 expand (x4), BN after each, projection shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, kernel_size: int = 3, se_reduction: int = 0):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv1d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = _conv(planes, planes, kernel_size, stride)
        self.bn2 = nn.BatchNorm1d(planes)
        self.conv3 = nn.Conv1d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm1d(out)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite1d(out, se_reduction) if se_reduction else None
        self.downsample = _shortcut(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)

    def rf_modules(self) -> list[nn.Module]:
        return [self.conv1, self.conv2, self.conv3]


BLOCKS = {"basic": BasicBlock1d, "bottleneck": Bottleneck1d, "multiscale": MultiScaleBlock1d}
LAYOUTS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3])}


class ResNet1d(ZooModel):
    """ResNet over `(B, C, T)` windows; `width` is the first stage's channels (64 = the paper's size)."""

    def __init__(self, in_channels: int, n_classes: int, block: str = "basic",
                 layers: Sequence[int] = (2, 2, 2, 2), width: int = 32, kernel_size: int = 3,
                 stem_kernel: int = 7, dropout: float = 0.0, se_reduction: int = 0) -> None:
        super().__init__()
        blk = BLOCKS[block]
        self.conv1 = nn.Conv1d(in_channels, width, stem_kernel, stride=2, padding=stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool1d(3, stride=2, padding=1)
        cin = width
        stages = []
        for i, n in enumerate(layers):
            planes = width * 2 ** i
            blocks = []
            for j in range(int(n)):
                blocks.append(blk(cin, planes, 2 if (i > 0 and j == 0) else 1, kernel_size, se_reduction))
                cin = planes * blk.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)
        self.out_channels = cin
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map `(B, 8w*expansion, T')`, T' ~ T/32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.avgpool(self.forward_features(x)).flatten(1)))

    def _rf_modules(self) -> Iterable[nn.Module]:
        yield self.conv1
        yield self.maxpool
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for b in stage:
                yield from b.rf_modules()
