"""ResNet-18 2D for candlestick chart images `(B, 3, H, W)` (document 004: transfer learning).

Module names and shapes follow torchvision's `resnet18` exactly (`conv1, bn1, relu, maxpool,
layer1..layer4` of `BasicBlock`s with `conv1, bn1, relu, conv2, bn2, downsample.0 (1x1 conv), downsample.1
(BN)`, `avgpool, fc`), so with `in_channels=3, n_classes=1000` the model has exactly 11,689,512 parameters
and loads a torchvision resnet18 `state_dict`. Data flow is sequential along the residual path of each
block; the downsample shortcuts are parallel and shorter.

`load_torchvision_weights(model, path)` reads a torchvision resnet18 `.pth` placed in the workspace
(`torch.load(weights_only=True)`), loads everything but `fc`, and gives the model a freshly initialised head
for our classes. `freeze_stages(model, n)` freezes the stem (n>=1) and `layer1..layer{n-1}` (BatchNorm of
frozen stages stays in eval mode while training).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from core.errors import UserError
from core.models.blocks import ZooModel, dropout

STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")  # stage 0 = the stem (conv1 + bn1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics of RGB inputs in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("none", "imagenet")


class ChartResNet18(ZooModel):
    def __init__(self, in_channels: int = 3, n_classes: int = 1000, dropout: float = 0.0,
                 freeze: int = 0, pretrained: str = "", input_norm: str = "none") -> None:
        super().__init__()
        # "imagenet": the [0, 1] chart is standardised with ImageNet's channel statistics first, as the
        # torchvision weights were trained (their first conv and frozen BatchNorms expect that scale)
        self.input_norm = str(input_norm)
        if self.input_norm == "imagenet":
            if in_channels != 3:
                raise UserError("chart_resnet18: input_norm 'imagenet' is for 3-channel (RGB) charts")
            self.register_buffer("in_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("in_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.inplanes = 64
        self.dropout_p = float(dropout)  # functional, so the module tree stays torchvision's
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, n_classes)
        self.out_channels = 512
        self.frozen_stages = 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if pretrained:
            load_torchvision_weights(self, pretrained)
        if freeze:
            freeze_stages(self, int(freeze))

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm == "imagenet":
            x = (x - self.in_mean) / self.in_std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        if self.dropout_p > 0:
            h = dropout(h, self.dropout_p, self.training)
        return self.fc(h)

    def train(self, mode: bool = True) -> "ChartResNet18":
        super().train(mode)
        if mode:  # frozen stages keep their BatchNorm statistics
            for name in STAGES[: self.frozen_stages]:
                mods = [self.conv1, self.bn1] if name == "conv1" else [getattr(self, name)]
                for m in mods:
                    m.eval()
        return self

    def _rf_modules(self) -> Iterable[nn.Module]:
        yield self.conv1
        yield self.maxpool
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for b in layer:
                yield b.conv1
                yield b.conv2


def torchvision_resnet18_shapes(n_classes: int = 1000, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """The state_dict keys and shapes of torchvision's resnet18, written out from its definition."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, in_channels, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        shapes.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    cin = 64
    for i, c in enumerate((64, 128, 256, 512), start=1):
        for j in range(2):
            p = f"layer{i}.{j}"
            shapes[f"{p}.conv1.weight"] = (c, cin if j == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if j == 0 and i > 1:
                shapes[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    shapes["fc.weight"] = (n_classes, 512)
    shapes["fc.bias"] = (n_classes,)
    return shapes


def _resolve_in_workspace(path: str | Path) -> Path:
    from core.workspace import workspace_root, ws_path

    p = Path(path)
    try:
        if p.is_absolute():
            root = workspace_root()
            rp = p.resolve()
            if rp != root and root not in rp.parents:
                raise ValueError
            return rp
        return ws_path(*p.parts)
    except ValueError:
        raise UserError(f"the weights file {str(path)!r} must be inside the workspace "
                        f"({workspace_root()}); copy it there first") from None


def load_torchvision_weights(model: ChartResNet18, path: str | Path, strict: bool = True) -> dict[str, Any]:
    """Load a torchvision resnet18 state_dict (all but `fc`) from a `.pth` file inside the workspace.

    `path` is relative to the workspace root (or an absolute path inside it). The head `fc` is replaced by
    a freshly initialised `Linear(512, n_classes)` for our classes. When `model` has `in_channels != 3`,
    `conv1` gets the RGB filters averaged over colour and repeated (scaled by 3 / in_channels).
    Returns `{"path", "loaded": n_tensors, "skipped": [...], "conv1_adapted": bool}`.
    """
    p = _resolve_in_workspace(path)
    if not p.is_file():
        raise UserError(f"no weights file at {p}: place a torchvision resnet18 .pth file in the workspace")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with code, corrupt file, not a torch file
        raise UserError(f"{p.name} could not be read as a PyTorch weights file ({type(exc).__name__}); "
                        f"save it with torch.save(model.state_dict(), path)") from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{p.name} does not hold a state_dict (a mapping of names to tensors)")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}

    in_ch = model.conv1.in_channels
    expected = {k: v for k, v in torchvision_resnet18_shapes(1000, in_ch).items() if not k.startswith("fc.")}
    missing = [k for k in expected if k not in state]
    if missing and strict:
        raise UserError(f"{p.name} is not a torchvision resnet18 state_dict: {len(missing)} key(s) missing, "
                        f"e.g. {', '.join(missing[:3])}")
    new_state: dict[str, torch.Tensor] = {}
    skipped = sorted(k for k in state if k not in expected)
    conv1_adapted = False
    for k, shape in expected.items():
        if k not in state:
            continue
        v = state[k]
        if k == "conv1.weight" and in_ch != 3 and tuple(v.shape) == (64, 3, 7, 7):
            v = v.mean(dim=1, keepdim=True).repeat(1, in_ch, 1, 1) * (3.0 / in_ch)
            conv1_adapted = True
        if tuple(v.shape) != tuple(shape):
            raise UserError(f"{p.name}: {k} has shape {tuple(v.shape)}, resnet18 needs {tuple(shape)}")
        new_state[k] = v
    result = model.load_state_dict(new_state, strict=False)
    bad = [k for k in result.missing_keys if not k.startswith("fc.")]
    if bad and strict:
        raise UserError(f"{p.name} left {len(bad)} weights unset, e.g. {', '.join(bad[:3])}")
    # a new head for our classes
    old = model.fc
    model.fc = nn.Linear(old.in_features, old.out_features).to(old.weight.device)
    return {"path": str(p), "loaded": len(new_state), "skipped": skipped, "conv1_adapted": conv1_adapted}


def freeze_stages(model: ChartResNet18, n: int) -> list[str]:
    """Freeze the first `n` stages (0 = none, 1 = stem conv1/bn1, 2 = stem + layer1, ..., 5 = all but fc).

    Frozen parameters get `requires_grad=False` and their BatchNorm layers stay in eval mode in training.
    Returns the frozen stage names.
    """
    n = int(n)
    if not 0 <= n <= len(STAGES):
        raise UserError(f"freeze must be between 0 and {len(STAGES)} stages, got {n}")
    for name in STAGES:  # unfreeze all first so the call is idempotent
        for m in ([model.conv1, model.bn1] if name == "conv1" else [getattr(model, name)]):
            for prm in m.parameters():
                prm.requires_grad_(True)
    for name in STAGES[:n]:
        for m in ([model.conv1, model.bn1] if name == "conv1" else [getattr(model, name)]):
            for prm in m.parameters():
                prm.requires_grad_(False)
    model.frozen_stages = n
    model.train(model.training)
    return list(STAGES[:n])
