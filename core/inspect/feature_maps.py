"""Feature maps: what every layer of a model outputs for one input, captured with forward hooks.

`capture_feature_maps` registers one forward hook per module, runs a single forward pass in eval mode
without gradients, and removes every hook in a `finally` block - an exception in the model leaves no
hook behind. The model's training/eval mode is restored afterwards.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np
import torch
from torch import nn

from core.errors import UserError
from core.inspect.hooks import eval_mode, forward_hooks, model_device


def _tensors_of(out: object, name: str) -> dict[str, torch.Tensor]:
    """Name the tensor(s) a module returned: a tensor, a tuple/list of them, or a dict (multitask heads)."""
    if isinstance(out, torch.Tensor):
        return {name: out}
    found: dict[str, torch.Tensor] = {}
    if isinstance(out, (tuple, list)):
        for i, o in enumerate(out):
            found.update(_tensors_of(o, f"{name}[{i}]"))
    elif isinstance(out, dict):
        for k, o in out.items():
            found.update(_tensors_of(o, f"{name}.{k}"))
    return found


def _as_batch(model: nn.Module, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32).to(model_device(model))


def capture_feature_maps(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    layers: Iterable[str] | None = None,
    leaves_only: bool = False,
    batched: bool = False,
) -> dict[str, np.ndarray]:
    """Outputs of every named module for one input, in execution order: name -> float32 array (a module
    called more than once per pass gives "name (call 1)", "name (call 2)", ...).

    `x` is one sample without the batch dimension (e.g. (C, T) or (3, H, W)) unless `batched=True`; the
    batch dimension is dropped from the returned arrays likewise. `layers` restricts the capture to those
    module names; `leaves_only` skips container modules (Sequential, blocks).
    """
    xb = _as_batch(model, x)
    if not batched:
        xb = xb.unsqueeze(0)
    modules = dict(model.named_modules())
    if layers is not None:
        wanted = list(layers)
        unknown = [n for n in wanted if n not in modules]
        if unknown:
            raise UserError(f"the model has no layer named {', '.join(unknown)}")
        names = wanted
    else:
        names = [n for n, m in modules.items() if n and (not leaves_only or not list(m.children()))]

    calls: list[tuple[str, np.ndarray]] = []

    def hook_for(name: str):
        def hook(_module: nn.Module, _inp: object, out: object) -> None:
            for key, t in _tensors_of(out, name).items():
                # copy: a later in-place op (ReLU(inplace=True)) would otherwise rewrite this map
                a = t.detach().to("cpu", torch.float32, copy=True).numpy()
                calls.append((key, a if batched else a[0]))
        return hook

    with forward_hooks((modules[n], hook_for(n)) for n in names), eval_mode(model), torch.no_grad():
        model(xb)
    # a module run more than once per pass (a ResNet block's shared ReLU: after bn1, then after the residual
    # add) gives one map per call, "name (call 1)", "name (call 2)", ...; a single call keeps its name
    total = Counter(key for key, _ in calls)
    seen: Counter = Counter()
    captured: dict[str, np.ndarray] = {}
    for key, a in calls:
        seen[key] += 1
        captured[key if total[key] == 1 else f"{key} (call {seen[key]})"] = a
    return captured


def channel_activity(fmap: np.ndarray, reduce: str = "mean_abs") -> np.ndarray:
    """One score per channel of a feature map (C, ...) - mean |a|, mean a, or max a over its positions."""
    a = np.asarray(fmap, dtype=np.float64)
    if a.ndim < 1:
        raise UserError("a feature map needs a channel axis")
    flat = a.reshape(a.shape[0], -1) if a.ndim > 1 else a[:, None]
    if reduce == "mean_abs":
        return np.abs(flat).mean(axis=1)
    if reduce == "mean":
        return flat.mean(axis=1)
    if reduce == "max":
        return flat.max(axis=1)
    raise UserError(f"unknown channel reduction {reduce!r}; use 'mean_abs', 'mean' or 'max'")


def most_active_channels(fmap: np.ndarray, k: int = 8, reduce: str = "mean_abs") -> list[tuple[int, float]]:
    """The `k` channels with the highest activity score, as (channel index, score), highest first."""
    scores = channel_activity(fmap, reduce)
    order = np.argsort(-scores, kind="stable")[: max(0, int(k))]
    return [(int(i), float(scores[i])) for i in order]


def hook_count(model: nn.Module) -> int:
    """Forward (pre-)hooks currently registered on any module: 0 after a capture."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
