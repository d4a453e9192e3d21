"""Figures for the Backtest page: equity against buy and hold with the drawdown under it, trades on the
candlestick, the monthly returns heatmap and the threshold sweep. Pure: data in, plotly figure out.

Long spans are thinned for display only (equity: last value per bucket, drawdown: the bucket's worst), so a
year of minutes never sends 500k points to the browser.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.viz.indicators import display_step, downsample_candles, price_axis_title

STRATEGY_COLOR = "#2e86de"
BENCH_COLOR = "#95a5a6"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _thin(s: pd.Series, step: int, how: str = "last") -> pd.Series:
    """Every `step` bars, one point at its own time: the bucket's last value ("last") or its lowest ("min")."""
    if step == 1:
        return s
    g = np.arange(len(s)) // step
    if how == "min":
        pos = pd.Series(s.to_numpy()).groupby(g).idxmin().to_numpy()
    else:
        pos = np.minimum(np.arange(g[-1] + 1) * step + step, len(s)) - 1
    return s.iloc[pos]


def equity_figure(result: Any, max_points: int = 4000, title: str = "Equity vs buy and hold") -> go.Figure:
    """Strategy and buy-and-hold equity (top) and their drawdowns (bottom), same costs, same span."""
    step = display_step(len(result.equity), max_points)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    eq, bh = _thin(result.equity, step), _thin(result.benchmark_equity, step)
    fig.add_trace(go.Scatter(x=eq.index, y=eq.to_numpy(), name="strategy", line=dict(color=STRATEGY_COLOR)),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=bh.index, y=bh.to_numpy(), name="buy & hold", line=dict(color=BENCH_COLOR)),
                  row=1, col=1)
    dd, bdd = _thin(result.drawdown(), step, "min"), _thin(result.benchmark_drawdown(), step, "min")
    fig.add_trace(go.Scatter(x=dd.index, y=dd.to_numpy() * 100, name="strategy drawdown", fill="tozeroy",
                             line=dict(color="#e74c3c", width=1)), row=2, col=1)
    fig.add_trace(go.Scatter(x=bdd.index, y=bdd.to_numpy() * 100, name="buy & hold drawdown",
                             line=dict(color=BENCH_COLOR, width=1, dash="dot")), row=2, col=1)
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_layout(height=520, title=title, hovermode="x unified", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def trades_figure(candles: pd.DataFrame, trades: pd.DataFrame, max_points: int = 5000,
                  max_trades: int = 1500, title: str = "Trades on the price") -> go.Figure:
    """The span's candlestick with entries (triangles) and exits (crosses; hover says why). When there are
    more than `max_trades` trades only the latest are marked (the title says so)."""
    c = downsample_candles(candles, max_points)
    fig = go.Figure(go.Candlestick(x=c.index, open=c["open"], high=c["high"], low=c["low"], close=c["close"],
                                   name="price", increasing_line_color="#27ae60", decreasing_line_color="#e74c3c"))
    shown = trades.iloc[-max_trades:] if len(trades) > max_trades else trades
    if len(trades) > max_trades:
        title += f" (latest {max_trades:,} of {len(trades):,} trades marked)"
    for side, symbol, color in (("long", "triangle-up", "#1e8449"), ("short", "triangle-down", "#c0392b")):
        t = shown[shown["side"] == side]
        if len(t):
            fig.add_trace(go.Scatter(
                x=t["entry_time"], y=t["entry_price"], mode="markers", name=f"{side} entry",
                marker=dict(symbol=symbol, size=10, color=color, line=dict(width=1, color="white")),
                customdata=np.stack([t["qty"], t["pnl"]], axis=1),
                hovertemplate=f"{side} entry %{{y:.4f}}<br>qty %{{customdata[0]:.6f}}<br>"
                              "trade pnl %{customdata[1]:,.2f}<extra></extra>"))
    if len(shown):
        fig.add_trace(go.Scatter(
            x=shown["exit_time"], y=shown["exit_price"], mode="markers", name="exit",
            marker=dict(symbol="x", size=8, color="#f39c12"), text=shown["exit_reason"],
            customdata=shown["pnl"],
            hovertemplate="exit %{y:.4f} (%{text})<br>pnl %{customdata:,.2f}<extra></extra>"))
    fig.update_layout(height=480, title=title, xaxis_rangeslider_visible=False,
                      margin=dict(l=10, r=10, t=40, b=10), yaxis_title=price_axis_title(candles))
    return fig


def monthly_heatmap(table: pd.DataFrame, title: str = "Monthly returns (%)") -> go.Figure:
    """Year x month table of returns (fractions) as a red-green heatmap with the values written in. Only the
    months that hold a return in some year get a column: a span of a few days shows its month, not eleven
    empty ones; a span of a year or more keeps all twelve."""
    table = table if table is not None else pd.DataFrame(columns=range(1, 13), dtype=float)
    if len(table):
        keep = [c for c in table.columns if table[c].notna().any()]
        table = table[keep] if keep else table
    names = [MONTHS[int(c) - 1] if str(c).isdigit() and 1 <= int(c) <= 12 else str(c) for c in table.columns]
    z = table.to_numpy(dtype=np.float64) * 100 if len(table) else np.zeros((0, len(names)))
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:+.1f}")(np.nan_to_num(z))) if z.size else z
    lim = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=names, y=[str(y) for y in table.index], colorscale="RdYlGn", zmid=0,
                               zmin=-lim, zmax=lim, text=text, texttemplate="%{text}",
                               hovertemplate="%{y} %{x}: %{z:+.2f} %<extra></extra>",
                               colorbar=dict(title="%")))
    fig.update_layout(height=max(220, 60 * len(table) + 120), title=title, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(type="category", autorange="reversed"), xaxis=dict(type="category"))
    return fig


