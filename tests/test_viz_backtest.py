"""Backtest figures: the threshold sweep's two axes read as round numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.viz.backtest import sweep_figure


def _sweep() -> pd.DataFrame:
    thr = np.round(np.arange(0.34, 0.91, 0.02), 2)
    sharpe = np.where(thr <= 0.66, np.clip((thr - 0.5) * 40, -10, 3.2), np.nan)
    ret = np.clip((thr - 0.5) * 1.5, -0.688, 0.22)
    return pd.DataFrame({"threshold": thr, "sharpe": sharpe, "total_return": ret,
                         "n_trades": np.arange(len(thr))[::-1] * 3})


def test_return_axis_lets_plotly_pick_round_ticks():
    """tickmode 'sync' put the right axis' ticks on the left axis' grid: -68.8, -55.8, ..., 22.0."""
    sweep = _sweep()
    fig = sweep_figure(sweep, chosen=0.6)
    right = fig.layout.yaxis2
    assert right.overlaying == "y" and right.side == "right"
    # explicitly "auto": plotly.js 4 defaults an overlaying axis to "sync" (and this test failed with "sync")
    assert right.tickmode == "auto", right.tickmode
    assert right.tickvals is None and right.dtick is None and right.range is None
    assert not right.tickformat  # no forced one-decimal labels
    assert right.showgrid is False  # one set of grid lines (the Sharpe axis'): the chart stays readable
    left = fig.layout.yaxis
    assert left.tickmode in (None, "auto") and left.tickvals is None
    assert [t.name for t in fig.data] == ["Sharpe", "total return %"] and fig.data[1].yaxis == "y2"
    np.testing.assert_allclose(fig.data[1].y, sweep["total_return"] * 100)  # in percent, as the axis says


def test_monthly_heatmap_shows_only_the_months_the_span_covers():
    from core.backtest.metrics import monthly_returns
    from core.viz.backtest import monthly_heatmap

    idx = pd.date_range("2025-12-26", periods=5 * 24, freq="h", tz="UTC")  # a 5-day span, all in December
    equity = pd.Series(np.linspace(10_000, 10_150, len(idx)), idx)
    fig = monthly_heatmap(monthly_returns(equity, 10_000))
    assert list(fig.data[0].x) == ["Dec"] and list(fig.data[0].y) == ["2025"]
    assert fig.data[0].text[0][0] == "+1.5"
    # a span across a month end: both months, in calendar order
    idx2 = pd.date_range("2025-01-29", periods=5 * 24, freq="h", tz="UTC")
    fig2 = monthly_heatmap(monthly_returns(pd.Series(np.linspace(100, 101, len(idx2)), idx2), 100))
    assert list(fig2.data[0].x) == ["Jan", "Feb"]
    # a span of more than a year keeps every month as a column
    idx3 = pd.date_range("2024-03-01", "2025-06-30", freq="D", tz="UTC")
    fig3 = monthly_heatmap(monthly_returns(pd.Series(np.linspace(100, 130, len(idx3)), idx3), 100))
    assert len(fig3.data[0].x) == 12 and list(fig3.data[0].y) == ["2024", "2025"]
    assert np.isnan(fig3.data[0].z[0][0])  # Jan 2024 lies before the span: an empty cell, not a zero
    # no trades yet: an empty table still draws
    assert monthly_heatmap(monthly_returns(pd.Series(dtype=float), 100)).data[0].z.shape[0] == 0


def test_thinned_curves_put_each_point_at_its_own_bar():
    """Above 4,000 bars the equity is thinned for display: each drawn point is a real (time, value) pair, the
    bucket's last equity at its last bar and the drawdown's lowest point at its own bar (the last value was
    drawn at the bucket's first time, up to a bucket early)."""
    from types import SimpleNamespace

    from core.viz.backtest import equity_figure

    idx = pd.date_range("2025-01-01", periods=10_003, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    equity = pd.Series(10_000 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx)))), idx)
    dd = equity / equity.cummax() - 1
    result = SimpleNamespace(equity=equity, benchmark_equity=equity * 0.9, drawdown=lambda: dd,
                             benchmark_drawdown=lambda: dd)
    fig = equity_figure(result, max_points=4000)
    strat = fig.data[0]
    assert 3000 < len(strat.x) <= 4000
    drawn = pd.Series(np.asarray(strat.y), pd.DatetimeIndex(strat.x))
    np.testing.assert_allclose(drawn.to_numpy(), equity.loc[drawn.index].to_numpy())
    assert drawn.index[-1] == idx[-1]  # the last point is the last bar's equity, at its time
    lows = pd.Series(np.asarray(fig.data[2].y) / 100, pd.DatetimeIndex(fig.data[2].x))
    np.testing.assert_allclose(lows.to_numpy(), dd.loc[lows.index].to_numpy())
    assert lows.min() == dd.min()  # the deepest drawdown is drawn


