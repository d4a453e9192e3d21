"""Receptive fields: analytic (walking the layers) and effective (gradients on real windows).

Analytic: every layer on the model's longest path is reduced, along the time axis, to kernel k, stride s,
dilation d and left padding p. With the effective kernel k' = d (k - 1) + 1 the recurrences
(Dumoulin & Visin 2016; Araujo et al. 2019) are

    jump_i  = jump_{i-1} * s_i
    rf_i    = rf_{i-1} + (k'_i - 1) * jump_{i-1}
    start_i = start_{i-1} - p_i * jump_{i-1}

with jump_0 = rf_0 = 1 and start_0 = 0. `start` is the input index of the first bar that output position 0
of the layer sees (negative: that part of its field lies on padding); output position t sees input bars
`start + t * jump ... start + t * jump + rf - 1`. For a stack of kernel-3 convolutions with dilations
1, 2, ..., 32 this gives 1 + 2 (1 + 2 + ... + 32) = 127 bars, the dilated-convolution document's figure.

Which layers form the path: a model from `core.models` exposes `rf_path()` (the ordered (name, module)
list along its longest path; the largest-kernel branch where branches run in parallel). For any other
module the layers are taken in the order they run in one forward pass, skipping a layer whose input
length differs from the current path's (a shortcut/projection branch). That fallback is exact for chains
and for residual blocks; where parallel branches keep the same length it chains them, which overstates
the field (an upper bound).

Given one example input, a forward pass measures each path layer's real input and output lengths: padding
a model adds with a functional call between layers (ConvNeXt's left alignment to the patch size) is then
counted (as left padding) and the lengths in the table are the real ones. Global pools that run before
the path ends (squeeze-excitation gates) are reported: through them every feature sees the whole window.

A global pool or a flatten before the head makes every logit depend on the whole window; the report keeps
the field of the last feature map as `receptive_field` (what one feature sees) and sets `whole_window`.

Effective: the mean |d output / d input| over real windows (Luo et al. 2016, "Understanding the effective
receptive field"), over channels x time, summarised as the shortest span of bars that holds 95 % of the
gradient mass and as the look-back from the last bar that holds it. For WaveNet-style models the
contribution of each dilation level is measured by ablating that block's skip output
(`dilation_contributions`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from core.errors import UserError
from core.inspect.hooks import eval_mode, forward_hooks, model_device

# Which spatial axis is time, per input kind (index among the spatial dims, i.e. after batch and channel).
TIME_AXIS = {"sequence": 0, "flat": 0, "indicator_image": 0, "orderbook_image": 0, "chart_image": 1}
# The unit of the time axis: bars, except chart images (pixels).
AXIS_UNIT = {"chart_image": "px"}

_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_PADS = (nn.ConstantPad1d, nn.ConstantPad2d, nn.ZeroPad1d, nn.ZeroPad2d, nn.ReflectionPad1d,
         nn.ReflectionPad2d, nn.ReplicationPad1d, nn.ReplicationPad2d, nn.CircularPad1d, nn.CircularPad2d)


@dataclass
class RFLayer:
    name: str
    type: str
    kernel: int
    stride: int
    dilation: int
    padding: int          # left padding along the time axis (causal convolutions: (k - 1) * d)
    jump: int             # input bars between neighbouring outputs of this layer
    receptive_field: int  # input bars one output of this layer sees
    start: int            # input index of the first bar output 0 sees (negative = padding)
    out_length: Optional[int] = None  # length along the time axis for the given input length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RFReport:
    input_length: int
    layers: list[RFLayer]
    receptive_field: int      # of the last feature map on the path (the whole input when there is none)
    jump: int
    start: int
    whole_window: bool        # a global pool / flatten lets the output see the whole input
    model: Optional[str] = None
    unit: str = "bars"
    source: str = "rf_path"   # "rf_path" (the model's own path) or "trace" (forward-order fallback)
    global_context: bool = False  # global gates (squeeze-excitation) inside: features see the whole window
    notes: list[str] = field(default_factory=list)

    @property
    def covers_window(self) -> bool:
        return self.receptive_field >= self.input_length

    @property
    def ratio(self) -> float:
        """Receptive field over window length (1 = exactly the window)."""
        return self.receptive_field / max(1, self.input_length)

    def growth(self) -> list[tuple[int, str, int]]:
        """(depth, layer name, receptive field) after each layer that grows or strides the field."""
        out, last_rf, last_jump = [], 1, 1
        for i, layer in enumerate(self.layers, 1):
            if layer.receptive_field != last_rf or layer.jump != last_jump:
                out.append((i, layer.name, layer.receptive_field))
            last_rf, last_jump = layer.receptive_field, layer.jump
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_length": self.input_length, "receptive_field": self.receptive_field,
                "jump": self.jump, "start": self.start, "whole_window": self.whole_window, "unit": self.unit,
                "source": self.source, "global_context": self.global_context, "notes": list(self.notes), "layers": [l.to_dict() for l in self.layers]}


# ---- per-module geometry -------------------------------------------------------------------------------
def _pick(value: Any, axis: int) -> int:
    if isinstance(value, (tuple, list)):
        return int(value[axis] if axis < len(value) else value[-1])
    return int(value)


@dataclass
class _Geom:
    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_left: int = 0
    pad_right: int = 0
    ceil_mode: bool = False
    global_pool: bool = False   # adaptive pool to a single position along time / flatten


def module_geometry(module: nn.Module, axis: int = 0) -> Optional[_Geom]:
    """Kernel, stride, dilation and padding of `module` along spatial axis `axis`; None when the module
    does not change positions along time (activations, norms, 1x1 work is returned as kernel 1)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        if getattr(module, "transposed", False):
            raise UserError(f"transposed convolution {type(module).__name__} is not supported by the "
                            "receptive-field walker")
        k, s, d = (_pick(module.kernel_size, axis), _pick(module.stride, axis), _pick(module.dilation, axis))
        if isinstance(module.padding, str):
            total = d * (k - 1) if module.padding == "same" else 0
            pl, pr = total // 2, total - total // 2
        else:
            pl = pr = _pick(module.padding, axis)
        extra = getattr(module, "causal_padding", None)  # a Conv subclass that left-pads in forward()
        if extra is not None and extra is not False:
            pl += d * (k - 1) if extra is True else _pick(extra, axis)
        extra_l = getattr(module, "left_padding", None)
        if extra_l:
            pl += _pick(extra_l, axis)
        return _Geom(k, s, d, pl, pr)
    if isinstance(module, _POOLS):
        k = _pick(module.kernel_size, axis)
        s = _pick(module.stride if module.stride not in (None, ()) else module.kernel_size, axis)
        d = _pick(getattr(module, "dilation", 1), axis)
        p = _pick(module.padding, axis)
        return _Geom(k, s, d, p, p, ceil_mode=bool(getattr(module, "ceil_mode", False)))
    if isinstance(module, _ADAPTIVE):
        size = module.output_size
        size = _pick(size, axis) if size is not None else None
        if size == 1:
            return _Geom(global_pool=True)
        return None  # adaptive to a fixed length: not expressible as one kernel; treated as identity
    if isinstance(module, nn.Flatten):
        return _Geom(global_pool=True)
    if isinstance(module, _PADS):
        pads = module.padding
        if isinstance(pads, int):
            return _Geom(pad_left=pads, pad_right=pads)
        pads = tuple(pads)
        n_spatial = len(pads) // 2
        i = n_spatial - 1 - axis  # F.pad order: last dim first
        if i < 0:
            return None
        return _Geom(pad_left=int(pads[2 * i]), pad_right=int(pads[2 * i + 1]))
    # a module of the zoo that pads in its own forward (e.g. a CausalPad module)
    if hasattr(module, "causal_padding") and not list(module.children()):
        return _Geom(pad_left=_pick(module.causal_padding, axis))
    return None


