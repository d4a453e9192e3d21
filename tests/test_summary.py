"""Model summaries: exact parameter and MAC counts, per-layer shapes, latency, and known reference figures."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from core.inspect.summary import count_params, measure_latency, model_summary, registry_summary


def small_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Conv1d(8, 8, 5, stride=2, padding=2, groups=2), nn.AdaptiveAvgPool1d(1),
                         nn.Flatten(), nn.Linear(8, 3))


def test_params_macs_and_shapes_are_exact():
    net = small_net()
    s = model_summary(net, (4, 20), latency_runs=0)
    conv1 = 8 * 4 * 3 + 8
    conv2 = 8 * (8 // 2) * 5 + 8
    assert s.params == conv1 + 16 + conv2 + 8 * 3 + 3 == s.trainable_params
    # conv1: 8 out channels x 20 steps x 4 inputs x k3; conv2 (groups 2): 8 x 10 x 4 x 5; linear 3 x 8
    expected = 8 * 20 * 4 * 3 + 8 * 10 * 4 * 5 + 3 * 8
    assert s.hook_macs == expected == s.macs
    by_name = {l.name: l for l in s.layers}
    assert by_name["0"].output_shape == [8, 20] and by_name["3"].output_shape == [8, 10]
    assert by_name["6"].output_shape == [3] and s.output_shape == [3]
    assert by_name["3"].macs == 8 * 10 * 4 * 5 and by_name["1"].macs == 0
    assert s.input_shape == [4, 20] and s.latency_ms is None


def test_functional_convolutions_are_counted_in_the_total():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 2, 3))
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(F.conv1d(x, self.w).mean(-1))

    s = model_summary(Functional(), (2, 12), latency_runs=0)
    assert s.macs == 6 * 10 * 2 * 3 + 2 * 6  # no hook sees the conv; the flop counter does
    assert s.hook_macs == 2 * 6


def test_latency_and_modes_are_restored():
    net = small_net().train()
    s = model_summary(net, (4, 64), latency_runs=5)
    assert net.training
    assert s.latency_ms is not None and 0 < s.latency_ms < 1000 and s.latency_runs == 5
    assert measure_latency(net, torch.zeros(1, 4, 64), runs=3) > 0 and net.training
    assert count_params(net) == (s.params, s.trainable_params)
    net[0].weight.requires_grad_(False)
    assert count_params(net)[1] == s.params - 8 * 4 * 3


def test_dict_outputs_are_summarised():
    s = registry_summary("wavenet_multitask", 64, n_features=5, latency_runs=0, layers=3)
    assert s.output_shape == {"direction": [3], "magnitude": [], "volatility": []}
    assert s.macs == s.hook_macs > 0


def test_chart_resnet18_matches_torchvision_reference_figures():
    # torchvision resnet18 on 224 x 224: 11,689,512 parameters, 1.814 G multiply-accumulates
    s = registry_summary("chart_resnet18", 224, n_classes=1000, latency_runs=0)
    assert s.params == 11_689_512
    assert s.macs == s.hook_macs
    assert abs(s.macs - 1.814e9) / 1.814e9 < 0.002
    shapes = {l.name: l.output_shape for l in s.layers}
    assert shapes["layer4.1.conv2"] == [512, 7, 7] and shapes["fc"] == [1000]


def test_weight_normed_convolutions_are_counted_per_layer():
    s = registry_summary("tcn", 64, n_features=5, latency_runs=0)
    assert s.macs == s.hook_macs  # the parametrised convolutions are seen by the hooks too
    assert any(l.name.endswith("conv1") and l.macs > 0 for l in s.layers)


def test_unknown_model_is_a_sentence():
    with pytest.raises(UserError, match="no model"):
        registry_summary("resnet1000", 64)


def test_latency_is_the_fastest_pass_not_a_busy_one():
    """Busy cores only add time: one slow pass (another job on the machine) must not become the figure."""
    import time

    from torch import nn

    from core.inspect.summary import measure_latency

    class Sometimes(nn.Module):
        calls = 0

        def forward(self, x):
            Sometimes.calls += 1
            time.sleep(0.2 if Sometimes.calls in (3, 4) else 0.001)  # two of the timed passes are slowed down
            return x

    ms = measure_latency(Sometimes(), torch.zeros(1), runs=3, warmup=1)
    assert 1.0 <= ms < 100.0