def test_trades_chart_says_its_price_unit_and_a_short_spans_cagr_says_it_is_annualised():
    from core.backtest.metrics import compute_metrics, metrics_table
    from core.viz.backtest import trades_figure

    idx = pd.date_range("2025-01-01", periods=24 * 100, freq="h", tz="UTC")
    c = pd.DataFrame({"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1.0}, index=idx)
    c.attrs["symbol"] = "BTC/USDT"
    fig = trades_figure(c, pd.DataFrame(columns=["side", "entry_time", "entry_price", "exit_time", "exit_price",
                                                 "exit_reason", "qty", "pnl"]))
    assert fig.layout.yaxis.title.text == "price (USDT)"
    m = compute_metrics(np.linspace(10_000, 11_000, len(idx)), 10_000.0, 3600, index=idx)
    assert m["span_days"] == pytest.approx(100.0)
    assert "CAGR (annualised from 100 days)" in metrics_table(m, m).index
    year = compute_metrics(np.linspace(10_000, 11_000, 8760), 10_000.0, 3600)
    assert "CAGR" in metrics_table(year, year).index
    hours = compute_metrics(np.linspace(10_000, 11_000, 6), 10_000.0, 3600)
    assert "CAGR (annualised from 6 hours)" in metrics_table(hours, hours).index


def test_months_after_a_liquidation_are_zero_not_blank():
    from core.backtest.metrics import monthly_returns

    idx = pd.date_range("2024-01-01", "2024-03-31 23:00", freq="h", tz="UTC")
    equity = pd.Series(np.where(idx < pd.Timestamp("2024-01-11", tz="UTC"), 10_000.0, 0.0), idx)
    table = monthly_returns(equity, 10_000.0)
    assert table.loc[2024, 1] == -1.0 and table.loc[2024, 2] == 0.0 and table.loc[2024, 3] == 0.0
    assert table.loc[2024, 4:].isna().all()  # months outside the span stay blank


def _many_trades(n_trades: int = 92, days: int = 108):
    """An hourly span with `n_trades` alternating long/short trades of 5 bars each (the walk's 12c.png)."""
    idx = pd.date_range("2025-09-15", periods=24 * days, freq="h", tz="UTC")
    rng = np.random.default_rng(3)
    close = 22_000 * np.exp(np.cumsum(rng.normal(0, 0.004, len(idx))))
    c = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
                      "volume": 1.0}, index=idx)
    c.attrs["symbol"] = "BTC/USDT"
    e = np.linspace(0, len(idx) - 10, n_trades).astype(int)
    pnl = np.where(np.arange(n_trades) % 3 == 0, -12.5, 30.25)
    trades = pd.DataFrame({
        "entry_time": idx[e], "exit_time": idx[e + 5], "side": np.where(np.arange(n_trades) % 2, "short", "long"),
        "qty": 0.1, "entry_price": close[e], "exit_price": close[e + 5], "bars_held": 5, "hours_held": 5.0,
        "fees": 1.0, "pnl": pnl, "return": pnl / 10_000,
        "exit_reason": np.where(np.arange(n_trades) % 3 == 0, "stop-loss", "signal")})
    return c, trades


