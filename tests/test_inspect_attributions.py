"""Attributions: saliency, integrated gradients (completeness, captum agreement) and Grad-CAM."""
import numpy as np
import pytest
import torch
from torch import nn

from core.errors import UserError
from core.inspect.attributions import (
    attribute, grad_cam, integrated_gradients, predict_proba, saliency, time_profile,
)
from core.inspect.feature_maps import hook_count


def _net1d(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(3, 8, 5, padding=2), nn.BatchNorm1d(8), nn.GELU(), nn.Dropout(0.5),
        nn.Conv1d(8, 8, 3, padding=2, dilation=2), nn.Tanh(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3),
    )


def _spike_net():
    """conv copies the input, ReLU, global average, class 1 = +mean, class 0 = -mean."""
    conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)
    lin = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]))
        lin.weight.copy_(torch.tensor([[-1.0], [1.0]]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), lin)


def test_ig_completeness_and_mode_restored():
    net = _net1d()
    with torch.no_grad():  # realistic batch-norm statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2)
    net.train()
    x = torch.randn(3, 40)
    res = integrated_gradients(net, x, target=2, steps=64)
    assert res.attributions.shape == (3, 40)
    net.eval()
    with torch.no_grad():
        fx = net(x[None])[0, 2].item()
        fb = net(torch.zeros(1, 3, 40))[0, 2].item()
    assert res.f_x == pytest.approx(fx, abs=1e-5) and res.f_baseline == pytest.approx(fb, abs=1e-5)
    assert res.attributions.sum() == pytest.approx(fx - fb, abs=2e-3 * max(1.0, abs(fx - fb)))
    assert abs(res.delta) < 2e-3 * max(1.0, abs(fx - fb))
    base = torch.randn(3, 40)
    r2 = integrated_gradients(net, x, target=0, baseline=base, steps=32, batch_size=7)
    assert abs(r2.delta) < 5e-3 * max(1.0, abs(r2.f_x - r2.f_baseline))
    net.train()
    integrated_gradients(net, x, steps=8)
    assert net.training  # restored


def test_ig_matches_captum():
    captum_attr = pytest.importorskip("captum.attr")
    net = _net1d(3).eval()
    x = torch.randn(3, 40)
    ours = integrated_gradients(net, x, target=1, steps=50).attributions
    theirs = captum_attr.IntegratedGradients(net).attribute(
        x[None], target=1, n_steps=50, method="gausslegendre")[0].detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_saliency_of_a_linear_model_is_its_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(3, 4)
    s = saliency(net, x, target=1, absolute=False)
    np.testing.assert_allclose(s, net[1].weight[1].detach().reshape(3, 4).numpy(), rtol=1e-6)
    assert (saliency(net, x, target=1) >= 0).all()
    with pytest.raises(UserError, match="target class"):
        saliency(net, x, target=5)


def test_grad_cam_finds_the_spike_in_time_and_space():
    net = _spike_net()
    x = torch.zeros(1, 64)
    x[0, 40] = 3.0
    res = grad_cam(net, x, target=1)
    assert res.layer == "0" and res.cam.shape == (64,)
    assert res.cam.argmax() == 40 and res.cam.max() == pytest.approx(1.0) and res.cam.min() >= 0
    assert res.cam[:30].max() == 0
    # target 0 (mean pushed down): the spike counts against it -> ReLU leaves nothing
    assert grad_cam(net, x, target=0).cam.max() == 0
    assert hook_count(net) == 0
    prof = time_profile(saliency(net, x, target=1), "sequence")
    assert prof.shape == (64,) and prof[40] > 0
    # 2D: a bright patch at rows 10-13, columns 20-23
    torch.manual_seed(0)
    net2 = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        net2[0].weight.zero_()
        net2[0].weight[0, :, 1, 1] = 1.0
        net2[4].weight.copy_(torch.tensor([[-1.0], [1.0]]))
    img = torch.zeros(3, 32, 32)
    img[:, 10:14, 20:24] = 1.0
    cam2 = grad_cam(net2, img, target=1).cam
    assert cam2.shape == (32, 32)
    r, c = np.unravel_index(cam2.argmax(), cam2.shape)
    assert 10 <= r < 14 and 20 <= c < 24
    cols = time_profile(cam2, "chart_image", n_bars=8)
    assert cols.shape == (8,) and cols.argmax() == 5  # columns 20-23 are candle 5 of 8


