"""The model registry: names, input kinds, config defaults, and `create_model`."""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from torch import nn

from core.errors import UserError

INPUT_KINDS = ("sequence", "flat", "indicator_image", "orderbook_image", "chart_image")


@dataclass(frozen=True)
class ModelSpec:
    """What a page or the CLI needs to know about a registered model.

    `defaults` maps every config key the model accepts to its default (int, float, bool, str or list of
    ints); `causal` is True when output step t depends only on input steps <= t (`features_sequence`);
    `multitask` when the model answers with direction logits plus magnitude and volatility (it needs the
    multitask labels).
    """

    name: str
    family: str
    input_kind: str
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    causal: bool = False
    multitask: bool = False

    def __hash__(self) -> int:  # the defaults dict is not hashable; a name identifies a spec
        return hash(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "input_kind": self.input_kind,
                "defaults": copy.deepcopy(self.defaults), "description": self.description, "causal": self.causal,
                "multitask": self.multitask}


class UnknownModel(UserError, KeyError):
    """An unregistered model name (a `KeyError` for lookups, a `UserError` for pages and the CLI)."""

    def __str__(self) -> str:  # KeyError would quote the sentence
        return str(self.args[0]) if self.args else ""


_SPECS: dict[str, ModelSpec] = {}
_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_LOCK = threading.Lock()