def test_many_trades_open_zoomed_on_the_latest_with_light_markers_and_named_hovers():
    """184 markers over 108 days buried the price: the chart opens on the latest 30 trades (price axis fitted
    to them), the rest behind the range slider, markers smaller and lighter, and each hover names its trade."""
    from core.viz.backtest import FOCUS_TRADES, trades_figure

    c, trades = _many_trades()
    fig = trades_figure(c, trades)
    by = {t.name: t for t in fig.data}
    assert {"long entry", "short entry", "exit"} <= set(by)
    assert fig.layout.xaxis.rangeslider.visible is True
    lo, hi = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    latest = trades.iloc[-FOCUS_TRADES:]
    assert lo <= latest["entry_time"].min() and hi >= latest["exit_time"].max()
    assert lo > trades["entry_time"].iloc[-FOCUS_TRADES - 1]  # earlier trades start outside the first view
    inside = c.loc[lo:hi]
    y0, y1 = fig.layout.yaxis.range
    assert y0 < inside["low"].min() and y1 > inside["high"].max()
    assert y1 - y0 < (c["high"].max() - c["low"].min())  # fitted to the zoomed part, not the whole span
    assert "latest 30 of 92 trades" in fig.layout.title.subtitle.text
    assert fig.layout.title.text.startswith("Trades on the price")
    # every trade is still drawn (reachable by zooming out)
    assert len(by["exit"].x) == 92 and len(by["long entry"].x) + len(by["short entry"].x) == 92
    assert by["long entry"].marker.size < 10 and by["exit"].marker.opacity < 1
    # hover names the trade: number, side, entry/exit price, exit reason, P&L
    last = by["exit"].text[-1]
    t = trades.iloc[-1]
    assert "trade 92 · short" in last and "(signal)" in last and "P&L +30.25" in last
    assert f"{t['entry_price']:,.2f}" in last and f"{t['exit_price']:,.2f}" in last
    first_long = by["long entry"].text[0]
    assert "trade 1 · long" in first_long and "(stop-loss)" in first_long and "P&L -12.50" in first_long
    assert "%{text}" in by["long entry"].hovertemplate and "%{text}" in by["exit"].hovertemplate


def test_few_trades_show_the_whole_span_with_full_size_markers():
    from core.viz.backtest import trades_figure

    c, trades = _many_trades(n_trades=12, days=20)
    fig = trades_figure(c, trades)
    assert fig.layout.xaxis.range is None and fig.layout.yaxis.range is None  # nothing to zoom in on
    by = {t.name: t for t in fig.data}
    assert by["long entry"].marker.size == 10 and by["exit"].marker.opacity in (None, 1)
    assert "trade 12 · short" in by["exit"].text[-1]


def test_the_zoomed_trades_sit_on_full_detail_candles_in_a_long_span():
    """Two years of hours are thinned to 4-hour display candles: the window the chart opens on keeps its own
    hourly bars (the trades sit on them), the rest stays thinned, and no bar is drawn twice."""
    from core.viz.backtest import trades_figure

    c, trades = _many_trades(n_trades=400, days=730)
    fig = trades_figure(c, trades, max_points=5000)
    candles = [t for t in fig.data if t.type == "candlestick"]
    assert [t.showlegend for t in candles] == [True] + [False] * (len(candles) - 1)  # one "price" entry
    lo, hi = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    detail = next(t for t in candles if pd.Timestamp(t.x[0]) >= lo)
    x = pd.DatetimeIndex(detail.x)
    assert (x.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()  # stored bars, not buckets
    assert x[0] >= lo and x[-1] <= hi and len(x) == len(c.loc[lo:hi])
    before = pd.DatetimeIndex(candles[0].x)
    assert before[-1] < lo and pd.Timedelta(before[1] - before[0]) > pd.Timedelta(hours=1)  # thinned
    assert sum(len(t.x) for t in candles) <= 2 * 5000


def test_equity_chart_says_the_currency_and_the_starting_capital():
    from core.backtest.engine import run_backtest
    from core.backtest.metrics import METRIC_LABELS
    from core.viz.backtest import equity_figure

    idx = pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC", name="timestamp")
    px = np.linspace(100, 110, 50)
    c = pd.DataFrame({"open": px, "high": px + 1, "low": px - 1, "close": px, "volume": 1.0}, index=idx)
    c.attrs["timeframe"] = "1h"
    fig = equity_figure(run_backtest(c, np.ones(50), {"initial_capital": 25_000.0}))
    assert fig.layout.yaxis.title.text == "equity (USDT)"
    assert "both from 25,000 USDT" in fig.layout.title.text
    assert fig.layout.title.text.startswith("Equity vs buy and hold")
    assert METRIC_LABELS["fees_paid"] == "Fees paid (USDT)" and METRIC_LABELS["final_equity"] == "Final equity (USDT)"
