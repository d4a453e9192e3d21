"""Attributions: which parts of an input window pushed the model towards a class.

Written directly in torch (no captum dependency):
- `saliency`: |d logit_target / d x| (Simonyan et al.).
- `integrated_gradients`: (x - x') * integral_0^1 d logit / d x at x' + a (x - x') da, with Gauss-Legendre
  quadrature (as captum's default); the result carries the completeness gap
  sum(attributions) - (f(x) - f(x')), which is ~0 when enough steps are used.
- `grad_cam`: ReLU(sum_c mean(dlogit/dA_c) * A_c) at a convolutional layer (by default the last one that
  ran), each value placed at the centre of the input steps it sees and interpolated to the input's time
  axis (1D models) or its H, W (2D models).
`time_profile` reduces any of them to one score per time step for drawing over a candlestick chart.
All functions work on one sample without the batch dimension, put the model in eval mode for the
duration, and restore its mode afterwards. Targets are logits of the direction head (multitask models
return a dict; its "direction" entry is used).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from core.inspect.hooks import eval_mode, forward_hooks, model_device

Method = Literal["saliency", "integrated_gradients", "grad_cam"]
METHODS: tuple[str, ...] = ("saliency", "integrated_gradients", "grad_cam")


def _logits(out: object) -> torch.Tensor:
    if isinstance(out, dict):
        if "direction" not in out:
            raise UserError("the model returns a dict without a 'direction' output to attribute")
        out = out["direction"]
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise UserError("attributions need a model that returns logits of shape (batch, classes)")
    return out


def _input(model: nn.Module, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    return t.detach().to(model_device(model))


def predict_proba(model: nn.Module, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class probabilities (softmax of the logits) for one sample."""
    xb = _input(model, x).unsqueeze(0)
    with eval_mode(model), torch.no_grad():
        return torch.softmax(_logits(model(xb)), dim=1)[0].cpu().numpy()


def _resolve_target(model: nn.Module, xb: torch.Tensor, target: int | None) -> int:
    with torch.no_grad():
        logits = _logits(model(xb))
    n_classes = logits.shape[1]
    if target is None:
        return int(logits[0].argmax())
    if not 0 <= int(target) < n_classes:
        raise UserError(f"target class must be between 0 and {n_classes - 1}, got {target}")
    return int(target)


def saliency(model: nn.Module, x: torch.Tensor | np.ndarray, target: int | None = None,
             absolute: bool = True) -> np.ndarray:
    """Gradient of the target logit with respect to the input, same shape as `x`."""
    xb = _input(model, x).unsqueeze(0)
    with eval_mode(model):
        tgt = _resolve_target(model, xb, target)
        xb.requires_grad_(True)
        (g,) = torch.autograd.grad(_logits(model(xb))[0, tgt], xb)  # leaves the parameters' .grad alone
        g = g[0].detach().cpu().numpy()
    return np.abs(g) if absolute else g


@dataclass
class IGResult:
    attributions: np.ndarray  # same shape as x
    delta: float  # sum(attributions) - (f(x) - f(baseline)): the completeness gap
    f_x: float
    f_baseline: float
    target: int


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    target: int | None = None,
    baseline: torch.Tensor | np.ndarray | None = None,
    steps: int = 64,
    batch_size: int = 32,
) -> IGResult:
    """Integrated gradients of the target logit from `baseline` (default zeros) to `x`."""
    if steps < 1 or batch_size < 1:
        raise UserError("integrated gradients need at least one step and a batch size of at least one")
    xs = _input(model, x)
    base = torch.zeros_like(xs) if baseline is None else _input(model, baseline)
    if base.shape != xs.shape:
        raise UserError(f"the baseline has shape {tuple(base.shape)}, the input {tuple(xs.shape)}")
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.as_tensor((nodes + 1) / 2, dtype=torch.float32, device=xs.device)
    w = torch.as_tensor(weights / 2, dtype=torch.float32, device=xs.device)
    diff = xs - base
    total = torch.zeros_like(xs)
    with eval_mode(model):
        tgt = _resolve_target(model, xs.unsqueeze(0), target)
        for i in range(0, steps, batch_size):
            a = alphas[i:i + batch_size].view(-1, *([1] * xs.ndim))
            pts = (base.unsqueeze(0) + a * diff.unsqueeze(0)).requires_grad_(True)
            out = _logits(model(pts))[:, tgt].sum()
            (g,) = torch.autograd.grad(out, pts)
            total += (g * w[i:i + batch_size].view_as(a)).sum(0)
        with torch.no_grad():
            f = _logits(model(torch.stack([xs, base])))[:, tgt]
    attr = (diff * total).detach().cpu().numpy()
    f_x, f_b = float(f[0]), float(f[1])
    return IGResult(attr, float(attr.sum(dtype=np.float64) - (f_x - f_b)), f_x, f_b, tgt)


