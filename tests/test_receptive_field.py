"""Analytic and effective receptive fields: the documents' numbers, exact agreement with autograd's
dependency support, every registered model, real windows, the per-dilation contribution and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from core.inspect.receptive_field import (bars_to_time, dataset_windows, dilated_stack_rf, dilation_contributions,
                                          effective_receptive_field, lookback_span, minimum_length,
                                          receptive_field, registry_receptive_field, shortest_span)


class LeftPadConv(nn.Conv1d):
    """A causal convolution as the zoo writes it: padding 0, `causal_padding` applied in forward()."""

    def __init__(self, c_in: int, c_out: int, k: int, d: int) -> None:
        super().__init__(c_in, c_out, k, dilation=d)
        self.causal_padding = (k - 1) * d

    def forward(self, x):
        return super().forward(F.pad(x, (self.causal_padding, 0)))


def dilated_stack(k: int = 3, levels: int = 6, c: int = 4) -> nn.Sequential:
    return nn.Sequential(*[LeftPadConv(c, c, k, 2 ** i) for i in range(levels)])


def support(net: nn.Module, length: int, c_in: int, position: int, seed: int = 0) -> np.ndarray:
    """Input positions whose value changes output `position` (float64, random weights and input)."""
    torch.manual_seed(seed)
    net = net.double()
    x = torch.randn(1, c_in, length, dtype=torch.float64, requires_grad=True)
    out = net(x)
    out[0, :, position].sum().backward()
    return np.flatnonzero(x.grad[0].abs().sum(0).numpy() > 0)


# ---- the documents' numbers --------------------------------------------------------------------------
def test_kernel3_dilations_1_to_32_is_127_bars_and_matches_the_document_table():
    net = dilated_stack(3, 6)
    rep = receptive_field(net, 256, example=torch.zeros(1, 4, 256))
    assert rep.receptive_field == 127 == dilated_stack_rf(3, [1, 2, 4, 8, 16, 32])
    # document 002, "Kernel=3 Receptive Field" per dilation rate: 3, 7, 15, 31, 63, 127 bars
    assert [l.receptive_field for l in rep.layers] == [3, 7, 15, 31, 63, 127]
    assert [l.dilation for l in rep.layers] == [1, 2, 4, 8, 16, 32]
    assert all(l.jump == 1 for l in rep.layers)
    # causal: output t sees bars t-126 .. t; output 0 reaches 126 bars into the left padding
    assert rep.start == -126 and rep.layers[0].padding == 2
    assert bars_to_time(127, "1h") == "5.3 days"


@pytest.mark.parametrize("k", [2, 3, 5])
def test_document_growth_formula_k_3k_minus_2_7k_minus_6(k):
    rep = receptive_field(dilated_stack(k, 3), 64, example=torch.zeros(1, 4, 64))
    assert [l.receptive_field for l in rep.layers] == [k, 3 * k - 2, 7 * k - 6]


def test_causal_stack_matches_autograd_support_exactly():
    net = dilated_stack(3, 5)
    rep = receptive_field(net, 100, example=torch.zeros(1, 4, 100))
    s = support(net, 100, 4, position=99)
    assert s.min() == 99 - rep.receptive_field + 1 and s.max() == 99  # causal, exactly RF bars
    assert len(s) == rep.receptive_field == 63


def test_strides_pools_and_padding_agree_with_autograd_for_every_output():
    # stem-like: k7 s2 p3, avg-pool k3 s2 p1, k3 p1, dilated k3 d2 p2, strided k3 s2 p0, pad module
    net = nn.Sequential(nn.Conv1d(2, 3, 7, stride=2, padding=3), nn.AvgPool1d(3, 2, padding=1),
                        nn.Conv1d(3, 3, 3, padding=1), nn.Tanh(), nn.Conv1d(3, 3, 3, dilation=2, padding=2),
                        nn.ConstantPad1d((4, 0), 0.0), nn.Conv1d(3, 3, 3, stride=2), nn.Conv1d(3, 3, 1))
    L = 120
    rep = receptive_field(net, L, example=torch.zeros(1, 2, L))
    out_len = net(torch.zeros(1, 2, L)).shape[-1]
    assert rep.layers[-1].out_length == out_len
    interior = 0
    for t in range(out_len):
        lo = rep.start + t * rep.jump
        hi = lo + rep.receptive_field - 1
        s = support(net, L, 2, t)
        # nothing outside the analytic field ever reaches an output ...
        assert s.size == 0 or (s.min() >= lo and s.max() <= hi), (t, s, lo, hi)
        if lo >= 0 and hi <= L - 1:
            # ... and away from the edges (no padding at any depth) every bar of the field does
            assert np.array_equal(s, np.arange(lo, hi + 1)), (t, s, lo, hi)
            interior += 1
    assert interior >= 5
    assert rep.jump == 8
    assert rep.receptive_field == 7 + 2 * 2 + 2 * 4 + 4 * 4 + 2 * 4 + 0


def test_max_pool_geometry_and_default_stride():
    net = nn.Sequential(nn.Conv1d(1, 1, 7, stride=2, padding=3), nn.MaxPool1d(3))
    rep = receptive_field(net, 64, example=torch.zeros(1, 1, 64))
    assert (rep.layers[1].kernel, rep.layers[1].stride) == (3, 3)  # stride defaults to the kernel
    assert rep.receptive_field == 7 + 2 * 2 and rep.jump == 6


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride, 1)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Conv1d(c_in, c_out, 1, stride)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.downsample(x))


def test_traced_path_skips_the_projection_shortcut_and_stops_at_global_pool():
    net = nn.Sequential(ResBlock(2, 4, 2), ResBlock(4, 8, 2), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                        nn.Linear(8, 3))
    rep = receptive_field(net, 64, example=torch.zeros(1, 2, 64))
    assert rep.source == "trace"
    assert [l.name for l in rep.layers] == ["0.conv1", "0.conv2", "1.conv1", "1.conv2"]
    assert rep.jump == 4  # a shortcut stride counted twice would give 16
    assert rep.receptive_field == 3 + 2 * 2 + 2 * 2 + 2 * 4
    assert rep.whole_window and any("all 64" in n for n in rep.notes)


def test_flat_model_sees_the_whole_window():
    net = nn.Sequential(nn.Flatten(), nn.Linear(5 * 32, 3))
    rep = receptive_field(net, 32, example=torch.zeros(1, 5, 32))
    assert rep.layers == [] and rep.receptive_field == 32 and rep.whole_window


def test_too_short_window_is_a_sentence_with_the_minimum():
    net = nn.Sequential(nn.Conv1d(1, 1, 7, stride=2), nn.Conv1d(1, 1, 5, stride=2), nn.Conv1d(1, 1, 5))
    need = minimum_length([(str(i), m) for i, m in enumerate(net)])
    net(torch.zeros(1, 1, need))  # the minimum really works ...
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 1, need - 1))  # ... and one less does not
    with pytest.raises(UserError, match=f"at least {need}"):
        receptive_field(net, need - 1, example=None)


def test_spans():
    p = np.array([0, 0, 1, 8, 1, 0, 0, 0, 0, 10.0])
    assert shortest_span(p, 0.5) == (9, 9)
    assert shortest_span(p, 0.95) == (3, 9)
    assert lookback_span(p, 0.5) == 1 and lookback_span(p, 0.95) == 7
    assert shortest_span(np.ones(10), 0.95) == (0, 9)  # 95 % of 10 equal bars needs all 10 (9.5 > 9)


# ---- effective receptive field on real windows ---------------------------------------------------------
@pytest.fixture(scope="module")
def real_prepared(shared_data):
    from core.features import DatasetConfig, prepare_dataset

    df = pd.read_csv(shared_data / "binance_spot_BTCUSDT_1h.csv", nrows=3000)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True), name="timestamp")
    df = df.astype(float)
    df.attrs.update(source="binance_spot", symbol="BTC/USDT", timeframe="1h")
    return prepare_dataset(df, DatasetConfig(preset="dilated5", window=160))


def test_effective_rf_of_a_causal_stack_on_real_windows(real_prepared):
    torch.manual_seed(0)
    c = real_prepared.n_channels
    net = nn.Sequential(LeftPadConv(c, 8, 3, 1), nn.ReLU(), *[m for i in range(1, 5)
                                                                for m in (LeftPadConv(8, 8, 3, 2 ** i), nn.ReLU())])
    head = nn.Linear(8, 3)

    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = net, head

        def forward(self, x):
            return self.head(self.body(x)[:, :, -1])

    model = LastStep()
    rep = receptive_field(model, 160, example=torch.zeros(1, c, 160))
    assert rep.receptive_field == 63
    windows = dataset_windows(real_prepared, "sequence", n=48, split="val")
    assert windows.shape == (48, c, 160)
    model.train()
    erf = effective_receptive_field(model, windows, analytic_rf=rep.receptive_field)
    assert model.training  # mode restored
    assert erf.grad_map.shape == (c, 160) and erf.n_windows == 48
    assert np.isclose(erf.time_profile.sum(), 1.0)
    # nothing before the analytic field reaches the output
    assert erf.time_profile[: 160 - 63].sum() == 0
    assert erf.lookback <= 63 and erf.span <= 63 and erf.span_end <= 159
    assert 0 < erf.utilisation <= 1
    again = effective_receptive_field(model, windows, analytic_rf=63)
    assert np.array_equal(again.grad_map, erf.grad_map)  # deterministic
    with pytest.raises(UserError):
        effective_receptive_field(model, windows, target=7)


# ---- registered models ---------------------------------------------------------------------------------
def _registry():
    models = pytest.importorskip("core.models")
    if not hasattr(models, "list_models"):
        pytest.skip("the model registry has not landed")
    return models


LARGE = {"convnext1d_tiny", "convnext1d_small", "convnext1d_base"}


def _all_names():
    try:
        from core.models import list_models
    except ImportError:
        return []
    return [pytest.param(s.name, marks=pytest.mark.slow) if s.name in LARGE else s.name for s in list_models()]


@pytest.mark.parametrize("name", _all_names())
def test_every_registered_model_has_an_analytic_field(name):
    from core.models import get_spec

    spec = get_spec(name)
    model, rep = registry_receptive_field(name, 64, n_features=5)
    assert rep.receptive_field >= 1 and rep.jump >= 1 and rep.source == "rf_path"
    assert rep.whole_window == (not spec.causal)
    if spec.input_kind == "flat":
        assert rep.layers == [] and rep.receptive_field == spec.defaults["lookback"]
        return
    assert rep.layers, "a convolutional model has layers on its path"
    rfs = [l.receptive_field for l in rep.layers]
    assert rfs == sorted(rfs) and rep.layers[-1].out_length >= 1
    json.dumps(rep.to_dict())  # serialisable as the CLI prints it


def _support_1d(model, length, c_in, position, seq=True):
    model = model.double().eval()
    torch.manual_seed(1)
    x = torch.randn(1, c_in, length, dtype=torch.float64, requires_grad=True)
    fmap = model.features_sequence(x) if seq else model.forward_features(x)
    fmap[0, :, position].sum().backward()
    return np.flatnonzero(x.grad[0].abs().sum(0).numpy() > 0), fmap.shape[-1]


@pytest.mark.parametrize("name,config,window,expected", [
    ("wavenet", {"layers": 6}, 160, 127),                # document 002: k3, d 1..32 -> 127 bars
    ("wavenet", {"layers": 4, "stacks": 2}, 96, 61),      # two stacks of 1..8: 1 + 2 * 2 * 15
    ("wavenet_multitask", {"layers": 5, "kernel_size": 2}, 64, 32),
    ("tcn", {}, 128, None),
])
def test_causal_models_field_equals_autograd_support(name, config, window, expected):
    model, rep = registry_receptive_field(name, window, n_features=3, **config)
    if expected is not None:
        assert rep.receptive_field == expected
    s, T = _support_1d(model, window, 3, window - 1)
    assert T == window
    assert s.max() == window - 1 and len(s) == rep.receptive_field == window - s.min()


@pytest.mark.parametrize("name", ["cnn1d", "resnet18_1d", "resnet50_1d", "se_resnet18_1d", "msresnet18_1d",
                                  "convnext1d", "multiscale_cnn"])
def test_no_input_outside_the_analytic_field_reaches_a_feature(name):
    from core.models import get_spec

    window = 700
    cfg = {"width": 8} if "width" in get_spec(name).defaults else {}
    model, rep = registry_receptive_field(name, window, n_features=2, **cfg)
    if not hasattr(model, "forward_features"):
        pytest.skip(f"{name} exposes no feature map")
    with torch.no_grad():
        T = model.double().eval().forward_features(torch.zeros(1, 2, window, dtype=torch.float64)).shape[-1]
    assert T == rep.layers[-1].out_length
    if name == "se_resnet18_1d":
        # squeeze-excitation gates average the whole window inside every block: the report says so, and
        # indeed every bar reaches even the first feature
        assert rep.global_context and any("squeeze-excitation" in n for n in rep.notes)
        assert len(_support_1d(model, window, 2, 0, seq=False)[0]) == window
        return
    assert not rep.global_context
    for pos in sorted({0, T // 2, T - 1}):
        s, _ = _support_1d(model, window, 2, pos, seq=False)
        lo = rep.start + pos * rep.jump
        assert s.size and s.min() >= lo and s.max() <= lo + rep.receptive_field - 1, (pos, s.min(), s.max(), lo)
    # a feature in the middle of a long window is fed by most of its field (max-pool routes some away)
    s, _ = _support_1d(model, window, 2, T // 2, seq=False)
    assert len(s) >= 0.5 * min(rep.receptive_field, window)


def test_chart_resnet18_has_the_known_435_pixel_field():
    _, rep = registry_receptive_field("chart_resnet18", 224, n_classes=1000)
    assert rep.receptive_field == 435 and rep.jump == 32 and rep.unit == "px"
    assert rep.layers[-1].out_length == 7  # 224 / 32


def test_unknown_model_and_setting_are_sentences():
    with pytest.raises(UserError, match="no model 'resnet99'"):
        registry_receptive_field("resnet99", 64)
    with pytest.raises(UserError, match="has no setting 'depth'"):
        registry_receptive_field("wavenet", 64, depth=3)


# ---- WaveNet: contribution of each dilation level ------------------------------------------------------
def test_dilation_contributions_on_real_windows(real_prepared):
    model, rep = registry_receptive_field("wavenet", 160, n_features=real_prepared.n_channels, layers=6)
    windows = dataset_windows(real_prepared, "sequence", n=32)
    contrib = dilation_contributions(model, windows, rf_report=rep)
    assert [c.dilation for c in contrib] == [1, 2, 4, 8, 16, 32]
    assert [c.receptive_field for c in contrib] == [3, 7, 15, 31, 63, 127]
    assert np.isclose(sum(c.share for c in contrib), 1.0) and all(c.change > 0 for c in contrib)
    assert contrib == dilation_contributions(model, windows, rf_report=rep)  # deterministic
    # a level whose skip output is silenced contributes nothing; the others still do
    with torch.no_grad():
        model.blocks[3].skip_conv.weight.zero_()
        model.blocks[3].skip_conv.bias.zero_()
    silenced = dilation_contributions(model, windows, rf_report=rep)
    assert silenced[3].change == 0 and silenced[3].share == 0
    assert all(c.change > 0 for i, c in enumerate(silenced) if i != 3)
    with pytest.raises(UserError, match="WaveNet-style"):
        dilation_contributions(registry_receptive_field("tcn", 64)[0], torch.zeros(2, 15, 64))


def test_effective_rf_on_dataset_uses_the_right_bound(real_prepared):
    from core.inspect.receptive_field import dataset_effective_rf, window_advice

    candles = real_prepared.candles
    res = dataset_effective_rf(candles, "resnet18_1d", {"width": 8}, preset="dilated5", window=96, n_windows=16)
    erf, rep = res["erf"], res["report"]
    # a pooled model: the whole window can reach the output, however small each feature's field
    assert rep.whole_window and erf.analytic_rf == 96 and 0 < erf.utilisation <= 1
    assert res["row_names"] == list(real_prepared.feature_names) and res["contributions"] is None
    # 435 bars on a 96-bar window, mostly padding: said as a fact, since the pooled head reads the whole window
    assert window_advice(rep)[0] == "info" and "zero padding" in window_advice(rep)[1]
    res = dataset_effective_rf(candles, "tcn", {}, preset="dilated5", window=61, n_windows=8)
    assert res["erf"].analytic_rf == 61 == res["report"].receptive_field
    assert window_advice(res["report"]) is None
    # a last-step head that loses 3 of 64 bars is told so; one that loses 73 of 200 is warned
    lost3 = dataset_effective_rf(candles, "tcn", {}, preset="dilated5", window=64, n_windows=4)["report"]
    assert window_advice(lost3)[0] == "info" and "never sees the oldest 3 bars" in window_advice(lost3)[1]
    with pytest.raises(UserError, match="needs a recorded order book"):
        dataset_effective_rf(candles, "orderbook_cnn", window=32)


# ---- the CLI -------------------------------------------------------------------------------------------
def test_cli_rf_json(capsys):
    from core.cli import main

    assert main(["rf", "wavenet", "--set", "layers=6", "--window", "128", "--features", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "wavenet" and out["receptive_field"] == 127
    assert {"name", "kernel", "stride", "dilation", "jump", "receptive_field"} <= set(out["layers"][0])
    dilated = [l for l in out["layers"] if l["kernel"] > 1]
    assert [l["dilation"] for l in dilated] == [1, 2, 4, 8, 16, 32]
    assert [l["receptive_field"] for l in dilated] == [3, 7, 15, 31, 63, 127]
    assert out["params"] > 0 and out["macs"] > 0

    assert main(["rf", "resnet18_1d", "--window", "0", "--json"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["rf", "wavenet", "--set", "depth=3"]) == 2
    assert "has no setting 'depth'" in capsys.readouterr().err
    assert main(["rf", "nope", "--json"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


def test_pooled_model_field_and_bound_are_labelled_apart(real_prepared):
    """Architectures showed 'Receptive field 36 bars' and 'Analytic bound 64' for one cnn1d, with the red
    'analytic bound 64 bars' label printed over the bars."""
    from core.inspect.receptive_field import dataset_effective_rf
    from core.viz.architectures import erf_figure

    res = dataset_effective_rf(real_prepared.candles, "cnn1d", {}, preset="dilated5", window=64, n_windows=8)
    erf, rep = res["erf"], res["report"]
    assert rep.receptive_field == 36 and rep.whole_window
    assert erf.analytic_rf == 64 and erf.feature_rf == 36 and erf.whole_window  # bound = window, field = 36
    assert "36 bars per feature" in erf.rf_note and "all 64 bars" in erf.rf_note
    fig = erf_figure(erf, res["row_names"], erf.analytic_rf, "bars")
    red = [a for a in fig.layout.annotations if a.font and a.font.color == "red"]
    assert len(red) == 1 and "36 bars" in red[0].text and "64 bars" in red[0].text
    # above the plot area (paper y >= 1, growing upwards), inside the figure's width: never over the data
    assert red[0].yref == "paper" and red[0].y >= 1 and red[0].yanchor == "bottom" and red[0].yshift > 0
    assert red[0].xref == "paper" and (red[0].x, red[0].xanchor) in ((0.0, "left"), (1.0, "right"))
    assert fig.layout.margin.t >= 80
    dashed = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert dashed and all(s.x0 == -(36 - 1) - 0.5 for s in dashed)  # the line marks one feature's field
    # every feature is named on the heatmap's rows (plotly left every other name out)
    assert list(fig.data[0].y) == list(res["row_names"]) and fig.layout.yaxis.dtick == 1
