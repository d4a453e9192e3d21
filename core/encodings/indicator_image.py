"""CNN-TA indicator images: a window of indicator values as a (time x indicators) picture.

The chapter's example scales every image by the min and max of the *whole* series, so a training image
depends on prices that come after it: a leak. Here the per-indicator range is fitted on the training rows
only (robust quantiles, default 1 % and 99 %), then every image - train, validation, test - is mapped
with those fixed numbers into [0, 1] and clipped. Changing test data cannot change a training image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.errors import UserError


@dataclass(frozen=True)
class IndicatorImageScaler:
    """Per-indicator lower/upper bounds fitted on training rows; maps values into [0, 1] with clipping."""

    low: np.ndarray  # (C,)
    high: np.ndarray  # (C,)

    def transform(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float32)
        if v.shape[-1] != self.low.shape[0]:
            raise UserError(f"the scaler was fitted on {self.low.shape[0]} indicators, got {v.shape[-1]}")
        span = np.where(self.high > self.low, self.high - self.low, 1.0).astype(np.float32)
        out = (v - self.low.astype(np.float32)) / span
        return np.clip(np.nan_to_num(out, nan=0.5), 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "IndicatorImageScaler":
        return cls(np.asarray(d["low"], dtype=np.float64), np.asarray(d["high"], dtype=np.float64))


def train_rows_of(ends: np.ndarray, window: int) -> np.ndarray:
    """Row positions covered by the input windows ending at `ends` (the rows a training image sees)."""
    ends = np.asarray(ends, dtype=np.int64)
    if ends.size == 0:
        raise UserError("there are no training samples to fit the image scaling on")
    lo = max(0, int(ends.min()) - window + 1)
    return np.arange(lo, int(ends.max()) + 1)


def fit_indicator_scaler(
    features: np.ndarray, train_rows: np.ndarray, quantiles: tuple[float, float] = (0.01, 0.99)
) -> IndicatorImageScaler:
    """Fit per-indicator bounds on `features[train_rows]` (robust quantiles; (0, 1) gives min/max)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise UserError(f"indicator features must be a (time, indicators) table, got shape {f.shape}")
    q_lo, q_hi = quantiles
    if not 0.0 <= q_lo < q_hi <= 1.0:
        raise UserError(f"scaling quantiles must satisfy 0 <= low < high <= 1, got {quantiles}")
    rows = np.asarray(train_rows, dtype=np.int64)
    if rows.size == 0:
        raise UserError("there are no training rows to fit the image scaling on")
    train = f[rows]
    low = np.nanquantile(train, q_lo, axis=0)
    high = np.nanquantile(train, q_hi, axis=0)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise UserError("an indicator has no finite values in the training segment")
    return IndicatorImageScaler(low=low, high=high)


def indicator_images(
    features: np.ndarray, ends: np.ndarray, window: int, scaler: IndicatorImageScaler
) -> np.ndarray:
    """Images `(N, window, C)` float32 in [0, 1]: rows `end - window + 1 .. end` of the scaled features."""
    f = np.asarray(features)
    ends = np.asarray(ends, dtype=np.int64)
    if window < 2:
        raise UserError("an indicator image needs a window of at least 2 rows")
    if ends.size and (ends.min() < window - 1 or ends.max() >= f.shape[0]):
        raise UserError(f"sample ends must lie in [{window - 1}, {f.shape[0] - 1}] for a window of {window}")
    if ends.size == 0:
        return np.zeros((0, window, f.shape[1]), np.float32)
    # Scale only the rows the windows cover (one window on the Encodings page reads `window` rows, not the
    # whole history); the scaling is per element, so the values are the same as scaling everything.
    lo = int(ends.min()) - window + 1
    scaled = scaler.transform(f[lo: int(ends.max()) + 1])
    # sliding_window_view gives (rows-window+1, C, window); index by start row then put time first.
    views = sliding_window_view(scaled, window, axis=0)
    return np.ascontiguousarray(views[ends - window + 1 - lo].transpose(0, 2, 1))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] float images as 0..255 bytes, for display."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
