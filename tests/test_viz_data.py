"""The Data page's figures: display aggregation keeps 100,000+ bars drawable and honest."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.viz import data as viz


def _candles(n: int, freq: str = "1min", seed: int = 0, source: str = "synthetic") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    idx = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                       "volume": rng.uniform(1, 10, n)}, index=idx)
    df.attrs = {"source": source, "symbol": "BTC/USDT", "timeframe": {"1min": "1m", "1h": "1h"}[freq]}
    return df


def test_aggregation_matches_ohlcv_rules():
    df = _candles(600)
    agg = viz.aggregate_candles(df, "1h")
    assert len(agg) == 10
    first = df.iloc[:60]
    row = agg.iloc[0]
    assert row["open"] == first["open"].iloc[0]
    assert row["high"] == first["high"].max()
    assert row["low"] == first["low"].min()
    assert row["close"] == first["close"].iloc[-1]
    assert row["volume"] == pytest.approx(first["volume"].sum())
    assert agg.attrs["timeframe"] == "1h"


def test_gaps_are_not_invented():
    df = _candles(600)
    holey = df.drop(df.index[120:300])  # three empty hours
    agg = viz.aggregate_candles(holey, "1h")
    assert len(agg) == 7
    assert not agg.isna().any().any()


def test_100k_bars_aggregate_within_budget_and_say_so():
    df = _candles(120_000)
    t0 = time.perf_counter()
    fig = viz.candlestick_figure(df, max_candles=3000)
    elapsed = time.perf_counter() - t0
    n_drawn = len(fig.data[0].x)
    assert 0 < n_drawn <= 3000
    assert "120,000 bars shown as" in fig.layout.title.text
    assert viz.display_timeframe(df) in fig.layout.title.text
    assert "synthetic" in fig.layout.title.text
    # total volume is preserved by aggregation (nothing dropped, nothing double counted)
    assert float(np.sum(fig.data[1].y)) == pytest.approx(df["volume"].sum())
    assert elapsed < 5  # generous: a regression to per-bar Python loops would blow through it


def test_short_history_drawn_as_stored_and_real_data_not_marked_synthetic():
    df = _candles(500, freq="1h", source="bybit_spot")
    fig = viz.candlestick_figure(df)
    assert len(fig.data[0].x) == 500
    assert "synthetic" not in fig.layout.title.text
    assert "shown as" not in fig.layout.title.text


def test_display_timeframe_is_a_multiple_of_the_stored_bar():
    df = _candles(10_000, freq="1h")  # buckets finer than (or not a multiple of) 1h would straddle bars
    tf = viz.display_timeframe(df, max_candles=3000)
    assert viz.DISPLAY_BUCKETS[tf] % 3600 == 0
    assert len(viz.aggregate_candles(df, tf)) <= 3000
    with pytest.raises(ValueError):
        viz.aggregate_candles(df, "7m")



def test_display_reads_the_bar_length_and_aggregates_like_the_data_layer():
    from core.data.candles import resample_candles

    df = _candles(10_000)                              # 1m
    bare = df.copy()
    bare.attrs = {}                                    # no timeframe in attrs: measured from the spacing
    holey = bare.drop(bare.index[[10, 11, 12, 500, 501]])
    assert viz.display_timeframe(holey, 3000) == viz.display_timeframe(df, 3000) == "5m"
    gaps = viz.gaps_figure(holey)
    assert gaps.data[0].y.tolist() == [3, 2] and "2 stretches" in gaps.layout.title.text
    off_grid = holey.iloc[:20].copy()
    off_grid.index = off_grid.index.where(off_grid.index < off_grid.index[15], off_grid.index + pd.Timedelta("30s"))
    off_grid.attrs["timeframe"] = "1m"  # a 1.5-bar step lacks one bar, as the quality report counts it
    assert viz.gaps_figure(off_grid).data[0].y.tolist() == [3, 1]
    agg = viz.aggregate_candles(df, "1h")
    pd.testing.assert_frame_equal(agg, resample_candles(df, "1h"))
    assert len(viz.aggregate_candles(df.iloc[:1], "1w")) == 1
    fig = viz.candlestick_figure(df.iloc[:1])          # one candle: drawn, no timeframe needed
    assert len(fig.data[0].x) == 1

def _book(n_snap: int = 5, levels: int = 10) -> pd.DataFrame:
    rows = []
    for i in range(n_snap):
        ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(seconds=10 * i)
        mid = 100 + i
        for lvl in range(1, levels + 1):
            rows.append((ts, "bid", lvl, mid - 0.5 * lvl, 1.0 * lvl))
            rows.append((ts, "ask", lvl, mid + 0.5 * lvl, 2.0))
    return pd.DataFrame(rows, columns=["timestamp", "side", "level", "price", "size"])


def test_depth_figure_is_cumulative_per_side():
    fig = viz.depth_figure(_book())
    bids, asks = fig.data
    assert list(bids.y) == list(np.cumsum(np.arange(1, 11, dtype=float)))
    assert list(asks.y)[-1] == 20.0
    assert list(bids.x) == sorted(bids.x, reverse=True)  # from the mid outwards
    assert "imbalance" in fig.layout.title.text


def test_heatmap_keeps_all_size():
    book = _book(7)
    fig = viz.orderbook_heatmap_figure(book, price_bins=20)
    z = np.expm1(np.array(fig.data[0].z))
    assert z.shape == (20, 7)
    assert z.sum() == pytest.approx(book["size"].sum())
    # a bid and an ask the same distance from mid land the same distance from 0 (a level on a bin edge fell
    # into the bin above: the ask at +100 bps showed at +150, the bid at -100 at -50)
    t = pd.Timestamp("2024-01-01", tz="UTC")
    one = pd.DataFrame({"timestamp": [t] * 4, "side": ["bid", "bid", "ask", "ask"], "level": [1, 2, 1, 2],
                        "price": [99.0, 98.0, 101.0, 102.0], "size": [1.0, 3.0, 2.0, 4.0]})
    fig = viz.orderbook_heatmap_figure(one, price_bins=4)
    y, z = np.array(fig.data[0].y), np.expm1(np.array(fig.data[0].z))[:, 0]
    assert dict(zip(np.round(y, 1), np.round(z, 6))) == {-200.0: 3.0, -66.7: 1.0, 66.7: 2.0, 200.0: 4.0}


def test_report_rows_flatten_dataclasses_and_mappings():
    from dataclasses import dataclass

    @dataclass
    class R:
        rows: int
        gaps: list

    assert viz.report_rows(R(3, [])) == [("rows", 3), ("gaps", "none")]
    gaps = [{"start": f"2024-01-0{i}", "end": f"2024-01-0{i}", "missing": i} for i in range(1, 6)]
    text = dict(viz.report_rows(R(3, gaps)))["gaps"]
    assert text.startswith("2024-01-01 to 2024-01-01 (1 bar);") and text.endswith("(5 in all)")
    assert viz.report_rows({"duplicates_dropped": 2}) == [("duplicates dropped", 2)]


def test_quality_report_table_reads_whole_timestamps_and_a_rounded_span():
    """The table cut '2024-01-01T00:00:00+0...' and showed 'span days 730.958333'."""
    from core.data.candles import quality_report

    df = _candles(3000).drop(_candles(3000).index[[100, 101]])
    table = viz.report_table(quality_report(df, "1m"))
    cells = dict(zip(table["item"], table["value"]))
    assert cells["start"] == df.index[0].strftime("%Y-%m-%d %H:%M UTC")
    assert cells["end"] == df.index[-1].strftime("%Y-%m-%d %H:%M UTC")
    span = (df.index[-1] - df.index[0]).total_seconds() / 86400
    assert cells["span (days)"] == f"{span:.1f}"
    assert cells["gaps"] == (f"{df.index[0] + pd.Timedelta(minutes=100):%Y-%m-%d %H:%M} UTC to "
                             f"{df.index[0] + pd.Timedelta(minutes=101):%Y-%m-%d %H:%M} UTC (2 bars)")
    assert viz.format_time("2024-01-01T05:30:00+02:00") == "2024-01-01 03:30 UTC"
    assert viz.format_time("not a time") == "not a time" and viz.format_time(3) == 3


def test_no_gaps_says_so_instead_of_an_empty_axis():
    fig = viz.gaps_figure(_candles(500))
    assert len(fig.data) == 0 and "0 stretches" in fig.layout.title.text
    (note,) = fig.layout.annotations
    assert note.text == "no gaps: every bar is there" and (note.x, note.y) == (0.5, 0.5)
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_snapshot_labels_are_times_one_per_snapshot():
    from core.viz.data import snapshot_labels

    hourly = pd.date_range("2025-12-31 22:00", periods=3, freq="h", tz="UTC")
    assert snapshot_labels(list(hourly)) == ["2025-12-31 22:00 UTC", "2025-12-31 23:00 UTC",
                                             "2026-01-01 00:00 UTC"]
    # a recording every 5 s: the minute alone would repeat, so the seconds are written
    fast = pd.date_range("2025-06-01 12:00:00", periods=13, freq="5s", tz="UTC")
    labels = snapshot_labels(list(fast))
    assert len(set(labels)) == 13 and labels[1] == "2025-06-01 12:00:05 UTC"
    assert snapshot_labels([pd.Timestamp("2025-06-01 12:00")]) == ["2025-06-01 12:00 UTC"]  # naive = UTC