def _build_table() -> tuple[dict[str, ModelSpec], dict[str, Callable[..., nn.Module]]]:
    from functools import partial

    from core.models.baselines import MLP, Logistic
    from core.models.chart_resnet import ChartResNet18
    from core.models.cnn1d import CNN1d
    from core.models.cnn2d import CNNTA, OrderBookCNN
    from core.models.convnext1d import SIZES, ConvNeXt1d
    from core.models.multiscale import MultiScaleCNN
    from core.models.resnet1d import LAYOUTS, ResNet1d
    from core.models.tcn import TCN
    from core.models.wavenet import WaveNet

    specs: dict[str, ModelSpec] = {}
    builders: dict[str, Callable[..., nn.Module]] = {}

    def _register(spec: ModelSpec, builder: Callable[..., nn.Module]) -> None:
        if spec.input_kind not in INPUT_KINDS:
            raise ValueError(f"unknown input kind {spec.input_kind}")
        specs[spec.name] = spec
        builders[spec.name] = builder

    seq = "sequence"
    _register(ModelSpec("cnn1d", "cnn", seq, {"channels": 32, "layers": 3, "kernel_size": 5, "dropout": 0.2,
                                              "pool": True},
                        "Plain 1D CNN: conv k5 + BN + ReLU + max-pool blocks, global average pool, linear head "
                        "(document 004)."), CNN1d)

    def resnet(depth: int, variant: str = ""):
        block, layers = LAYOUTS[depth]
        block = "multiscale" if variant == "multiscale" else block

        def build(in_channels: int, n_classes: int, **cfg: Any) -> nn.Module:
            return ResNet1d(in_channels, n_classes, block=block, layers=layers, **cfg)
        return build

    base = {"width": 32, "kernel_size": 3, "dropout": 0.0}
    _register(ModelSpec("resnet18_1d", "resnet", seq, dict(base),
                        "ResNet-18 1D (document 000): stem k7 s2 + max-pool, basic blocks [2,2,2,2], stages "
                        "w-2w-4w-8w with projection shortcuts; width=64 is the document's full size."), resnet(18))
    _register(ModelSpec("resnet34_1d", "resnet", seq, dict(base),
                        "ResNet-34 1D: basic blocks [3,4,6,3]; width=64 is the full size."), resnet(34))
    _register(ModelSpec("resnet50_1d", "resnet", seq, dict(base, width=16),
                        "ResNet-50 1D: bottleneck blocks (1x1 -> k3 -> 1x1, x4 expansion) [3,4,6,3]; width=64 "
                        "is the full size (2048 final channels)."), resnet(50))
    _register(ModelSpec("se_resnet18_1d", "resnet", seq, dict(base, se_reduction=16),
                        "ResNet-18 1D with squeeze-and-excitation channel attention in every residual block "
                        "(document 000)."), resnet(18, "se"))
    _register(ModelSpec("msresnet18_1d", "resnet", seq, dict(base),
                        "Multi-scale ResNet-18 1D: each block's first conv is three parallel branches "
                        "(k 3, 5, 7) fused by a 1x1 conv (document 000)."), resnet(18, "multiscale"))

    def convnext(size: str):
        dims, depths = SIZES[size]
        defaults = {"dims": list(dims), "depths": list(depths), "kernel_size": 7, "stem_stride": 4,
                    "drop_path": 0.0 if size == "compact" else 0.1, "layer_scale_init": 1e-6, "dropout": 0.0}
        return defaults, ConvNeXt1d

    for name, size, desc in (
            ("convnext1d", "compact", "compact ConvNeXt-1D (dims 32-64-128-256, depths 1:1:3:1) that trains fast "
                                      "on CPU"),
            ("convnext1d_tiny", "tiny", "ConvNeXt-1D Tiny (document 001): dims 96-192-384-768, depths 3:3:9:3"),
            ("convnext1d_small", "small", "ConvNeXt-1D Small: dims 96-192-384-768, depths 3:3:27:3"),
            ("convnext1d_base", "base", "ConvNeXt-1D Base: dims 128-256-512-1024, depths 3:3:27:3")):
        d, b = convnext(size)
        _register(ModelSpec(name, "convnext", seq, d,
                            desc + "; patchify stem, depthwise k7, LayerNorm, 4x inverted bottleneck, GELU, layer "
                            "scale, drop path, separate downsampling layers."), b)

    wn = {"channels": 32, "skip_channels": 64, "hidden": 64, "layers": 8, "stacks": 1, "kernel_size": 3,
          "dropout": 0.0}
    _register(ModelSpec("wavenet", "wavenet", seq, dict(wn),
                        "WaveNet (document 002): causal dilated convs (dilations 1..2^(layers-1)), gated "
                        "tanh x sigmoid, residual + skip connections; 3-class head on the last step.", causal=True),
              partial(WaveNet, multitask=False))
    _register(ModelSpec("wavenet_multitask", "wavenet", seq, dict(wn),
                        "WaveNet with direction logits + magnitude + volatility heads on the last step "
                        "(document 002).", causal=True, multitask=True), partial(WaveNet, multitask=True))
    _register(ModelSpec("tcn", "tcn", seq, {"channels": 32, "levels": 4, "kernel_size": 3, "dropout": 0.2,
                                            "weight_norm": True},
                        "TCN (Bai et al. 2018, document 004): residual blocks of two dilated causal convs "
                        "(weight norm, ReLU, dropout), dilations 1..2^(levels-1); head on the last step.",
                        causal=True), TCN)
    _register(ModelSpec("multiscale_cnn", "cnn", seq, {"filters": 32, "kernels": [3, 7, 15, 31], "hidden": 128,
                                                       "dropout": 0.3},
                        "Multi-scale CNN (document 004): inception-style parallel branches k 3/7/15/31, "
                        "concatenated, global average pool, dense head."), MultiScaleCNN)
    _register(ModelSpec("mlp", "baseline", "flat", {"lookback": 64, "hidden": 128, "layers": 2, "dropout": 0.2},
                        "Dense network on the flattened last `lookback` bars of every channel (baseline)."), MLP)
    _register(ModelSpec("logistic", "baseline", "flat", {"lookback": 64},
                        "Multinomial logistic regression on the flattened last `lookback` bars (baseline)."),
              Logistic)
    _register(ModelSpec("cnn_ta", "cnn2d", "indicator_image", {"channels": 32, "hidden": 128, "dropout": 0.25,
                                                                "pool": 4},
                        "CNN-TA (document 004): 2D CNN on indicator images (bars x indicators)."), CNNTA)
    _register(ModelSpec("orderbook_cnn", "cnn2d", "orderbook_image", {"channels": 16, "stages": 3, "dropout": 0.3},
                        "2D CNN on order-book depth heatmaps (snapshots x price levels, document 004)."),
              OrderBookCNN)
    _register(ModelSpec("chart_resnet18", "resnet2d", "chart_image", {"dropout": 0.0, "freeze": 0,
                                                                       "pretrained": "", "input_norm": "none"},
                        "ResNet-18 2D on candlestick chart images, torchvision layout (11.7M parameters at 1000 "
                        "classes); `pretrained` = a torchvision resnet18 .pth in the workspace, `freeze` = "
                        "stages to freeze (1 = stem ... 5 = all but the head), `input_norm` = none or imagenet "
                        "(standardise the chart with ImageNet's channel statistics, as ImageNet weights "
                        "expect)."), ChartResNet18)
    return specs, builders


def _ensure() -> None:
    # built once, on first use (keeps `import core.models` light); complete before it becomes visible
    if _SPECS:
        return
    with _LOCK:
        if not _SPECS:
            specs, builders = _build_table()
            _BUILDERS.update(builders)
            _SPECS.update(specs)


def _copy(spec: ModelSpec) -> ModelSpec:
    return replace(spec, defaults=copy.deepcopy(spec.defaults))  # callers may edit their copy freely


def list_models(input_kind: str | None = None) -> list[ModelSpec]:
    """Every registered model (optionally only one input kind), in a stable order."""
    _ensure()
    return [_copy(s) for s in _SPECS.values() if input_kind is None or s.input_kind == input_kind]


