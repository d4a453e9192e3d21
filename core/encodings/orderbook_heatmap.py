"""Order-book depth heatmaps: time x price levels, from a long table of book snapshots.

Input layout (the one `core.data.orderbook` stores): one row per (snapshot, side, level) with columns
`timestamp` (UTC), `side` ("bid"/"ask"), `level` (1 = best), `price`, `size`.

Each snapshot becomes one row of the image: the resting size summed into `n_bins` equal price bins that
span +-`pct_range` around an anchor price - the snapshot's own mid (stationary, what a model reads) or a
fixed price grid (what a person reads, with the price path moving through it). The fixed grid is anchored
at the first snapshot's mid but covers every shown snapshot: from min(mid) * (1 - pct_range) to
max(mid) * (1 + pct_range), with bins about as wide as `n_bins` gives around the first mid, so it has more
than `n_bins` bins when the price moved (at most `MAX_FIXED_BINS`; wider bins beyond that).
`align_to_candles` then picks, for every candle, the last snapshot at or before that candle's close, so a
sample ending at bar t only sees the book as it was when bar t closed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from core.errors import UserError

BOOK_COLUMNS = ("timestamp", "side", "level", "price", "size")
MAX_FIXED_BINS = 500  # a fixed-price grid over a long, trending span never grows past this many bins


@dataclass(frozen=True)
class HeatmapConfig:
    n_bins: int = 100
    pct_range: float = 0.02  # bins span mid * (1 -+ pct_range)
    anchor: Literal["mid", "first"] = "mid"
    log_size: bool = True  # log1p of the size: a few huge walls otherwise flatten everything else


@dataclass
class OrderBookHeatmap:
    """`image[t, l]`: size resting in price bin l at snapshot t. Bin l covers relative prices
    `rel_edges[l] .. rel_edges[l+1]` around `anchor_price[t]`."""

    image: np.ndarray  # (T, L) float32
    timestamps: pd.DatetimeIndex  # (T,)
    mid: np.ndarray  # (T,) mid price per snapshot
    anchor_price: np.ndarray  # (T,)
    rel_edges: np.ndarray  # (L+1,)
    config: HeatmapConfig = field(default_factory=HeatmapConfig)

    @property
    def rel_centers(self) -> np.ndarray:
        return 0.5 * (self.rel_edges[1:] + self.rel_edges[:-1])


def validate_book(book: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(book, pd.DataFrame):
        raise UserError("order-book snapshots must be a table (DataFrame)")
    missing = [c for c in BOOK_COLUMNS if c not in book.columns]
    if missing:
        raise UserError(f"the order-book table has no {', '.join(repr(m) for m in missing)} column")
    if book.empty:
        raise UserError("the order-book table is empty")
    sides = set(pd.unique(book["side"].astype(str).str.lower()))
    if not sides <= {"bid", "ask"}:
        raise UserError(f"order-book side must be 'bid' or 'ask', found {sorted(sides - {'bid', 'ask'})}")
    return book


def wide_book_to_long(df: pd.DataFrame, time_column: str = "timestamp_ms") -> pd.DataFrame:
    """Convert a wide top-N book table (`bid_px_i, bid_sz_i, ask_px_i, ask_sz_i`, as in the recorded
    Binance/Bybit files) into the long snapshot layout. Empty levels (NaN or size 0) are dropped."""
    if time_column not in df.columns:
        raise UserError(f"the book file has no {time_column!r} column")
    parts = []
    for side in ("bid", "ask"):
        levels = sorted(int(c.rsplit("_", 1)[1]) for c in df.columns if c.startswith(f"{side}_px_"))
        if not levels:
            raise UserError(f"the book file has no {side}_px_1 .. columns")
        px = df[[f"{side}_px_{i}" for i in levels]].to_numpy(dtype=np.float64)
        sz = df[[f"{side}_sz_{i}" for i in levels]].to_numpy(dtype=np.float64)
        ts = np.repeat(pd.to_datetime(df[time_column].to_numpy(), unit="ms", utc=True), len(levels))
        parts.append(pd.DataFrame({
            "timestamp": ts, "side": side, "level": np.tile(levels, len(df)),
            "price": px.ravel(), "size": sz.ravel(),
        }))
    out = pd.concat(parts, ignore_index=True)
    out = out[np.isfinite(out["price"]) & (out["size"] > 0)]
    return out.sort_values(["timestamp", "side", "level"], kind="stable").reset_index(drop=True)


def orderbook_heatmap(book: pd.DataFrame, config: HeatmapConfig | None = None) -> OrderBookHeatmap:
    """Bin every snapshot's depth into a (snapshots x price bins) image; see the module docstring."""
    cfg = config or HeatmapConfig()
    if cfg.n_bins < 2 or not 0 < cfg.pct_range < 1:
        raise UserError("a heatmap needs at least 2 price bins and a range between 0 and 100 %")
    if cfg.anchor not in ("mid", "first"):
        raise UserError(f"heatmap anchor must be 'mid' or 'first', got {cfg.anchor!r}")
    book = validate_book(book)
    ts = pd.to_datetime(book["timestamp"], utc=True)
    codes, uniq = pd.factorize(ts, sort=True)
    n_snap = len(uniq)
    price = book["price"].to_numpy(dtype=np.float64)
    size = book["size"].to_numpy(dtype=np.float64)
    is_bid = book["side"].astype(str).str.lower().to_numpy() == "bid"

    best_bid = np.full(n_snap, -np.inf)
    best_ask = np.full(n_snap, np.inf)
    np.maximum.at(best_bid, codes[is_bid], price[is_bid])
    np.minimum.at(best_ask, codes[~is_bid], price[~is_bid])
    has_bid, has_ask = np.isfinite(best_bid), np.isfinite(best_ask)
    # A one-sided snapshot (thin book) still has a reference: the best price on the side present.
    mid = np.where(has_bid & has_ask, 0.5 * (best_bid + best_ask), np.where(has_bid, best_bid, best_ask))
    if not (mid > 0).all():
        raise UserError("order-book prices must be positive")
    if cfg.anchor == "mid":
        anchor = mid.copy()
        n_bins = cfg.n_bins
        rel_edges = np.linspace(-cfg.pct_range, cfg.pct_range, n_bins + 1)
        rel = price / anchor[codes] - 1.0
        pos = (rel + cfg.pct_range) / (2 * cfg.pct_range) * n_bins
    else:  # one price grid covering every snapshot's +-pct_range band, anchored at the first mid
        anchor = np.full(n_snap, mid[0])
        lo, hi = mid.min() * (1 - cfg.pct_range), mid.max() * (1 + cfg.pct_range)
        width = mid[0] * 2 * cfg.pct_range / cfg.n_bins  # the bin width n_bins gives around the first mid
        # as many such bins as fit the span (rounded: a tiny move keeps n_bins, each a hair wider), capped
        n_bins = int(min(max(cfg.n_bins, MAX_FIXED_BINS), max(cfg.n_bins, round((hi - lo) / width))))
        rel_edges = np.linspace(lo, hi, n_bins + 1) / mid[0] - 1.0
        pos = (price - lo) / (hi - lo) * n_bins
    bins = np.floor(pos).astype(np.int64)
    keep = (bins >= 0) & (bins < n_bins)
    flat = codes[keep] * n_bins + bins[keep]
    image = np.bincount(flat, weights=size[keep], minlength=n_snap * n_bins).reshape(n_snap, n_bins)
    if cfg.log_size:
        image = np.log1p(image)
    return OrderBookHeatmap(
        image=image.astype(np.float32),
        timestamps=pd.DatetimeIndex(uniq).as_unit("ns"),
        mid=mid,
        anchor_price=anchor,
        rel_edges=rel_edges,
        config=cfg,
    )


