"""The architectures follow the documents: shapes per stage, blocks, layer scale, drop path, heads."""
from __future__ import annotations

import torch
from torch import nn

from core.models import create_model


def _stage_shapes(model, x, names):
    shapes = {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape)))
             for n in names]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return shapes


def test_resnet18_full_size_matches_the_documents_shapes():
    # document 000: [B,5,256] -> stem [B,64,64] -> layer1 [64,64] -> layer2 [128,32] -> [256,16] -> [512,8] -> 3
    torch.manual_seed(0)
    m = create_model("resnet18_1d", 5, 3, width=64, dropout=0.3)
    s = _stage_shapes(m, torch.randn(1, 5, 256), ["maxpool", "layer1", "layer2", "layer3", "layer4", "fc"])
    assert s == {"maxpool": (1, 64, 64), "layer1": (1, 64, 64), "layer2": (1, 128, 32), "layer3": (1, 256, 16),
                 "layer4": (1, 512, 8), "fc": (1, 3)}
    assert (m.conv1.kernel_size, m.conv1.stride, m.conv1.padding) == ((7,), (2,), (3,))
    # projection shortcuts exactly where the shape changes
    assert m.layer1[0].downsample is None and m.layer2[0].downsample is not None and m.layer2[1].downsample is None
    assert m.layer2[0].conv1.stride == (2,)


def test_resnet18_full_size_parameter_count():
    # by hand, 15 channels in, 3 classes out (convs without bias, BN = 2 params per channel):
    # stem 15*64*7 + 128; layer1 2*(2*64*64*3 + 256); layer2 (64*128*3 + 128*128*3 + 512 + 64*128 + 256)
    # + (2*128*128*3 + 512); layer3, layer4 likewise; fc 512*3 + 3
    expected = (6720 + 128) + 49664 + (82688 + 98816) + (329216 + 394240) + (1313792 + 1574912) + 1539
    with torch.device("meta"):
        m = create_model("resnet18_1d", 15, 3, width=64)
    assert sum(p.numel() for p in m.parameters()) == expected == 3_851_715


def test_bottleneck_and_variants():
    m = create_model("resnet50_1d", 5, 3, width=64)
    b = m.layer1[0]
    assert [b.conv1.kernel_size, b.conv2.kernel_size, b.conv3.kernel_size] == [(1,), (3,), (1,)]
    assert (b.conv1.in_channels, b.conv1.out_channels, b.conv3.out_channels) == (64, 64, 256)
    assert [len(m.layer1), len(m.layer2), len(m.layer3), len(m.layer4)] == [3, 4, 6, 3]
    se = create_model("se_resnet18_1d", 5, 3)
    assert all(blk.se is not None for layer in (se.layer1, se.layer4) for blk in layer)
    assert create_model("resnet18_1d", 5, 3).layer1[0].se is None
    ms = create_model("msresnet18_1d", 5, 3)
    assert [c.kernel_size[0] for c in ms.layer3[0].branches] == [3, 5, 7]
    assert all(c.stride == (2,) for c in ms.layer3[0].branches)


def test_squeeze_excitation_gates_channels():
    torch.manual_seed(0)
    m = create_model("se_resnet18_1d", 3, 2, width=8, se_reduction=2).eval()
    se = m.layer1[0].se
    x = torch.randn(2, 8, 10)
    with torch.no_grad():
        y = se(x)
        gate = y / x
    # one gate in (0, 1) per sample and channel, shared over time
    assert torch.allclose(gate, gate[..., :1].expand_as(gate), atol=1e-5)
    assert (gate > 0).all() and (gate < 1).all()


