"""Model summaries: parameters, multiply-accumulates per sample, output shape per layer, CPU latency.

MACs per layer come from forward hooks on the leaf modules (convolutions: output elements x input channels
per group x kernel size; linear: output elements x input features). The total is measured independently
with torch's `FlopCounterMode` (every aten matmul/convolution, including functional calls that no hook
sees), halved to MACs; the hooks' sum is kept beside it so a gap is visible. Latency is the fastest of
several timed forward passes of one window (eval mode, no autograd) after warm-up runs: other work on the
machine only adds time, so the minimum is the best estimate of the model's own cost (a median of 3 taken
while both cores were busy once read 424 ms for a model that takes 1.3 ms).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import nn

from core.inspect.hooks import eval_mode, forward_hooks, model_device

_CONV = nn.modules.conv._ConvNd


@dataclass
class LayerSummary:
    name: str
    type: str
    output_shape: list[int]      # per sample (batch dimension dropped)
    params: int                  # parameters owned directly by this leaf
    macs: int                    # multiply-accumulates per sample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelSummary:
    input_shape: list[int]       # per sample
    output_shape: Any            # list, or {name: list} for dict outputs
    params: int
    trainable_params: int
    macs: int                    # per sample, from FlopCounterMode (flops / 2)
    hook_macs: int               # per sample, the sum over the layer table
    layers: list[LayerSummary] = field(default_factory=list)
    latency_ms: Optional[float] = None   # fastest single-window forward time on CPU
    latency_runs: int = 0
    model: Optional[str] = None

    @property
    def param_megabytes(self) -> float:
        return self.params * 4 / 2 ** 20

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["param_megabytes"] = self.param_megabytes
        return d


def _is_layer(m: nn.Module) -> bool:
    """A leaf module, or a convolution / linear layer whose children are only parametrizations."""
    return not list(m.children()) or isinstance(m, (_CONV, nn.Linear))


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(total), int(trainable)


def _layer_macs(module: nn.Module, inputs: tuple, out: Any, batch: int) -> int:
    if not isinstance(out, torch.Tensor):
        return 0
    if isinstance(module, _CONV):
        if getattr(module, "transposed", False):
            x = inputs[0]
            return int(x.numel() // batch * (module.out_channels // module.groups)
                       * math.prod(module.kernel_size))
        return int(out.numel() // batch * (module.in_channels // module.groups) * math.prod(module.kernel_size))
    if isinstance(module, nn.Linear):
        return int(out.numel() // batch * module.in_features)
    if isinstance(module, nn.Bilinear):
        return int(out.numel() // batch * module.in1_features * module.in2_features)
    return 0


def _shape(out: Any, batch: int) -> Any:
    if isinstance(out, torch.Tensor):
        return list(out.shape[1:]) if out.ndim and out.shape[0] == batch else list(out.shape)
    if isinstance(out, dict):
        return {k: _shape(v, batch) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return [_shape(v, batch) for v in out]
    return None


def _first_tensor(out: Any) -> Optional[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        for v in out:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def measure_latency(model: nn.Module, example: torch.Tensor, runs: int = 10, warmup: int = 2) -> float:
    """The fastest wall time in milliseconds of `runs` calls of `model(example)` (eval mode, no autograd)."""
    times = []
    with eval_mode(model), torch.no_grad():  # not inference_mode: weight-norm parametrisations fail under it
        for _ in range(max(0, warmup)):
            model(example)
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            model(example)
            times.append(time.perf_counter() - t0)
    return min(times) * 1000.0


def model_summary(model: nn.Module, input_shape: Sequence[int], *, latency_runs: int = 10,
                  name: Optional[str] = None, warmup: int = 2) -> ModelSummary:
    """Summarise `model` for one sample of shape `input_shape` (no batch dimension), on the CPU.

    `latency_runs=0` skips the timing. The model is moved to the CPU for the measurement and back after."""
    from torch.utils.flop_counter import FlopCounterMode

    home = model_device(model)
    model.to("cpu")
    example = torch.zeros(1, *[int(s) for s in input_shape])
    names = {id(m): n for n, m in model.named_modules()}
    layers: list[LayerSummary] = []

    def hook(mod, inputs, out):
        t = _first_tensor(out)
        layers.append(LayerSummary(
            name=names.get(id(mod), type(mod).__name__), type=type(mod).__name__,
            output_shape=_shape(t, 1) if t is not None else [],
            params=int(sum(q.numel() for q in mod.parameters(recurse=False))),
            macs=_layer_macs(mod, inputs, out, 1)))

    with forward_hooks((m, hook) for m in model.modules() if _is_layer(m)), eval_mode(model), torch.no_grad(), \
            FlopCounterMode(display=False) as counter:
        out = model(example)
    total, trainable = count_params(model)
    latency = measure_latency(model, example, runs=latency_runs, warmup=warmup) if latency_runs > 0 else None
    model.to(home)
    return ModelSummary(input_shape=list(example.shape[1:]), output_shape=_shape(out, 1), params=total,
                        trainable_params=trainable, macs=int(counter.get_total_flops() // 2),
                        hook_macs=int(sum(l.macs for l in layers)), layers=layers, latency_ms=latency,
                        latency_runs=int(latency_runs), model=name)


def registry_analysis(name: str, window: int, n_features: int = 15, n_classes: int = 3, latency_runs: int = 5,
                      **config: Any):
    """`(RFReport, ModelSummary)` of registered model `name` built once with `config`, for windows of
    `window` bars of `n_features` features (image models: see `example_input`)."""
    from core.inspect.receptive_field import example_input, registry_receptive_field
    from core.models import get_spec

    model, report = registry_receptive_field(name, window, n_features, n_classes, **config)
    shape = example_input(get_spec(name).input_kind, n_features, window).shape[1:]
    return report, model_summary(model, shape, latency_runs=latency_runs, name=name, warmup=1)


def registry_summary(name: str, window: int, n_features: int = 15, n_classes: int = 3,
                     latency_runs: int = 10, **config: Any) -> ModelSummary:
    """The summary half of `registry_analysis`."""
    return registry_analysis(name, window, n_features, n_classes, latency_runs, **config)[1]