def _out_length(length: int, g: _Geom) -> int:
    span = length + g.pad_left + g.pad_right - g.dilation * (g.kernel - 1) - 1
    if span < 0:
        return 0
    return (math.ceil(span / g.stride) if g.ceil_mode else span // g.stride) + 1


# ---- which layers ------------------------------------------------------------------------------------
def _is_layer(m: nn.Module) -> bool:
    """A leaf module, or a convolution / linear layer with parametrizations (weight norm) as children."""
    return not list(m.children()) or isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))


def _trace_path(model: nn.Module, example: torch.Tensor, axis: int) -> list[tuple[str, nn.Module]]:
    """Leaf layers with a geometry, in the order one forward pass runs them, skipping side branches
    (a layer whose input length along time differs from the path's current length)."""
    names = {id(m): n for n, m in model.named_modules()}
    order: list[tuple[str, nn.Module, int]] = []

    def hook(mod, inputs, _out):
        x = inputs[0] if inputs else None
        if isinstance(x, torch.Tensor) and x.ndim >= 2 + axis + 1:
            order.append((names.get(id(mod), type(mod).__name__), mod, int(x.shape[2 + axis])))

    hooked = [(m, hook) for m in model.modules() if _is_layer(m) and module_geometry(m, axis) is not None]
    with forward_hooks(hooked), eval_mode(model), torch.no_grad():
        model(example)
    path, length = [], int(example.shape[2 + axis])
    for name, mod, in_len in order:
        if in_len != length:
            continue
        g = module_geometry(mod, axis)
        path.append((name, mod))
        if g.global_pool:
            break
        length = _out_length(length, g)
    return path


