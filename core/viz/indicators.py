"""Figures for the Indicators page: price with overlays and indicator panels, the split as bands, the
feature matrix and its correlations, labels over time and their balance. Pure: data in, plotly figure out.

Long series are downsampled for display only (OHLC aggregated per bucket, indicators computed at full
resolution first, then the bucket's last value), so a year of minutes never sends 500k points to a browser.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import ta
from plotly.subplots import make_subplots

from core.data.candles import bar_seconds, group_candles
from core.features.indicators import atr, ema, keltner, obv, rolling_vwap
from core.features.labels import class_balance

OVERLAYS = ["EMA 9", "EMA 21", "EMA 50", "EMA 200", "Bollinger", "Keltner", "VWAP"]
PANELS = ["Volume", "RSI", "MACD", "ATR", "OBV"]
SPLIT_COLORS = {"train": "rgba(46,134,222,0.13)", "purge": "rgba(120,120,120,0.22)",
                "val": "rgba(241,196,15,0.16)", "test": "rgba(231,76,60,0.14)"}
CLASS_COLORS = {"down": "#e74c3c", "flat": "#95a5a6", "up": "#27ae60"}
# Volume bars take the candle's colour, a little transparent so the split bands still show through.
VOLUME_UP, VOLUME_DOWN = "rgba(38,166,91,0.85)", "rgba(232,65,66,0.85)"
PANEL_TITLES = {"Volume": "volume", "RSI": "RSI 14", "MACD": "MACD 12/26/9", "ATR": "ATR 14", "OBV": "OBV"}


# Candles drawn at most on the Indicators chart: about one per 0.7 px of its width. 5,000 made a 2 MB figure
# (every trace repeats its x) that took the browser ~6 s to draw; narrow the range to see single bars.
PRICE_POINTS = 2000


def price_axis_title(candles: pd.DataFrame) -> str:
    """"price (USDT)" for a "BTC/USDT" or "BTC/USDT:USDT" market, "price" when the quote is unknown."""
    symbol = str(candles.attrs.get("symbol", "") or "")
    quote = symbol.split("/", 1)[1].split(":")[0].strip() if "/" in symbol else ""
    return f"price ({quote})" if quote else "price"


def volume_axis_title(candles: pd.DataFrame) -> str:
    """"volume (BTC)": ccxt volumes are in the base currency."""
    symbol = str(candles.attrs.get("symbol", "") or "")
    base = symbol.split("/", 1)[0].strip() if "/" in symbol else ""
    return f"volume ({base})" if base else "volume"


def display_step(n: int, max_points: int = 5000) -> int:
    """Bars per display bucket so at most `max_points` are drawn."""
    return max(1, int(np.ceil(n / max_points)))


def downsample_candles(candles: pd.DataFrame, max_points: int = 5000) -> pd.DataFrame:
    """OHLCV aggregated over consecutive buckets (first/max/min/last/sum), stamped at the bucket start
    (`core.data.candles.group_candles`, the same groups `_last_per_bucket` thins indicator series with)."""
    return group_candles(candles, display_step(len(candles), max_points))


def range_slider_bounds(candles: pd.DataFrame) -> tuple[datetime, datetime, timedelta]:
    """(first bar, last bar, step) for a date-range slider over the candles. The step is one bar (or what
    divides the span when the bars are irregular): Streamlit's default step for datetimes is one day, and on a
    span that is no whole number of days - two days of hourly bars end at 23:00 - the slider drew its right
    handle a day short, mid-track, while its label read the last bar."""
    lo, hi = candles.index[0].to_pydatetime(), candles.index[-1].to_pydatetime()
    span = int((hi - lo).total_seconds())
    bar = max(1, int(bar_seconds(candles, default=3600)))
    step = math.gcd(span, bar) if span > 0 else bar
    return lo, hi, timedelta(seconds=step)


def _last_per_bucket(s: pd.Series, step: int) -> pd.Series:
    if step == 1:
        return s
    g = np.arange(len(s)) // step
    out = s.groupby(g).last()
    out.index = s.index[::step][: len(out)]
    return out


def _overlay_series(c: pd.DataFrame, name: str) -> dict[str, pd.Series]:
    h, l, cl, v = c["high"], c["low"], c["close"], c["volume"]
    if name.startswith("EMA"):
        return {name: ema(cl, int(name.split()[1]))}
    if name == "Bollinger":
        bb = ta.volatility.BollingerBands(cl, 20, 2)
        return {"BB upper": bb.bollinger_hband(), "BB mid": bb.bollinger_mavg(), "BB lower": bb.bollinger_lband()}
    if name == "Keltner":
        lo, mid, hi = keltner(h, l, cl, 20, 10, 2.0)
        return {"KC upper": hi, "KC mid": mid, "KC lower": lo}
    if name == "VWAP":
        return {"VWAP 14": rolling_vwap(h, l, cl, v, 14)}
    raise ValueError(f"unknown overlay {name!r}")


def _panel_series(c: pd.DataFrame, name: str) -> dict[str, pd.Series]:
    h, l, cl, v = c["high"], c["low"], c["close"], c["volume"]
    if name == "RSI":
        return {"RSI 14": ta.momentum.RSIIndicator(cl, 14).rsi()}
    if name == "MACD":
        m = ta.trend.MACD(cl, 26, 12, 9)
        return {"MACD": m.macd(), "signal": m.macd_signal(), "hist": m.macd_diff()}
    if name == "ATR":
        return {"ATR 14": atr(h, l, cl, 14)}
    if name == "OBV":
        return {"OBV": obv(cl, v)}
    if name == "Volume":
        return {"volume": v}
    raise ValueError(f"unknown panel {name!r}")


def price_figure(candles: pd.DataFrame, overlays: Sequence[str] = (), panels: Sequence[str] = ("Volume",),
                 bands: Sequence[tuple[str, pd.Timestamp, pd.Timestamp]] = (), max_points: int = PRICE_POINTS,
                 title: str = "", start: Optional[pd.Timestamp] = None,
                 end: Optional[pd.Timestamp] = None) -> go.Figure:
    """Candlesticks with overlays, indicator panels below on a shared time axis, split bands behind.

    Indicators are computed on the whole history and then cut to [start, end], so a zoomed view shows the
    same values as the full one (an EMA 200 is not re-seeded at the zoom's first bar)."""
    keep = np.ones(len(candles), dtype=bool)
    if start is not None:
        keep &= candles.index >= start
    if end is not None:
        keep &= candles.index <= end
    window = candles.loc[keep]
    step = display_step(len(window), max_points)
    shown = downsample_candles(window, max_points)
    rows = 1 + len(panels)
    heights = [0.55] + [0.45 / max(1, len(panels))] * len(panels) if panels else [1.0]
    # Each panel is named by its y axis title, not a subplot title: a title centred above a panel sat on
    # the bottom of the panel above it.
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.025, row_heights=heights)
    fig.update_yaxes(title_text=price_axis_title(candles), row=1, col=1)
    fig.add_trace(go.Candlestick(x=shown.index, open=shown["open"], high=shown["high"], low=shown["low"],
                                 close=shown["close"], name="price"), row=1, col=1)
    for ov in overlays:
        for name, s in _overlay_series(candles, ov).items():
            s = _last_per_bucket(s.loc[keep], step)
            dash = "dot" if ("upper" in name or "lower" in name) else None
            fig.add_trace(go.Scatter(x=s.index, y=s.to_numpy(), name=name, mode="lines",
                                     line=dict(width=1, dash=dash)), row=1, col=1)
    for i, panel in enumerate(panels, start=2):
        for name, s in _panel_series(candles, panel).items():
            s = s.loc[keep]
            if panel == "Volume":
                # thousands of sub-pixel bars: no gaps and no outlines, or they all but vanish
                up = (shown["close"] >= shown["open"]).to_numpy()
                fig.add_trace(go.Bar(x=shown.index, y=shown["volume"], name="volume", marker_line_width=0,
                                     marker_color=np.where(up, VOLUME_UP, VOLUME_DOWN)), row=i, col=1)
            elif name == "hist":
                s = _last_per_bucket(s, step)
                fig.add_trace(go.Bar(x=s.index, y=s.to_numpy(), name="MACD hist",
                                     marker_color=np.where(s.to_numpy() >= 0, "#27ae60", "#e74c3c")), row=i, col=1)
            else:
                s = _last_per_bucket(s, step)
                fig.add_trace(go.Scatter(x=s.index, y=s.to_numpy(), name=name, mode="lines",
                                         line=dict(width=1)), row=i, col=1)
        fig.update_yaxes(title_text=volume_axis_title(candles) if panel == "Volume" else PANEL_TITLES[panel],
                         row=i, col=1)
        if panel == "RSI":
            for level in (30, 70):
                fig.add_hline(y=level, line_dash="dot", line_color="gray", row=i, col=1)
    for name, start, end in bands:
        # One rectangle over the whole height: the panels share the time axis, so it spans all of them.
        fig.add_shape(type="rect", xref="x", yref="paper", x0=start, x1=end, y0=0, y1=1, name=name,
                      fillcolor=SPLIT_COLORS.get(name, "rgba(0,0,0,0.1)"), line_width=0, layer="below")
        if name != "purge":  # purges are thin; their labels would overlap the next segment's
            fig.add_annotation(x=start, y=1.0, yref="paper", text=name, showarrow=False, xanchor="left",
                               font=dict(size=10))
    fig.update_layout(height=300 + 150 * len(panels), xaxis_rangeslider_visible=False, title=title,
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=1.04),
                      hovermode="x unified", bargap=0)
    if step > 1:
        fig.add_annotation(text=f"display: {step} bars per point", xref="paper", yref="paper", x=1, y=0,
                           showarrow=False, xanchor="right", yanchor="bottom", font=dict(size=10, color="gray"))
    return fig