def completeness_note(delta: float, change: float) -> str:
    """The completeness check of integrated gradients in words: the attributions should add up to the change
    of the logit from the baseline to the input."""
    text = (f"Integrated gradients: the attributions add up to {change + delta:+.3f}, against a change of the "
            f"logit from the all-zero baseline to this window of {change:+.3f} (a gap of {delta:+.2g}).")
    if abs(delta) <= 0.1 * max(abs(change), 1e-3):
        return text + " Small: the attributions account for the change."
    return (text + " The attributions do not add up to the change. If more steps shrink the gap, use more; if "
            "not, the output jumps along the path from the all-zero baseline (a normalisation right after the "
            "first layer does this) and the integrated-gradients line is only a rough guide here.")


@dataclass
class GradCamResult:
    cam: np.ndarray  # input spatial shape: (T,) for (C, T) input; (H, W) for (C, H, W) input; in [0, 1]
    layer: str
    layer_cam: np.ndarray  # at the layer's own resolution, before upsampling
    target: int


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the convolution layers (1D and 2D), in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]


def reads_last_step(model: nn.Module) -> bool:
    """Whether the model's head reads only the last step of its feature sequence (the zoo's causal models,
    which expose `features_sequence`): a map over time of its gradients would credit steps it never sees."""
    return callable(getattr(model, "features_sequence", None))


def grad_cam(model: nn.Module, x: torch.Tensor | np.ndarray, target: int | None = None,
             layer: str | None = None) -> GradCamResult:
    """Grad-CAM at `layer` (default: the map a model names in `cam_input` - the input of that module, e.g.
    the concatenated branches of the multi-scale CNN - else the last convolution executed in the forward pass
    whose output has more than one position; a 1x1 map cannot localise anything).

    Each value of the layer's map is drawn at the centre of the input steps it sees (the receptive-field
    walk's start, jump and field of that layer), then interpolated between centres: a stride-32 ResNet map
    stretched evenly over the window would sit half a step (16 bars) late. Refused for a head that reads
    only the last step of the map (the causal TCN and WaveNet): averaging its gradient over time would
    credit steps the prediction never sees."""
    if reads_last_step(model):
        raise UserError("Grad-CAM cannot place this model's evidence in time: its head reads only the last step "
                        "of the feature map (a causal model), so gradients averaged over time would credit bars "
                        "the prediction never sees. Use saliency or integrated gradients.")
    xs = _input(model, x)
    modules = dict(model.named_modules())
    if layer is not None and layer not in modules:
        raise UserError(f"the model has no layer named {layer!r}")
    cam_input = getattr(model, "cam_input", None) if layer is None else None
    if cam_input is not None and cam_input not in modules:
        cam_input = None
    names = [layer] if layer is not None else [cam_input] if cam_input else conv_layers(model)
    if not names:
        raise UserError("Grad-CAM needs a convolutional layer; this model has none")
    acts: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook_for(name: str):
        def hook(_m: nn.Module, inputs: tuple, out: object) -> None:
            if name == cam_input:
                out = inputs[0] if inputs else None
            if isinstance(out, torch.Tensor) and out.ndim in (3, 4):
                acts[name] = out
                order.append(name)
        return hook

    with forward_hooks((modules[n], hook_for(n)) for n in names), eval_mode(model):
        xb = xs.unsqueeze(0).requires_grad_(True)  # so layers before a frozen stem still get grads
        tgt = _resolve_target(model, xb.detach(), target)
        order.clear()
        acts.clear()
        logit = _logits(model(xb))[0, tgt]
        if not order:
            raise UserError(f"layer {names[-1]!r} produced no (batch, channels, time[, width]) output")
        # By default the last convolution whose output still has more than one position: after a deep
        # ResNet on a small chart the last map is 1x1 and its CAM would say nothing about where or when.
        resolved = [n for n in order if acts[n][0, 0].numel() > 1]
        chosen = resolved[-1] if layer is None and resolved else order[-1]
        a = acts[chosen]
        (g,) = torch.autograd.grad(logit, a)
    spatial = tuple(range(2, a.ndim))
    weights = g.mean(dim=spatial, keepdim=True)
    cam = F.relu((weights * a).sum(dim=1, keepdim=True)).detach()[0, 0].cpu().numpy()  # (T',) or (H', W')
    sizes = tuple(xs.shape[-1:] if a.ndim == 3 else xs.shape[-2:])
    up = cam.astype(np.float64)
    for axis, size in enumerate(sizes):
        centres = _map_centres(model, xb.detach(), chosen, axis, cam.shape[axis], size)
        up = np.apply_along_axis(lambda v, c=centres, n=size: np.interp(np.arange(n), c, v), axis, up)
    up = up / up.max() if up.max() > 0 else up
    return GradCamResult(up.astype(np.float32), "branches (concatenated)" if chosen == cam_input else chosen,
                         cam, tgt)


def _map_centres(model: nn.Module, example: torch.Tensor, layer: str, axis: int, n: int, size: int) -> np.ndarray:
    """Input position (along spatial `axis`) of the centre of what each of the `n` values of `layer`'s map
    sees, from the receptive-field walk; a layer off the walked path (or a model the walk cannot follow) is
    spread evenly over the input, as bilinear resizing would (stride-1 'same' maps land where they are)."""
    from core.inspect.receptive_field import receptive_field

    try:
        rep = receptive_field(model, size, axis=axis, example=example)
        row = next((r for r in rep.layers if r.name == layer and r.out_length == n), None)
    except Exception:  # noqa: BLE001 - the even spread below is the fallback
        row = None
    j = np.arange(n, dtype=np.float64)
    if row is None:
        return (j + 0.5) * size / n - 0.5
    return row.start + j * row.jump + (row.receptive_field - 1) / 2


