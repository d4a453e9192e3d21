"""Transfer learning for the chart ResNet: pre-train on a source, fine-tune with early stages frozen, compare
with the same model from scratch; all three are real runs in the registry. Tiny: 32x32 charts, 32 training
samples, one epoch (the full-size resnet18 is the contract, so the samples are what is kept small)."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from core.errors import UserError
from core.train import transfer as tr
from core.train.config import DataConfig, TrainConfig
from core.train.runs import list_runs, load_run
from features_helpers import csv_candles

ROWS = 520


def _data() -> DataConfig:
    return DataConfig(preset="chapter6", window=32, horizon=4, threshold=0.002, encoding={"size": 32})


def _train(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=32, lr=1e-3, patience=0, baselines=["majority"], n_boot=100,
                max_train_samples=32, seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def datasets(shared_data):
    from core.data.store import save_candles

    btc = save_candles(csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", ROWS), "file", "BTC/USDT", "1h")
    eth = save_candles(csv_candles(shared_data / "binance_spot_ETHUSDT_1h.csv", ROWS), "file", "ETH/USDT", "1h")
    return btc.id, eth.id


def _state(run_id: str) -> dict[str, torch.Tensor]:
    return torch.load(load_run(run_id).path / "model.pt", map_location="cpu", weights_only=True)


def _stage_keys(state: dict, prefixes: tuple[str, ...]) -> list[str]:
    return [k for k in state if k.startswith(prefixes)]


@pytest.mark.slow
def test_pretrain_finetune_and_scratch_are_three_real_runs(datasets, workspace):
    target, source = datasets
    events = []
    spec = tr.TransferSpec(target_dataset_id=target, source=f"dataset:{source}", freeze_stages=2,
                           data=_data(), train=_train())
    res = tr.transfer_vs_scratch(spec, progress=events.append)

    ids = {r.run_id: r for r in list_runs()}
    assert {res.source_run_id, res.finetuned_run_id, res.scratch_run_id} <= set(ids)
    assert ids[res.source_run_id].dataset_id == source
    assert ids[res.finetuned_run_id].dataset_id == target and ids[res.scratch_run_id].dataset_id == target
    ft_cfg = load_run(res.finetuned_run_id).config
    assert ft_cfg["transfer"]["source_run_id"] == res.source_run_id and ft_cfg["transfer"]["freeze_stages"] == 2

    src, ft, sc = _state(res.source_run_id), _state(res.finetuned_run_id), _state(res.scratch_run_id)
    frozen = _stage_keys(src, ("conv1.", "bn1.", "layer1."))  # stem + layer1, running stats included
    assert frozen and all(torch.equal(src[k], ft[k]) for k in frozen)
    # the unfrozen stages trained on the target, starting from the source's weights
    assert not torch.equal(src["layer4.1.conv2.weight"], ft["layer4.1.conv2.weight"])
    assert not torch.equal(src["layer4.1.bn2.running_mean"], ft["layer4.1.bn2.running_mean"])
    # the scratch run did not start from the source
    assert not torch.equal(src["conv1.weight"], sc["conv1.weight"])

    # the same test split for both target runs, and the comparison reads their saved metrics
    p_ft, p_sc = load_run(res.finetuned_run_id).predictions, load_run(res.scratch_run_id).predictions
    pd.testing.assert_series_equal(p_ft["timestamp"], p_sc["timestamp"])
    rec = tr.list_comparisons()[0]
    assert rec["finetuned_run_id"] == res.finetuned_run_id and rec["scratch_run_id"] == res.scratch_run_id
    table = tr.comparison_table(rec)
    assert table.loc["accuracy", "fine-tuned"] == pytest.approx(res.metrics["fine-tuned"]["accuracy"])
    assert table.loc["accuracy", "scratch"] == pytest.approx(res.metrics["scratch"]["accuracy"])
    assert table.loc["accuracy", "fine-tuned - scratch"] == pytest.approx(
        res.metrics["fine-tuned"]["accuracy"] - res.metrics["scratch"]["accuracy"])
    # the difference with the same paired block-bootstrap interval as the Train page's, and a verdict
    iv = tr.comparison_interval(rec)
    assert iv["diff"] == pytest.approx(table.loc["accuracy", "fine-tuned - scratch"])
    assert iv["ci_low"] <= iv["diff"] <= iv["ci_high"] and iv["n"] == len(p_ft) and iv["block"] >= 4
    assert iv["verdict"].startswith("Fine-tuning ") and "% CI" in iv["verdict"]
    assert rec["source_overlap"] is None  # both markets cover the same span: the source trained before the test
    phases = [e.message for e in events if e.stage == "phase"]
    assert len(phases) == 3 and phases[0].startswith("pre-training")

    # the fine-tuned run reloads and predicts what it saved
    run = load_run(res.finetuned_run_id)
    again = run.predict()
    cols = [f"prob_{c}" for c in run.class_names]
    np.testing.assert_allclose(again[cols].to_numpy(), run.predictions[cols].to_numpy(), atol=1e-5)


def test_start_from_torchvision_weights_in_the_workspace(datasets, workspace, monkeypatch):
    from core.models import create_model

    target, _ = datasets
    torch.manual_seed(11)
    tv = create_model("chart_resnet18", 3, 1000).state_dict()  # torchvision's key names and shapes
    (workspace / "pretrained").mkdir()
    torch.save(tv, workspace / "pretrained" / "resnet18-test.pth")
    assert tr.list_weight_files() == ["resnet18-test.pth"]

    res = tr.train_with_init(target, "chart_resnet18", {}, _data(), _train(),
                             init=lambda m: tr.init_from_weights_file(m, "resnet18-test.pth"),
                             freeze_stages=5, transfer_info={"source": "weights:resnet18-test.pth"})
    st = _state(res.run_id)
    body = [k for k in tv if not k.startswith("fc.")]
    assert all(torch.equal(tv[k], st[k]) for k in body)  # everything but the head frozen at the file's values
    assert st["fc.weight"].shape == (3, 512)  # a new head for our 3 classes
    cfg = load_run(res.run_id).config
    assert cfg["transfer"]["weights_file"] == "resnet18-test.pth" and cfg["transfer"]["trainable_params"] == 512 * 3 + 3
    # a file made elsewhere may have been fitted on the target's test period: said; torchvision's own is not
    assert not tr.is_torchvision_imagenet("resnet18-test.pth")
    note = tr.weights_file_note("resnet18-test.pth", {"test_start": "2025-09-01 00:00:00+00:00"}, False)
    assert note.startswith("Cannot tell what resnet18-test.pth was trained on") and "(from 2025-09-01)" in note
    digest = hashlib.sha256((workspace / "pretrained" / "resnet18-test.pth").read_bytes()).hexdigest()
    monkeypatch.setattr(tr, "TORCHVISION_RESNET18_SHA256", (digest[:8],))
    assert tr.is_torchvision_imagenet("resnet18-test.pth")
    assert tr.weights_file_note("resnet18-test.pth", {"test_start": "2025-09-01 00:00:00+00:00"}, True) is None


def test_clear_errors_before_any_training(datasets, workspace):
    target, source = datasets
    with pytest.raises(UserError, match="source dataset is the target"):
        tr.transfer_vs_scratch(tr.TransferSpec(target, f"dataset:{target}", data=_data(), train=_train()))
    with pytest.raises(UserError, match="no weights file"):
        tr.transfer_vs_scratch(tr.TransferSpec(target, "weights:missing.pth", data=_data(), train=_train()))
    with pytest.raises(UserError, match="source must be"):
        tr.transfer_vs_scratch(tr.TransferSpec(target, "somewhere", data=_data(), train=_train()))
    with pytest.raises(UserError, match="chart models"):
        tr.transfer_vs_scratch(tr.TransferSpec(target, f"dataset:{source}", model_name="cnn1d", data=_data(),
                                               train=_train()))
    (workspace / "pretrained").mkdir(exist_ok=True)
    (workspace / "pretrained" / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError):
        tr.train_with_init(target, "chart_resnet18", {}, _data(), _train(),
                           init=lambda m: tr.init_from_weights_file(m, "junk.pth"))
    assert list_runs() == []  # nothing half-made was left in the registry


def test_a_source_trained_into_the_targets_test_period_is_flagged():
    """Markets move together: a source run whose training may reach into the target's test period would let
    the fine-tuned model see that period in another market."""
    target = {"dataset_id": "file-BTCUSDT-1h", "test_start": "2025-09-01 00:00:00+00:00"}
    before = {"run_id": "src", "dataset_id": "file-ETHUSDT-1h", "test_start": "2025-08-01 00:00:00+00:00"}
    after = {**before, "test_start": "2026-01-01 00:00:00+00:00"}
    assert tr.source_overlap(before, target) is None
    note = tr.source_overlap(after, target)
    assert "may have trained on bars up to 2026-01-01, inside the target's test period (from 2025-09-01)" in note
    # a source with no test period on record: said, not taken as "no overlap"
    assert "Cannot tell whether run old trained on the target's test period" in tr.source_overlap({"run_id": "old"},
                                                                                                  target)
    # a source fine-tuned from another run carries that run's training: the chain is followed
    runs = {"grand": {"dataset_id": "file-ETHUSDT-1h", "test_start": "2026-01-01 00:00:00+00:00"}}
    def load(rid):
        if rid not in runs:
            raise UserError(f"no run {rid}")
        return SimpleNamespace(config=runs[rid])

    child = {**before, "transfer": {"source_run_id": "grand"}}
    note = tr.source_overlap(child, target, load)
    assert "through its own pre-training, run grand" in note and "up to 2026-01-01" in note
    runs["grand"]["test_start"] = "2025-07-01 00:00:00+00:00"
    assert tr.source_overlap(child, target, load) is None
    gone = {**before, "transfer": {"source_run_id": "deleted"}}
    assert "run deleted, deleted since" in tr.source_overlap(gone, target, load)
    # a source that itself started from a weights file of unknown training: said, as the file itself would be
    runs["filed"] = {"dataset_id": "file-ETHUSDT-1h", "test_start": "2025-07-01 00:00:00+00:00",
                     "transfer": {"source": "weights:mine.pth", "source_run_id": None, "weights_imagenet": False}}
    via_file = {**before, "transfer": {"source_run_id": "filed"}}
    assert "it started from the weights file mine.pth, whose training the app does not know" in \
        tr.source_overlap(via_file, target, load)
    runs["filed"]["transfer"]["weights_imagenet"] = True  # torchvision's ImageNet weights: photographs
    assert tr.source_overlap(via_file, target, load) is None


def test_init_from_state_dict_refuses_a_different_architecture():
    from core.models import create_model

    model = create_model("chart_resnet18", 3, 3)
    other = create_model("cnn1d", 4, 3).state_dict()
    with pytest.raises(UserError, match="no weights"):
        tr.init_from_state_dict(model, other, "a cnn1d run")
    full = create_model("chart_resnet18", 3, 2).state_dict()  # other classes: the head is skipped anyway
    info = tr.init_from_state_dict(model, full, "a binary run")
    assert info["loaded_tensors"] == len([k for k in full if not k.startswith("fc.")])
    assert torch.equal(model.state_dict()["layer3.0.conv1.weight"], full["layer3.0.conv1.weight"])


def test_cli_lists_comparisons_and_refuses_a_missing_source(capsys, workspace):
    import json

    from core.cli import main

    assert main(["transfer", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"comparisons": []}
    assert main(["transfer", "--target", "nope", "--json"]) == 2
    assert "--source" in capsys.readouterr().err
    assert main(["transfer", "--target", "nope", "--source", "weights:missing.pth", "--quiet"]) == 2
    assert "no weights file" in capsys.readouterr().err


def test_transfer_spec_from_the_users_settings():
    """One builder for the page and the CLI: zeros mean all, patience a third of the epochs (at least 2), and
    a malformed source is refused before anything runs."""
    from core.errors import UserError
    from core.train.transfer import transfer_spec

    spec = transfer_spec("ds", "dataset:other", 3, window=16, rows=0, size=48, epochs=9, max_train=0)
    assert spec.freeze_stages == 3 and spec.data.window == 16 and spec.data.encoding == {"size": 48}
    assert spec.data.max_rows is None and spec.train.max_train_samples is None and spec.train.patience == 3
    assert transfer_spec("ds", "run:r1", epochs=1, rows=500).train.patience == 2
    assert transfer_spec("ds", "run:r1", rows=500).data.max_rows == 500
    with pytest.raises(UserError):
        transfer_spec("ds", "somewhere")


def test_the_new_head_of_a_weights_file_run_does_not_depend_on_other_draws(datasets, workspace):
    """The head load_torchvision_weights makes is drawn inside the run's seeded, locked model creation: a draw
    from torch's global generator between creating the model and loading the file (another training starting
    in another thread) leaves the run's numbers unchanged."""
    from core.models import create_model

    target, _ = datasets
    torch.manual_seed(11)
    (workspace / "pretrained").mkdir()
    torch.save(create_model("chart_resnet18", 3, 1000).state_dict(), workspace / "pretrained" / "rn.pth")

    def run(progress=None):
        res = tr.train_with_init(target, "chart_resnet18", {}, _data(), _train(epochs=1),
                                 init=lambda m: tr.init_from_weights_file(m, "rn.pth"), freeze_stages=5,
                                 progress=progress)
        return _state(res.run_id), res.predictions

    quiet, p1 = run()
    busy, p2 = run(lambda ev: torch.rand(1000) if ev.stage == "init" else None)
    torch.testing.assert_close(busy["fc.weight"], quiet["fc.weight"], rtol=0, atol=0)
    pd.testing.assert_frame_equal(p1, p2)
    # and no other thread can create (and draw for) a model while the head is made: the lock is held
    import threading

    from core.models.blocks import MODEL_INIT

    others: list[bool] = []

    def other_thread_could_create() -> None:
        if got := MODEL_INIT.acquire(timeout=0.05):
            MODEL_INIT.release()
        others.append(got)

    def init(m):
        t = threading.Thread(target=other_thread_could_create)
        t.start()
        t.join()
        return tr.init_from_weights_file(m, "rn.pth")

    tr.train_with_init(target, "chart_resnet18", {}, _data(), _train(epochs=1), init=init, freeze_stages=5)
    assert others == [False]


def test_a_comparison_from_a_weights_file_reads_charts_at_imagenets_scale(datasets, workspace, monkeypatch):
    """torchvision's weights learnt from ImageNet-standardised pictures: the fine-tuned run and its scratch twin
    both read the charts that way (they differ only in their starting weights); a comparison from a run keeps
    the source run's scale."""
    from core.train import trainer

    target, _ = datasets
    (workspace / "pretrained").mkdir()
    torch.save({}, workspace / "pretrained" / "any.pth")
    seen = []

    def fake(*args, **kw):
        seen.append(args[2])
        return SimpleNamespace(run_id=f"r{len(seen)}-000000", metrics={}, config={})

    monkeypatch.setattr(tr, "train_with_init", fake)
    monkeypatch.setattr(trainer, "train_run", fake)
    tr.transfer_vs_scratch(tr.TransferSpec(target, "weights:any.pth", data=_data(), train=_train()))
    assert seen == [{"input_norm": "imagenet"}] * 2
    assert tr.list_comparisons()[0]["model_config"] == {"input_norm": "imagenet"}