def model_path(model: nn.Module, example: Optional[torch.Tensor] = None, axis: int = 0
               ) -> tuple[list[tuple[str, nn.Module]], str]:
    """The ordered (name, module) list the walker follows and where it came from."""
    rf_path = getattr(model, "rf_path", None)
    if callable(rf_path):
        return [(str(n), m) for n, m in rf_path()], "rf_path"
    if example is not None:
        return _trace_path(model, example, axis), "trace"
    return [(n, m) for n, m in model.named_modules() if _is_layer(m)
            and module_geometry(m, axis) is not None], "definition order"


def measure_lengths(model: nn.Module, layers: Sequence[tuple[str, nn.Module]], example: torch.Tensor,
                    axis: int = 0) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """From one forward pass of `example`: {id(module): (input length, output length)} along `axis` for the
    layers on the path (first call of each), and the names of global pools that run before the path's
    last layer (squeeze-excitation gates: they mix the whole window into local features).
    Raises whatever the model raises."""
    seen: dict[int, tuple[int, int]] = {}
    names = {id(m): n for n, m in model.named_modules()}
    path_ids = {id(m) for _, m in layers}
    last_id = id(layers[-1][1]) if layers else None
    pools_called: list[str] = []
    gates: list[str] = []

    def hook(mod, inputs, out):
        if id(mod) not in path_ids:
            pools_called.append(names.get(id(mod), type(mod).__name__))
            return
        if id(mod) == last_id and not gates:
            gates.extend(pools_called)
        x = inputs[0] if inputs else None
        if id(mod) in seen or not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        if x.ndim > 2 + axis and out.ndim > 2 + axis:
            seen[id(mod)] = (int(x.shape[2 + axis]), int(out.shape[2 + axis]))

    global_pools = [m for m in model.modules() if isinstance(m, _ADAPTIVE) and id(m) not in path_ids
                    and getattr(m, "output_size", None) is not None and _pick(m.output_size, axis) == 1]
    with forward_hooks((m, hook) for m in [m for _, m in layers] + global_pools), eval_mode(model), \
            torch.no_grad():
        model(example)
    return seen, gates


def walk(layers: Iterable[tuple[str, nn.Module]], input_length: int, axis: int = 0,
         measured: Optional[dict[int, tuple[int, int]]] = None) -> tuple[list[RFLayer], bool]:
    """Apply the recurrences along `layers`; returns the per-layer rows and whether a global pool ended
    the path. Raises UserError when the input is too short for a layer to produce any output.

    `measured` (from `measure_lengths`) corrects for padding a model adds with a functional call between
    layers (a layer whose real input is longer than the previous layer's output): that padding is taken
    to be on the left, as the zoo pads (causal and patchify alignment), and real output lengths are used."""
    layers = list(layers)
    rows: list[RFLayer] = []
    jump, rf, start, length = 1, 1, 0, int(input_length)
    for name, module in layers:
        g = module_geometry(module, axis)
        if g is None:
            continue
        if g.global_pool:
            return rows, True
        extra = 0
        real = measured.get(id(module)) if measured else None
        if real is not None and real[0] > length:
            extra = real[0] - length
        eff = g.dilation * (g.kernel - 1) + 1
        start -= (g.pad_left + extra) * jump
        rf += (eff - 1) * jump
        jump *= g.stride
        length = real[1] if real is not None else _out_length(length, g)
        rows.append(RFLayer(name=name, type=type(module).__name__, kernel=g.kernel, stride=g.stride,
                            dilation=g.dilation, padding=g.pad_left + extra, jump=jump, receptive_field=rf,
                            start=start, out_length=length))
        if length <= 0:
            need = minimum_length(layers, axis)
            raise UserError(f"a window of {input_length} is too short for this model: layer '{name}' "
                            f"would have no output; use at least {need}")
    return rows, False


