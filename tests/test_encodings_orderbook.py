"""Order-book depth heatmaps from long snapshot tables (built by hand and from recorded L2 files)."""
import numpy as np
import pandas as pd
import pytest

from core.encodings.orderbook_heatmap import (
    HeatmapConfig, align_to_candles, orderbook_heatmap, wide_book_to_long,
)
from core.errors import UserError


def _book(rows):
    df = pd.DataFrame(rows, columns=["timestamp", "side", "level", "price", "size"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def test_hand_built_snapshots_land_in_the_right_bins():
    t0, t1 = "2024-01-01 00:00:00", "2024-01-01 00:00:01"
    book = _book([
        (t0, "bid", 1, 99.5, 2.0), (t0, "bid", 2, 98.5, 3.0), (t0, "ask", 1, 100.5, 5.0),
        (t0, "ask", 2, 101.5, 6.0), (t0, "ask", 3, 150.0, 7.0),  # 150 is far outside +-2 %: dropped
        (t1, "bid", 1, 100.0, 1.0), (t1, "ask", 1, 102.4, 4.0),
    ])
    hm = orderbook_heatmap(book, HeatmapConfig(n_bins=4, pct_range=0.02, log_size=False))
    # snapshot 0: mid 100, bins of 1 %: [-2,-1) [-1,0) [0,1) [1,2)
    np.testing.assert_allclose(hm.image[0], [3.0, 2.0, 5.0, 6.0])
    # snapshot 1: mid 101.2; 100 -> -1.19 % (bin 0), 102.4 -> +1.19 % (bin 3)
    np.testing.assert_allclose(hm.image[1], [1.0, 0.0, 0.0, 4.0])
    np.testing.assert_allclose(hm.mid, [100.0, 101.2])
    fixed = orderbook_heatmap(book, HeatmapConfig(n_bins=4, anchor="first", log_size=False))
    np.testing.assert_allclose(fixed.anchor_price, [100.0, 100.0])
    # one grid from 100 * 0.98 to 101.2 * 1.02 in bins of ~1 % of the first mid: 102.4 is inside now
    # (5.224 wide: 5 bins of 1.04)
    assert fixed.image.shape == (2, 5)
    np.testing.assert_allclose(100.0 * (1 + fixed.rel_edges[[0, -1]]), [98.0, 101.2 * 1.02])
    np.testing.assert_allclose(fixed.image[1], [0.0, 1.0, 0.0, 0.0, 4.0])  # 100 in [99.04, 100.09)
    np.testing.assert_allclose(fixed.image[0], [3.0, 2.0, 5.0, 6.0, 0.0])
    logged = orderbook_heatmap(book, HeatmapConfig(n_bins=4))
    np.testing.assert_allclose(logged.image, np.log1p(hm.image), rtol=1e-6)


def test_fixed_price_grid_covers_the_whole_price_path():
    """Price axis "fixed price": the book must be drawn wherever the price went, not only near the first mid."""
    from core.encodings.orderbook_heatmap import MAX_FIXED_BINS

    ts = pd.date_range("2024-01-01", periods=300, freq="1h", tz="UTC")
    mids = 23_000 * np.exp(np.linspace(0, 0.1, 300)) * (1 + 0.03 * np.sin(np.linspace(0, 9, 300)))
    book = _book([(t, s, 1, m * (1 + sgn * 0.001), 2.0) for t, m in zip(ts, mids)
                  for s, sgn in (("bid", -1), ("ask", 1))])
    hm = orderbook_heatmap(book, HeatmapConfig(n_bins=100, pct_range=0.02, anchor="first", log_size=False))
    prices = hm.anchor_price[0] * (1 + hm.rel_edges)
    assert prices[0] == pytest.approx(hm.mid.min() * 0.98) and prices[-1] == pytest.approx(hm.mid.max() * 1.02)
    # every snapshot's two levels are drawn, at every point of the path
    np.testing.assert_allclose(hm.image.sum(axis=1), 4.0)
    # same bin width as 100 bins over +-2 % of the first mid: more bins, within the cap
    assert 100 < hm.image.shape[1] <= MAX_FIXED_BINS
    assert np.diff(prices).mean() == pytest.approx(hm.mid[0] * 0.04 / 100, rel=0.02)
    # a far larger move keeps the grid at the cap (wider bins), still covering the path
    wild = _book([(t, s, 1, 100 * 3 ** (i / 50) * (1 + sgn * 0.001), 1.0) for i, t in enumerate(ts[:100])
                  for s, sgn in (("bid", -1), ("ask", 1))])
    hw = orderbook_heatmap(wild, HeatmapConfig(n_bins=100, pct_range=0.02, anchor="first", log_size=False))
    assert hw.image.shape == (100, MAX_FIXED_BINS)
    np.testing.assert_allclose(hw.image.sum(axis=1), 2.0)
    # the mid-anchored image keeps exactly n_bins (what a model reads)
    assert orderbook_heatmap(book, HeatmapConfig(n_bins=100)).image.shape == (300, 100)


def test_align_to_candles_uses_only_snapshots_up_to_each_close():
    ts = pd.date_range("2024-01-01", periods=4, freq="1min", tz="UTC")
    book = _book([(t + pd.Timedelta(seconds=30), s, 1, p, float(i + 1))
                  for i, t in enumerate(ts[:3]) for s, p in (("bid", 99.9), ("ask", 100.1))])
    hm = orderbook_heatmap(book, HeatmapConfig(n_bins=10, log_size=False))
    candles = pd.date_range("2023-12-31 23:59", periods=5, freq="1min", tz="UTC")
    rows, covered = align_to_candles(hm, candles, 60)
    assert covered.tolist() == [False, True, True, True, True]
    # candle opening 00:00 closes 00:01 -> snapshot at 00:00:30 (size 1 each side)
    assert rows[1].sum() == 2.0 and rows[2].sum() == 4.0 and rows[3].sum() == 6.0 and rows[4].sum() == 6.0
    _, cov = align_to_candles(hm, candles, 60, max_staleness_seconds=45)
    assert cov.tolist() == [False, True, True, True, False]


def test_recorded_bybit_and_binance_books(shared_data):
    bybit = pd.read_csv(shared_data / "bybit_linear_XRPUSDT_L2top20_20241201.csv")
    long = wide_book_to_long(bybit)
    assert set(long.columns) == {"timestamp", "side", "level", "price", "size"}
    assert long["timestamp"].nunique() == len(bybit)
    hm = orderbook_heatmap(long, HeatmapConfig(n_bins=40, pct_range=0.002))
    assert hm.image.shape == (len(bybit), 40)
    first = bybit.iloc[0]
    assert hm.mid[0] == pytest.approx((first["bid_px_1"] + first["ask_px_1"]) / 2)
    # top-20 XRP levels (tick 0.0001 ~ 0.005 %) all fall within +-0.2 %: nothing lost
    raw = orderbook_heatmap(long, HeatmapConfig(n_bins=40, pct_range=0.002, log_size=False))
    np.testing.assert_allclose(raw.image[0].sum(), first[[f"{s}_sz_{i}" for s in ("bid", "ask")
                                                          for i in range(1, 21)]].sum())
    # depth below mid in bid bins, above in ask bins
    assert raw.image[:, :20].sum() > 0 and raw.image[:, 20:].sum() > 0
    binance = pd.read_csv(shared_data / "binance_spot_BTCUSDT_L2top20_20240808.csv", nrows=400)
    hb = orderbook_heatmap(wide_book_to_long(binance), HeatmapConfig(n_bins=50, pct_range=0.0005))
    assert hb.image.shape == (binance["timestamp_ms"].nunique(), 50) and np.isfinite(hb.image).all()


def test_bad_tables():
    with pytest.raises(UserError, match="no 'size'"):
        orderbook_heatmap(pd.DataFrame({"timestamp": [1], "side": ["bid"], "level": [1], "price": [1.0]}))
    with pytest.raises(UserError, match="side"):
        orderbook_heatmap(_book([("2024-01-01", "buy", 1, 1.0, 1.0)]))


def test_last_snapshots_keeps_the_most_recent_ones():
    from core.encodings.orderbook_heatmap import last_snapshots

    t = pd.date_range("2025-01-01", periods=5, freq="1min", tz="UTC")
    book = pd.DataFrame({"timestamp": np.repeat(t, 2)[::-1], "side": ["bid", "ask"] * 5, "level": 0,
                         "price": 100.0, "size": 1.0})
    kept = last_snapshots(book, 2)
    assert sorted(kept["timestamp"].unique()) == list(t[-2:]) and len(kept) == 4
    assert len(last_snapshots(book, 50)) == len(book)
    with pytest.raises(UserError):
        last_snapshots(book, 0)
