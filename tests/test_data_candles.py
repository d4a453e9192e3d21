"""The one bar-length inference (`bar_seconds`, `infer_timeframe`) and the one OHLCV aggregation
(`resample_candles` / `bucket_candles` / `group_candles`) that the backtest, the Data and Indicators
charts and the importer share."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.candles import (bar_seconds, bucket_candles, group_candles, infer_timeframe, resample_candles,
                               timeframe_name)
from core.errors import DataError, UserError
from tests.features_helpers import csv_candles


def _candles(n: int, freq: str = "1h", seed: int = 0, tf: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-03 05:00", periods=n, freq=freq, tz="UTC", name="timestamp").as_unit("ns")
    df = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                       "low": np.minimum(open_, close) * 0.999, "close": close,
                       "volume": rng.uniform(1, 10, n)}, index=idx)
    if tf:
        df.attrs["timeframe"] = tf
    return df


def test_bar_seconds_of_real_hourly_candles_with_and_without_attrs(shared_data):
    real = csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", rows=2000)
    assert bar_seconds(real) == 3600
    real.attrs.clear()                                  # e.g. a table that lost its attrs: measured
    assert bar_seconds(real) == 3600 and bar_seconds(real.index) == 3600
    assert infer_timeframe(real.index) == "1h"


def test_attrs_win_over_the_spacing_and_gaps_do_not_change_it():
    df = _candles(200, "15min")
    assert bar_seconds(df) == 900
    df.attrs["timeframe"] = "1h"                         # what the source says is taken as is
    assert bar_seconds(df) == 3600
    holey = _candles(200, "15min").drop(_candles(200, "15min").index[[3, 4, 5, 50, 51, 90, 120, 121, 122, 123]])
    assert bar_seconds(holey) == 900 and infer_timeframe(holey.index) == "15m"
    # many gaps: still the most common spacing (40 x 15 min, 30 x 30 min, 30 x 45 min: a median says 30 min)
    sparse = _candles(400, "15min").iloc[np.r_[0:41, 42:102:2, 103:193:3]]
    assert np.median(np.diff(sparse.index.asi8)) == 1800 * 10**9
    assert bar_seconds(sparse) == 900
    # order does not matter (raw imported tables are measured before sorting)
    assert bar_seconds(holey.index[::-1]) == 900


def test_unnamed_spacings_and_names():
    odd = _candles(30, "7min")
    assert bar_seconds(odd) == 420 and infer_timeframe(odd.index) is None
    assert timeframe_name(420) == "420s" and timeframe_name(14400) == "4h" and timeframe_name(86400) == "1d"


def test_too_short_or_undated_tables_are_a_sentence():
    with pytest.raises(UserError, match="at least 2 candles"):
        bar_seconds(_candles(1))
    with pytest.raises(UserError, match="at least 2 candles"):
        bar_seconds(_candles(0))
    same = _candles(3)
    same.index = pd.DatetimeIndex([same.index[0]] * 3, name="timestamp")
    with pytest.raises(DataError, match="all the same"):
        bar_seconds(same)
    with pytest.raises(DataError, match="DatetimeIndex"):
        bar_seconds(_candles(5).reset_index(drop=True))
    assert bar_seconds(_candles(1), default=60) == 60    # a chart can still draw one candle
    assert infer_timeframe(_candles(1).index) is None
    # a known timeframe in attrs needs no spacing at all
    assert bar_seconds(_candles(1, tf="4h")) == 14400


def test_bucket_candles_equals_pandas_resample_for_calendar_bins_of_any_length():
    df = _candles(24 * 40, "1h")
    df = df.drop(df.index[100:160])                      # a gap: its bins stay out, nothing is invented
    for seconds in (4 * 3600, 86400, 7 * 86400):
        got = bucket_candles(df, seconds, "x")
        want = df.resample(pd.Timedelta(seconds=seconds), origin="epoch", label="left", closed="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
        np.testing.assert_array_equal(got.index.asi8, want.index.as_unit("ns").asi8)
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
        assert got.attrs["timeframe"] == "x"
    week = bucket_candles(df, 7 * 86400)
    assert (week.index.asi8 % (7 * 86400 * 10**9) == 0).all() and week.attrs["timeframe"] == "604800s"
    assert bucket_candles(df.iloc[:0], 3600).empty
    # resample_candles is the same aggregation, with the checks against the stored timeframe
    df.attrs["timeframe"] = "1h"
    pd.testing.assert_frame_equal(resample_candles(df, "4h"), bucket_candles(df, 14400, "4h"))
    with pytest.raises(DataError, match="finer"):
        resample_candles(df, "15m")


def test_group_candles_keeps_ohlc_extremes_and_volume_per_group():
    df = _candles(1003, "1h", tf="1h")
    g = group_candles(df, 10)
    assert len(g) == 101 and (g.index == df.index[::10]).all()
    block = df.iloc[990:1000]
    row = g.iloc[99]
    assert (row.open, row.high, row.low, row.close) == (block.open.iloc[0], block.high.max(), block.low.min(),
                                                        block.close.iloc[-1])
    assert row.volume == pytest.approx(block.volume.sum())
    assert g.iloc[-1].close == df.close.iloc[-1] and g.volume.sum() == pytest.approx(df.volume.sum())
    assert g.attrs["timeframe"] == "36000s"            # 10 x 1h: no standard name
    assert group_candles(df, 4).attrs["timeframe"] == "4h"
    assert group_candles(df, 1) is df
    with pytest.raises(UserError):
        group_candles(df, 0)


def test_candles_digest_sees_other_prices_but_not_last_bit_noise_or_column_order():
    from core.data.candles import candles_digest

    idx = pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    close = 100 + rng.normal(0, 1, 50).cumsum()
    df = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 5.0}, idx)
    d = candles_digest(df)
    assert candles_digest(df[["close", "volume", "open", "low", "high"]]) == d
    assert candles_digest(df * (1 + 1e-15)) == d  # one float64 ulp from another machine's maths library
    moved = df.copy()
    moved.iloc[20, 3] *= 1.0001  # one close a hundredth of a percent away
    assert candles_digest(moved) != d
    assert candles_digest(df.iloc[1:]) != d and candles_digest(df.set_axis(idx + pd.Timedelta("1h"))) != d
