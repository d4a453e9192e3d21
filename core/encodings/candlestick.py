"""Candlestick chart rasters drawn with numpy alone (no plotting library in the loop).

`render_candles` turns a batch of OHLCV windows into RGB images the chart CNN reads: green bodies for
up candles, red for down, one-pixel wicks, and volume bars in the bottom strip. Each window is scaled by
its own price range (min low .. max high) and its own maximum volume; both are inside the window, so no
future bar leaks into an image.

The drawing is vectorised over the whole batch: every pixel is classified (background / up / down, price
or volume) with broadcast comparisons against per-column top/bottom rows, then looked up in a palette.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UserError

MIN_SIZE = 16
MAX_SIZE = 512


@dataclass(frozen=True)
class ChartStyle:
    """Colours (RGB 0..255) and layout of a chart raster."""

    background: tuple[int, int, int] = (0, 0, 0)
    up: tuple[int, int, int] = (38, 166, 91)
    down: tuple[int, int, int] = (232, 65, 66)
    up_volume: tuple[int, int, int] = (25, 100, 58)
    down_volume: tuple[int, int, int] = (140, 45, 45)
    volume_frac: float = 0.2  # share of the image height given to volume bars (0 = none)

    def palette(self) -> np.ndarray:
        return np.array(
            [self.background, self.up, self.down, self.up_volume, self.down_volume], dtype=np.uint8
        )


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise UserError(f"chart size must be an integer or (height, width), got {size!r}") from None
    if not (MIN_SIZE <= h <= MAX_SIZE and MIN_SIZE <= w <= MAX_SIZE):
        raise UserError(f"chart size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {h}x{w}")
    return h, w


def _column_layout(n_bars: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel column: the bar it belongs to, whether it is body, whether it is the wick column."""
    x = np.arange(width)
    bar = (x * n_bars) // width
    left = -((-np.arange(n_bars) * width) // n_bars)  # ceil(b * width / n): first column of bar b
    right = np.append(left[1:], width)
    slot = (right - left)[bar]
    offset = x - left[bar]
    # Leave a one-pixel gap between candles when a slot is wide enough, so neighbours stay distinct.
    gap = (slot >= 3).astype(int)
    body_w = slot - gap
    is_body = offset < body_w
    is_wick = offset == (body_w - 1) // 2
    return bar, is_body, is_wick


def render_candles(
    ohlcv: np.ndarray,
    size: int | tuple[int, int] = 64,
    style: ChartStyle | None = None,
) -> np.ndarray:
    """Render OHLCV windows as RGB candlestick charts.

    `ohlcv` is `(W, 5)` or `(N, W, 5)` with columns open, high, low, close, volume (a DataFrame's
    `.to_numpy()` in that column order works). Returns uint8 `(N, H, W, 3)` (N=1 for a single window).
    """
    style = style or ChartStyle()
    a = np.asarray(ohlcv, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 5:
        raise UserError(f"candles must have shape (W, 5) or (N, W, 5) as open, high, low, close, volume; "
                        f"got {a.shape}")
    n, n_bars, _ = a.shape
    h, w = _size_hw(size)
    if n_bars < 1:
        raise UserError("a chart needs at least one candle")
    if n_bars > w:
        raise UserError(f"a {w}-pixel-wide chart cannot show {n_bars} candles: use a larger size or a "
                        f"shorter window")
    if not np.isfinite(a).all():
        raise UserError("the candles contain missing or infinite values; clean the data before rendering")
    if n == 0:
        return np.zeros((0, h, w, 3), dtype=np.uint8)

    o, hi, lo, c, v = (a[..., i] for i in range(5))
    # Exchanges occasionally report a high below the open/close; draw the true extent anyway.
    top = np.maximum(np.maximum(hi, lo), np.maximum(o, c))
    bot = np.minimum(np.minimum(hi, lo), np.minimum(o, c))

    vol_h = int(round(h * style.volume_frac)) if style.volume_frac > 0 else 0
    price_h = h - vol_h - (1 if vol_h else 0)  # one blank row between price and volume
    if price_h < 4:
        raise UserError(f"a {h}-pixel-high chart leaves no room for prices; lower volume_frac or enlarge it")

    pmax = top.max(axis=1, keepdims=True)
    pmin = bot.min(axis=1, keepdims=True)
    span = pmax - pmin
    span[span <= 0] = 1.0  # a flat window draws as a line in the middle-free top row
    scale = (price_h - 1) / span

    def row(p: np.ndarray) -> np.ndarray:
        return np.rint((pmax - p) * scale).astype(np.int16)

    body_top, body_bot = row(np.maximum(o, c)), row(np.minimum(o, c))
    wick_top, wick_bot = row(top), row(bot)
    down = c < o

    bar, is_body, is_wick = _column_layout(n_bars, w)
    y = np.arange(h, dtype=np.int16)[None, :, None]

    def cols(arr: np.ndarray) -> np.ndarray:
        return arr[:, bar][:, None, :]  # (N, 1, W) per pixel column

    price = ((y >= cols(body_top)) & (y <= cols(body_bot)) & is_body[None, None, :]) | (
        (y >= cols(wick_top)) & (y <= cols(wick_bot)) & is_wick[None, None, :]
    )
    dn = cols(down)
    idx = price.astype(np.uint8) * (1 + dn.astype(np.uint8))
    if vol_h:
        vmax = v.max(axis=1, keepdims=True)
        vmax[vmax <= 0] = 1.0
        bar_h = np.rint(np.clip(v, 0, None) / vmax * vol_h).astype(np.int16)
        vol = (y >= h - cols(bar_h)) & is_body[None, None, :]
        idx += vol.astype(np.uint8) * (3 + dn.astype(np.uint8))
    return style.palette()[idx]


def candles_to_array(df) -> np.ndarray:
    """The `(W, 5)` float array render_candles expects, from a candles DataFrame."""
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
    if missing:
        raise UserError(f"the candles have no {', '.join(repr(m) for m in missing)} column")
    return df[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
