"""The candle table every part of the lab shares: timeframes, validation, resampling, quality report.

Candles are a `pandas.DataFrame` with a UTC `DatetimeIndex` named `timestamp` (candle open time, sorted,
unique) and float64 columns `open, high, low, close, volume`; `df.attrs` carries `source`, `symbol`,
`timeframe`. Sources (Bybit, synthetic, file import) validate once, at the border, with `validate_candles`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

TIMEFRAMES: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "12h": 43200,
    "1d": 86400,
}


# The fewest candles a stored dataset may hold: one candle has no span, no return and no range to choose
# from, and the pages' range sliders and every feature need at least two.
MIN_CANDLES = 2


def candles_digest(df: pd.DataFrame) -> str:
    """A short fingerprint of the candles' times and prices: a saved run records the one of the candles it
    learnt from, so a dataset replaced or corrected since (the same times, other prices) is noticed instead
    of being mixed silently with the run's predictions. Values are hashed at float32 precision (7 digits):
    the last bits of a float64, which another machine's maths library may compute differently for the same
    synthetic market, do not count as a change."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(df.index.as_unit("ns").asi8 if isinstance(df.index, pd.DatetimeIndex)
                                  else np.asarray(df.index)).tobytes())
    cols = [c for c in COLUMNS if c in df]
    h.update(",".join(cols).encode())
    h.update(np.ascontiguousarray(df[cols].to_numpy(dtype=np.float64).astype(np.float32)).tobytes())
    return h.hexdigest()


def too_few_candles(n: int, detail: str) -> DataError:
    """The sentence for a dataset of `n` < MIN_CANDLES candles; `detail` says where they came from and what
    to do, e.g. "this one has 1: choose a longer span"."""
    return DataError(f"a dataset needs at least {MIN_CANDLES} candles; {detail}")


def timeframe_seconds(timeframe: str) -> int:
    """Seconds in one candle of `timeframe` ("1m" .. "1d")."""
    try:
        return TIMEFRAMES[timeframe]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}"
        ) from None


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    return pd.Timedelta(seconds=timeframe_seconds(timeframe))


def empty_candles(source: str = "", symbol: str = "", timeframe: str = "") -> pd.DataFrame:
    """A zero-row candle table with the right index and dtypes."""
    idx = pd.DatetimeIndex([], tz="UTC", name="timestamp", dtype="datetime64[ns, UTC]")
    df = pd.DataFrame({c: np.array([], dtype="float64") for c in COLUMNS}, index=idx)
    df.attrs.update(source=source, symbol=symbol, timeframe=timeframe)
    return df


def candle_problems(values: np.ndarray) -> list[tuple[np.ndarray, str, str]]:
    """The rules a candle must pass, in the order they are checked, on `values` (N, 5) of open, high, low,
    close, volume: (mask of the candles breaking it, what is wrong with one, what is wrong with several)."""
    o, h, l, c, v = values.T
    # A tiny tolerance: exchanges round prices, so open/close can exceed high by a rounding step.
    tol = 1e-9 * np.maximum(np.abs(h), 1.0)
    with np.errstate(invalid="ignore"):
        return [(~np.isfinite(values).all(axis=1), "a missing or infinite value",
                 "have missing (NaN) or infinite values"),
                ((values[:, :4] <= 0).any(axis=1), "a price of zero or below", "have a price of zero or below"),
                (v < 0, "negative volume", "have negative volume"),
                (h < l, "high below low", "have a high below their low"),
                ((np.maximum(o, c) > h + tol) | (np.minimum(o, c) < l - tol), "open or close outside high-low",
                 "have an open or close outside their high-low range")]