def minimum_length(layers: Iterable[tuple[str, nn.Module]], axis: int = 0) -> int:
    """The shortest input for which every layer on the path still has an output."""
    layers = list(layers)
    geoms = [g for g in (module_geometry(m, axis) for _, m in layers) if g is not None and not g.global_pool]

    def ok(n: int) -> bool:
        for g in geoms:
            n = _out_length(n, g)
            if n <= 0:
                return False
        return True

    lo, hi = 1, 2
    while not ok(hi):
        hi *= 2
        if hi > 1 << 24:
            return hi
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def receptive_field(model: nn.Module, input_length: int, *, axis: int = 0,
                    example: Optional[torch.Tensor] = None, name: Optional[str] = None,
                    unit: str = "bars", whole_window: Optional[bool] = None) -> RFReport:
    """The analytic receptive field of `model` along spatial axis `axis` (0 = time for sequence inputs).

    `example` (one input batch) drives the trace for models without `rf_path()` and gives the real layer
    lengths; `whole_window` overrides the detection of a global pool in the head (a functional mean)."""
    input_length = int(input_length)
    if input_length < 1:
        raise UserError("the window must be at least 1 bar long")
    path, source = model_path(model, example, axis)
    measured, gates = None, []
    if example is not None and path:
        try:
            measured, gates = measure_lengths(model, path, example, axis)
        except Exception:  # the model rejects this input: let the analytic walk name the layer and minimum
            walk(path, input_length, axis)
            raise
    rows, pooled = walk(path, input_length, axis, measured)
    notes: list[str] = []
    # A path that ends in a global pool or flatten lets every output depend on the whole input.
    whole = pooled or any(isinstance(m, nn.Flatten) for m in model.modules()) or \
        any(isinstance(m, _ADAPTIVE) and _pick(m.output_size, axis) == 1 for m in model.modules()
            if getattr(m, "output_size", None) is not None)
    if whole_window is not None:
        whole = whole or bool(whole_window)
    if rows:
        last = rows[-1]
        total, jump, start = last.receptive_field, last.jump, last.start
    else:
        # No convolution: a flat baseline reads the last `lookback` bars (zero-padded when the window is
        # shorter), anything else the whole input.
        lookback = getattr(model, "lookback", None)
        total = int(lookback) if isinstance(lookback, int) and lookback > 0 else input_length
        jump, start = 1, input_length - total
        whole = True
        notes.append(f"no convolution or pooling: every output reads the last {total} {unit} at once"
                     + (f" (the window's {input_length} are left-padded with zeros)" if total > input_length
                        else ""))
    if whole and rows:
        notes.append(f"the head pools or flattens the last feature map, so the output depends on all "
                     f"{input_length} {unit}; each feature of the last map sees {total}")
    if gates:
        notes.append(f"global gates ({len(gates)}, e.g. {gates[0]}) average the whole window inside the network "
                     f"(squeeze-excitation): features also depend on every {unit[:-1] if unit.endswith('s') else unit} "
                     f"through them; the field above is the local convolutional one")
    if source == "trace":
        notes.append("path traced from one forward pass (model has no rf_path()); parallel branches of "
                     "equal length are chained, an upper bound")
    return RFReport(input_length=input_length, layers=rows, receptive_field=int(total), jump=int(jump),
                    start=int(start), whole_window=bool(whole), model=name, unit=unit, source=source,
                    global_context=bool(gates), notes=notes)


def dilated_stack_rf(kernel: int, dilations: Sequence[int]) -> int:
    """Closed form for a stack of stride-1 convolutions: 1 + sum((k - 1) d) (the dilated document)."""
    return 1 + sum((int(kernel) - 1) * int(d) for d in dilations)


def bars_to_time(bars: float, timeframe: Optional[str]) -> str:
    """A span of bars as wall-clock time in the dataset's timeframe: 127 bars at 1h -> '5.3 days'."""
    if not timeframe:
        return f"{bars:g} bars"
    from core.data.candles import timeframe_seconds

    seconds = float(bars) * timeframe_seconds(timeframe)
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 60 * 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / (7 * 86400):.1f} weeks"


# ---- registry convenience ---------------------------------------------------------------------------
# Image channels a 2D model reads; sequence models read one channel per feature.
IMAGE_CHANNELS = {"indicator_image": 1, "orderbook_image": 1, "chart_image": 3}


def model_in_channels(input_kind: str, n_features: int) -> int:
    """The `in_channels` a model of `input_kind` is built with for data of `n_features` features."""
    return IMAGE_CHANNELS.get(input_kind, int(n_features))


