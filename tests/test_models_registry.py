"""The model registry: every contract name builds, runs forward + backward, is seeded, rejects bad config."""
from __future__ import annotations

import json

import pytest
import torch

from core.errors import UserError
from core.models import create_model, get_spec, list_models

CONTRACT = {
    "sequence": ["cnn1d", "resnet18_1d", "resnet34_1d", "resnet50_1d", "se_resnet18_1d", "msresnet18_1d",
                 "convnext1d", "convnext1d_tiny", "convnext1d_small", "convnext1d_base", "wavenet",
                 "wavenet_multitask", "tcn", "multiscale_cnn"],
    "flat": ["mlp", "logistic"],
    "indicator_image": ["cnn_ta"],
    "orderbook_image": ["orderbook_cnn"],
    "chart_image": ["chart_resnet18"],
}
ALL = [n for names in CONTRACT.values() for n in names]
BIG = {"convnext1d_small", "convnext1d_base"}  # built at full size on the meta device only (see below)
# small sizes keep the forward/backward tests fast on 2 shared cores; the default sizes are built elsewhere
SMALL = {"resnet18_1d": {"width": 8}, "resnet34_1d": {"width": 8}, "resnet50_1d": {"width": 4},
         "se_resnet18_1d": {"width": 8, "se_reduction": 4}, "msresnet18_1d": {"width": 8},
         "convnext1d_tiny": {"dims": [16, 24, 32, 48]}, "convnext1d_small": {"dims": [8, 8, 16, 16], "depths": [1, 1, 2, 1]},
         "convnext1d_base": {"dims": [8, 8, 16, 16], "depths": [1, 1, 2, 1]}, "wavenet": {"layers": 4},
         "wavenet_multitask": {"layers": 4}}


def _input(kind: str, batch: int = 3, t: int = 40, c: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    shape = {"sequence": (batch, c, t), "flat": (batch, c, t), "indicator_image": (batch, 1, t, 7),
             "orderbook_image": (batch, 1, t, 24), "chart_image": (batch, 3, 48, 48)}[kind]
    return torch.randn(*shape, generator=g)


def _in_channels(kind: str) -> int:
    return {"sequence": 5, "flat": 5, "indicator_image": 1, "orderbook_image": 1, "chart_image": 3}[kind]


def _logits(out):
    return out["direction"] if isinstance(out, dict) else out


def test_every_contract_name_is_registered_with_its_input_kind():
    specs = {s.name: s for s in list_models()}
    assert set(ALL) <= set(specs)
    for kind, names in CONTRACT.items():
        for n in names:
            assert specs[n].input_kind == kind, n
    assert {n for n, s in specs.items() if s.causal} >= {"wavenet", "wavenet_multitask", "tcn"}
    for s in specs.values():  # defaults are plain widget-friendly values
        for k, v in s.defaults.items():
            assert isinstance(v, (int, float, bool, str, list)), (s.name, k, v)
        assert s.description and s.family


@pytest.mark.parametrize("name", [n for n in ALL if n != "chart_resnet18"])
def test_forward_backward_shape(name):
    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name, _in_channels(spec.input_kind), 3, **SMALL.get(name, {}))
    model.train()
    x = _input(spec.input_kind)
    out = model(x)
    logits = _logits(out)
    assert logits.shape == (3, 3)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    if isinstance(out, dict):
        assert out["magnitude"].shape == (3,) and out["volatility"].shape == (3,)
        loss = loss + out["magnitude"].pow(2).mean() + out["volatility"].pow(2).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", ALL)
def test_default_size_builds_with_its_layout(name):
    # built on the meta device: shapes and parameter counts without memory or time
    spec = get_spec(name)
    with torch.device("meta"):
        full = create_model(name, _in_channels(spec.input_kind), 3)
    assert sum(p.numel() for p in full.parameters()) > 0
    if name.startswith("convnext"):
        assert [len(s) for s in full.stages] == spec.defaults["depths"]
        assert [s[0].dwconv.in_channels for s in full.stages] == spec.defaults["dims"]


def test_convnext_sizes_follow_the_document():
    tiny, small, base = (get_spec(n).defaults for n in ("convnext1d_tiny", "convnext1d_small", "convnext1d_base"))
    assert tiny["dims"] == [96, 192, 384, 768] and tiny["depths"] == [3, 3, 9, 3]
    assert small["dims"] == [96, 192, 384, 768] and small["depths"] == [3, 3, 27, 3]
    assert base["dims"] == [128, 256, 512, 1024] and base["depths"] == [3, 3, 27, 3]
    assert tiny["layer_scale_init"] == 1e-6
    with torch.device("meta"):
        n = sum(p.numel() for p in create_model("convnext1d_base", 15, 3).parameters())
    assert 80e6 < n < 90e6  # the document's ~89M (2D) less the 7x7 -> 7 depthwise kernels


