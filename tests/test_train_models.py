"""Every registered model of the zoo trains through `train_run` (one tiny epoch) and its saved run reloads to
the same predictions: 1D sequence models on windows, the flat baselines, CNN-TA on indicator images, the
chart ResNet on candlestick images and the order-book CNN on depth heatmaps of a stored book."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.models import list_models
from core.train import runs as registry
from core.train.config import DataConfig, TrainConfig
from core.train.trainer import train_run


ROWS = 600
DATA = dict(preset="chapter6", window=16, horizon=4, threshold=0.002, max_rows=ROWS)
TRAIN = dict(epochs=1, batch_size=32, lr=1e-3, patience=0, n_boot=100, max_train_samples=64, eval_batch_size=256,
             noise_std=0.02, scale_min=0.9, scale_max=1.1, time_warp=0.1, window_slice=0.1)

# Tiny widths so the whole zoo trains in seconds; depths and layouts stay those of the model.
TINY = {"width": 8, "channels": 8, "skip_channels": 8, "hidden": 16, "layers": 3, "levels": 3, "filters": 8,
        "lookback": 16, "se_reduction": 4, "stages": 2}


def _tiny_config(spec) -> dict:
    cfg = {k: v for k, v in TINY.items() if k in spec.defaults}
    if spec.name == "cnn1d":
        cfg["layers"] = 2
    if "dims" in spec.defaults:
        n = len(spec.defaults["dims"])
        cfg["dims"] = [8 * 2 ** min(i, 1) for i in range(n)]  # 8, 16, 16, 16: the depths are kept
    return cfg


ALL = [s.name for s in list_models()]


@pytest.fixture(scope="module")
def candles():
    from core.data.synthetic import generate_market

    return next(iter(generate_market("BTC/USDT", "1h", periods=ROWS, seed=11).values()))


def test_the_zoo_is_complete():
    expected = {"cnn1d", "resnet18_1d", "resnet34_1d", "resnet50_1d", "se_resnet18_1d", "msresnet18_1d",
                "convnext1d", "convnext1d_tiny", "convnext1d_small", "convnext1d_base", "wavenet",
                "wavenet_multitask", "tcn", "multiscale_cnn", "mlp", "logistic", "cnn_ta", "orderbook_cnn",
                "chart_resnet18"}
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_model_trains_one_epoch_and_reloads(name, candles):
    from core.data.orderbook import make_synthetic_order_book
    from core.data.store import save_candles
    from core.models import get_spec

    spec = get_spec(name)
    ds = save_candles(candles, "synthetic", "BTC/USDT", "1h").id
    data = dict(DATA)
    if spec.input_kind == "orderbook_image":
        make_synthetic_order_book(ds, levels=10)  # stored as <dataset>-book: the model's default book
    if spec.input_kind == "chart_image":
        data["encoding"] = {"size": 32}
    if name == "wavenet_multitask":
        data["label"] = "multitask"
    events = []
    res = train_run(ds, name, _tiny_config(spec), DataConfig(**data), TrainConfig(**TRAIN),
                    progress=events.append, candles=candles)
    assert res.status == "completed" and len(res.history) == 1
    assert np.isfinite(res.history["train_loss"].iloc[0]) and np.isfinite(res.history["val_loss"].iloc[0])
    assert res.config["input_kind"] == spec.input_kind
    assert res.config["n_samples"]["train"] == 64
    assert any(e.stage == "batch" for e in events) and any(e.stage == "epoch" for e in events)
    probs = res.predictions[[f"prob_{c}" for c in res.config["class_names"]]].to_numpy()
    assert len(probs) == res.metrics["n"] > 20 and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    if spec.input_kind == "orderbook_image":
        assert res.config["data_config"]["encoding"] == {"book_id": f"{ds}-book", "max_staleness_bars": 2.0}
    if name == "wavenet_multitask":
        assert {"pred_magnitude", "pred_volatility"} <= set(res.predictions.columns)
        heads = res.metrics["heads"]  # the regression heads are scored too, beside the floor of the train mean
        assert set(heads) == {"magnitude", "volatility"}
        for h in heads.values():
            assert h["n"] == res.metrics["n"] and 0 < h["mae"] <= h["rmse"] and h["mae_train_mean"] > 0
    run = registry.load_run(res.run_id)
    pd.testing.assert_frame_equal(run.predict(candles=candles), run.predictions, check_exact=True)


def test_order_book_model_without_a_book_says_what_to_do(candles):
    from core.data.store import save_candles
    from core.errors import UserError

    ds = save_candles(candles, "synthetic", "BTC/USDT", "1h").id
    with pytest.raises(UserError, match="order-book snapshots"):
        train_run(ds, "orderbook_cnn", {}, DataConfig(**DATA), TrainConfig(**TRAIN), candles=candles)


def test_a_class_without_training_samples_is_said_and_macro_f1_leaves_it_out(candles):
    """Threshold 0 leaves "flat" empty (prices are never exactly unchanged): the run says so, and macro F1 is
    sklearn's (over the classes that occur), not a third lower."""
    from sklearn.metrics import f1_score

    res = train_run("synthetic-BTCUSDT-1h", "cnn1d", {"channels": 8, "layers": 2},
                    DataConfig(**{**DATA, "threshold": 0.0}), TrainConfig(**TRAIN), candles=candles)
    assert res.warnings[0].startswith("Class 'flat' has no training samples")
    assert "raise the threshold or use binary labels" in res.warnings[0]
    assert registry.load_run(res.run_id).metrics["warnings"] == res.warnings
    assert res.summary()["warnings"] == res.warnings
    pred = res.predictions[[f"prob_{c}" for c in res.config["class_names"]]].to_numpy().argmax(1)
    assert res.metrics["macro_f1"] == pytest.approx(f1_score(res.predictions["y_true"], pred, average="macro"))
    ok = train_run("synthetic-BTCUSDT-1h", "cnn1d", {"channels": 8, "layers": 2}, DataConfig(**DATA),
                   TrainConfig(**TRAIN), candles=candles)
    assert not any("no training samples" in w for w in ok.warnings)


def test_multitask_labels_with_a_single_head_model_train_the_direction(candles):
    res = train_run("synthetic-BTCUSDT-1h", "cnn1d", {"channels": 8, "layers": 2},
                    DataConfig(**{**DATA, "label": "multitask"}), TrainConfig(**TRAIN), candles=candles)
    assert res.status == "completed" and res.config["targets_scaling"] is None
    assert "pred_magnitude" not in res.predictions


def test_every_preset_names_a_registered_model_with_valid_settings():
    from core.models import create_model, get_spec
    from core.train.config import PRESETS, preset, preset_model

    for name in PRESETS:
        model, cfg = preset_model(name)
        assert model == PRESETS[name]["model"]  # the exact registry name, no stand-in
        assert cfg == PRESETS[name]["model_config"]  # every preset key is a setting of that model
        d = preset(name)["data"]
        kind = get_spec(model).input_kind
        m = create_model(model, 6, 2 if d.label == "binary" else 3, **cfg)
        assert m.config == {**get_spec(model).defaults, **cfg} and kind == "sequence"