def validate_candles(df: pd.DataFrame, *, allow_empty: bool = True) -> pd.DataFrame:
    """Check `df` is a proper candle table and return it (float64 columns, UTC index named timestamp).

    Raises DataError with a sentence naming the first problem found. Dtypes are coerced to float64 and a
    naive or non-UTC index is converted to UTC; anything else wrong (order, duplicates, prices) is refused,
    because silently repairing it at this point would hide a bug in the source.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError("candles must be a pandas DataFrame")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"the candles have no {', '.join(repr(c) for c in missing)} column")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError("the candles must be indexed by timestamp (a DatetimeIndex)")
    attrs = dict(df.attrs)
    out = df.loc[:, list(COLUMNS)].astype("float64")
    idx = out.index
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    # pandas 3 keeps per-index resolutions; one unit everywhere keeps comparisons and joins simple.
    out.index = idx.as_unit("ns").rename("timestamp")
    out.attrs.update(attrs)
    if len(out) == 0:
        if not allow_empty:
            raise DataError("there are no candles")
        return out
    if out.index.has_duplicates:
        n = int(out.index.duplicated().sum())
        raise DataError(f"the candles have {n} duplicate timestamps")
    if not out.index.is_monotonic_increasing:
        raise DataError("the candles are not sorted by time")
    for bad, one, many in candle_problems(out.to_numpy()):
        if bad.any():
            n, first = int(bad.sum()), out.index[int(np.argmax(bad))]
            raise DataError(f"1 candle has {one} (at {first:%Y-%m-%d %H:%M} UTC)" if n == 1 else
                            f"{n:,} candles {many} (the first at {first:%Y-%m-%d %H:%M} UTC)")
    return out


def invalid_candles(df: pd.DataFrame) -> list[tuple[pd.Timestamp, str]]:
    """The candles of `df` that `validate_candles` would refuse for their prices or volume, each with why
    (the first rule it breaks), for a source that says which bar it served wrong."""
    if not len(df):
        return []
    problems = candle_problems(df.loc[:, list(COLUMNS)].to_numpy(dtype=np.float64))
    bad = np.logical_or.reduce([mask for mask, _, _ in problems])
    return [(df.index[i], next(why for mask, why, _ in problems if mask[i])) for i in np.flatnonzero(bad)]


def resample_candles(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregate candles to a coarser `timeframe` (first open, max high, min low, last close, sum volume).

    Bins are aligned to the Unix epoch (so 1d bins start at 00:00 UTC). A bin holds whatever finer candles
    exist in it; bins with no candles are dropped, never invented.
    """
    target = timeframe_seconds(timeframe)
    current = df.attrs.get("timeframe")
    if current in TIMEFRAMES:
        if target < TIMEFRAMES[current]:
            raise DataError(f"cannot resample {current} candles to the finer timeframe {timeframe}")
        if target % TIMEFRAMES[current]:
            raise DataError(f"{timeframe} is not a whole multiple of {current}")
        if target == TIMEFRAMES[current]:
            return df.copy()
    return bucket_candles(df, target, timeframe)


def bucket_candles(df: pd.DataFrame, seconds: int, label: str | None = None) -> pd.DataFrame:
    """OHLCV aggregation into epoch-aligned bins of `seconds` (any length, e.g. a week for display).

    The rules of `resample_candles` (first open, max high, min low, last close, summed volume; bins start at
    multiples of `seconds` since 1970-01-01 UTC; empty bins dropped) without its checks against the stored
    timeframe. `attrs["timeframe"]` becomes `label` (default: the bin's name, see `timeframe_name`).
    """
    seconds = int(seconds)
    if seconds < 1:
        raise DataError(f"a bin must be at least 1 second long, got {seconds}")
    label = label or timeframe_name(seconds)
    if len(df) == 0:
        return empty_candles(df.attrs.get("source", ""), df.attrs.get("symbol", ""), label)
    step = seconds * 1_000_000_000
    keys = df.index.as_unit("ns").asi8 // step
    # Group on integer bin keys with numpy reductions: much faster than DataFrame.resample for 1m data.
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    idx = pd.DatetimeIndex(pd.to_datetime(keys[starts] * step, utc=True), name="timestamp")
    return _reduce_ohlcv(df, starts, idx, label)


def group_candles(df: pd.DataFrame, step: int) -> pd.DataFrame:
    """Every `step` consecutive candles as one (the same OHLCV rules), stamped at the group's first candle.

    For display thinning by count (a chart's point budget), where series computed per bar are thinned with
    the same groups; `bucket_candles` is the calendar-aligned form. `step` 1 returns `df` itself.
    """
    step = int(step)
    if step < 1:
        raise DataError(f"a group must hold at least 1 candle, got {step}")
    if step == 1:
        return df
    starts = np.arange(0, len(df), step)
    tf = df.attrs.get("timeframe")
    label = timeframe_name(step * TIMEFRAMES[tf]) if tf in TIMEFRAMES else None
    return _reduce_ohlcv(df, starts, df.index[starts], label)


def _reduce_ohlcv(df: pd.DataFrame, starts: np.ndarray, index: pd.DatetimeIndex,
                  label: str | None) -> pd.DataFrame:
    """One row per group of consecutive rows beginning at `starts` (sorted positions, first is 0)."""
    ends = np.r_[starts[1:] - 1, len(df) - 1]
    o = df["open"].to_numpy()[starts]
    c = df["close"].to_numpy()[ends]
    h = np.maximum.reduceat(df["high"].to_numpy(), starts)
    l = np.minimum.reduceat(df["low"].to_numpy(), starts)
    v = np.add.reduceat(df["volume"].to_numpy(), starts)
    out = pd.DataFrame({"open": o, "high": h, "low": l, "close": c, "volume": v}, index=index)
    out.attrs.update(df.attrs)
    if label is None:
        out.attrs.pop("timeframe", None)
    else:
        out.attrs["timeframe"] = label
    return out


