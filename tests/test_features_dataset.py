"""prepare_dataset: train-only scaling, no leakage from the test segment, zero-copy windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from core.features import (ChannelScaler, DatasetConfig, LabelConfig, SplitConfig, WindowDataset,
                           compute_features, load_scaler, prepare_dataset, rows_touched, save_scaler)
from core.workspace import ws_path
from tests.features_helpers import csv_candles, synthetic_candles


@pytest.fixture(scope="module")
def btc(shared_data):
    return csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", 4000)


@pytest.mark.parametrize("kind", ["direction3", "vol_scaled", "multitask"])
def test_changing_the_test_segment_changes_nothing_before_it(btc, kind):
    cfg = DatasetConfig(preset="convnext", label=LabelConfig(kind=kind, horizon=12), window=64)
    a = prepare_dataset(btc, cfg)
    first_test_row = int(a.splits["test"][0]) - a.window + 1
    first_test_ts = a.timestamps[first_test_row]
    changed = btc.copy()
    # A crash and a volume spike inside the test segment only.
    cols = ["open", "high", "low", "close"]
    changed.loc[changed.index >= first_test_ts, cols] *= 0.6
    changed.loc[changed.index >= first_test_ts, "volume"] *= 5
    b = prepare_dataset(changed, cfg)
    assert not np.allclose(a.features[first_test_row + 5:], b.features[first_test_row + 5:])
    np.testing.assert_array_equal(a.features[:first_test_row], b.features[:first_test_row])
    for seg in ("train", "val"):
        np.testing.assert_array_equal(a.splits[seg], b.splits[seg])
        np.testing.assert_array_equal(a.y[a.splits[seg]], b.y[b.splits[seg]])
        if a.targets:
            for k in a.targets:
                np.testing.assert_array_equal(a.targets[k][a.splits[seg]], b.targets[k][b.splits[seg]])
    np.testing.assert_array_equal(a.scaler.mean, b.scaler.mean)
    np.testing.assert_array_equal(a.scaler.scale, b.scaler.scale)


def test_changing_validation_prices_leaves_the_scaler_alone(btc):
    cfg = DatasetConfig(preset="resnet15", window=32)
    a = prepare_dataset(btc, cfg)
    first_val_ts = a.timestamps[int(a.splits["val"][0]) - a.window + 1]
    changed = btc.copy()
    changed.loc[changed.index >= first_val_ts, ["open", "high", "low", "close"]] *= 1.5
    b = prepare_dataset(changed, cfg)
    np.testing.assert_array_equal(a.scaler.mean, b.scaler.mean)
    np.testing.assert_array_equal(a.features[a.splits["train"]], b.features[b.splits["train"]])


def test_scaler_is_fitted_on_train_rows_and_saved(btc, workspace):
    p = prepare_dataset(btc, DatasetConfig(preset="chapter6", window=48))
    raw = compute_features(btc, "chapter6").to_numpy()
    rows = rows_touched(p.splits["train"], 48, len(raw))
    assert rows.sum() == p.splits["train"][-1] - p.splits["train"][0] + 48
    np.testing.assert_allclose(p.scaler.mean, raw[rows].mean(axis=0), rtol=1e-12)
    z = p.features[rows]
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    assert p.features.dtype == np.float32 and p.y.dtype == np.int64
    assert len(p.candles) == len(p.features) and p.candles.index.equals(p.timestamps)
    assert p.class_names == ["down", "flat", "up"] and p.feature_names == list(p.raw_features.columns)
    path = save_scaler(p.scaler, ws_path("runs", "r1", "scaler.joblib"))
    assert str(path).startswith(str(workspace))
    back = load_scaler(path)
    assert isinstance(back, ChannelScaler) and back.feature_names == p.feature_names
    np.testing.assert_array_equal(back.transform(raw), p.features)


def test_window_dataset_is_zero_copy_and_exact():
    df = synthetic_candles(1500, seed=5)
    p = prepare_dataset(df, DatasetConfig(preset="dilated5", label=LabelConfig(horizon=3),
                                          split=SplitConfig(0.6, 0.2, 0.2), window=16))
    ds = WindowDataset(p.features, p.y, p.splits["val"], 16)
    assert np.shares_memory(ds._view, p.features)  # no copy of the whole array
    t = int(p.splits["val"][7])
    x, y = ds[7]
    assert x.shape == (5, 16) and x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), p.features[t - 15:t + 1].T)
    assert int(y) == p.y[t]
    xb, yb = ds.batch(np.array([0, 7, 3]))
    np.testing.assert_array_equal(xb[1].numpy(), x.numpy())
    assert yb.tolist() == [p.y[p.splits["val"][i]] for i in (0, 7, 3)]
    xl, yl = next(iter(DataLoader(ds, batch_size=4)))
    assert xl.shape == (4, 5, 16) and yl.dtype == torch.int64
    with pytest.raises(Exception, match="sample ends"):
        WindowDataset(p.features, p.y, np.array([3]), 16)


def test_multitask_dataset_yields_targets():
    p = prepare_dataset(synthetic_candles(1200, seed=9),
                        DatasetConfig(preset="chapter6", label=LabelConfig("multitask", horizon=4), window=16))
    x, y = p.dataset("train")[0]
    assert set(y) == {"direction", "magnitude", "volatility"} and torch.isfinite(y["volatility"])
    xb, yb = p.dataset("train").batch(np.array([0, 5]))  # a batch carries the targets too
    assert set(yb) == {"direction", "magnitude", "volatility"} and yb["magnitude"].shape == (2,)
    assert float(yb["volatility"][0]) == float(y["volatility"])
    assert all(np.isfinite(p.targets["magnitude"][p.splits[k]]).all() for k in p.splits)


def test_holes_in_the_candles_are_said():
    """Windows and horizons count rows: across a gap they run as if the bars were consecutive."""
    from core.features import gap_note
    from core.train.config import DataConfig, TrainConfig
    from core.train.trainer import run_warnings

    c = synthetic_candles(300)
    assert gap_note(c) is None
    holey = c.drop(c.index[100:130]).drop(c.index[200:205])
    note = gap_note(holey)
    assert note.startswith("The candles have 2 gaps (35 missing bars, the first at "
                           f"{c.index[100]:%Y-%m-%d %H:%M} UTC)") and "as if the bars were consecutive" in note
    warnings = run_warnings(np.array([0, 1, 2]), np.array([0, 1, 2]), ["down", "flat", "up"], DataConfig(),
                            TrainConfig(batch_size=2), note)
    assert warnings == [note]  # beside a run's results, with the other run warnings


def test_too_few_candles_is_one_sentence_that_counts_the_warmup(btc):
    """A 48-candle dataset got three counts on three pages (23 rows, 15 rows, 48 rows) and no word on the
    warm-up: one sentence now counts the candles, the features' warm-up, the rows left and the rows needed."""
    from core.errors import UserError
    from core.features import too_few_candles

    short = btc.iloc[:48]
    cfg = DatasetConfig()  # resnet15, window 64, horizon 12
    said = too_few_candles(48, cfg)
    assert said == ("48 candles are too few: the resnet15 features need 25 bars of warm-up, which leaves 23 rows, "
                    "and windows of 64 bars with a 12-bar horizon and 76-bar purge gaps between train, validation "
                    "and test need at least 232 rows (257 candles); use a longer dataset or a shorter window.")
    with pytest.raises(UserError) as err:
        prepare_dataset(short, cfg)
    assert str(err.value) == said
    # the preset given as its list of names, or a warm-up longer than the candles: the same kind of sentence
    chapter = DatasetConfig(preset=["return", "rsi", "macd_hist", "atr_norm", "bb_width", "volume_ratio"], window=32)
    with pytest.raises(UserError, match="^48 candles are too few: the chapter6 features need 33 bars of warm-up, "
                                        "which leaves 15 rows, and windows of 32 bars"):
        prepare_dataset(short, chapter)
    with pytest.raises(UserError, match="^48 candles are too few: the convnext features need 199 bars of warm-up, "
                                        "which leaves no rows, .* need at least 232 rows \\(431 candles\\)"):
        prepare_dataset(short, DatasetConfig(preset="convnext"))
    assert too_few_candles(2, DatasetConfig(preset=["return"], window=2, label=LabelConfig(horizon=1))) \
        .startswith("2 candles are too few: the feature return needs 1 bar of warm-up, which leaves 1 row,")
    # exactly enough candles: no sentence, and prepare_dataset splits them
    assert too_few_candles(257, cfg) is None and too_few_candles(256, cfg) is not None
    assert len(prepare_dataset(btc.iloc[:257], cfg).splits["test"]) >= 1
