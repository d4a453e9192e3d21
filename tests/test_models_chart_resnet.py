"""chart_resnet18 follows torchvision's resnet18 exactly and fine-tunes from a resnet18 file in the workspace."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.errors import UserError
from core.models import create_model, freeze_stages, load_torchvision_weights, torchvision_resnet18_shapes


class Evil:
    """An arbitrary class: unpickling it would run code, so torch.load(weights_only=True) refuses it."""


def _expected_torchvision_resnet18() -> dict[str, tuple]:
    """torchvision.models.resnet18's state_dict keys and shapes, written out by hand from its definition."""
    exp: dict[str, tuple] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(p, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            exp[f"{p}.{s}"] = (c,)
        exp[f"{p}.num_batches_tracked"] = ()

    bn("bn1", 64)
    prev = 64
    for layer, c in zip(range(1, 5), (64, 128, 256, 512)):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            exp[f"{p}.conv1.weight"] = (c, prev if block == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            exp[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
        if layer > 1:
            exp[f"layer{layer}.0.downsample.0.weight"] = (c, prev, 1, 1)
            bn(f"layer{layer}.0.downsample.1", c)
        prev = c
    exp["fc.weight"] = (1000, 512)
    exp["fc.bias"] = (1000,)
    return exp


def test_exact_torchvision_layout_and_parameter_count():
    with torch.device("meta"):
        m = create_model("chart_resnet18", 3, 1000)
    assert sum(p.numel() for p in m.parameters()) == 11_689_512
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert got == _expected_torchvision_resnet18()
    assert torchvision_resnet18_shapes() == _expected_torchvision_resnet18()
    top = [n for n, _ in m.named_children()]
    assert top == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert [n for n, _ in m.layer2[0].named_children()] == ["conv1", "bn1", "relu", "conv2", "bn2", "downsample"]


def _fake_torchvision_file(workspace, name="weights/resnet18.pth", seed=5):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in _expected_torchvision_resnet18().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(100)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g) * 0.05
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state, path


def test_load_torchvision_file_replace_head_freeze_and_fine_tune(workspace):
    state, _ = _fake_torchvision_file(workspace)
    torch.manual_seed(0)
    model = create_model("chart_resnet18", 3, 3)
    info = load_torchvision_weights(model, "weights/resnet18.pth")
    assert info["loaded"] == len(state) - 2 and not info["conv1_adapted"]
    sd = model.state_dict()
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.running_var", "layer3.0.downsample.0.weight"):
        assert torch.equal(sd[k], state[k]), k
    assert model.fc.weight.shape == (3, 512)  # our head, not ImageNet's

    frozen = freeze_stages(model, 3)
    assert frozen == ["conv1", "layer1", "layer2"]
    assert not any(p.requires_grad for p in model.layer2.parameters()) and not model.conv1.weight.requires_grad
    assert all(p.requires_grad for p in model.layer3.parameters()) and model.fc.weight.requires_grad

    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert not model.layer1.training and not model.bn1.training and model.layer3.training
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    F.cross_entropy(model(x), y).backward()
    opt.step()
    after = model.state_dict()
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer2.1.conv2.weight", "layer1.0.bn1.running_mean"):
        assert torch.equal(before[k], after[k]), f"{k} is frozen but changed"
    for k in ("layer3.0.conv1.weight", "layer4.1.conv2.weight", "fc.weight", "layer4.0.bn1.running_mean"):
        assert not torch.equal(before[k], after[k]), f"{k} should train"
    assert freeze_stages(model, 0) == [] and all(p.requires_grad for p in model.parameters())


def test_pretrained_via_config_and_other_channel_counts(workspace):
    state, _ = _fake_torchvision_file(workspace)
    m = create_model("chart_resnet18", 3, 2, pretrained="weights/resnet18.pth", freeze=5)
    assert torch.equal(m.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    m4 = create_model("chart_resnet18", 4, 2)
    info = load_torchvision_weights(m4, "weights/resnet18.pth")
    assert info["conv1_adapted"] and m4.conv1.weight.shape == (64, 4, 7, 7)
    torch.testing.assert_close(m4.conv1.weight.sum(1), state["conv1.weight"].sum(1))


def test_bad_weight_files_are_user_errors(workspace, tmp_path):
    with pytest.raises(UserError, match="no weights file"):
        load_torchvision_weights(create_model("chart_resnet18", 3, 2), "missing.pth")
    outside = tmp_path / "outside.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, outside)
    with pytest.raises(UserError, match="inside the workspace"):
        load_torchvision_weights(create_model("chart_resnet18", 3, 2), outside)
    with pytest.raises(UserError, match="inside the workspace"):
        load_torchvision_weights(create_model("chart_resnet18", 3, 2), "../outside.pth")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, workspace / "partial.pth")
    with pytest.raises(UserError, match="not a torchvision resnet18"):
        load_torchvision_weights(create_model("chart_resnet18", 3, 2), "partial.pth")

    torch.save({"x": Evil()}, workspace / "evil.pth")  # weights_only refuses arbitrary objects
    with pytest.raises(UserError, match="could not be read"):
        load_torchvision_weights(create_model("chart_resnet18", 3, 2), "evil.pth")
    (workspace / "text.pth").write_text("not a tensor file")
    with pytest.raises(UserError, match="could not be read"):
        load_torchvision_weights(create_model("chart_resnet18", 3, 2), "text.pth")


def test_imagenet_input_norm_standardises_the_chart_as_torchvision_weights_expect():
    """With input_norm 'imagenet' the model reads (x - mean) / std with ImageNet's RGB statistics; the
    weights (state_dict) are the same as without, so a torchvision file loads into either."""
    torch.manual_seed(0)
    plain = create_model("chart_resnet18", 3, 3).eval()
    normed = create_model("chart_resnet18", 3, 3, input_norm="imagenet").eval()
    assert set(normed.state_dict()) == set(plain.state_dict())
    normed.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain((x - mean) / std))
        assert not torch.allclose(normed(x), plain(x))
    with pytest.raises(UserError, match="input_norm must be none or imagenet"):
        create_model("chart_resnet18", 3, 3, input_norm="photo")