def missing_between(ns: np.ndarray, step_ns: int) -> np.ndarray:
    """Bars missing between neighbouring timestamps (ns): a step of k bars lacks k - 1, an off-grid 1.5-bar
    step lacks one."""
    return -(-np.diff(np.asarray(ns, dtype=np.int64)) // int(step_ns)) - 1


def find_gaps(index: pd.DatetimeIndex, timeframe: str) -> list[dict[str, Any]]:
    """Stretches where candles are missing: list of {start, end, missing} (start/end = first/last missing)."""
    if len(index) < 2:
        return []
    step = timeframe_seconds(timeframe) * 1_000_000_000
    ns = index.as_unit("ns").asi8
    lacking = missing_between(ns, step)
    gaps = []
    for i in np.flatnonzero(lacking > 0):
        missing = int(lacking[i])
        gaps.append(
            {
                "start": pd.Timestamp(ns[i] + step, tz="UTC").isoformat(),
                "end": pd.Timestamp(ns[i + 1] - step, tz="UTC").isoformat(),
                "missing": missing,
            }
        )
    return gaps


def quality_report(df: pd.DataFrame, timeframe: str | None = None, max_gaps: int = 100) -> dict[str, Any]:
    """A summary a user reads before trusting the data: rows, span, gaps, duplicates, zero-volume bars.

    Works on raw (not yet validated) tables too, so importers can report before refusing or repairing.
    """
    timeframe = timeframe or df.attrs.get("timeframe") or infer_timeframe(df.index)
    idx = df.index
    n = len(df)
    dup = int(idx.duplicated().sum()) if n else 0
    uniq = idx[~idx.duplicated()].sort_values() if n else idx
    gaps = find_gaps(uniq, timeframe) if timeframe else []
    missing = int(sum(g["missing"] for g in gaps))
    expected = n - dup + missing
    vol = df["volume"].to_numpy(dtype="float64") if "volume" in df else np.array([])
    report: dict[str, Any] = {
        "rows": int(n),
        "timeframe": timeframe,
        "start": uniq[0].isoformat() if n else None,
        "end": uniq[-1].isoformat() if n else None,
        "span_days": float((uniq[-1] - uniq[0]).total_seconds() / 86400) if n else 0.0,
        "duplicates": dup,
        "gap_count": len(gaps),
        "missing_bars": missing,
        "gaps": gaps[:max_gaps],
        "coverage": float((n - dup) / expected) if expected else 1.0,
        "zero_volume_bars": int((vol == 0).sum()),
        "nan_rows": int(df[list(c for c in COLUMNS if c in df)].isna().any(axis=1).sum()) if n else 0,
        "sorted": bool(idx.is_monotonic_increasing),
    }
    return report


def _typical_spacing(index: pd.DatetimeIndex) -> int | None:
    """The most common positive spacing of `index` in whole seconds (order does not matter), or None when
    there are fewer than 2 distinct timestamps. The mode, not the median: gaps, however many, do not
    shift it as long as regular bars are the most common spacing."""
    if len(index) < 2:
        return None
    diffs = np.diff(np.sort(pd.DatetimeIndex(index).as_unit("ns").asi8)) // 1_000_000_000
    diffs = diffs[diffs > 0]
    if len(diffs) == 0:
        return None
    vals, counts = np.unique(diffs, return_counts=True)
    return int(vals[np.argmax(counts)])


def bar_seconds(candles: pd.DataFrame | pd.DatetimeIndex, default: int | None = None) -> int:
    """Seconds per bar: `attrs["timeframe"]` when it names a known timeframe, else the most common spacing
    of the timestamps (so a table that lost its attrs, or an imported one, still gets its bar length).

    With fewer than 2 distinct timestamps there is nothing to measure: `default` when given, else DataError
    (a UserError) with a sentence.
    """
    if isinstance(candles, pd.DataFrame):
        tf = candles.attrs.get("timeframe")
        if tf in TIMEFRAMES:
            return TIMEFRAMES[tf]
        index = candles.index
    else:
        index = candles
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("the candles must be indexed by timestamp (a DatetimeIndex) to tell their timeframe")
    secs = _typical_spacing(index)
    if secs is None:
        if default is not None:
            return int(default)
        if len(index) < 2:
            raise DataError("at least 2 candles are needed to tell the timeframe")
        raise DataError("the candles' timestamps are all the same, so their timeframe cannot be told")
    return secs


def timeframe_name(seconds: int) -> str:
    """The timeframe `seconds` long ("1h" for 3600), or "<n>s" when no standard timeframe is."""
    return next((k for k, v in TIMEFRAMES.items() if v == seconds), f"{int(seconds)}s")


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """The timeframe whose length is the most common spacing of `index`, or None if none matches."""
    secs = _typical_spacing(index)
    name = None if secs is None else timeframe_name(secs)
    return name if name in TIMEFRAMES else None