@pytest.mark.parametrize("name", CONTRACT["sequence"] + CONTRACT["flat"])
def test_any_window_length(name):
    model = create_model(name, 4, 2, **SMALL.get(name, {})).eval()
    with torch.no_grad():
        for t in (1, 6, 37, 300):
            assert _logits(model(torch.randn(2, 4, t))).shape == (2, 2), t


def test_seeded_models_are_identical_and_other_seeds_differ():
    x = _input("sequence")
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        m = create_model("resnet18_1d", 5, 3).eval()
        with torch.no_grad():
            outs.append(m(x))
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_config_is_applied_and_recorded():
    m = create_model("resnet18_1d", 5, 3, width=64)
    assert m.conv1.out_channels == 64 and m.fc.in_features == 512  # the document's full size
    assert [m.layer1[0].conv1.out_channels, m.layer4[0].conv1.out_channels] == [64, 512]
    assert m.config["width"] == 64 and m.model_name == "resnet18_1d"
    r50 = create_model("resnet50_1d", 5, 3, width=64)
    assert r50.fc.in_features == 2048 and r50.layer1[0].conv3.out_channels == 256
    assert len(create_model("resnet34_1d", 5, 3).layer3) == 6
    assert create_model("wavenet", 5, 3, layers=4, stacks=2).dilations == [1, 2, 4, 8, 1, 2, 4, 8]
    # widgets hand floats for ints and strings for lists; those are understood
    assert create_model("tcn", 5, 3, channels=16.0).config["channels"] == 16
    assert create_model("multiscale_cnn", 5, 3, kernels="3, 5").kernels == [3, 5]


@pytest.mark.parametrize("name,cfg,words", [
    ("resnet18_1d", {"widht": 8}, "no setting"),
    ("resnet18_1d", {"width": 0}, "at least 1"),
    ("resnet18_1d", {"width": "wide"}, "whole number"),
    ("tcn", {"dropout": 1.5}, "dropout"),
    ("convnext1d", {"dims": [8, 16], "depths": [1, 1, 1]}, "same number"),
    ("multiscale_cnn", {"kernels": [4]}, "odd"),
    ("resnet18_1d", {"kernel_size": 4}, "odd"),
    ("convnext1d", {"kernel_size": 6}, "odd"),
])
def test_bad_config_is_a_user_error(name, cfg, words):
    with pytest.raises(UserError, match=words):
        create_model(name, 5, 3, **cfg)


def test_unknown_model_is_both_a_key_error_and_a_user_error():
    with pytest.raises(KeyError):
        get_spec("resnet1000")
    with pytest.raises(UserError, match="unknown model 'resnet1000'"):
        create_model("resnet1000", 5, 3)


def test_specs_are_copies_and_hashable():
    spec = get_spec("convnext1d")
    spec.defaults["dims"].append(999)
    assert get_spec("convnext1d").defaults["dims"] == [32, 64, 128, 256]
    assert len({get_spec("convnext1d"), get_spec("convnext1d")}) == 1


def test_models_list_cli(capsys):
    from core.cli import main

    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {m["name"]: m for m in doc["models"]}
    assert set(ALL) <= set(by_name)
    assert by_name["wavenet"]["causal"] is True and by_name["cnn_ta"]["input_kind"] == "indicator_image"
    assert by_name["resnet18_1d"]["defaults"]["width"] == 32
    assert main(["models", "list", "--kind", "flat", "--json"]) == 0
    assert {m["name"] for m in json.loads(capsys.readouterr().out)["models"]} == {"mlp", "logistic"}
    assert main(["models", "list", "--kind", "movie"]) == 2
    assert "unknown input kind" in capsys.readouterr().err


@pytest.mark.parametrize("name", [n for n in ALL if n not in BIG and n != "chart_resnet18"])
def test_saved_weights_reload_into_a_fresh_model(name, workspace):
    # how a run is reloaded: create_model(name, config) + torch.load(weights_only=True) + load_state_dict
    import copy

    spec = get_spec(name)
    cfg = SMALL.get(name, {})
    torch.manual_seed(1)
    m = create_model(name, _in_channels(spec.input_kind), 3, **cfg)
    x = _input(spec.input_kind)
    m.train()
    m(x)  # moves BatchNorm statistics away from their initial values
    path = workspace / "model.pt"
    torch.save(m.state_dict(), path)
    torch.manual_seed(2)
    fresh = create_model(name, _in_channels(spec.input_kind), 3, **cfg)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    twin = copy.deepcopy(m)
    with torch.no_grad():
        a, b, c = (_logits(k.eval()(x)) for k in (m, fresh, twin))
    assert torch.equal(a, b) and torch.equal(a, c)
