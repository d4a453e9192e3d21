"""Feature maps through forward hooks: every layer captured, hooks always removed, channels ranked."""
import numpy as np
import pytest
import torch
from torch import nn

from core.errors import UserError
from core.inspect.feature_maps import capture_feature_maps, hook_count, most_active_channels


def _net1d():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(3, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Sequential(nn.Conv1d(8, 4, 3, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3),
    )


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        self.conv(x)
        raise RuntimeError("boom")


def test_every_layer_captured_with_its_shape_and_values():
    net = _net1d()
    net.train()
    x = torch.randn(3, 32)
    maps = capture_feature_maps(net, x)
    assert list(maps) == ["0", "1", "2", "3.0", "3.1", "3", "4", "5", "6"]  # execution order
    assert maps["0"].shape == (8, 32) and maps["3.0"].shape == (4, 32) and maps["6"].shape == (3,)
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(maps["0"], net[0](x[None])[0].numpy(), rtol=1e-5)
        np.testing.assert_allclose(maps["6"], net(x[None])[0].numpy(), rtol=1e-5, atol=1e-6)
    assert (maps["2"] >= 0).all()
    leaves = capture_feature_maps(net, x, leaves_only=True)
    assert "3" not in leaves and "3.0" in leaves
    assert list(capture_feature_maps(net, x, layers=["3.0"])) == ["3.0"]
    assert hook_count(net) == 0


def test_a_module_run_twice_gives_a_map_per_call():
    """A ResNet block reuses its ReLU (after bn1, then after the residual add): both maps are shown."""
    from core.models import create_model

    torch.manual_seed(0)
    net = create_model("resnet18_1d", 2, 3, width=8).eval()
    x = torch.randn(2, 64)
    maps = capture_feature_maps(net, x)
    first, second = maps["layer1.0.relu (call 1)"], maps["layer1.0.relu (call 2)"]
    assert "layer1.0.relu" not in maps and "layer1.0.conv1" in maps  # a single call keeps its name
    names = list(maps)
    assert names.index("layer1.0.relu (call 1)") < names.index("layer1.0.conv2") < names.index("layer1.0.relu (call 2)")
    np.testing.assert_allclose(first, np.maximum(maps["layer1.0.bn1"], 0), atol=1e-6)
    np.testing.assert_allclose(second, maps["layer1.0"], atol=1e-6)  # the block's output


def test_mode_restored_and_hooks_removed_even_on_error():
    net = _net1d()
    net.train()
    capture_feature_maps(net, torch.randn(3, 16))
    assert net.training and hook_count(net) == 0
    bad = Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        capture_feature_maps(bad, torch.randn(1, 10))
    assert hook_count(bad) == 0
    with pytest.raises(UserError, match="no layer named"):
        capture_feature_maps(net, torch.randn(3, 16), layers=["nope"])
    assert hook_count(net) == 0


def test_maps_are_copies_not_rewritten_by_inplace_layers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(40, 2))
    maps = capture_feature_maps(net, torch.randn(2, 10))
    assert maps["0"].min() < 0 and maps["1"].min() >= 0
    np.testing.assert_allclose(np.maximum(maps["0"], 0), maps["1"])


def test_2d_maps_and_most_active_channels():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(6, 2))
    maps = capture_feature_maps(net, np.random.default_rng(0).random((3, 20, 20), dtype=np.float32))
    assert maps["0"].shape == (6, 20, 20)
    fmap = np.zeros((5, 10))
    fmap[3] = -4.0
    fmap[1] = 2.0
    fmap[4, 0] = 100.0
    top = most_active_channels(fmap, k=3)
    assert [c for c, _ in top] == [4, 3, 1] and top[0][1] == pytest.approx(10.0)
    assert [c for c, _ in most_active_channels(fmap, k=2, reduce="mean")] == [4, 1]
    with pytest.raises(UserError):
        most_active_channels(fmap, reduce="median")
