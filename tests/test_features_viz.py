"""Indicator figures: display downsampling keeps OHLC truthful; split bands follow the purged split."""
from __future__ import annotations

import numpy as np

from core.features import purged_chronological_split
from core.viz import indicators as vz
from tests.features_helpers import synthetic_candles


def test_downsample_keeps_ohlc_extremes_and_volume():
    df = synthetic_candles(12_001, seed=4)
    d = vz.downsample_candles(df, 5000)
    assert len(d) <= 5000 and d.index[0] == df.index[0]
    assert d["high"].max() == df["high"].max() and d["low"].min() == df["low"].min()
    assert np.isclose(d["volume"].sum(), df["volume"].sum())
    assert d["close"].iloc[-1] == df["close"].iloc[-1] and d["open"].iloc[0] == df["open"].iloc[0]
    assert vz.downsample_candles(df.iloc[:100], 5000) is not None


def test_split_bands_and_figures():
    df = synthetic_candles(3000, seed=6)
    s = purged_chronological_split(len(df), 32, 6)
    bands = vz.split_bands(df.index, s, 32, 6)
    assert [b[0] for b in bands] == ["train", "purge", "val", "purge", "test"]
    assert all(a[2] <= b[1] for a, b in zip(bands, bands[1:]))
    fig = vz.price_figure(df, vz.OVERLAYS, vz.PANELS, bands)
    assert len(fig.data) > 10 and sum(1 for sh in fig.layout.shapes if sh.type == "rect") == 5


def test_a_zoomed_range_shows_the_full_history_values():
    import pandas as pd

    from core.features.indicators import ema

    df = synthetic_candles(3000, seed=7)
    start, end = df.index[2000], df.index[2400]
    fig = vz.price_figure(df, ["EMA 200"], [], start=start, end=end)
    (line,) = [t for t in fig.data if t.type == "scatter"]
    assert pd.Timestamp(line.x[0]).tz_localize(None) == start.tz_convert(None)
    assert len(line.y) == 401
    # EMA 200 of the whole history (not re-seeded at the zoom's first bar)
    np.testing.assert_allclose(line.y, ema(df["close"], 200).loc[start:end].to_numpy(), rtol=1e-12)


def test_panels_are_named_on_their_axes_and_the_price_axis_has_a_title():
    """Subplot titles centred above the RSI and MACD panels sat on the panel above: each panel is named
    by its y axis instead, and the price axis says its currency."""
    df = synthetic_candles(600, seed=8)
    df.attrs["symbol"] = "BTC/USDT:USDT"
    fig = vz.price_figure(df, ["EMA 21"], ["Volume", "RSI", "MACD"])
    assert not [a.text for a in fig.layout.annotations if a.text in vz.PANELS]
    titles = [fig.layout[f"yaxis{i if i > 1 else ''}"].title.text for i in range(1, 5)]
    assert titles == ["price (USDT)", "volume (BTC)", "RSI 14", "MACD 12/26/9"]
    d1, d2 = fig.layout.yaxis.domain, fig.layout.yaxis2.domain
    assert d1[0] - d2[1] >= 0.02  # a gap between the panels
    df.attrs.pop("symbol")
    assert vz.price_figure(df, [], ["Volume"]).layout.yaxis.title.text == "price"


def test_volume_bars_are_visible():
    """Thousands of sub-pixel bars with gaps and a faint colour all but vanished on the dark theme: no gaps,
    no outlines, and the candles' up/down colours nearly opaque, in their own panel below the candles."""
    df = synthetic_candles(3000, seed=9)
    fig = vz.price_figure(df, [], ["Volume"])
    (vol,) = [t for t in fig.data if t.name == "volume"]
    assert vol.type == "bar" and vol.yaxis == "y2" and fig.data[0].type == "candlestick"
    assert fig.layout.bargap == 0 and vol.marker.line.width == 0
    colours = set(np.asarray(vol.marker.color))
    assert colours == {vz.VOLUME_UP, vz.VOLUME_DOWN}
    assert all(float(c.rsplit(",", 1)[1].rstrip(")")) >= 0.8 for c in colours)
