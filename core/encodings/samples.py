"""One sample of a trained run, exactly as its model reads it: for the Inspect page and the CLI.

A run's config says which input kind its model reads (`input_kind`) and how the images were made
(`data_config.encoding`); `sample_for_run` rebuilds that input for one sample end through the same
`make_dataset` the trainer used (scaling fitted on the run's training split), together with the candles
the input covers, so attributions can be drawn bar by bar over a candlestick chart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from core.errors import UserError


@dataclass
class RunSample:
    x: np.ndarray                     # the model input without the batch axis: (C, T), (1, T, C), (3, H, W)...
    y: int                            # the true class (-1 when the label is undefined)
    end: int                          # row of the sample's last bar in the PreparedData
    timestamp: pd.Timestamp           # open time of that bar
    candles: pd.DataFrame             # the bars the input covers (chart models: the charted bars)
    input_kind: str
    channel_names: Optional[list[str]]  # names of the input's channels/columns (None for chart images)

    @property
    def n_bars(self) -> int:
        return len(self.candles)


def selectable_ends(prepared: Any, split: str = "test") -> np.ndarray:
    """The sample ends of `split` that have a defined label (the ones a run was scored on)."""
    if split not in prepared.splits:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(prepared.splits)}")
    ends = np.asarray(prepared.splits[split], dtype=np.int64)
    return ends[np.asarray(prepared.y)[ends] >= 0]


def all_ends(prepared: Any) -> np.ndarray:
    """Every sample end of the train, val and test segments, in time order."""
    return np.sort(np.concatenate([np.asarray(prepared.splits[s], dtype=np.int64) for s in ("train", "val", "test")]))


def window_facts(prepared: Any, end: int) -> tuple[str, str]:
    """(segment, label) of the window ending at row `end`: "train"/"val"/"test" (or "?"), the class name or
    "undefined" (no label: the horizon runs past the data, or a warm-up row)."""
    segment = next((s for s in ("train", "val", "test") if np.any(np.asarray(prepared.splits[s]) == end)), "?")
    lab = int(np.asarray(prepared.y)[end])
    return segment, (str(list(prepared.class_names)[lab]) if lab >= 0 else "undefined")


def end_near(prepared: Any, ends: np.ndarray, when: Any) -> int:
    """The sample end in `ends` whose bar is closest in time to `when` (a date, datetime or string)."""
    ends = np.asarray(ends, dtype=np.int64)
    if ends.size == 0:
        raise UserError("there are no samples to choose from")
    try:
        ts = pd.Timestamp(when)
    except (TypeError, ValueError):
        raise UserError(f"{when!r} is not a date or time") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    stamps = pd.DatetimeIndex(np.asarray(prepared.timestamps)[ends])
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    pos = int(np.argmin(np.abs((stamps - ts).asi8)))
    return int(ends[pos])


def date_outside_note(day: Any, first_day: Any, last_day: Any, shown: Any) -> Optional[str]:
    """A sentence when a picked `day` lies outside the test windows' days (`first_day`..`last_day`), naming the
    range and the nearest window `shown` instead (None when the day is inside)."""
    if first_day <= day <= last_day:
        return None
    side = "before the first" if day < first_day else "after the last"
    return (f"{day:%Y-%m-%d} is {side} test window: pick a date between {first_day:%Y-%m-%d} and "
            f"{last_day:%Y-%m-%d} UTC. Showing the nearest window, {pd.Timestamp(shown):%Y-%m-%d %H:%M} UTC.")


def _encoding(config: dict[str, Any]) -> dict[str, Any]:
    return dict(((config.get("data_config") or {}).get("encoding")) or {})


def covered_bars(prepared: Any, config: dict[str, Any]) -> int:
    """How many bars one input of the run covers (the chart window for chart models, else the window)."""
    window = int(prepared.window)
    if config.get("input_kind") != "chart_image":
        return window
    enc = _encoding(config)
    size = enc.get("size", 64)
    width = int(size) if isinstance(size, (int, np.integer)) else int(size[1])
    return int(enc.get("chart_window") or min(window, width))


def sample_for_run(prepared: Any, config: dict[str, Any], end: int,
                   order_book: Optional[pd.DataFrame] = None) -> RunSample:
    """The input the run's model reads for the sample ending at row `end`, and the bars it covers.

    `order_book` overrides the run's stored book (order-book models only).
    """
    from core.encodings.datasets import make_dataset

    kind = str(config.get("input_kind") or "sequence")
    end = int(end)
    window = int(prepared.window)
    if not window - 1 <= end < len(prepared.features):
        raise UserError(f"pick a bar between {window - 1} and {len(prepared.features) - 1} "
                        f"(a full window must precede it)")
    enc = _encoding(config)
    if order_book is not None:
        enc["order_book"] = order_book
    ds = make_dataset(prepared, np.array([end]), kind, **enc)
    x, _ = ds[0]
    x = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    n_bars = covered_bars(prepared, config)
    candles = prepared.candles.iloc[end - n_bars + 1: end + 1]
    if kind in ("sequence", "flat", "indicator_image"):
        names: Optional[list[str]] = [str(n) for n in prepared.feature_names]
    elif kind == "orderbook_image":
        names = [f"bin {i}" for i in range(x.shape[-1])]
    else:
        names = None
    return RunSample(x=x, y=int(np.asarray(prepared.y)[end]), end=end,
                     timestamp=pd.Timestamp(np.asarray(prepared.timestamps)[end]), candles=candles,
                     input_kind=kind, channel_names=names)


def sample_batch(prepared: Any, config: dict[str, Any], ends: np.ndarray) -> np.ndarray:
    """Inputs of many samples stacked (N, ...) float32: real windows for the effective receptive field."""
    from core.encodings.datasets import make_dataset

    ends = np.asarray(ends, dtype=np.int64)
    if ends.size == 0:
        raise UserError("there are no samples to stack")
    ds = make_dataset(prepared, ends, str(config.get("input_kind") or "sequence"), **_encoding(config))
    items = ds.__getitems__(list(range(len(ends)))) if hasattr(ds, "__getitems__") else \
        [ds[i] for i in range(len(ends))]
    return np.stack([np.asarray(it[0], dtype=np.float32) for it in items])