def get_spec(name: str) -> ModelSpec:
    """The spec of `name`; raises `UnknownModel` (a KeyError and a UserError) for an unknown name."""
    _ensure()
    try:
        return _copy(_SPECS[name])
    except (KeyError, TypeError):
        raise UnknownModel(f"unknown model {name!r}; choose one of {', '.join(_SPECS)}") from None


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    def bad(kind: str) -> UserError:
        return UserError(f"{name}: setting {key!r} must be {kind}, got {value!r}")

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise bad("true or false")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise bad("a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise bad("a whole number")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad("a number")
    if isinstance(default, list):
        if isinstance(value, str):
            parts = [p for p in value.replace("[", "").replace("]", "").replace(",", " ").split() if p]
            try:
                value = [int(p) for p in parts]
            except ValueError:
                raise bad("a list of whole numbers") from None
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
                for v in value):
            return [int(v) for v in value]
        raise bad("a non-empty list of whole numbers")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise bad("text")
    return value


def _check_ranges(name: str, cfg: dict[str, Any]) -> None:
    for key, value in cfg.items():
        if isinstance(value, bool):
            continue
        if key in ("dropout", "drop_path") and not 0.0 <= value < 1.0:
            raise UserError(f"{name}: {key} must be in [0, 1), got {value}")
        if key in ("width", "channels", "skip_channels", "hidden", "layers", "stacks", "levels", "filters",
                   "lookback", "stem_stride", "stages", "pool", "se_reduction") and value < 1:
            raise UserError(f"{name}: {key} must be at least 1, got {value}")
        if key == "kernel_size" and value < 1:
            raise UserError(f"{name}: kernel_size must be at least 1, got {value}")
        if key in ("dims", "depths", "kernels") and any(v < 1 for v in value):
            raise UserError(f"{name}: every entry of {key} must be at least 1, got {value}")
    if "dims" in cfg and "depths" in cfg and len(cfg["dims"]) != len(cfg["depths"]):
        raise UserError(f"{name}: dims and depths need the same number of stages "
                        f"({len(cfg['dims'])} vs {len(cfg['depths'])})")
    family = get_spec(name).family
    if family in ("resnet", "convnext") and cfg.get("kernel_size", 1) % 2 == 0:
        raise UserError(f"{name}: kernel_size must be odd (same padding keeps residual shapes), "
                        f"got {cfg['kernel_size']}")
    if "kernels" in cfg and any(k % 2 == 0 for k in cfg["kernels"]):
        raise UserError(f"{name}: kernels must be odd sizes (same padding), got {cfg['kernels']}")
    if name.startswith("wavenet") and cfg.get("layers", 0) > 16:
        raise UserError(f"{name}: layers above 16 give dilations beyond 32768 bars; use stacks instead")
    if "input_norm" in cfg:
        from core.models.chart_resnet import INPUT_NORMS

        if cfg["input_norm"] not in INPUT_NORMS:
            raise UserError(f"{name}: input_norm must be {' or '.join(INPUT_NORMS)}, got {cfg['input_norm']!r}")
    if name == "tcn" and cfg.get("levels", 0) > 16:
        raise UserError("tcn: levels above 16 give dilations beyond 32768 bars")


def resolve_config(name: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full config of `name`: defaults overridden by `config`, coerced and checked (UserError)."""
    spec = get_spec(name)
    config = dict(config or {})
    unknown = sorted(set(config) - set(spec.defaults))
    if unknown:
        raise UserError(f"{name} has no setting(s) {', '.join(unknown)}; its settings are "
                        f"{', '.join(spec.defaults) or 'none'}")
    cfg = copy.deepcopy(spec.defaults)
    for k, v in config.items():
        cfg[k] = _coerce(name, k, v, spec.defaults[k])
    _check_ranges(name, cfg)
    return cfg


def create_model(name: str, in_channels: int, n_classes: int, **config: Any) -> nn.Module:
    """Build the model `name` for `in_channels` input channels and `n_classes` classes.

    `config` overrides `get_spec(name).defaults`; an unknown key or a bad value raises `UserError`.
    The weights come from torch's global RNG: call `torch.manual_seed(s)` first for reproducible weights.
    The returned module has `model_name`, `config` (the full config), `input_kind` and `rf_path()`.
    """
    spec = get_spec(name)
    if int(in_channels) < 1:
        raise UserError(f"{name}: in_channels must be at least 1, got {in_channels}")
    if int(n_classes) < 1:
        raise UserError(f"{name}: n_classes must be at least 1, got {n_classes}")
    cfg = resolve_config(name, config)
    model = _BUILDERS[name](int(in_channels), int(n_classes), **copy.deepcopy(cfg))
    model.model_name = name
    model.config = cfg
    model.input_kind = spec.input_kind
    model.in_channels = int(in_channels)
    model.n_classes = int(n_classes)
    return model
