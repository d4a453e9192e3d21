"""Plotly figures for the Data page: candles with volume, quality reports, order-book depth and heatmap.

Pure functions: data in, figure (or small table) out. A browser stays fluid with a few thousand SVG
candlesticks, not with 100,000+, so `candles_for_display` aggregates long histories to a coarser
timeframe in `core` before anything is sent, and the figure title says so (the user must never mistake
4h display candles for the stored 1m ones).
"""
from __future__ import annotations

import re
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data.candles import bar_seconds, bucket_candles, missing_between

# Display buckets, finest first. The standard exchange timeframes plus a few coarser ones so that even
# decades of 1m data fit the budget. Kept here (not imported from core.data.candles) because display
# aggregation may go coarser than anything the store holds.
DISPLAY_BUCKETS: dict[str, int] = {
    "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
    "6h": 21600, "12h": 43200, "1d": 86400, "3d": 3 * 86400, "1w": 7 * 86400, "2w": 14 * 86400,
}
MAX_DISPLAY_CANDLES = 3000

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
_OHLCV = ["open", "high", "low", "close", "volume"]


def _bar_seconds(df: pd.DataFrame) -> int:
    """The stored bar length (`core.data.candles.bar_seconds`: attrs when known, else the most common
    spacing); a table too short to tell is drawn as 1m."""
    return bar_seconds(df, default=60)


def _index_ns(df: pd.DataFrame) -> np.ndarray:
    # pandas 3 may hold the index at s/ms/us resolution: normalise to ns for arithmetic.
    return df.index.as_unit("ns").asi8


def display_timeframe(df: pd.DataFrame, max_candles: int = MAX_DISPLAY_CANDLES) -> str:
    """The finest display bucket that keeps the number of candles within `max_candles`."""
    if max_candles < 1:
        raise ValueError("max_candles must be at least 1")
    base = _bar_seconds(df)
    base_name = next((k for k, v in DISPLAY_BUCKETS.items() if v == base), None)
    if len(df) <= max_candles:
        return base_name or f"{base}s"
    ns = _index_ns(df)
    span_s = (int(ns[-1]) - int(ns[0])) / 1e9 + base
    for name, secs in DISPLAY_BUCKETS.items():
        # A bucket must be a whole multiple of the stored bar, or candles would straddle buckets.
        if secs < base or secs % base:
            continue
        if span_s / secs <= max_candles:
            return name
    return list(DISPLAY_BUCKETS)[-1]


def aggregate_candles(df: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """OHLCV aggregation into `bucket` candles (first open, max high, min low, last close, summed volume).

    Buckets are aligned to the Unix epoch (so 4h candles start at 00:00, 04:00, ... UTC like an
    exchange's) and empty buckets are dropped: gaps stay gaps, nothing is invented.
    """
    if bucket not in DISPLAY_BUCKETS:
        raise ValueError(f"unknown display bucket {bucket!r}; choose one of {', '.join(DISPLAY_BUCKETS)}")
    return bucket_candles(df, DISPLAY_BUCKETS[bucket], bucket)


def candles_for_display(
    df: pd.DataFrame, max_candles: int = MAX_DISPLAY_CANDLES
) -> tuple[pd.DataFrame, Optional[str]]:
    """Candles ready to draw, and the bucket they were aggregated to (None when shown as stored)."""
    if len(df) <= max_candles:
        return df, None
    bucket = display_timeframe(df, max_candles)
    return aggregate_candles(df, bucket), bucket


def _is_synthetic(df: pd.DataFrame) -> bool:
    return str(df.attrs.get("source", "")).lower().startswith("synthetic")


def candlestick_figure(
    df: pd.DataFrame,
    title: Optional[str] = None,
    max_candles: int = MAX_DISPLAY_CANDLES,
    height: int = 560,
) -> go.Figure:
    """Candlesticks over a volume panel. Long histories are aggregated (and the title says to what);
    a synthetic market is labelled as such."""
    missing = [c for c in _OHLCV if c not in df.columns]
    if missing:
        raise ValueError(f"candles need columns {', '.join(missing)}")
    shown, bucket = candles_for_display(df, max_candles)
    symbol = df.attrs.get("symbol", "")
    tf = df.attrs.get("timeframe", "")
    parts = [title or " ".join(str(p) for p in (symbol, tf) if p) or "Candles"]
    if _is_synthetic(df):
        parts.append("synthetic (simulated, not real trades)")
    if bucket is not None:
        parts.append(f"{len(df):,} bars shown as {len(shown):,} {bucket} candles")
    else:
        parts.append(f"{len(df):,} bars")

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03)
    x = shown.index
    fig.add_trace(
        go.Candlestick(
            x=x, open=shown["open"], high=shown["high"], low=shown["low"], close=shown["close"],
            name="price", increasing_line_color=UP_COLOR, decreasing_line_color=DOWN_COLOR,
            showlegend=False,
        ),
        row=1, col=1,
    )
    up = (shown["close"] >= shown["open"]).to_numpy()
    fig.add_trace(
        go.Bar(x=x, y=shown["volume"], name="volume", marker_color=np.where(up, UP_COLOR, DOWN_COLOR),
               marker_line_width=0, showlegend=False),
        row=2, col=1,
    )
    fig.update_layout(
        # what it is on the first line, how it is drawn below (on one line a narrow window cut it mid-number)
        title={"text": f"{parts[0]}<br><sup>{' · '.join(parts[1:])}</sup>", "font": {"size": 15}},
        height=height, margin={"l": 10, "r": 10, "t": 60, "b": 10},
        xaxis_rangeslider_visible=False, bargap=0, hovermode="x",
    )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    return fig