def test_convnext_blocks():
    with torch.device("meta"):  # structure only: no memory, no init time
        m = create_model("convnext1d_tiny", 15, 3, drop_path=0.1)
    blk = m.stages[2][0]
    assert blk.dwconv.kernel_size == (7,) and blk.dwconv.groups == blk.dwconv.in_channels == 384
    assert blk.pwconv1.out_features == 4 * 384 and isinstance(blk.act, nn.GELU)
    assert isinstance(blk.norm, nn.LayerNorm) and blk.norm.normalized_shape == (384,)
    compact = create_model("convnext1d", 15, 3).stages[2][0]
    assert torch.allclose(compact.gamma, torch.full((128,), 1e-6))  # layer scale starts at 1e-6
    stem = m.downsample_layers[0][0]
    assert (stem.kernel_size, stem.stride) == ((4,), (4,))
    down = m.downsample_layers[2]  # LayerNorm then conv k2 s2: separate downsampling layers
    assert isinstance(down[1], nn.Conv1d) and (down[1].kernel_size, down[1].stride) == ((2,), (2,))
    rates = [b.drop_path.p for st in m.stages for b in st]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.1) < 1e-9 and rates == sorted(rates)


def test_drop_path_is_random_in_training_only():
    torch.manual_seed(0)
    m = create_model("convnext1d", 4, 3, drop_path=0.5, layer_scale_init=1.0)
    x = torch.randn(8, 4, 64)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))
        m.train()
        a, b = m(x), m(x)
    assert not torch.allclose(a, b)


def test_convnext_keeps_the_latest_bar():
    # windows that are not a multiple of the stride are padded on the left, so the last bar always counts
    torch.manual_seed(0)
    m = create_model("convnext1d", 3, 3).eval()
    x = torch.randn(1, 3, 30)
    x2 = x.clone()
    x2[..., -1] += 3.0
    with torch.no_grad():
        assert not torch.allclose(m(x), m(x2))


def test_wavenet_blocks_and_multitask_head():
    torch.manual_seed(0)
    m = create_model("wavenet_multitask", 5, 3, layers=8).eval()
    assert [b.filter_conv.dilation[0] for b in m.blocks] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert all(b.gate_conv.dilation == b.filter_conv.dilation for b in m.blocks)
    out = m(torch.randn(4, 5, 64))
    assert set(out) == {"direction", "magnitude", "volatility"}
    assert out["direction"].shape == (4, 3) and out["magnitude"].shape == (4,) and out["volatility"].shape == (4,)
    # the gated unit: tanh(filter) * sigmoid(gate) lies in (-1, 1)
    blk = m.blocks[0]
    h = torch.randn(2, 32, 20) * 10
    z = torch.tanh(blk.filter_conv(h)) * torch.sigmoid(blk.gate_conv(h))
    _, skip = blk(h)
    torch.testing.assert_close(skip, blk.skip_conv(z))
    assert z.abs().max() < 1


def test_tcn_block_layout():
    m = create_model("tcn", 5, 3, levels=3, channels=16)
    assert [b.conv1.dilation[0] for b in m.blocks] == [1, 2, 4]
    assert m.blocks[0].downsample is not None and m.blocks[1].downsample is None  # 5 -> 16 channels, then 16
    assert hasattr(m.blocks[0].conv1, "parametrizations")  # weight norm
    assert not hasattr(create_model("tcn", 5, 3, weight_norm=False).blocks[0].conv1, "parametrizations")


def test_flat_baselines_use_the_last_lookback_bars():
    torch.manual_seed(0)
    m = create_model("logistic", 2, 3, lookback=8).eval()
    x = torch.randn(1, 2, 20)
    x2 = x.clone()
    x2[..., :12] = 100.0  # before the lookback: ignored
    with torch.no_grad():
        assert torch.equal(m(x), m(x2))
        x2[..., -1] = 100.0
        assert not torch.equal(m(x), m(x2))
    assert m.linear.in_features == 16


def test_2d_models():
    m = create_model("cnn_ta", 1, 3)
    assert isinstance(m.features[0], nn.Conv2d) and m.features[0].kernel_size == (3, 3)
    with torch.no_grad():
        assert m.eval()(torch.randn(2, 1, 64, 15)).shape == (2, 3)
        assert m(torch.randn(2, 1, 5, 1)).shape == (2, 3)  # tiny images still work
        ob = create_model("orderbook_cnn", 1, 3).eval()
        assert ob(torch.randn(2, 1, 64, 100)).shape == (2, 3)
        assert ob(torch.randn(2, 1, 3, 3)).shape == (2, 3)