def example_input(input_kind: str, n_features: int, window: int, batch: int = 1,
                  image_size: Optional[int] = None) -> torch.Tensor:
    """A zero tensor shaped as a model of `input_kind` reads it: (B, C, T) sequences; (B, 1, T, C)
    indicator images (C features) and order-book images (C = price levels); (B, 3, S, S) chart images
    (S = `image_size`, default the window)."""
    if input_kind in ("sequence", "flat"):
        return torch.zeros(batch, n_features, window)
    if input_kind in ("indicator_image", "orderbook_image"):
        return torch.zeros(batch, 1, window, n_features)
    if input_kind == "chart_image":
        size = int(image_size or window)
        return torch.zeros(batch, 3, size, size)
    raise UserError(f"unknown input kind {input_kind!r}")


def create_registered(name: str, n_features: int, n_classes: int, config: Optional[dict] = None):
    """`(model, spec)` for registered model `name` on data of `n_features` features (image models get
    their image channels); unknown names and settings become UserErrors."""
    from core.models import create_model, get_spec, list_models

    names = [s.name for s in list_models()]
    if name not in names:
        raise UserError(f"there is no model {name!r}; choose one of {', '.join(names)}")
    spec = get_spec(name)
    config = dict(config or {})
    unknown = [k for k in config if k not in spec.defaults]
    if unknown:
        raise UserError(f"model {name} has no setting {', '.join(map(repr, unknown))}; its settings are "
                        f"{', '.join(spec.defaults) or 'none'}")
    from core.models.blocks import seeded_init

    try:
        with seeded_init(0):  # the same weights every time, and no draws taken from a training running beside
            model = create_model(name, model_in_channels(spec.input_kind, n_features), int(n_classes), **config)
    except UserError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"model {name} cannot be built with {config}: {exc}") from exc
    return model, spec


def registry_receptive_field(name: str, window: int, n_features: int = 15, n_classes: int = 3,
                             **config: Any) -> tuple[nn.Module, RFReport]:
    """Create registered model `name` with `config` and return it with its analytic receptive field.

    Zoo heads: a causal model reads the last step of its feature sequence; every other model pools (or
    flattens) over the whole last feature map, so its output depends on the whole window."""
    model, spec = create_registered(name, n_features, n_classes, config)
    kind = spec.input_kind
    axis = TIME_AXIS.get(kind, 0)
    example = example_input(kind, n_features, window)
    length = int(example.shape[2 + axis])
    return model, receptive_field(model, length, axis=axis, example=example, name=name,
                                  unit=AXIS_UNIT.get(kind, "bars"), whole_window=not spec.causal)


# ---- effective receptive field ----------------------------------------------------------------------
@dataclass
class EffectiveRF:
    grad_map: np.ndarray        # (rows, T): mean |gradient| per channel (image row) and time step, sums to 1
    time_profile: np.ndarray    # (T,): gradient mass per time step, sums to 1
    span: int                   # shortest run of consecutive steps holding `mass` of the gradient
    span_start: int
    span_end: int               # inclusive
    lookback: int               # steps back from the last one that hold `mass` of the gradient
    mass: float
    n_windows: int
    target: str
    analytic_rf: Optional[int] = None  # the analytic bound on what reaches the output (see dataset_effective_rf)
    feature_rf: Optional[int] = None   # the receptive field of one feature of the last map (the layer walk's)
    whole_window: bool = False         # the head pools or flattens: the whole window reaches the output

    @property
    def rf_note(self) -> Optional[str]:
        """One sentence that says which analytic number is which (None when neither is known)."""
        return rf_note(self.feature_rf if self.feature_rf is not None else self.analytic_rf, self.whole_window,
                       len(self.time_profile))

    @property
    def utilisation(self) -> Optional[float]:
        """Effective span over the analytic field (capped by the window): how much of the field is used."""
        if not self.analytic_rf:
            return None
        return self.span / max(1, min(self.analytic_rf, len(self.time_profile)))

    def to_dict(self) -> dict[str, Any]:
        return {"span": self.span, "span_start": self.span_start, "span_end": self.span_end,
                "lookback": self.lookback, "mass": self.mass, "n_windows": self.n_windows,
                "target": self.target, "analytic_rf": self.analytic_rf, "feature_rf": self.feature_rf,
                "whole_window": self.whole_window, "utilisation": self.utilisation,
                "time_profile": self.time_profile.tolist()}