def sweep_figure(sweep: pd.DataFrame, chosen: Optional[float] = None, in_sample: bool = True,
                 span_note: str = "") -> go.Figure:
    """Sharpe (left axis) and total return (right axis) against the signal threshold. `in_sample` says the
    sweep ran on the span whose result is reported (choosing from it is look-ahead); otherwise `span_note`
    names the separate span it ran on."""
    title = "Threshold sweep"
    if in_sample:
        title += " (in-sample: computed on the span it reports)"
    else:
        title += f" (computed on {span_note or 'another span'}, before the reported span)"
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=sweep["threshold"], y=sweep["sharpe"], name="Sharpe", mode="lines+markers",
                             line=dict(color=STRATEGY_COLOR), customdata=sweep["n_trades"],
                             hovertemplate="threshold %{x:.2f}: Sharpe %{y:.2f} (%{customdata} trades)"
                                           "<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=sweep["threshold"], y=sweep["total_return"] * 100, name="total return %",
                             mode="lines+markers", line=dict(color="#e67e22", dash="dot"),
                             hovertemplate="threshold %{x:.2f}: %{y:+.2f} %<extra></extra>"), secondary_y=True)
    if chosen is not None:
        fig.add_vline(x=chosen, line=dict(color="#7f8c8d", dash="dash"))
    fig.update_xaxes(title_text="threshold on P(up) / P(down)")
    fig.update_yaxes(title_text="Sharpe (annualised)", secondary_y=False)
    # Plotly's own round ticks on the right axis. "sync" (plotly.js 4's default for an overlaying axis)
    # puts them on the left axis' grid lines, which gives odd values (-68.8, -55.8, ...): ask for "auto".
    # The left axis keeps the grid, the right one draws none, so each tick label reads against its own axis.
    fig.update_yaxes(title_text="total return %", secondary_y=True, tickmode="auto", showgrid=False,
                     zeroline=False)
    fig.update_layout(height=380, title=title, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig
