"""Labels look only forward from a window's last bar, are -1/NaN past the end, and match hand counts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.features import LabelConfig, class_balance, class_names, make_labels
from tests.features_helpers import synthetic_candles


def _candles(closes):
    idx = pd.date_range("2024-01-01", periods=len(closes), freq="1h", tz="UTC", name="timestamp")
    c = np.asarray(closes, float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, index=idx)


def test_direction3_by_hand():
    df = _candles([100, 100.1, 100.5, 99.0, 99.5])
    lab = make_labels(df, LabelConfig("direction3", horizon=1, threshold=0.002))
    # +0.1 % flat, +0.4 % up, -1.5 % down, +0.5 % up, last: undefined
    assert lab["y"].tolist() == [1, 2, 0, 2, -1]
    assert np.isnan(lab["fwd_return"].iloc[-1])
    lab2 = make_labels(df, LabelConfig("direction3", horizon=2, threshold=0.002))
    assert lab2["y"].tolist() == [2, 0, 0, -1, -1]
    assert class_names(LabelConfig()) == ["down", "flat", "up"]


def test_binary_next_bar():
    df = _candles([1, 2, 2, 1, 3])
    lab = make_labels(df, LabelConfig("binary", horizon=1))
    assert lab["y"].tolist() == [1, 0, 0, 1, -1]  # a zero return is not "up"
    assert class_names(LabelConfig("binary")) == ["down", "up"]


def test_vol_scaled_threshold_uses_past_only():
    df = synthetic_candles(400, seed=1)
    cfg = LabelConfig("vol_scaled", horizon=4, k=0.5, vol_window=20)
    a = make_labels(df, cfg)
    changed = df.copy()
    changed.iloc[300:, changed.columns.get_loc("close")] *= 1.3
    b = make_labels(changed, cfg)
    # The threshold at bar t reads returns up to t: bars before 300 keep theirs.
    np.testing.assert_array_equal(a["threshold"].iloc[:300], b["threshold"].iloc[:300])
    assert not np.allclose(a["threshold"].iloc[300:330], b["threshold"].iloc[300:330])
    # Bar t's threshold equals k * std(last 20 log returns) * sqrt(horizon).
    t = 100
    lr = np.log(df["close"].to_numpy()[1:] / df["close"].to_numpy()[:-1])
    expect = 0.5 * np.std(lr[t - 20:t], ddof=1) * 2.0
    assert a["threshold"].iloc[t] == pytest.approx(expect, rel=1e-10)
    assert (a["y"].iloc[:20] == -1).all() and (a["y"].iloc[20:-4] >= 0).all()
    r, thr, y = a["fwd_return"].to_numpy(), a["threshold"].to_numpy(), a["y"].to_numpy()
    ok = y >= 0
    assert ((y[ok] == 2) == (r[ok] > thr[ok])).all() and ((y[ok] == 0) == (r[ok] < -thr[ok])).all()


def test_multitask_targets():
    df = synthetic_candles(200, seed=2)
    h = 5
    lab = make_labels(df, LabelConfig("multitask", horizon=h, threshold=0.001))
    c = df["close"].to_numpy()
    t = 50
    assert lab["magnitude"].iloc[t] == pytest.approx(abs(c[t + h] / c[t] - 1))  # document 002: |return|
    assert (lab["magnitude"].dropna() >= 0).all() and (lab["fwd_return"] < 0).any()
    lr = np.log(c[t + 1:t + h + 1] / c[t:t + h])
    assert lab["volatility"].iloc[t] == pytest.approx(np.sqrt(np.mean(lr ** 2)), rel=1e-10)
    assert lab[["magnitude", "volatility"]].iloc[-h:].isna().all().all()
    assert lab["volatility"].iloc[:-h].notna().all()


def test_class_balance_and_bad_config():
    bal = class_balance(np.array([0, 2, 2, 1, -1, 2]), ["down", "flat", "up"])
    assert bal["count"].tolist() == [1, 1, 3] and bal["share"].sum() == pytest.approx(1.0)
    with pytest.raises(UserError, match="label kind"):
        make_labels(_candles([1, 2, 3]), LabelConfig("trend"))
    with pytest.raises(UserError, match="horizon"):
        make_labels(_candles([1, 2, 3]), LabelConfig(horizon=0))
