"""Vectorised ATR/ADX/Keltner equal ta; features are scale-free, causal, and warm-up rows are dropped."""
from __future__ import annotations

import numpy as np
import pytest
import ta

from core.errors import UserError
from core.features import PRESETS, adx, atr, available_features, compute_features, keltner
from tests.features_helpers import csv_candles, synthetic_candles


@pytest.fixture(scope="module")
def series(shared_data):
    return {
        "btc": csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", 3000),
        "eth": csv_candles(shared_data / "binance_spot_ETHUSDT_1h.csv").iloc[-3000:],
        "synthetic": synthetic_candles(3000),
    }


@pytest.mark.parametrize("name", ["btc", "eth", "synthetic"])
@pytest.mark.parametrize("window", [14, 5])
def test_atr_and_adx_equal_ta(series, name, window):
    df = series[name]
    h, l, c = df["high"], df["low"], df["close"]
    ref_atr = ta.volatility.AverageTrueRange(h, l, c, window).average_true_range().to_numpy()
    ours = atr(h, l, c, window).to_numpy()
    assert np.isnan(ours[: window - 1]).all()
    np.testing.assert_allclose(ours[window - 1:], ref_atr[window - 1:], rtol=1e-9, atol=0)
    ref_adx = ta.trend.ADXIndicator(h, l, c, window).adx().to_numpy()
    ours = adx(h, l, c, window).to_numpy()
    first = 2 * window - 1
    assert np.isnan(ours[:first]).all() and np.isfinite(ours[first:]).all()
    np.testing.assert_allclose(ours[first:], ref_adx[first:], rtol=1e-9, atol=0)
    # the shortest series ta defines an ADX on: exactly 2 x window rows (ours was all NaN there)
    short = df.iloc[: 2 * window]
    ours = adx(short["high"], short["low"], short["close"], window).to_numpy()
    ref = ta.trend.ADXIndicator(short["high"], short["low"], short["close"], window).adx().to_numpy()
    assert np.isfinite(ours[-1]) and ours[-1] == pytest.approx(ref[-1], rel=1e-9)


@pytest.mark.parametrize("preset, bars", [("resnet15", 26), ("convnext", 200), ("dilated5", 100), ("chapter6", 34)])
def test_too_few_candles_names_the_presets_own_warm_up(series, preset, bars):
    # every preset used to be told "EMA 200 needs at least 200", whatever its indicators
    with pytest.raises(UserError, match=f"warm-up needs at least {bars} bars for its first row"):
        compute_features(series["btc"].iloc[: bars - 1], preset)
    assert len(compute_features(series["btc"].iloc[:bars], preset)) == 1


@pytest.mark.parametrize("name", ["btc", "synthetic"])
def test_keltner_equals_ta_modern_version(series, name):
    df = series[name]
    ref = ta.volatility.KeltnerChannel(df["high"], df["low"], df["close"], 20, window_atr=10,
                                       original_version=False, multiplier=2)
    lo, mid, hi = keltner(df["high"], df["low"], df["close"], 20, 10, 2.0)
    ok = slice(20, None)
    np.testing.assert_allclose(hi.to_numpy()[ok], ref.keltner_channel_hband().to_numpy()[ok], rtol=1e-9)
    np.testing.assert_allclose(lo.to_numpy()[ok], ref.keltner_channel_lband().to_numpy()[ok], rtol=1e-9)


def test_presets_have_the_documents_channel_counts():
    assert len(PRESETS["resnet15"]) == 15
    assert len(PRESETS["convnext"]) == 20
    assert PRESETS["dilated5"] == ["return", "log_volume", "hl_range", "close_position", "volume_ratio"]
    assert len(PRESETS["chapter6"]) == 6
    for names in PRESETS.values():
        assert set(names) <= set(available_features())


def test_warmup_rows_dropped_never_filled(series):
    df = series["btc"]
    f = compute_features(df, "convnext")
    # EMA 200 is the longest warm-up: the first kept row is bar 199, every value is finite.
    assert f.index[0] == df.index[199] and f.attrs["warmup_rows"] == 199
    assert np.isfinite(f.to_numpy()).all()
    assert f.index.equals(df.index[199:])
    # Values are those of the indicators on the full series, not recomputed after cutting.
    rsi = ta.momentum.RSIIndicator(df["close"], 14).rsi()
    f6 = compute_features(df, "chapter6")
    np.testing.assert_allclose(f6["rsi"].to_numpy(), rsi.loc[f6.index].to_numpy(), rtol=1e-12)


def test_features_are_scale_free(series):
    df = series["eth"]
    scaled = df.copy()
    scaled[["open", "high", "low", "close"]] *= 37.5
    scaled["volume"] *= 0.01
    names = list(available_features())
    a, b = compute_features(df, names), compute_features(scaled, names)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-7, atol=1e-9)


def test_features_are_causal(series):
    df = series["synthetic"]
    names = list(available_features())
    base = compute_features(df, names)
    cut = compute_features(df.iloc[:2000], names)
    np.testing.assert_allclose(base.loc[cut.index].to_numpy(), cut.to_numpy(), rtol=1e-10, atol=1e-12)


def test_user_edited_list_and_bad_names(series):
    f = compute_features(series["btc"], ["return", "adx"])
    assert list(f.columns) == ["return", "adx"]
    with pytest.raises(UserError, match="unknown feature"):
        compute_features(series["btc"], ["return", "nope"])
    with pytest.raises(UserError, match="unknown feature preset"):
        compute_features(series["btc"], "resnet99")
    with pytest.raises(UserError, match="too few"):
        compute_features(series["btc"].iloc[:150], "convnext")


def test_flat_and_silent_bars_get_defined_values():
    df = synthetic_candles(600, seed=3)
    f = compute_features(df, ["body_ratio", "close_position", "volume_change", "volume_ratio"])
    assert np.isfinite(f.to_numpy()).all()
    flat = (df["high"] == df["low"]).loc[f.index]
    assert (f.loc[flat, "close_position"] == 0.5).all() and (f.loc[flat, "body_ratio"] == 0).all()
