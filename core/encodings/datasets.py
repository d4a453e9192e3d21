"""torch Datasets that turn a PreparedData and sample end positions into what the 2D models read.

`make_dataset(prepared, ends, input_kind, **cfg)` is what the trainer calls:
- "sequence" / "flat": delegated to `core.features.WindowDataset` (x: (C, window)).
- "indicator_image": x (1, window, C), the scaled features of the window mapped to [0, 1] with bounds fitted
  on the rows the training samples see (never on validation or test rows).
- "chart_image": x (3, H, W) float in [0, 1], the raw candles of the window rendered as a chart. Rendering
  is lazy and batched: a DataLoader calls `__getitems__` with a whole batch of indices, which renders them in
  one vectorised call; rendered images are kept in a bounded cache.
- "orderbook_image": x (1, window, L), one depth-heatmap row per candle (the last book snapshot at or
  before that candle's close), log sizes scaled by the 99th percentile of the training rows.
Every item is `(x, y)` with y an int64 class (as WindowDataset).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from core.data.candles import bar_seconds
from core.encodings.candlestick import ChartStyle, candles_to_array, render_candles
from core.encodings.indicator_image import (
    IndicatorImageScaler, fit_indicator_scaler, indicator_images, train_rows_of,
)
from core.encodings.gaf import gramian_angular_field
from core.encodings.orderbook_heatmap import HeatmapConfig, align_to_candles, orderbook_heatmap
from core.encodings.recurrence import recurrence_plot
from core.errors import UserError

INPUT_KINDS = ("sequence", "flat", "indicator_image", "chart_image", "orderbook_image")


def _check_ends(ends: np.ndarray, window: int, n_rows: int) -> np.ndarray:
    ends = np.asarray(ends, dtype=np.int64).ravel()
    if ends.size and (ends.min() < window - 1 or ends.max() >= n_rows):
        raise UserError(f"sample ends must lie in [{window - 1}, {n_rows - 1}] for a window of {window}")
    return ends


def _labels(y: np.ndarray, ends: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y)[ends], dtype=torch.long)


class _BatchedDataset(Dataset):
    """Base: `_render(ends) -> float32 array (n, ...)`; single items and batches share it."""

    def __init__(self, y: np.ndarray, ends: np.ndarray) -> None:
        self.ends = ends
        self.labels = _labels(y, ends)

    def __len__(self) -> int:
        return len(self.ends)

    def _render(self, ends: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} samples")
        x = torch.from_numpy(self._render(self.ends[idx]))
        return [(x[k], self.labels[j]) for k, j in enumerate(idx)]


class IndicatorImageDataset(_BatchedDataset):
    """x: (1, window, C) float32 in [0, 1]."""

    def __init__(self, features: np.ndarray, y: np.ndarray, ends: np.ndarray, window: int,
                 scaler: IndicatorImageScaler) -> None:
        self.features = np.asarray(features, dtype=np.float32)
        self.window = int(window)
        super().__init__(y, _check_ends(ends, self.window, len(self.features)))
        self.scaler = scaler
        self.scaled = scaler.transform(self.features)  # once: items are then views

    def _render(self, ends: np.ndarray) -> np.ndarray:
        starts = ends - self.window + 1
        rows = starts[:, None] + np.arange(self.window)[None, :]
        return self.scaled[rows][:, None]  # (n, 1, window, C)


class ChartImageDataset(_BatchedDataset):
    """x: (3, H, W) float32 in [0, 1], rendered lazily from the raw candles of each window."""

    def __init__(self, ohlcv: np.ndarray, y: np.ndarray, ends: np.ndarray, window: int, size: int = 64,
                 style: ChartStyle | None = None, cache_items: int = 4096) -> None:
        self.ohlcv = np.asarray(ohlcv, dtype=np.float64)
        self.window = int(window)
        super().__init__(y, _check_ends(ends, self.window, len(self.ohlcv)))
        self.size = size
        self.style = style or ChartStyle()
        render_candles(self.ohlcv[: self.window], size, self.style)  # fail early on a bad size/window
        self.cache_items = int(cache_items)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()  # end -> uint8 (H, W, 3)

    def _render(self, ends: np.ndarray) -> np.ndarray:
        todo = np.array([e for e in dict.fromkeys(ends.tolist()) if e not in self._cache], dtype=np.int64)
        if todo.size:
            rows = (todo - self.window + 1)[:, None] + np.arange(self.window)[None, :]
            imgs = render_candles(self.ohlcv[rows], self.size, self.style)
            for e, img in zip(todo.tolist(), imgs):
                self._cache[e] = img
        out = np.stack([self._cache[e] for e in ends.tolist()]) if len(ends) else np.zeros(
            (0,) + self._cache_shape(), np.uint8)
        for e in ends.tolist():
            self._cache.move_to_end(e)
        while len(self._cache) > self.cache_items:
            self._cache.popitem(last=False)
        return out.transpose(0, 3, 1, 2).astype(np.float32) / 255.0

    def _cache_shape(self) -> tuple[int, ...]:
        return render_candles(self.ohlcv[: self.window], self.size, self.style).shape[1:]


class OrderBookImageDataset(_BatchedDataset):
    """x: (1, window, L) float32 in [0, 1]: per-candle depth-heatmap rows of the window."""

    def __init__(self, rows: np.ndarray, y: np.ndarray, ends: np.ndarray, window: int,
                 scale: float) -> None:
        self.window = int(window)
        self.rows = np.clip(np.asarray(rows, dtype=np.float32) / np.float32(scale), 0.0, 1.0)
        super().__init__(y, _check_ends(ends, self.window, len(self.rows)))

    def _render(self, ends: np.ndarray) -> np.ndarray:
        idx = (ends - self.window + 1)[:, None] + np.arange(self.window)[None, :]
        return self.rows[idx][:, None]


@dataclass
class OrderBookRows:
    """Heatmap rows aligned one per candle, with which candles a book snapshot covers."""

    rows: np.ndarray  # (T, L)
    covered: np.ndarray  # (T,) bool


def orderbook_rows_for(prepared: Any, book: pd.DataFrame, heatmap: HeatmapConfig | None = None,
                       max_staleness_seconds: float | None = None) -> OrderBookRows:
    """Align order-book snapshots to the candles of `prepared` (one heatmap row per candle)."""
    hm = orderbook_heatmap(book, heatmap)
    idx = pd.DatetimeIndex(prepared.candles.index)
    tf = float(bar_seconds(prepared.candles))
    rows, covered = align_to_candles(hm, idx, tf, max_staleness_seconds)
    return OrderBookRows(rows, covered)


def covered_ends(ends: np.ndarray, covered: np.ndarray, window: int) -> np.ndarray:
    """The sample ends whose whole input window has order-book coverage."""
    ends = np.asarray(ends, dtype=np.int64)
    c = np.concatenate([[0], np.cumsum(~np.asarray(covered, bool))])
    gaps = c[ends + 1] - c[np.clip(ends - window + 1, 0, None)]
    return ends[gaps == 0]


DEFAULT_QUANTILES = (0.01, 0.99)


def indicator_scaler_for(prepared: Any,
                         quantiles: tuple[float, float] = DEFAULT_QUANTILES) -> IndicatorImageScaler:
    """The indicator-image scaling of `prepared`: per-indicator bounds fitted on the rows its training samples
    see (`prepared.splits["train"]` windows), never on validation or test rows.

    Every indicator image of a PreparedData (training items, the Encodings page's window and gallery) is
    scaled with this one scaler; a caller that shows many images fits it once and passes it on.
    """
    train_ends = np.asarray(prepared.splits["train"], dtype=np.int64)
    return fit_indicator_scaler(prepared.features, train_rows_of(train_ends, int(prepared.window)),
                                tuple(quantiles))


# The make_dataset options each image input reads; any other key is refused (a misspelt `sise` would otherwise
# train on the defaults without a word). "sequence"/"flat" read none and ignore what they are given.
ENCODING_KEYS = {
    "indicator_image": ("quantiles",),
    "chart_image": ("size", "chart_window", "style", "cache_items"),
    "orderbook_image": ("order_book", "book_id", "heatmap", "max_staleness_bars", "max_staleness_seconds"),
}

# A candle whose newest book snapshot is older than this many bar lengths at its close counts as not covered:
# a recording that stopped or has a gap is not repeated silently for every later candle. Runs saved before
# this limit existed carry `max_staleness_seconds: None` (see `legacy_encoding`) and keep their old rows.
DEFAULT_STALENESS_BARS = 2.0


def check_encoding_keys(input_kind: str, cfg: dict[str, Any]) -> None:
    """UserError naming the allowed keys when `cfg` has a key the `input_kind` does not read."""
    allowed = ENCODING_KEYS.get(input_kind)
    if allowed is None:
        return
    unknown = [k for k in cfg if k not in allowed]
    if unknown:
        raise UserError(f"{input_kind} encodings have no option {', '.join(repr(k) for k in unknown)}; "
                        f"the options are {', '.join(allowed)}")


def _options(cls: type, value: Any, what: str) -> Any:
    """`value` as the dataclass `cls`: None, an instance, or a dict of its fields (the form a saved run's
    config.json and the CLI hold); a dict with another key is refused with a sentence."""
    if value is None or isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise UserError(f"the {what} option must be a {cls.__name__} or a dict of its fields, got {value!r}")
    fields = cls.__dataclass_fields__
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise UserError(f"the {what} option has no field {', '.join(repr(k) for k in unknown)}; "
                        f"its fields are {', '.join(fields)}")
    # JSON turns tuples (colours) into lists: back to tuples, so the options stay hashable
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


def heatmap_options(value: Any) -> HeatmapConfig | None:
    """The `heatmap` option of an order-book dataset as a HeatmapConfig (from a dict too)."""
    return _options(HeatmapConfig, value, "heatmap")


def chart_style_options(value: Any) -> ChartStyle | None:
    """The `style` option of a chart dataset as a ChartStyle (from a dict too)."""
    return _options(ChartStyle, value, "style")


def staleness_seconds(cfg: dict[str, Any], bar_secs: float) -> float | None:
    """The oldest a candle's newest snapshot may be (seconds before its close) for the candle to count as
    covered: `max_staleness_seconds` when given (None = no limit), else `max_staleness_bars` bar lengths
    (default DEFAULT_STALENESS_BARS; None = no limit)."""
    if "max_staleness_seconds" in cfg:
        v = cfg["max_staleness_seconds"]
        return None if v is None else float(v)
    bars = cfg.get("max_staleness_bars", DEFAULT_STALENESS_BARS)
    if bars is not None and float(bars) < 0:
        raise UserError(f"max_staleness_bars must be 0 or more bars, got {bars!r}")
    return None if bars is None else float(bars) * float(bar_secs)


def legacy_encoding(input_kind: Optional[str], encoding: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The encoding options of a saved run as it was trained: an order-book run saved before the staleness
    limit existed (neither staleness key) gets `max_staleness_seconds: None`, its old behaviour (every candle
    after the last snapshot reads that snapshot), so it still reproduces its stored predictions."""
    enc = dict(encoding or {})
    if input_kind == "orderbook_image" and "max_staleness_seconds" not in enc and "max_staleness_bars" not in enc:
        enc["max_staleness_seconds"] = None
    return enc


def make_dataset(prepared: Any, ends: np.ndarray, input_kind: str, **cfg: Any) -> Dataset:
    """The Dataset a model of `input_kind` trains or predicts on, over samples ending at `ends`.

    Config keys (ENCODING_KEYS; any other key is refused): chart_image - `size` (64), `chart_window` (default
    min(window, size)), `style` (ChartStyle or a dict of its fields), `cache_items`; indicator_image -
    `quantiles` ((0.01, 0.99)); orderbook_image - `order_book` (long snapshot table) or `book_id` (loaded with
    core.data.orderbook), `heatmap` (HeatmapConfig or a dict of its fields; only the anchor "mid": a fixed
    price grid is built from the whole book, later prices included), `max_staleness_bars` (2: a candle whose
    newest snapshot is older than that at its close is not covered; None = no limit) or
    `max_staleness_seconds`. Scaling is always fitted on `prepared.splits["train"]` windows.
    """
    if input_kind not in INPUT_KINDS:
        raise UserError(f"unknown input kind {input_kind!r}; expected one of {', '.join(INPUT_KINDS)}")
    check_encoding_keys(input_kind, cfg)
    window = int(prepared.window)
    ends = np.asarray(ends, dtype=np.int64).ravel()
    train_ends = np.asarray(prepared.splits["train"], dtype=np.int64)

    if input_kind in ("sequence", "flat"):
        from core.features import WindowDataset
        return WindowDataset(prepared.features, prepared.y, ends, window)

    if input_kind == "indicator_image":
        scaler = indicator_scaler_for(prepared, tuple(cfg.get("quantiles", DEFAULT_QUANTILES)))
        return IndicatorImageDataset(prepared.features, prepared.y, ends, window, scaler)

    if input_kind == "chart_image":
        size = cfg.get("size", 64)
        width = size if isinstance(size, int) else int(size[1])
        chart_window = int(cfg.get("chart_window") or min(window, width))
        if chart_window > window:
            raise UserError(f"chart_window ({chart_window}) cannot be longer than the data window ({window})")
        ohlcv = candles_to_array(prepared.candles)
        if len(ohlcv) != len(prepared.features):
            raise UserError("the candles are not aligned with the features (different lengths)")
        return ChartImageDataset(ohlcv, prepared.y, ends, chart_window, size,
                                 chart_style_options(cfg.get("style")), int(cfg.get("cache_items", 4096)))

    # orderbook_image
    heatmap = heatmap_options(cfg.get("heatmap"))
    if heatmap is not None and heatmap.anchor != "mid":
        raise UserError(f"an order-book model reads the heatmap anchored at each snapshot's mid; the anchor "
                        f"{heatmap.anchor!r} builds one price grid from the whole book, later prices included, "
                        "so it is for viewing only (leave heatmap.anchor at 'mid')")
    book = cfg.get("order_book")
    if book is None and cfg.get("book_id"):
        from core.data.orderbook import load_order_book
        book = load_order_book(cfg["book_id"])
    if book is None:
        raise UserError("an order-book model needs order-book snapshots: record or generate a book for "
                        "this market first")
    tf = float(bar_seconds(prepared.candles))
    stale = staleness_seconds(cfg, tf)
    ob = orderbook_rows_for(prepared, book, heatmap, stale)
    ok_train = covered_ends(train_ends, ob.covered, window)
    ok = covered_ends(ends, ob.covered, window)
    if len(ok) < len(ends) or len(ok_train) == 0:
        limit = "" if stale is None else (f" (a candle counts as covered when the book has a snapshot at most "
                                          f"{stale / tf:g} bar(s) old at its close)")
        raise UserError(f"the order book covers {len(ok)} of {len(ends)} sample windows{limit}; use snapshots "
                        f"that span the candles without gaps or restrict the samples with covered_ends()")
    train_vals = ob.rows[train_rows_of(ok_train, window)]
    nz = train_vals[train_vals > 0]
    scale = float(np.quantile(nz, 0.99)) if nz.size else 1.0
    return OrderBookImageDataset(ob.rows, prepared.y, ends, window, scale if scale > 0 else 1.0)


ENCODING_NAMES = ("chart", "indicator image", "GASF", "GADF", "recurrence")


def window_encodings(prepared: Any, end: int, size: int = 64, chart_window: int | None = None,
                     quantiles: tuple[float, float] = DEFAULT_QUANTILES,
                     scaler: IndicatorImageScaler | None = None) -> dict[str, np.ndarray]:
    """Every encoding of the window ending at row `end`, for display (the Encodings page).

    "chart": uint8 (H, W, 3); "indicator image": (window, C) in [0, 1] scaled with train-only bounds (`scaler`,
    by default `indicator_scaler_for(prepared, quantiles)`; pass it in to fit it once for many windows);
    "GASF"/"GADF"/"recurrence": (window, window) of the window's close prices.
    """
    window = int(prepared.window)
    n_rows = len(prepared.features)
    if not window - 1 <= int(end) < n_rows:
        raise UserError(f"pick a bar between {window - 1} and {n_rows - 1} (a full window must precede it)")
    end = int(end)
    ohlcv = candles_to_array(prepared.candles)
    cw = int(chart_window or min(window, size))
    chart = render_candles(ohlcv[end - cw + 1: end + 1], size)[0]
    if scaler is None:
        scaler = indicator_scaler_for(prepared, quantiles)
    close = ohlcv[end - window + 1: end + 1, 3]
    return {
        "chart": chart,
        "indicator image": indicator_images(prepared.features, np.array([end]), window, scaler)[0],
        "GASF": gramian_angular_field(close, "summation"),
        "GADF": gramian_angular_field(close, "difference"),
        "recurrence": recurrence_plot(close),
    }


def gallery_encodings(prepared: Any, ends: np.ndarray, kind: str, size: int = 64,
                      scaler: IndicatorImageScaler | None = None,
                      quantiles: tuple[float, float] = DEFAULT_QUANTILES) -> np.ndarray:
    """A stack of one encoding for many windows (for the gallery grouped by label). Indicator images use
    `scaler` (by default `indicator_scaler_for(prepared, quantiles)`), the same scaling as window_encodings."""
    if kind not in ENCODING_NAMES:
        raise UserError(f"unknown encoding {kind!r}; choose one of {', '.join(ENCODING_NAMES)}")
    ends = _check_ends(ends, int(prepared.window), len(prepared.features))
    window = int(prepared.window)
    if kind == "indicator image":
        if scaler is None:
            scaler = indicator_scaler_for(prepared, quantiles)
        return indicator_images(prepared.features, ends, window, scaler)
    ohlcv = candles_to_array(prepared.candles)
    if kind == "chart":
        cw = min(window, size)
        rows = (ends - cw + 1)[:, None] + np.arange(cw)[None, :]
        return render_candles(ohlcv[rows], size)
    rows = (ends - window + 1)[:, None] + np.arange(window)[None, :]
    close = ohlcv[rows, 3]
    if kind == "GASF":
        return gramian_angular_field(close, "summation")
    if kind == "GADF":
        return gramian_angular_field(close, "difference")
    return recurrence_plot(close)


def gallery_ends(prepared: Any, split: str = "train", per_class: int = 6, seed: int = 0) -> np.ndarray:
    """Up to `per_class` sample ends of each class from `split` (seeded random picks, in time order within a
    class), concatenated in class order: the windows a gallery grouped by label shows."""
    if split not in prepared.splits:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(prepared.splits)}")
    if per_class < 1:
        raise UserError("show at least one example per class")
    ends = np.asarray(prepared.splits[split], dtype=np.int64)
    y = np.asarray(prepared.y)[ends]
    rng = np.random.default_rng(seed)
    picked = []
    for k in range(len(prepared.class_names)):
        of_k = ends[y == k]
        if len(of_k) > per_class:
            of_k = np.sort(rng.choice(of_k, per_class, replace=False))
        picked.append(of_k)
    return np.concatenate(picked) if picked else np.zeros(0, np.int64)
