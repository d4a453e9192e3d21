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
    fig.update_yaxes(title_text="equity (USDT)", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    cap = getattr(getattr(result, "config", None), "initial_capital", None)
    if cap:
        title = f"{title} (both from {cap:,.0f} USDT)"  # short: the legend shares the title line
    fig.update_layout(height=520, title=title, hovermode="x unified", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


FOCUS_TRADES = 30     # the trades chart opens on the latest this many trades (the rest: zoom out, range slider)
MANY_MARKERS = 60     # above this many trades marked, the markers are drawn smaller and lighter


def _price(v: float) -> str:
    """A price with the decimals its size needs: 23,456.78, 1.2346, 0.000123."""
    a = abs(v)
    return f"{v:,.2f}" if a >= 100 else f"{v:,.4f}" if a >= 1 else f"{v:.6g}"


def _trade_hover(t: pd.DataFrame, numbers: np.ndarray) -> list[str]:
    """One hover text per trade: its number (as in the Trades table, 1 = first), side, entry and exit (time
    and price), why it closed, P&L and how long it was held."""
    out = []
    for n, side, et, ep, xt, xp, why, pnl, ret, held in zip(
            numbers, t["side"], t["entry_time"], t["entry_price"], t["exit_time"], t["exit_price"],
            t["exit_reason"], t["pnl"], t["return"] if "return" in t else np.full(len(t), np.nan),
            t["hours_held"] if "hours_held" in t else np.full(len(t), np.nan)):
        pct = f" ({ret:+.2%})" if np.isfinite(ret) else ""
        hrs = f", held {held:,.1f} h" if np.isfinite(held) else ""
        out.append(f"<b>trade {n} · {side}</b>{hrs}<br>"
                   f"entry {pd.Timestamp(et):%Y-%m-%d %H:%M} at {_price(ep)}<br>"
                   f"exit {pd.Timestamp(xt):%Y-%m-%d %H:%M} at {_price(xp)} ({why})<br>"
                   f"P&L {pnl:+,.2f}{pct}")
    return out


def trades_window(candles: pd.DataFrame, trades: pd.DataFrame, last: int = FOCUS_TRADES
                  ) -> Optional[tuple[pd.Timestamp, pd.Timestamp]]:
    """The time span the trades chart opens on: the latest `last` trades with a little room either side, or
    None when there are no more trades than that (the whole span is shown)."""
    if len(trades) <= last or not len(candles):
        return None
    t = trades.iloc[-last:]
    lo, hi = pd.Timestamp(t["entry_time"].min()), pd.Timestamp(t["exit_time"].max())
    pad = max((hi - lo) * 0.03, pd.Timedelta(candles.index[1] - candles.index[0]) * 2 if len(candles) > 1
              else pd.Timedelta(0))
    return max(lo - pad, candles.index[0]), min(hi + pad, candles.index[-1])


def _candle_parts(candles: pd.DataFrame, window: Optional[tuple[pd.Timestamp, pd.Timestamp]],
                  max_points: int) -> list[pd.DataFrame]:
    """The candles to draw, in pieces: the whole span thinned to `max_points`, or, when the
    chart opens on a window, the window at full detail (thinned only beyond `max_points`) and the rest
    thinned apart from it, so the zoomed trades sit on their own bars, not on display buckets."""
    step = display_step(len(candles), max_points)
    if window is None or step == 1:
        return [downsample_candles(candles, max_points)]
    lo, hi = window
    inside = (candles.index >= lo) & (candles.index <= hi)
    parts = (candles.loc[candles.index < lo], candles.loc[inside], candles.loc[candles.index > hi])
    return [downsample_candles(p, max_points) for p in parts if len(p)]


def trades_figure(candles: pd.DataFrame, trades: pd.DataFrame, max_points: int = 5000,
                  max_trades: int = 1500, title: str = "Trades on the price",
                  focus_trades: int = FOCUS_TRADES) -> go.Figure:
    """The span's candlestick with entries (triangles), exits (crosses) and a thin line from each entry to
    its exit; hovering any of them names the trade (number, side, entry and exit, exit reason, P&L). When there
    are more than `max_trades` trades only the latest are marked (the title says so); above MANY_MARKERS the
    markers are smaller and lighter so the price stays readable. With more than `focus_trades` trades the
    chart opens zoomed on the latest `focus_trades` (price axis fitted to them); the range slider under it
    and a double-click reach the whole span."""
    shown = trades.iloc[-max_trades:] if len(trades) > max_trades else trades
    if len(trades) > max_trades:
        title += f" (latest {max_trades:,} of {len(trades):,} trades marked)"
    window = trades_window(candles, shown, focus_trades)
    fig = go.Figure()
    for part in _candle_parts(candles, window, max_points):
        fig.add_trace(go.Candlestick(x=part.index, open=part["open"], high=part["high"], low=part["low"],
                                     close=part["close"], name="price", legendgroup="price",
                                     showlegend=not fig.data, increasing_line_color="#27ae60",
                                     decreasing_line_color="#e74c3c"))
    numbers = np.arange(len(trades) - len(shown), len(trades)) + 1
    many = len(shown) > MANY_MARKERS
    entry_size, exit_size, opacity = (7, 6, 0.75) if many else (10, 8, 1.0)
    if len(shown):
        # entry -> exit, one segment per trade (None breaks the line between trades): pairs them at a glance
        xs = np.empty(3 * len(shown), dtype=object)
        ys = np.full(3 * len(shown), np.nan)
        xs[0::3], xs[1::3], xs[2::3] = list(shown["entry_time"]), list(shown["exit_time"]), None
        ys[0::3], ys[1::3] = shown["entry_price"].to_numpy(float), shown["exit_price"].to_numpy(float)
        fig.add_trace(go.Scatter(x=list(xs), y=ys, mode="lines", name="entry to exit", hoverinfo="skip",
                                 line=dict(color="#7f8c8d", width=1, dash="dot"), opacity=0.8,
                                 connectgaps=False))
    hover = np.array(_trade_hover(shown, numbers), dtype=object)
    for side, symbol, color in (("long", "triangle-up", "#1e8449"), ("short", "triangle-down", "#c0392b")):
        on = (shown["side"] == side).to_numpy()
        t = shown[on]
        if len(t):
            fig.add_trace(go.Scatter(
                x=t["entry_time"], y=t["entry_price"], mode="markers", name=f"{side} entry",
                marker=dict(symbol=symbol, size=entry_size, color=color, opacity=opacity,
                            line=dict(width=1, color="white")),
                text=list(hover[on]), hovertemplate="%{text}<extra>entry</extra>"))
    if len(shown):
        fig.add_trace(go.Scatter(
            x=shown["exit_time"], y=shown["exit_price"], mode="markers", name="exit",
            marker=dict(symbol="x", size=exit_size, color="#f39c12", opacity=opacity),
            text=list(hover), hovertemplate="%{text}<extra>exit</extra>"))
    fig.update_layout(height=520, title=title, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis_title=price_axis_title(candles), hoverlabel=dict(align="left"))
    fig.update_xaxes(rangeslider=dict(visible=True, thickness=0.08))
    if window is not None:
        lo, hi = window
        fig.update_xaxes(range=[lo, hi])
        inside = candles.loc[(candles.index >= lo) & (candles.index <= hi)]
        if len(inside):  # plotly fits the price axis to the whole span, not the zoomed part: fit it here
            ymin, ymax = float(inside["low"].min()), float(inside["high"].max())
            pad = (ymax - ymin) * 0.05 or abs(ymax) * 0.01 or 1.0
            fig.update_yaxes(range=[ymin - pad, ymax + pad])
        fig.update_layout(title=dict(text=title, subtitle=dict(
            text=f"showing the latest {focus_trades} of {len(shown):,} trades: drag the range slider "
                 "below or double-click the chart for the whole span")))
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