def split_bands(timestamps: pd.DatetimeIndex, splits: dict[str, np.ndarray], window: int,
                horizon: int) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """(name, start, end) spans of sample *ends* per segment, with the purge between them: the ends
    dropped because their window or label would reach into the neighbouring segment. The first band
    starts where its first window starts; the last ends where its last label ends."""
    ts = pd.DatetimeIndex(timestamps)
    last = len(ts) - 1
    spans = [(k, int(splits[k][0]), int(splits[k][-1])) for k in ("train", "val", "test")
             if k in splits and len(splits[k])]
    out: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []
    for i, (name, a, b) in enumerate(spans):
        if i == 0:
            a = max(0, a - window + 1)
        if i == len(spans) - 1:
            b = min(last, b + horizon)
        if i and a > spans[i - 1][2] + 1:
            out.append(("purge", ts[spans[i - 1][2]], ts[a]))
        out.append((name, ts[a], ts[b]))
    return out


def feature_heatmap(features: pd.DataFrame | np.ndarray, timestamps: Sequence | None = None,
                    names: Sequence[str] | None = None, max_points: int = 1500, clip: float = 4.0) -> go.Figure:
    """Channels x time of (scaled) features, bucket means for display, clipped at +-clip sigma."""
    if isinstance(features, pd.DataFrame):
        names = list(features.columns)
        timestamps = features.index
        arr = features.to_numpy(np.float64)
    else:
        arr = np.asarray(features, dtype=np.float64)
    step = display_step(len(arr), max_points)
    n = len(arr) // step * step if step > 1 else len(arr)
    shown = arr[:n].reshape(-1, step, arr.shape[1]).mean(axis=1) if step > 1 else arr
    x = pd.DatetimeIndex(timestamps)[:n:step] if timestamps is not None else np.arange(0, n, step)
    # float32 is finer than the colour scale shows, and halves what the browser is sent
    z = np.clip(shown.T, -clip, clip).astype(np.float32)
    fig = go.Figure(go.Heatmap(z=z, x=x, y=list(names or range(arr.shape[1])),
                               colorscale="RdBu_r", zmid=0, colorbar=dict(title="z")))
    fig.update_layout(height=max(300, 22 * arr.shape[1] + 120), title="Feature matrix (z-scored, train scaler)",
                      margin=dict(l=10, r=10, t=40, b=10), yaxis=dict(autorange="reversed"))
    return fig