def test_grad_cam_draws_each_value_where_its_bars_are():
    """A strided 'same' convolution's feature j sees bars centred on stride x j; stretching its map evenly
    over the window would draw it half a stride late (16 bars for the ResNets' stride 32)."""
    net = nn.Sequential(nn.Conv1d(1, 1, 9, stride=8, padding=4, bias=False), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                        nn.Flatten(), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[4].weight.copy_(torch.tensor([[-1.0], [1.0]]))
    x = torch.zeros(1, 64)
    x[0, 40] = 3.0  # seen only by feature 5 (bars 36-44)
    res = grad_cam(net, x, target=1)
    assert res.layer_cam.argmax() == 5 and res.cam.argmax() == 40 and res.cam[40] == pytest.approx(1.0)
    # a real ResNet: each value of the CAM layer sits at the middle of the bars autograd says it sees
    from core.inspect.attributions import _map_centres
    from core.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18_1d", 2, 3, width=8).eval()
    x = torch.randn(2, 512)
    res = grad_cam(model, x)
    n = len(res.layer_cam)
    centres = _map_centres(model, x[None], res.layer, 0, n, 512)
    store = {}
    hook = dict(model.named_modules())[res.layer].register_forward_hook(lambda m, i, o: store.update(a=o))
    seen = torch.zeros(512)
    for seed in range(3):
        torch.manual_seed(seed)
        xi = torch.randn(1, 2, 512, requires_grad=True)
        model(xi)
        store["a"][0, :, n // 2].sum().backward()
        seen += xi.grad[0].abs().sum(0)
    hook.remove()
    bars = np.flatnonzero(seen.numpy() > 0)
    assert centres[n // 2] == pytest.approx((bars.min() + bars.max()) / 2)
    drawn = np.interp(np.arange(512), centres, res.layer_cam)
    np.testing.assert_allclose(res.cam, drawn / drawn.max(), atol=1e-6)


def test_grad_cam_refuses_a_last_step_head_and_sees_every_branch():
    from core.models import create_model

    torch.manual_seed(0)
    tcn = create_model("tcn", 3, 3).eval()  # its head reads the last step: averaging over time would lie
    from core.inspect.attributions import reads_last_step
    from core.models import get_spec, list_models

    # the page and grad_cam ask the same question; it is the zoo's causal flag
    assert all(reads_last_step(create_model(m.name, 3, 3)) == get_spec(m.name).causal
               for m in list_models() if m.input_kind == "sequence")
    with pytest.raises(UserError, match="reads only the last step"):
        grad_cam(tcn, torch.randn(3, 96))
    # the multi-scale CNN pools all its branches: the CAM is taken on their concatenation, not on one branch
    ms = create_model("multiscale_cnn", 3, 3).eval()
    x = torch.randn(3, 64)
    res = grad_cam(ms, x, target=0)
    assert res.layer == "branches (concatenated)" and res.layer_cam.shape == (64,)
    feats = ms.forward_features(x[None]).detach().requires_grad_(True)
    logit = ms.head(ms.avgpool(feats).flatten(1))[0, 0]
    (g,) = torch.autograd.grad(logit, feats)
    want = torch.relu((g.mean(2, keepdim=True) * feats).sum(1))[0].detach().numpy()
    np.testing.assert_allclose(res.layer_cam, want, rtol=1e-5, atol=1e-7)


def test_attribute_dispatch_probabilities_and_profiles():
    net = _net1d().eval()
    x = np.random.default_rng(0).normal(size=(3, 24)).astype(np.float32)
    p = predict_proba(net, x)
    assert p.shape == (3,) and p.sum() == pytest.approx(1.0, abs=1e-6)
    for m in ("saliency", "integrated_gradients"):
        assert attribute(net, x, m).shape == (3, 24)
    net[0].weight.grad = torch.ones_like(net[0].weight)  # a caller's accumulated gradients survive
    saliency(net, x)
    assert net[0].weight.grad is not None and float(net[0].weight.grad.sum()) == net[0].weight.numel()
    assert attribute(net, x, "grad_cam").shape == (24,)
    with pytest.raises(UserError, match="unknown attribution"):
        attribute(net, x, "shap")
    assert time_profile(np.ones((1, 10, 4)), "indicator_image").tolist() == [4.0] * 10

    class Multi(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _net1d()

        def forward(self, z):
            return {"direction": self.body(z), "magnitude": z.mean((1, 2))}

    assert integrated_gradients(Multi(), x, steps=16).attributions.shape == (3, 24)


def test_the_completeness_check_is_said_in_words():
    from core.inspect.attributions import completeness_note

    assert completeness_note(2e-4, 0.5).endswith("Small: the attributions account for the change.")
    bad = completeness_note(-0.29, 0.29)  # a ConvNeXt stem: the logit jumps at the all-zero baseline
    assert "do not add up" in bad and "only a rough guide" in bad