def rf_note(feature_rf: Optional[int], whole_window: bool, window: int, unit: str = "bars") -> Optional[str]:
    """The analytic receptive field in words. A model whose head pools (or flattens) its last feature map has
    two numbers: the field of one feature (`feature_rf`) and the whole window, which all reaches the output
    through the pooling. Say both, so a gradient reaching further back than the field is not a surprise."""
    if feature_rf is None:
        return None
    if whole_window and feature_rf < window:
        return (f"analytic receptive field {feature_rf} {unit} per feature of the last layer; the head pools "
                f"them, so all {window} {unit} of the window reach the output")
    if feature_rf > window:
        return f"analytic receptive field {feature_rf} {unit}, longer than the {window}-{unit[:-1]} window"
    return f"analytic receptive field {feature_rf} {unit}"


def shortest_span(profile: np.ndarray, mass: float = 0.95) -> tuple[int, int]:
    """Inclusive (start, end) of the shortest run of consecutive entries whose sum reaches `mass` of the
    total (two pointers, O(T))."""
    p = np.asarray(profile, dtype=np.float64)
    total = p.sum()
    if total <= 0:
        return 0, len(p) - 1
    need = mass * total * (1 - 1e-12)
    best = (0, len(p) - 1)
    lo, acc = 0, 0.0
    for hi in range(len(p)):
        acc += p[hi]
        while lo < hi and acc - p[lo] >= need:
            acc -= p[lo]
            lo += 1
        if acc >= need and hi - lo < best[1] - best[0]:
            best = (lo, hi)
    return best


def lookback_span(profile: np.ndarray, mass: float = 0.95) -> int:
    """How many steps back from the last one hold `mass` of the total."""
    p = np.asarray(profile, dtype=np.float64)[::-1]
    total = p.sum()
    if total <= 0:
        return len(p)
    return int(np.searchsorted(np.cumsum(p), mass * total * (1 - 1e-12)) + 1)


def _select_output(out: Any, output: str) -> torch.Tensor:
    if isinstance(out, dict):
        if output not in out:
            raise UserError(f"the model has no output {output!r}; it has {', '.join(out)}")
        out = out[output]
    if not isinstance(out, torch.Tensor):
        raise UserError("the model output is not a tensor")
    return out


def _to_rows_time(g: np.ndarray, input_kind: str) -> np.ndarray:
    """Per-sample gradient map -> (rows, time): channels x time for sequences, features/levels x time for
    (1, T, C) images, price rows x time for chart images."""
    if input_kind in ("indicator_image", "orderbook_image"):
        return g[0].T
    if input_kind == "chart_image":
        return g.sum(axis=0)
    return g


def effective_receptive_field(model: nn.Module, windows: torch.Tensor | np.ndarray, *,
                              input_kind: str = "sequence", target: Optional[int] = None,
                              output: str = "direction", mass: float = 0.95, batch_size: int = 64,
                              analytic_rf: Optional[int] = None,
                              device: Optional[torch.device] = None) -> EffectiveRF:
    """Mean |d output / d input| over `windows` (N, ...) in eval mode.

    The output differentiated is the logit of class `target`, or of each window's predicted class when
    `target` is None; a scalar output (multitask `magnitude`, `volatility`) is used as is. Samples are
    independent in eval mode, so one backward pass of the batch sum gives every window's gradient."""
    x_all = torch.as_tensor(np.asarray(windows) if not isinstance(windows, torch.Tensor) else windows,
                            dtype=torch.float32)
    if x_all.ndim < 3 or len(x_all) == 0:
        raise UserError("the effective receptive field needs at least one window")
    if not 0 < mass < 1:
        raise UserError("mass must lie between 0 and 1")
    device = device or model_device(model)
    total = None
    with eval_mode(model):
        for i in range(0, len(x_all), batch_size):
            xb = x_all[i:i + batch_size].to(device).requires_grad_(True)
            out = _select_output(model(xb), output)
            if out.ndim == 1:
                sel = out
            else:
                if target is None:
                    idx = out.detach().argmax(dim=1)
                else:
                    if not 0 <= int(target) < out.shape[1]:
                        raise UserError(f"target class must be between 0 and {out.shape[1] - 1}, got {target}")
                    idx = torch.full((len(out),), int(target), dtype=torch.long, device=out.device)
                sel = out.gather(1, idx[:, None])[:, 0]
            (grad,) = torch.autograd.grad(sel.sum(), xb)
            g = grad.detach().abs().sum(dim=0).cpu().double()
            total = g if total is None else total + g
    g = total.numpy() / len(x_all)
    rows_time = _to_rows_time(g, input_kind)
    s = rows_time.sum()
    rows_time = rows_time / s if s > 0 else rows_time
    profile = rows_time.sum(axis=0)
    a, b = shortest_span(profile, mass)
    what = (f"class {target}" if target is not None else "predicted class") if output == "direction" else output
    return EffectiveRF(grad_map=rows_time.astype(np.float32), time_profile=profile.astype(np.float64),
                       span=b - a + 1, span_start=int(a), span_end=int(b), lookback=lookback_span(profile, mass),
                       mass=float(mass), n_windows=int(len(x_all)), target=what, analytic_rf=analytic_rf)


