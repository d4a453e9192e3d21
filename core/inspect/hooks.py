"""What the inspection tools share about running a model: eval mode that restores the caller's mode, forward
hooks that are always removed, and the device a model lives on."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (dropout off, batch-norm running statistics) inside; the previous mode is restored on exit."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@contextlib.contextmanager
def forward_hooks(pairs: Iterable[tuple[nn.Module, Callable]]) -> Iterator[None]:
    """Register `hook` on each `(module, hook)` for the block; removed on exit, also after an error."""
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
