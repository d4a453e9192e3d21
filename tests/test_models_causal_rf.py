"""Causal models never look ahead; `rf_path()` lists the longest path with the documents' receptive fields."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.models import create_model, list_models
from core.models.blocks import CausalConv1d, is_rf_layer

CAUSAL = [s.name for s in list_models() if s.causal]


def _future_changes(fn, c: int = 4, t_total: int = 48, t: int = 20) -> tuple[float, float]:
    """Max |change| of fn(x)[..., :t+1] and of fn(x)[..., t+1:] when only inputs after step t change."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, c, t_total, generator=g)
    x2 = x.clone()
    x2[..., t + 1:] = torch.randn(2, c, t_total - t - 1, generator=g) * 5
    with torch.no_grad():
        a, b = fn(x), fn(x2)
    assert a.shape[-1] == t_total  # one output per input step
    return float((a[..., :t + 1] - b[..., :t + 1]).abs().max()), float((a[..., t + 1:] - b[..., t + 1:]).abs().max())


def test_the_contract_causal_models_are_flagged():
    assert set(CAUSAL) >= {"wavenet", "wavenet_multitask", "tcn"}


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("cfg", [{}, {"kernel_size": 2}])
def test_causal_features_ignore_the_future(name, cfg):
    torch.manual_seed(0)
    model = create_model(name, 4, 3, **cfg).eval()
    past, future = _future_changes(model.features_sequence)
    assert past == 0.0
    assert future > 1e-4  # the later steps do see the changed inputs


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_head_reads_the_last_step(name):
    torch.manual_seed(0)
    model = create_model(name, 4, 3).eval()
    x = torch.randn(2, 4, 40)
    with torch.no_grad():
        full = model(x)
        cut = model(x[..., :30])  # the decision at bar 29 equals the full model's output on data up to 29
        seq = model.features_sequence(x[..., :30])
    full = full["direction"] if isinstance(full, dict) else full
    cut = cut["direction"] if isinstance(cut, dict) else cut
    assert not torch.allclose(full, cut)
    head = model.direction if hasattr(model, "direction") else model.head
    torch.testing.assert_close(cut, head(seq[:, :, -1]))


def test_the_check_catches_a_look_ahead():
    # a centred (non-causal) convolution must fail the same check
    torch.manual_seed(0)
    leaky = nn.Conv1d(4, 4, 3, padding=1)
    past, _ = _future_changes(leaky)
    assert past > 0
    model = create_model("multiscale_cnn", 4, 3).eval()
    past, _ = _future_changes(model.forward_features)
    assert past > 0


def _rf(path) -> int:
    """Receptive field of a 1D chain: rf += (k-1)*d*jump; jump *= stride."""
    rf, jump = 1, 1
    for _, m in path:
        k = m.kernel_size[0] if isinstance(m.kernel_size, tuple) else m.kernel_size
        d = m.dilation[0] if isinstance(m.dilation, tuple) else (m.dilation if isinstance(m.dilation, int) else 1)
        s = m.stride[0] if isinstance(m.stride, tuple) else m.stride
        rf += (k - 1) * d * jump
        jump *= s
    return rf


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_rf_path_names_real_rf_layers(spec):
    with torch.device("meta"):
        model = create_model(spec.name, 3 if spec.input_kind == "chart_image" else 1, 3)
    path = model.rf_path()
    names = dict(model.named_modules())
    for name, m in path:
        assert names[name] is m and is_rf_layer(m), name
    assert len({n for n, _ in path}) == len(path)
    if spec.input_kind != "flat":
        assert path, spec.name


def test_wavenet_receptive_field_matches_the_document():
    # document 002: kernel 3 with dilations 1..32 -> 127 bars; 1..128 -> 511; formula 1 + sum((k-1) d)
    for layers, expected in ((6, 127), (8, 511)):
        m = create_model("wavenet", 5, 3, layers=layers)
        assert _rf(m.rf_path()) == expected
        dil = [mod.dilation[0] for _, mod in m.rf_path() if isinstance(mod, CausalConv1d)]
        assert dil == [2 ** i for i in range(layers)]
        assert all(mod.causal_padding == (mod.kernel_size[0] - 1) * mod.dilation[0] and mod.padding == (0,)
                   for _, mod in m.rf_path() if isinstance(mod, CausalConv1d))
    assert _rf(create_model("wavenet", 5, 3, layers=4, stacks=2, kernel_size=2).rf_path()) == 1 + 2 * 15


def test_rf_of_the_longest_paths():
    assert _rf(create_model("tcn", 5, 3).rf_path()) == 1 + 2 * 2 * (1 + 2 + 4 + 8)  # two convs per level
    assert _rf(create_model("multiscale_cnn", 5, 3).rf_path()) == 61  # the k31 branch: two convs
    ms = create_model("msresnet18_1d", 5, 3).rf_path()
    assert ms[2][0] == "layer1.0.branches.2" and ms[2][1].kernel_size == (7,) and ms[3][0] == "layer1.0.fusion"
    assert _rf(create_model("cnn1d", 5, 3, pool=False).rf_path()) == 13
    stem = create_model("resnet18_1d", 5, 3).rf_path()[:2]
    assert [(n, m.kernel_size, m.stride) for n, m in stem] == [("conv1", (7,), (2,)), ("maxpool", 3, 2)]
    cx = create_model("convnext1d", 5, 3).rf_path()
    assert cx[0][1].kernel_size == (4,) and cx[0][1].stride == (4,) and cx[1][1].groups == 32
    assert create_model("mlp", 5, 3).rf_path() == []


def test_the_rf_measured_by_gradients_matches_the_path():
    # the last causal output step depends on exactly the last RF input steps
    torch.manual_seed(0)
    m = create_model("tcn", 2, 3, weight_norm=False, dropout=0.0).eval()
    rf = _rf(m.rf_path())
    x = torch.randn(1, 2, 100, requires_grad=True)
    m.features_sequence(x)[0, :, -1].sum().backward()
    nz = (x.grad.abs().sum(1)[0] > 0).nonzero().flatten()
    assert int(100 - nz.min()) == rf
