"""The model zoo: every architecture of the source documents behind one registry.

    from core.models import create_model, list_models, get_spec, ModelSpec
    model = create_model("resnet18_1d", in_channels=15, n_classes=3, width=64)

Input kinds: `sequence` `(B, C, T)`, `flat` (baselines, also `(B, C, T)`), `indicator_image` `(B, 1, T, C)`,
`orderbook_image` `(B, 1, T, L)`, `chart_image` `(B, 3, H, W)`. Every model returns logits `(B, n_classes)`;
`wavenet_multitask` returns `{"direction": (B, n_classes), "magnitude": (B,), "volatility": (B,)}`.
Any window length works (global/adaptive pooling; the flat baselines use the last `lookback` bars).

For receptive-field analysis (core.inspect)
-------------------------------------------
Every model is a `core.models.blocks.ZooModel` with `rf_path() -> [(qualified_name, module), ...]`: the
convolution and (non-adaptive) pooling modules on the LONGEST path from the input to the last feature map, in
data-flow order; names are those of `model.named_modules()`. Global pooling, `nn.Linear` and heads come after
it and are not listed. The modules are plain `nn.Conv1d` / `nn.Conv2d` / `nn.MaxPool*` / `nn.AvgPool*` with
their `kernel_size`, `stride`, `dilation`, `padding`; causal convolutions are `blocks.CausalConv1d`
(a `Conv1d` subclass with `padding == 0` and `causal_padding = (k-1)*d` zeros added on the left only).

How the data flows, per family:
- `cnn1d`: sequential conv k5 -> BN -> ReLU -> max-pool(2) blocks.
- `resnet*_1d`, `se_resnet18_1d`, `msresnet18_1d`: stem conv k7 s2 -> max-pool k3 s2 -> residual blocks. In a
  block the residual path (conv1 -> conv2, or 1x1 -> k3 -> 1x1 for bottlenecks) is longest; the `downsample`
  shortcut is parallel. In multi-scale blocks the branches k3/k5/k7 are parallel: `rf_path` takes the k7 one
  (then the 1x1 `fusion` conv and `conv2`). Squeeze-excitation is a global gate (no RF change).
- `convnext1d*`: sequential: patchify stem conv (k=stride=4), then per stage the depthwise k7 convs of each
  block (pointwise layers are `nn.Linear`, k=1); downsampling convs k2 s2 between stages. Inputs are
  zero-padded on the left to a multiple of the stride before each strided conv.
- `wavenet*`: 1x1 input conv, then blocks each with PARALLEL `filter_conv` and `gate_conv` (same kernel and
  dilation; `rf_path` lists `filter_conv`) and a 1x1 `residual_conv`; each block's 1x1 `skip_conv` feeds the
  summed skip path; the deepest path is through every block then the last `skip_conv` and `output_conv`.
- `tcn`: sequential blocks of two causal dilated convs (`conv1`, `conv2`); the 1x1 `downsample` is a shortcut.
- `multiscale_cnn`: parallel branches of two same-padded convs each (k 3/7/15/31); `rf_path` is the k31 branch.
- `mlp`, `logistic`: no convolutions (`rf_path()` is empty): each output sees the last `lookback` bars.
- `cnn_ta`, `orderbook_cnn`: sequential 2D convs and max-pools; `chart_resnet18`: like the 1D ResNet, in 2D.

Causal models (`spec.causal`: `wavenet`, `wavenet_multitask`, `tcn`) expose `features_sequence(x) -> (B, C', T)`
(also as `forward_sequence`): step t of it depends only on input steps <= t; their heads read step T-1.
Other 1D models expose `forward_features(x) -> (B, C', T')`, the last feature map before pooling.
"""
from core.models.chart_resnet import freeze_stages, load_torchvision_weights, torchvision_resnet18_shapes
from core.models.registry import (INPUT_KINDS, ModelSpec, UnknownModel, create_model, get_spec, list_models,
                                  resolve_config)

__all__ = ["INPUT_KINDS", "ModelSpec", "UnknownModel", "create_model", "get_spec", "list_models",
           "resolve_config", "load_torchvision_weights", "freeze_stages", "torchvision_resnet18_shapes"]