def last_snapshots(book: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of the `n` most recent snapshots (timestamps) of an order-book table."""
    if n < 1:
        raise UserError("at least one snapshot is needed")
    stamps = pd.DatetimeIndex(book["timestamp"].drop_duplicates()).sort_values()
    return book[book["timestamp"] >= stamps[max(0, len(stamps) - int(n))]] if len(stamps) else book


def candle_close_times(index: pd.DatetimeIndex, timeframe_seconds: float | None = None) -> pd.DatetimeIndex:
    """Close time of each candle (open + timeframe); the timeframe defaults to the bar spacing
    (`core.data.candles.bar_seconds`: the most common one)."""
    if timeframe_seconds is None:
        from core.data.candles import bar_seconds

        timeframe_seconds = float(bar_seconds(index))
    return index + pd.Timedelta(seconds=timeframe_seconds)


def align_to_candles(
    heatmap: OrderBookHeatmap,
    candle_index: pd.DatetimeIndex,
    timeframe_seconds: float | None = None,
    max_staleness_seconds: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One heatmap row per candle: the last snapshot at or before the candle's close.

    Returns `(rows (T_candles, L) float32, covered (T_candles,) bool)`; a candle with no snapshot yet (or
    only one older than `max_staleness_seconds` before its close) gets a zero row and `covered=False`.
    """
    closes = candle_close_times(pd.DatetimeIndex(candle_index), timeframe_seconds)
    # pandas 3 keeps per-index resolutions (s, ms, us, ns): compare in one unit.
    snap_ns = heatmap.timestamps.as_unit("ns").asi8
    close_ns = closes.as_unit("ns").asi8
    pos = np.searchsorted(snap_ns, close_ns, side="right") - 1
    covered = pos >= 0
    if max_staleness_seconds is not None:
        age = close_ns - snap_ns[np.clip(pos, 0, None)]
        covered &= age <= max_staleness_seconds * 1e9
    rows = np.zeros((len(close_ns), heatmap.image.shape[1]), dtype=np.float32)
    rows[covered] = heatmap.image[pos[covered]]
    return rows, covered
