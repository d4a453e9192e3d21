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
