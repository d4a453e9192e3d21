"""The effective receptive field of a trained model from input gradients (Inspect page)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import UserError
from core.inspect.attributions import run_receptive_field


class LastSteps(nn.Module):
    """Logits from the last `k` time steps only: its true receptive field is exactly k bars."""

    def __init__(self, c: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.fc = nn.Linear(c * k, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[..., -self.k:].flatten(1))


class RightColumns(nn.Module):
    """A chart model that reads only the right-most `w` pixel columns."""

    def __init__(self, w: int) -> None:
        super().__init__()
        self.w = w
        self.fc = nn.LazyLinear(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[..., -self.w:].flatten(1))


def _windows(shape, n=16, seed=0):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_a_model_that_reads_the_last_five_bars():
    torch.manual_seed(0)
    model = LastSteps(4, 5)
    erf = run_receptive_field(model, _windows((4, 32)), "sequence")
    assert erf.profile.shape == (32,) and erf.profile.sum() == pytest.approx(1.0)
    assert np.all(erf.profile[:-5] == 0) and np.all(erf.profile[-5:] > 0)
    assert erf.span95 <= 5 and erf.centre_lag < 5 and erf.n_windows == 16
    assert erf.channel_time.shape == (4, 32)


def test_causal_registry_model_stays_inside_its_analytic_field():
    from core.models import create_model

    torch.manual_seed(0)
    model = create_model("wavenet", 3, 3, layers=4, channels=8, skip_channels=8, hidden=8)  # RF 1 + 2*15 = 31
    erf = run_receptive_field(model, _windows((3, 64), n=8), "sequence")
    assert erf.analytic_rf == 31
    assert np.all(erf.profile[:-31] == 0)  # nothing older than the analytic field moves the prediction
    assert 1 <= erf.span95 <= 31


def test_chart_pixels_map_back_to_candles():
    torch.manual_seed(0)
    model = RightColumns(4)
    x = _windows((3, 32, 32), n=4)
    model(x)  # materialise the lazy layer
    erf = run_receptive_field(model, x, "chart_image", n_bars=8)  # 4 px per candle
    assert erf.profile.shape == (8,) and erf.profile[-1] == pytest.approx(1.0)
    assert erf.span95 == 1


def test_model_mode_is_restored_and_bad_input_is_a_sentence():
    model = LastSteps(2, 3).train()
    run_receptive_field(model, _windows((2, 8)), "sequence")
    assert model.training and all(p.grad is None for p in model.parameters())
    with pytest.raises(UserError):
        run_receptive_field(model, torch.zeros(0, 2, 8), "sequence")


def test_grad_cam_skips_a_1x1_last_map_by_default():
    from core.inspect.attributions import grad_cam
    from core.models import create_model

    torch.manual_seed(0)
    model = create_model("chart_resnet18", 3, 3)
    x = torch.rand(3, 32, 32)  # layer4 of ResNet-18 is 1x1 here, layer3 2x2
    res = grad_cam(model, x)
    assert res.layer.startswith("layer3") and res.layer_cam.shape == (2, 2)
    assert res.cam.shape == (32, 32)
    assert grad_cam(model, x, layer="layer4.1.conv2").layer_cam.shape == (1, 1)  # asked for: given


def test_a_pooled_cnn_reports_its_field_and_that_the_whole_window_reaches_the_output():
    """cnn1d on 64 bars: each feature sees 36 bars, the head pools them, and the gradient reaches past 36."""
    from core.models import create_model

    torch.manual_seed(0)
    model = create_model("cnn1d", 3, 3)
    erf = run_receptive_field(model, _windows((3, 64), n=8), "sequence")
    assert erf.analytic_rf == 36 and erf.whole_window
    assert erf.profile[:-36].sum() > 0  # bars older than one feature's field do move the prediction
    assert "36 bars per feature" in erf.rf_note and "all 64 bars of the window reach the output" in erf.rf_note
    causal = run_receptive_field(create_model("wavenet", 3, 3, layers=4, channels=8, skip_channels=8, hidden=8),
                                 _windows((3, 64), n=4), "sequence")
    assert not causal.whole_window and causal.rf_note == "analytic receptive field 31 bars"
    # CNN-TA pools to 4 x 4 and flattens with a function call: still the whole window (the zoo's spec says so)
    cnn_ta = run_receptive_field(create_model("cnn_ta", 1, 3), torch.rand(4, 1, 32, 6), "indicator_image")
    assert cnn_ta.analytic_rf == 6 and cnn_ta.whole_window and "all 32 bars" in cnn_ta.rf_note
