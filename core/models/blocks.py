"""Small building blocks shared by the model zoo.

All convolutions are plain `nn.Conv1d` / `nn.Conv2d` modules (or the `CausalConv1d` subclass below), so a
walker can read `kernel_size`, `stride`, `dilation`, `padding` (and `causal_padding`) from each module.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Conv1d):
    """A `Conv1d` that pads only on the left: output step t sees inputs t - (k-1)*d .. t, never the future.

    `padding` is 0 (the module's own padding is unused); `causal_padding = (kernel_size - 1) * dilation` is
    the number of zeros added on the left before the convolution. Output length == input length (stride 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 bias: bool = True, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, dilation=dilation,
                         bias=bias)
        self.causal_padding = (int(kernel_size) - 1) * int(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.causal_padding:
            x = F.pad(x, (self.causal_padding, 0))
        return super().forward(x)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a `(B, C, T)` tensor (ConvNeXt's channels-last LayerNorm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


# ---- randomness that stays with its training -------------------------------------------------------------
# torch's global generator is shared by every thread of the process: a training in one job and a page building
# a model in another (the Architectures page, loading a run) would take each other's draws, and "the same
# config gives the same numbers" would depend on what else ran. So a training's dropout and drop-path draw from
# its own generator (set for its thread by `private_rng`), and every model creation that draws initial weights
# from the global generator holds MODEL_INIT (`seeded_init` seeds it inside the lock).
MODEL_INIT = threading.RLock()
_THREAD = threading.local()


@contextlib.contextmanager
def private_rng(generator: Optional[torch.Generator]) -> Iterator[None]:
    """Dropout and drop-path in this thread draw from `generator` (None: torch's global one)."""
    before = getattr(_THREAD, "generator", None)
    _THREAD.generator = generator
    try:
        yield
    finally:
        _THREAD.generator = before


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Create models inside: torch's and numpy's global generators seeded with `seed`, no other thread's
    model creation in between (the same seed, the same initial weights)."""
    with MODEL_INIT:
        torch.manual_seed(int(seed))
        np.random.seed(int(seed))
        yield


def _private_generator(like: torch.Tensor) -> Optional[torch.Generator]:
    """The generator `private_rng` set for this thread, if it is on `like`'s device (None: torch's global)."""
    g = getattr(_THREAD, "generator", None)
    return g if g is not None and g.device.type == like.device.type else None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout`, drawing from the thread's private generator when a training set one."""
    if not training or p <= 0.0:
        return x
    g = _private_generator(x)
    if g is None:
        return F.dropout(x, p, True)
    if p >= 1.0:
        return x * 0.0
    keep = 1.0 - p
    noise = torch.empty_like(x).bernoulli_(keep, generator=g)  # the draws and arithmetic of torch's CPU dropout
    return x * noise.div_(keep)


class Dropout(nn.Dropout):
    """`nn.Dropout` (same state, same repr) whose mask comes from the thread's private generator."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class DropPath(nn.Module):
    """Stochastic depth: in training, drop the whole residual branch of a sample with probability `p`."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep, generator=_private_generator(x))
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SqueezeExcite1d(nn.Module):
    """Squeeze-and-excitation over channels: global average over time -> FC -> ReLU -> FC -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(4, channels // max(1, int(reduction)))
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc1 = nn.Linear(channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(self.fc2(self.relu(self.fc1(self.pool(x).flatten(1)))))
        return x * w.unsqueeze(-1)


def left_pad_to_multiple(x: torch.Tensor, multiple: int, min_length: int | None = None) -> torch.Tensor:
    """Zero-pad a `(B, C, T)` tensor on the LEFT so T is a multiple of `multiple` (and >= `min_length`).

    Padding on the left keeps the most recent bar inside the last patch instead of dropping it.
    """
    t = x.shape[-1]
    target = max(t, min_length or 0)
    target = -(-target // multiple) * multiple
    return F.pad(x, (target - t, 0)) if target > t else x


def is_rf_layer(m: nn.Module) -> bool:
    """Modules that set kernel/stride/dilation: convolutions and (non-adaptive) max/avg pools."""
    return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d))


class ZooModel(nn.Module):
    """Base class of every model in the zoo.

    `rf_path()` returns `[(qualified_name, module), ...]`: the convolution and pooling modules on the
    longest path from the input to the last feature map, in data-flow order (names as in
    `named_modules()`). Subclasses implement `_rf_modules()` returning those modules in order.
    """

    #: set by the registry: the registered name and the full config used to build the model
    model_name: str = ""
    config: dict

    def _rf_modules(self) -> Iterable[nn.Module]:  # pragma: no cover - every model overrides
        raise NotImplementedError

    def rf_path(self) -> list[tuple[str, nn.Module]]:
        names = {id(m): n for n, m in self.named_modules()}
        out = []
        for m in self._rf_modules():
            if m is None:
                continue
            if id(m) not in names:
                raise RuntimeError(f"rf_path module {type(m).__name__} is not a submodule of the model")
            out.append((names[id(m)], m))
        return out