def time_profile(attr: np.ndarray, input_kind: str, n_bars: int | None = None) -> np.ndarray:
    """One non-negative score per time step from an attribution or CAM of one input.

    sequence/flat: (C, T) or CAM (T,) -> (T,); indicator_image/orderbook_image: (1, T, C) or CAM (T, C) ->
    (T,) (time runs down the rows); chart_image: (3, H, W) or CAM (H, W) -> per pixel column, then averaged
    into `n_bars` candles when given (columns map to bars as the renderer draws them).
    """
    a = np.abs(np.asarray(attr, dtype=np.float64))
    if input_kind in ("sequence", "flat"):
        prof = a if a.ndim == 1 else a.reshape(-1, a.shape[-1]).sum(0)
    elif input_kind in ("indicator_image", "orderbook_image"):
        b = a[0] if a.ndim == 3 else a
        prof = b.sum(axis=1)
    elif input_kind == "chart_image":
        b = a.sum(0) if a.ndim == 3 else a
        prof = b.sum(axis=0)
        if n_bars is not None:
            from core.encodings.candlestick import _column_layout
            bar, _, _ = _column_layout(int(n_bars), prof.shape[0])
            prof = np.bincount(bar, weights=prof, minlength=n_bars) / np.bincount(bar, minlength=n_bars)
    else:
        raise UserError(f"unknown input kind {input_kind!r}")
    return prof


def attribute(model: nn.Module, x: torch.Tensor | np.ndarray, method: str, target: int | None = None,
              **kwargs: object) -> np.ndarray:
    """One attribution map by method name (for pages): saliency/IG give x's shape, Grad-CAM the CAM."""
    if method == "saliency":
        return saliency(model, x, target, **kwargs)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target, **kwargs).attributions
    if method == "grad_cam":
        return grad_cam(model, x, target, **kwargs).cam
    raise UserError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")


@dataclass
class GradientRF:
    """The effective (empirical) receptive field of a trained model, from input gradients."""

    profile: np.ndarray       # (T,) share of the gradient mass per time step (bar for chart models), sums to 1
    channel_time: np.ndarray  # (C, T) mean |gradient| per input channel/row and time step (for a heatmap)
    span95: int               # fewest most-recent steps holding >= 95 % of the mass (how far back it looks)
    centre_lag: float         # mass-weighted distance of the gradient from the last step, in steps
    n_windows: int
    analytic_rf: int | None = None  # the analytic receptive field in the same steps (bars), when known
    whole_window: bool = False      # the head pools or flattens its last map: every bar reaches the output

    @property
    def rf_note(self) -> str | None:
        """The analytic field in words, with the window when the head pools (see receptive_field.rf_note)."""
        from core.inspect.receptive_field import rf_note

        return rf_note(self.analytic_rf, self.whole_window, len(self.profile))


def run_receptive_field(model: nn.Module, windows: torch.Tensor | np.ndarray, input_kind: str,
                        n_bars: int | None = None) -> GradientRF:
    """The effective receptive field of a trained model on real windows, with its analytic bound, in bars
    back from the last bar: `core.inspect.receptive_field`'s gradient map, with a chart's pixel columns
    mapped back to candles."""
    from core.inspect import receptive_field as rfm
    from core.models import get_spec

    x = np.asarray(windows, dtype=np.float32)
    eff = rfm.effective_receptive_field(model, x, input_kind=input_kind)
    grid = np.asarray(eff.grad_map, dtype=np.float64)  # (rows, steps) - steps are pixel columns for charts
    prof = time_profile(grid, "chart_image", n_bars) if input_kind == "chart_image" else grid.sum(axis=0)
    total = prof.sum()
    prof = prof / total if total > 0 else np.full_like(prof, 1.0 / len(prof))
    span = min(rfm.lookback_span(prof, 0.95), len(prof))
    analytic, whole = None, False
    try:
        axis = rfm.TIME_AXIS.get(input_kind, 0)
        example = torch.as_tensor(x[:1])
        name = getattr(model, "model_name", None)  # a zoo head pools or flattens unless it is causal
        whole_window = None if name is None else not get_spec(name).causal
        rep = rfm.receptive_field(model, int(example.shape[2 + axis]), axis=axis, example=example,
                                  whole_window=whole_window)
        analytic, whole = int(rep.receptive_field), bool(rep.whole_window)
        if input_kind == "chart_image" and n_bars:
            analytic = int(np.ceil(analytic * n_bars / example.shape[-1]))
    except Exception:  # noqa: BLE001 - the analytic bound is extra information; the gradient map stands alone
        analytic, whole = None, False
    lags = np.arange(len(prof))[::-1]
    return GradientRF(prof, grid, span, float((prof * lags).sum()), int(len(x)), analytic, whole)