def dataset_windows(prepared: Any, input_kind: str, n: int = 128, split: str = "val", seed: int = 0,
                    **encoding: Any) -> torch.Tensor:
    """`n` model inputs drawn at random (seeded, in time order) from one split of a `PreparedData`."""
    ends = np.asarray(prepared.splits.get(split, []))
    if len(ends) == 0:
        raise UserError(f"the {split} split of the active dataset holds no windows: pick a shorter window")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(ends, size=min(n, len(ends)), replace=False))
    from core.encodings.datasets import make_dataset

    ds = make_dataset(prepared, pick, input_kind, **encoding)
    return torch.stack([torch.as_tensor(ds[i][0]) for i in range(len(ds))])


# ---- per-dilation contribution (WaveNet-style models) ----------------------------------------------------
@dataclass
class DilationContribution:
    block: str             # module name of the residual block
    dilation: int
    receptive_field: int   # analytic field of the path up to and including this block's dilated conv
    change: float          # mean total-variation distance of the class probabilities when its skip is removed
    share: float           # change / sum of changes over the blocks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def skip_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Residual blocks that feed the output through a `skip_conv` and carry a `dilation` (WaveNet)."""
    return [(n, m) for n, m in model.named_modules()
            if hasattr(m, "skip_conv") and isinstance(getattr(m, "dilation", None), int)]


def dilation_contributions(model: nn.Module, windows: torch.Tensor | np.ndarray, *, output: str = "direction",
                           batch_size: int = 128, rf_report: Optional[RFReport] = None
                           ) -> list[DilationContribution]:
    """How much each dilation level matters to the prediction, by ablation on real windows.

    For each block, its skip output is replaced by zeros (its residual output still feeds the later
    blocks), and the change in the predicted class probabilities is measured as the mean total-variation
    distance 0.5 * sum |p - p'| over the windows (0: no change, 1: a different class with certainty).
    That is the block's direct contribution through the skip sum, the part that reaches the head from
    that time scale alone; interactions through later blocks are not attributed to it."""
    blocks = skip_blocks(model)
    if not blocks:
        raise UserError("the per-dilation contribution needs a WaveNet-style model (blocks with skip outputs)")
    x_all = torch.as_tensor(np.asarray(windows) if not isinstance(windows, torch.Tensor) else windows,
                            dtype=torch.float32)
    if len(x_all) == 0:
        raise UserError("the per-dilation contribution needs at least one window")
    x_all = x_all.to(model_device(model))

    def probs() -> torch.Tensor:
        outs = []
        for i in range(0, len(x_all), batch_size):
            out = _select_output(model(x_all[i:i + batch_size]), output)
            outs.append(torch.softmax(out, dim=1) if out.ndim == 2 else out[:, None])
        return torch.cat(outs)

    rf_by_name: dict[str, int] = {}
    if rf_report is not None:
        for layer in rf_report.layers:
            rf_by_name[layer.name] = layer.receptive_field
    changes = []
    with eval_mode(model), torch.no_grad():
        base = probs()
        for name, block in blocks:
            with forward_hooks([(block.skip_conv, lambda _m, _i, out: torch.zeros_like(out))]):
                ablated = probs()
            diff = (base - ablated).abs()
            changes.append(float((0.5 * diff.sum(dim=1) if base.shape[1] > 1 else diff[:, 0]).mean()))
    total = sum(changes) or 1.0
    out = []
    for (name, block), change in zip(blocks, changes):
        rf = next((v for k, v in rf_by_name.items() if k.startswith(name + ".") and "skip" not in k
                   and "residual" not in k), 0)
        out.append(DilationContribution(block=name, dilation=int(block.dilation), receptive_field=int(rf),
                                        change=change, share=change / total))
    return out


# ---- what the page and CLI say about a field and a window -------------------------------------------------
MUCH_LONGER = 2.0  # a field more than this many windows long is mostly padding