# report fields whose bare name reads wrong: the import's `sorted` is whether it had to re-sort the rows
REPORT_LABELS = {"sorted": "re-sorted by time"}


def report_rows(report: Any) -> list[tuple[str, Any]]:
    """A quality or import report (dataclass, mapping or object) as (label, value) rows for a table.

    Reports come from core.data; this only flattens them for display, it decides nothing."""
    if report is None:
        return []
    if is_dataclass(report) and not isinstance(report, type):
        items = asdict(report)
    elif isinstance(report, Mapping):
        items = dict(report)
    else:
        items = {k: v for k, v in vars(report).items() if not k.startswith("_")}
    rows: list[tuple[str, Any]] = []
    for key, value in items.items():
        label = REPORT_LABELS.get(str(key), str(key).replace("_", " "))
        if isinstance(value, (list, tuple)):
            value = _summarise_list(list(value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) if value else "none"
        elif isinstance(value, float) and str(key).endswith("_days"):
            label = label[: -len(" days")] + " (days)"
            value = round(value, 1)
        else:
            value = _cell(value)
        rows.append((label, value))
    return rows


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def format_time(value: Any) -> Any:
    """A timestamp (or an ISO date-time string) as 'YYYY-MM-DD HH:MM UTC'; anything else unchanged."""
    if isinstance(value, str) and not _ISO_TIME.match(value):
        return value
    if not isinstance(value, (str, pd.Timestamp, datetime)):
        return value
    ts = _ts(value)
    return value if ts is None else ts.strftime("%Y-%m-%d %H:%M UTC")


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not isinstance(value, bool):
        return round(value, 6)
    return format_time(value)


def _summarise_list(items: list[Any], show: int = 3) -> str:
    """A list as one readable cell: gap stretches as 'start to end (n bars)', anything else joined."""
    if not items:
        return "none"

    def one(item: Any) -> str:
        if isinstance(item, Mapping) and {"start", "end", "missing"} <= set(item):
            n = item["missing"]
            return f"{format_time(item['start'])} to {format_time(item['end'])} ({n} bar{'' if n == 1 else 's'})"
        if isinstance(item, Mapping):
            return ", ".join(f"{k}: {_cell(v)}" for k, v in item.items())
        return str(_cell(item))

    text = "; ".join(one(i) for i in items[:show])
    return text + (f"; ... ({len(items)} in all)" if len(items) > show else "")


def report_table(report: Any) -> pd.DataFrame:
    """`report_rows` as a two-column DataFrame (values as text so mixed types display cleanly)."""
    rows = report_rows(report)
    return pd.DataFrame({"item": [r[0] for r in rows], "value": [str(r[1]) for r in rows]})


def datasets_table(infos: list[Any]) -> pd.DataFrame:
    """The stored datasets (DatasetInfo-like objects) as a table; synthetic ones say so."""
    rows = []
    for i in infos:
        rows.append({
            "dataset": i.id,
            "source": str(getattr(i, "source", "")),  # "synthetic..." ids and sources label themselves
            "symbol": getattr(i, "symbol", ""),
            "timeframe": getattr(i, "timeframe", ""),
            "rows": int(getattr(i, "rows", 0) or 0),
            "start": _ts(getattr(i, "start", None)),
            "end": _ts(getattr(i, "end", None)),
            "fetched at": _ts(getattr(i, "fetched_at", None)),
        })
    cols = ["dataset", "source", "symbol", "timeframe", "rows", "start", "end", "fetched at"]
    return pd.DataFrame(rows, columns=cols)


def _ts(value: Any) -> Optional[pd.Timestamp]:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def gaps_figure(df: pd.DataFrame, height: int = 220) -> go.Figure:
    """Where the history has holes: one marker per missing stretch, sized by how many bars it lacks."""
    base = _bar_seconds(df)
    ns = _index_ns(df)
    fig = go.Figure()
    n = 0
    if len(ns) > 1:
        lacking = missing_between(ns, base * 10**9)  # as the quality report counts them
        holes = np.nonzero(lacking > 0)[0]
        n = len(holes)
    if n:
        missing = lacking[holes]
        fig.add_trace(go.Scatter(
            x=df.index[holes], y=missing, mode="markers", name="missing bars",
            marker={"size": np.clip(np.log1p(missing) * 4, 5, 20), "color": DOWN_COLOR},
        ))
        fig.update_layout(yaxis_title="bars missing")
    else:  # an empty scatter would draw a meaningless -1..6 axis: say there is nothing to show instead
        fig.add_annotation(text="no gaps: every bar is there", xref="paper", yref="paper", x=0.5, y=0.5,
                           xanchor="center", yanchor="middle", showarrow=False, font={"size": 16})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    fig.update_layout(
        title=f"Gaps: {n} stretch{'es' if n != 1 else ''} of missing bars",
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


# --- order books -----------------------------------------------------------------------------------

_BOOK_COLUMNS = ["timestamp", "side", "level", "price", "size"]


def _check_book(book: pd.DataFrame) -> pd.DataFrame:
    book = book.reset_index() if "timestamp" not in book.columns else book
    missing = [c for c in _BOOK_COLUMNS if c not in book.columns]
    if missing:
        raise ValueError(f"order-book snapshots need columns {', '.join(missing)}")
    return book


def book_timestamps(book: pd.DataFrame) -> list[pd.Timestamp]:
    """The snapshot times in a long order-book table, in order."""
    return sorted(pd.unique(_check_book(book)["timestamp"]))


def snapshot_labels(times: list[Any]) -> list[str]:
    """Each snapshot time as 'YYYY-MM-DD HH:MM UTC' (the snapshot picker's options), with seconds
    ('HH:MM:SS UTC') when two snapshots fall in one minute (a recording every few seconds): one label each."""
    ts = [pd.Timestamp(t) for t in times]
    ts = [t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC") for t in ts]
    labels = [t.strftime("%Y-%m-%d %H:%M UTC") for t in ts]
    if len(set(labels)) < len(labels):
        labels = [t.strftime("%Y-%m-%d %H:%M:%S UTC") for t in ts]
    if len(set(labels)) < len(labels):
        labels = [t.strftime("%Y-%m-%d %H:%M:%S.%f UTC") for t in ts]
    return labels


def _is_bid(side: pd.Series) -> pd.Series:
    return side.astype(str).str.lower().str.startswith("b")


def depth_figure(book: pd.DataFrame, timestamp: Any = None, title: str = "", height: int = 380) -> go.Figure:
    """The depth chart of one snapshot: cumulative size of bids (left) and asks (right) by price."""
    book = _check_book(book)
    times = book_timestamps(book)
    if not times:
        raise ValueError("no order-book snapshots to draw")
    ts = times[-1] if timestamp is None else pd.Timestamp(timestamp)
    snap = book[book["timestamp"] == ts]
    if snap.empty:
        raise ValueError(f"no snapshot at {ts}")
    bids = snap[_is_bid(snap["side"])].sort_values("price", ascending=False)
    asks = snap[~_is_bid(snap["side"])].sort_values("price")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=bids["price"], y=bids["size"].cumsum(), name="bids", mode="lines",
                             line={"shape": "hv", "color": UP_COLOR}, fill="tozeroy"))
    fig.add_trace(go.Scatter(x=asks["price"], y=asks["size"].cumsum(), name="asks", mode="lines",
                             line={"shape": "hv", "color": DOWN_COLOR}, fill="tozeroy"))
    label = title or "Order-book depth"
    if len(bids) and len(asks):
        mid = (bids["price"].iloc[0] + asks["price"].iloc[0]) / 2
        bv, av = bids["size"].sum(), asks["size"].sum()
        imb = (bv - av) / (bv + av) if bv + av > 0 else 0.0
        fig.add_vline(x=mid, line_dash="dot", line_color="gray")
        label += (f" · {pd.Timestamp(ts):%Y-%m-%d %H:%M:%S} UTC"
                  f"<br><sup>mid {mid:,.2f} · imbalance (bids - asks) / total {imb:+.2f}</sup>")
    fig.update_layout(title=label, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      xaxis_title="price", yaxis_title="cumulative size", hovermode="x")
    return fig


def orderbook_heatmap_figure(
    book: pd.DataFrame, price_bins: int = 60, max_snapshots: int = 400, title: str = "", height: int = 420
) -> go.Figure:
    """Resting size over time and distance from the mid: x = snapshot time, y = (price / mid - 1) in
    basis points (bucketed), colour = log(1 + size). Relative to the mid, so the book's shape and its
    bid/ask lean stay visible while the price moves. Long recordings are thinned to `max_snapshots`."""
    book = _check_book(book)
    times = np.array(book_timestamps(book))
    if len(times) == 0:
        raise ValueError("no order-book snapshots to draw")
    if len(times) > max_snapshots:
        keep = times[np.linspace(0, len(times) - 1, max_snapshots).round().astype(int)]
        book = book[book["timestamp"].isin(keep)]
        times = np.array(sorted(pd.unique(book["timestamp"])))
    bid = _is_bid(book["side"])
    best_bid = book[bid].groupby("timestamp")["price"].max()
    best_ask = book[~bid].groupby("timestamp")["price"].min()
    mid = ((best_bid + best_ask) / 2).reindex(times)
    mid = mid.fillna(best_bid.reindex(times)).fillna(best_ask.reindex(times))  # one-sided snapshots
    rel = ((book["price"].to_numpy(float) / mid.reindex(book["timestamp"]).to_numpy(float)) - 1) * 1e4
    lo, hi = float(np.nanmin(rel)), float(np.nanmax(rel))
    if hi <= lo:
        hi = lo + 1e-6
    # each level goes to the nearest of `price_bins` rows spread from the farthest bid to the farthest ask
    # (those two are rows' centres): a level on a bin edge no longer falls into the bin above (in a book whose
    # bids and asks reach equally far, levels the same distance from mid land the same distance from 0)
    centers = np.linspace(lo, hi, price_bins)
    width = (hi - lo) / max(price_bins - 1, 1)
    col = pd.Index(times).get_indexer(book["timestamp"])
    row = np.clip(np.rint((rel - lo) / width), 0, price_bins - 1).astype(int)
    z = np.zeros((price_bins, len(times)))
    np.add.at(z, (row, col), book["size"].to_numpy(dtype=float))
    fig = go.Figure(go.Heatmap(
        x=pd.DatetimeIndex(times), y=centers, z=np.log1p(z), colorscale="Viridis",
        colorbar={"title": "log(1+size)"},
        hovertemplate="%{x}<br>%{y:+.1f} bps from mid<br>log(1+size) %{z:.2f}<extra></extra>",
    ))
    fig.add_hline(y=0, line_dash="dot", line_color="white", opacity=0.5)
    fig.update_layout(title=title or f"Order-book heatmap · {len(times)} snapshots", height=height,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      yaxis_title="distance from mid (bps): asks above, bids below")
    return fig