def correlation_heatmap(features: pd.DataFrame) -> go.Figure:
    corr = features.corr().to_numpy()
    names = list(features.columns)
    fig = go.Figure(go.Heatmap(z=corr, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu_r",
                               text=np.round(corr, 2), texttemplate="%{text}", textfont=dict(size=8)))
    fig.update_layout(height=max(350, 24 * len(names) + 150), title="Feature correlation",
                      margin=dict(l=10, r=10, t=40, b=10), yaxis=dict(autorange="reversed"))
    return fig


def labels_figure(timestamps: Sequence, close: Sequence[float], y: np.ndarray, class_names: Sequence[str],
                  max_points: int = PRICE_POINTS) -> go.Figure:
    """The close coloured by label class (undefined labels left out), downsampled for display."""
    ts = pd.DatetimeIndex(timestamps)
    close = np.asarray(close, dtype=np.float64)
    y = np.asarray(y)
    step = display_step(len(ts), max_points)
    idx = np.arange(0, len(ts), step)
    fig = go.Figure(go.Scatter(x=ts[idx], y=close[idx], mode="lines", name="close",
                               line=dict(color="rgba(80,80,80,0.5)", width=1)))
    for k, name in enumerate(class_names):
        sel = idx[y[idx] == k]
        fig.add_trace(go.Scattergl(x=ts[sel], y=close[sel], mode="markers", name=name,
                                   marker=dict(size=4, color=CLASS_COLORS.get(name))))
    fig.update_layout(height=350, title="Labels over time", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h"))
    return fig


def class_balance_figure(y_by_split: dict[str, np.ndarray], class_names: Sequence[str]) -> go.Figure:
    """Share of each class in each split (counts on hover)."""
    fig = go.Figure()
    for k, name in enumerate(class_names):
        shares, counts = [], []
        for split, y in y_by_split.items():
            bal = class_balance(y, list(class_names))
            shares.append(float(bal["share"].iloc[k]))
            counts.append(int(bal["count"].iloc[k]))
        fig.add_trace(go.Bar(x=list(y_by_split), y=shares, name=name, customdata=counts,
                             marker_color=CLASS_COLORS.get(name),
                             hovertemplate="%{x}: %{y:.1%} (%{customdata} samples)<extra>" + name + "</extra>"))
    fig.update_layout(barmode="stack", height=320, title="Class balance", yaxis=dict(tickformat=".0%"),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