SMALL_LOSS = 0.1  # a last-step head that misses at most this share of the window gets an info, not a warning


def window_advice(report: RFReport, timeframe: Optional[str] = None) -> Optional[tuple[str, str]]:
    """("warning" | "info", sentence) when the field and the window do not fit each other, else None."""
    rf, w, unit = report.receptive_field, report.input_length, report.unit

    def span(n: int) -> str:
        return f"{n} {unit}" + (f" = {bars_to_time(n, timeframe)}" if timeframe and unit == "bars" else "")

    if report.layers == [] or rf == w:
        return None
    # A pooled head (global average over the last map) is how such CNNs are built: the whole window reaches
    # the output, so a short or padded field is a fact to know ("info"). A head that reads the last step
    # loses input: a warning, unless only a few bars (at most SMALL_LOSS of the window) are lost.
    if rf < w:
        if report.whole_window:
            return ("info", f"The receptive field ({span(rf)}) is shorter than the window ({span(w)}): each "
                            f"feature of the last layer sees {rf} {unit}, and the head averages them over the "
                            f"whole window, so a pattern longer than {rf} {unit} is not seen as one. Depth or "
                            f"dilation would widen it.")
        return ("warning" if w - rf > SMALL_LOSS * w else "info",
                f"The receptive field ({span(rf)}) is shorter than the window ({span(w)}): the prediction never "
                f"sees the oldest {w - rf} {unit} of each window. Shorten the window to {rf} or add layers / "
                f"dilation.")
    if rf > MUCH_LONGER * w:
        return ("info" if report.whole_window else "warning",
                f"The receptive field ({span(rf)}) is much longer than the window ({span(w)}): "
                f"{100 * (1 - w / rf):.0f} % of it lies on zero padding. A longer window, or a shallower or "
                f"less dilated model, would use it.")
    return ("info", f"The receptive field ({span(rf)}) covers the window ({span(w)}).")


def dataset_effective_rf(candles: Any, name: str, config: Optional[dict] = None, preset: Any = "resnet15",
                         window: int = 64, n_windows: int = 64, split: str = "val", seed: int = 0,
                         encoding: Optional[dict] = None) -> dict[str, Any]:
    """The effective field of registered model `name` (freshly initialised, seed 0) on `n_windows` real
    windows of `candles` (features of `preset`, default labels and split), with its analytic field and,
    for WaveNet-style models, the contribution of each dilation level. The effective field's
    `analytic_rf` is the analytic bound on what reaches the output: the receptive field for a model that
    reads its last step, the whole window for one that pools over its last feature map.

    Returns {"erf": EffectiveRF, "report": RFReport, "contributions": [DilationContribution] | None,
    "row_names": names of the gradient map's rows, "input_kind": str}."""
    from core.features import DatasetConfig, prepare_dataset
    from core.models import get_spec

    config = dict(config or {})
    if name not in _registered_names():
        create_registered(name, 1, 3, config)  # raises the sentence that lists the models
    kind = get_spec(name).input_kind
    if kind == "orderbook_image":
        raise UserError("an order-book model reads depth heatmaps, not candles: its effective receptive field "
                        "needs a recorded order book (inspect a trained order-book run on the Inspect page)")
    prepared = prepare_dataset(candles, DatasetConfig(preset=preset, window=int(window)))
    encoding = dict(encoding or {})
    if kind == "chart_image":
        encoding.setdefault("size", int(window))
    model, report = registry_receptive_field(name, int(window), prepared.n_channels, len(prepared.class_names),
                                             **config)
    from core.device import best_device

    model.to(best_device())
    windows = dataset_windows(prepared, kind, n=n_windows, split=split, seed=seed, **encoding)
    # What can reach the output: the field for a model that reads its last step, the whole window for one
    # that pools or flattens over its last feature map.
    bound = report.input_length if report.whole_window else report.receptive_field
    erf = effective_receptive_field(model, windows, input_kind=kind, analytic_rf=bound)
    erf.feature_rf, erf.whole_window = int(report.receptive_field), bool(report.whole_window)
    contributions = None
    if skip_blocks(model):
        contributions = dilation_contributions(model, windows, rf_report=report)
    if kind in ("sequence", "flat", "indicator_image"):
        rows = list(prepared.feature_names)
    else:
        rows = [f"row {i}" for i in range(erf.grad_map.shape[0])]
    return {"erf": erf, "report": report, "contributions": contributions, "row_names": rows, "input_kind": kind}


def _registered_names() -> list[str]:
    from core.models import list_models

    return [s.name for s in list_models()]
