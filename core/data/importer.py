"""Import candles from a CSV or Parquet file (a path, bytes, or an uploaded file-like object).

Columns are matched case-insensitively (timestamp / time / date / datetime / open_time; open, high, low,
close, volume); a UTF-8 byte-order mark (Excel's "CSV UTF-8") is ignored. Timestamps may be epoch
milliseconds, seconds (micro/nanoseconds too) or ISO text; the unit is detected from the magnitude.
Problems get one clear sentence (DataError):

* refused: missing columns, unparseable timestamps, epoch timestamps in mixed units (a row in seconds in a
  file of milliseconds), timestamps outside 1677-2262 (what a nanosecond index holds), non-positive prices,
  a high below the low, an open or close outside the high-low range, rows with missing values (unless
  `nan_policy="drop"`, which drops and counts them), fewer than 2 candles;
* repaired and reported: duplicate timestamps (the first kept, the rest dropped and counted), unsorted rows
  (sorted);
* reported only: gaps (missing bars are never invented).

Nothing is written until the file has passed every check, so a failed import never touches what is
already stored.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Literal

import numpy as np
import pandas as pd

from core.data.candles import (COLUMNS, MIN_CANDLES, TIMEFRAMES, candle_problems, find_gaps, infer_timeframe,
                               too_few_candles, validate_candles)
from core.errors import DataError

SOURCE = "import"
_TIME_ALIASES = ("timestamp", "time", "date", "datetime", "open_time", "opentime", "ts", "open time")
_ALIASES = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}


@dataclass
class ImportReport:
    """What the import found and did."""

    rows_read: int = 0
    rows: int = 0
    timeframe: str | None = None
    timestamp_column: str = ""
    timestamp_format: str = ""          # "ms", "s", "us", "ns" or "iso"
    duplicates_dropped: int = 0
    conflicting_duplicates: int = 0     # duplicates whose prices differed from the kept row
    nan_rows_dropped: int = 0
    sorted: bool = False                # True when the rows had to be sorted
    gaps: list[dict[str, Any]] = field(default_factory=list)
    gap_count: int = 0
    missing_bars: int = 0
    start: str | None = None
    end: str | None = None
    dataset: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        when = [f"{pd.Timestamp(t):%Y-%m-%d %H:%M} UTC" if t else "?" for t in (self.start, self.end)]
        parts = [f"{self.rows:,} candles ({self.timeframe}) from {when[0]} to {when[1]}"]
        parts += self.notes
        return "; ".join(parts)


def _read_table(src: Any, filename: str | None) -> pd.DataFrame:
    """Read CSV or Parquet from a path, bytes or file-like; the format comes from the name or the bytes."""
    name = filename or (str(src) if isinstance(src, (str, Path)) else getattr(src, "name", "")) or ""
    if isinstance(src, (str, Path)):
        p = Path(src)
        if not p.exists():
            raise DataError(f"there is no file {str(p)!r}")
        data = p.read_bytes()
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif hasattr(src, "read"):
        data = src.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        raise DataError("give a file path, the file's bytes, or an open file")
    if not data:
        raise DataError("the file is empty")
    is_parquet = data[:4] == b"PAR1" or str(name).lower().endswith((".parquet", ".pq"))
    try:
        if is_parquet:
            df = pd.read_parquet(io.BytesIO(data))
            if isinstance(df.index, pd.DatetimeIndex):
                df = df.reset_index(names=df.index.name or "timestamp")
            return df
        if b"\x00" in data[:4096]:
            raise DataError("the file is not text: a candle file must be CSV (comma, semicolon, tab or | "
                            "separated) or Parquet")
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which must not become part of the
        # first column's name (plain UTF-8 reads the same either way). The C parser reads 200k rows ~60x
        # faster than the python one, so the separator is sniffed here, among the ones candle files use.
        return pd.read_csv(io.BytesIO(data), sep=_separator(data), encoding="utf-8-sig")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's problem, said plainly
        kind = "Parquet" if is_parquet else "CSV"
        if is_parquet and "magic bytes" in str(exc):  # pyarrow's words for a file that is not Parquet (or cut)
            raise DataError("the file could not be read as Parquet: it is not a Parquet file, or it was cut short "
                            "(its end marker is missing)") from None
        raise DataError(f"the file could not be read as {kind}: {exc}") from None


def _separator(data: bytes) -> str:
    """The CSV separator among , ; tab and |, from the file's first lines (a comma when none is clear)."""
    head = data[:65536].decode("utf-8", errors="ignore").lstrip("\ufeff")
    lines = head.splitlines()[:-1] if len(head) == 65536 else head.splitlines()  # the last may be cut
    try:
        return csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _match_columns(df: pd.DataFrame) -> dict[str, str]:
    norm = {str(c).replace("\ufeff", "").strip().lower(): c for c in df.columns}
    found: dict[str, str] = {}
    for alias in _TIME_ALIASES:
        if alias in norm:
            found["timestamp"] = norm[alias]
            break
    for col, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in norm:
                found[col] = norm[alias]
                break
    missing = [c for c in ("timestamp", *COLUMNS) if c not in found]
    if missing:
        names = [str(c) for c in df.columns]
        have = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "") if names else "none"
        quoted = [f"'{m}'" for m in missing]
        what = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        hint = " (for the time, also accepted: time, date, datetime, open_time)" if "timestamp" in missing else ""
        raise DataError(f"the file lacks the {what} column{'s' if len(missing) > 1 else ''}{hint}; its "
                        f"{len(names)} column{'s' if len(names) != 1 else ''}: {have}. A candle file needs "
                        f"timestamp, {', '.join(COLUMNS)}")
    return found


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
# The dates a candle table can hold: the store keeps nanosecond timestamps (1677-09-21 to 2262-04-11).
_TS_MIN, _TS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


def _epoch_unit(magnitude: np.ndarray) -> np.ndarray:
    """The epoch unit each |value| reads as: below 1e11 seconds, then ms, us, ns (1e11 s is the year 5138,
    1e11 ms is 1973: any real timestamp of one unit falls in its own band)."""
    return np.select([magnitude >= 1e17, magnitude >= 1e14, magnitude >= 1e11], ["ns", "us", "ms"], "s")


def _refuse_first(col: pd.Series, bad: np.ndarray, why: Callable[[int], str]) -> None:
    """A DataError naming the first data row where `bad` holds: "the timestamp at data row N ('value') " + why."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"the timestamp at data row {i + 1} ({str(col.iloc[i])!r}) {why(i)}")


def _out_of_range(value: Any, row: int) -> DataError:
    return DataError(
        f"the timestamp at data row {row + 1} ({str(value)!r}) is outside the dates a dataset can hold "
        f"({_TS_MIN:%Y-%m-%d} to {_TS_MAX:%Y-%m-%d}); check the file's timestamp column and its unit"
    )


def _parse_timestamps(col: pd.Series) -> tuple[pd.DatetimeIndex, str]:
    """Epoch numbers (unit from magnitude) or date text; DataError naming the first bad value.

    Numeric epochs must all be in one unit: a row whose magnitude reads as another unit than the file's
    (e.g. one row in seconds in a file of milliseconds, which would land in 1970) is refused, naming it.
    Timestamps outside the range a dataset can hold are refused, naming the first.
    """
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all() and len(col):
        values = numeric.to_numpy(float)
        mag = np.abs(values)
        unit = str(_epoch_unit(np.array([np.median(mag)]))[0])
        _refuse_first(col, _epoch_unit(mag) != unit,
                      lambda i: f"reads as {_UNIT_WORDS[str(_epoch_unit(mag[i:i + 1])[0])]} while the file's "
                                f"timestamps are in {_UNIT_WORDS[unit]}: every timestamp must use the same unit")
        # Within one unit band a row can still be in another unit (seconds / 1000 is still "seconds" by
        # magnitude): once the timestamps are real dates (the median after 1973), a row 100 times smaller or
        # larger than the median (or of the other sign) is decades away from the rest, not a candle of theirs.
        med = float(np.median(values))
        if abs(med) * _UNIT_NS[unit] >= 1e17:
            ratio = values / med
            _refuse_first(col, ~((ratio >= 0.01) & (ratio <= 100)),
                          lambda i: f"is far from the file's other timestamps (typically {med:.0f} "
                                    f"{_UNIT_WORDS[unit]}): is it in another unit? every timestamp must use "
                                    f"the same unit")
        too_big = ~(np.abs(values * _UNIT_NS[unit]) < float(_TS_MAX.value))
        if too_big.any():
            i = int(np.flatnonzero(too_big)[0])
            raise _out_of_range(col.iloc[i], i)
        try:
            ts = pd.to_datetime(numeric.astype("int64") if (numeric % 1 == 0).all() else numeric,
                                unit=unit, utc=True)
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            raise DataError("some timestamps are outside the dates a dataset can hold "
                            f"({_TS_MIN:%Y-%m-%d} to {_TS_MAX:%Y-%m-%d})") from None
        return _in_range(pd.DatetimeIndex(ts), col), unit
    # "2024-01-01 00:00:00 UTC" (as some exports write it) is ISO 8601 with its zone in words
    text = col.astype(str).str.strip().str.replace(r"(?i)\s*(?:UTC|GMT)$", "+00:00", regex=True)
    ts = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = ts.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{int(bad.sum())} timestamps could not be read (first at data row {first + 1}: "
            f"{str(col.iloc[first])!r}); use epoch seconds or milliseconds, or ISO dates like "
            f"2024-01-01 00:00:00"
        )
    return _in_range(pd.DatetimeIndex(ts), col), "iso"


def _in_range(idx: pd.DatetimeIndex, col: pd.Series) -> pd.DatetimeIndex:
    """`idx` in nanoseconds (the store's unit); DataError naming the first timestamp that does not fit."""
    bad = np.asarray((idx < _TS_MIN) | (idx > _TS_MAX))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _out_of_range(col.iloc[i], i)
    return idx.as_unit("ns")


def _rows_said(n: int, one: str, many: str, first: int) -> str:
    """"1 row has ... (data row 5)" or "3 rows have ... (first at data row 5)"."""
    return f"1 row {one} (data row {first})" if n == 1 else f"{n:,} rows {many} (first at data row {first})"


def read_candle_file(
    src: str | Path | bytes | IO[Any],
    timeframe: str | None = None,
    filename: str | None = None,
    nan_policy: Literal["refuse", "drop"] = "refuse",
) -> tuple[pd.DataFrame, ImportReport]:
    """Parse and check a candle file; returns (candles, report) without storing anything."""
    if timeframe is not None and timeframe not in TIMEFRAMES:
        raise DataError(f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")
    raw = _read_table(src, filename)
    report = ImportReport(rows_read=int(len(raw)))
    if len(raw) == 0:
        raise DataError("the file has a header but no rows")
    cols = _match_columns(raw)
    report.timestamp_column = str(cols["timestamp"])
    values = pd.DataFrame({c: pd.to_numeric(raw[cols[c]], errors="coerce") for c in COLUMNS})
    # Text in a price column is not a NaN the user left out: say which value it is.
    for c in COLUMNS:
        bad = values[c].isna() & raw[cols[c]].notna() & (raw[cols[c]].astype(str).str.strip() != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            n_bad = int(bad.sum())
            what = "value that is not a number" if n_bad == 1 else "values that are not numbers"
            raise DataError(f"the '{cols[c]}' column has {n_bad} {what} (first at data row {i + 1}: "
                            f"{str(raw[cols[c]].iloc[i])!r})")
    ts_col = raw[cols["timestamp"]]
    nan_ts = ts_col.isna().to_numpy()
    nan_rows = values.isna().any(axis=1).to_numpy() | nan_ts
    if nan_rows.any():
        n, first = int(nan_rows.sum()), int(np.flatnonzero(nan_rows)[0])
        if nan_policy != "drop":
            raise DataError(_rows_said(n, "has missing values", "have missing values", first + 1)
                            + "; fill them in the file or import with missing rows dropped")
        keep = ~nan_rows
        values, ts_col = values.loc[keep], ts_col.loc[keep]
        report.nan_rows_dropped = n
        report.notes.append(f"{n:,} row{'s' if n != 1 else ''} with missing values dropped")
        if len(values) == 0:
            raise DataError("every row has missing values")
    inf = ~np.isfinite(values.to_numpy()).all(axis=1)
    if inf.any():
        raise DataError(_rows_said(int(inf.sum()), "has an infinite value", "have an infinite value",
                                   int(np.flatnonzero(inf)[0]) + 1) + "; prices and volumes must be finite numbers")
    idx, fmt = _parse_timestamps(ts_col.reset_index(drop=True))
    report.timestamp_format = fmt
    values.index = idx.rename("timestamp")
    v = values.to_numpy()
    for bad, one, many in candle_problems(v):  # the store's own rules (core.data.candles), by data row
        if bad.any():
            raise DataError(_rows_said(int(bad.sum()), f"has {one}", many, int(np.flatnonzero(bad)[0]) + 1))

    if not values.index.is_monotonic_increasing:
        values = values.sort_index(kind="stable")
        report.sorted = True
        report.notes.append("rows were not in time order and have been sorted")
    dup = values.index.duplicated(keep="first")
    if dup.any():
        # Count duplicates whose prices differ from the kept row: those hide a real problem in the file.
        first_vals = values[~dup].reindex(values.index[dup])
        report.conflicting_duplicates = int((first_vals.to_numpy() != values[dup].to_numpy()).any(axis=1).sum())
        report.duplicates_dropped = int(dup.sum())
        values = values[~dup]
        note = f"{report.duplicates_dropped} duplicate timestamps dropped (the first of each kept)"
        if report.conflicting_duplicates:
            note += f", {report.conflicting_duplicates} of them with different prices"
        report.notes.append(note)

    if len(values) < MIN_CANDLES:
        n = len(values)
        after = (f" once its {report.duplicates_dropped} duplicate timestamps are dropped"
                 if report.duplicates_dropped else "")
        raise too_few_candles(n, f"the file has {n}{after}: import a file with more rows")
    inferred = infer_timeframe(values.index)
    if timeframe is None:
        if inferred is None:
            raise DataError("the timeframe could not be worked out from the timestamps; choose it")
        timeframe = inferred
    elif inferred is not None and TIMEFRAMES[inferred] < TIMEFRAMES[timeframe]:
        raise DataError(f"the file's candles are {inferred} apart, not {timeframe}: choose {inferred} "
                        f"(and resample later if you need {timeframe})")
    elif inferred is not None and TIMEFRAMES[inferred] > TIMEFRAMES[timeframe]:
        raise DataError(f"the file's candles are {inferred} apart, not {timeframe}: choose {inferred} (as "
                        f"{timeframe} candles, most of its bars would be gaps)")
    ns = values.index.as_unit("ns").asi8
    step = TIMEFRAMES[timeframe] * 1_000_000_000
    if (ns % step).any() and timeframe != "1d":
        report.notes.append(f"some timestamps are not on the {timeframe} grid")
    report.timeframe = timeframe
    gaps = find_gaps(values.index, timeframe)
    report.gaps = gaps[:100]
    report.gap_count = len(gaps)
    report.missing_bars = int(sum(g["missing"] for g in gaps))
    if gaps:
        report.notes.append(f"{len(gaps)} gaps ({report.missing_bars} missing bars) left as gaps")
    values.attrs.update(source=SOURCE, timeframe=timeframe)
    df = validate_candles(values)
    report.rows = int(len(df))
    report.start, report.end = df.index[0].isoformat(), df.index[-1].isoformat()
    return df, report


def import_candles(
    src: str | Path | bytes | IO[Any],
    symbol: str,
    timeframe: str | None = None,
    filename: str | None = None,
    nan_policy: Literal["refuse", "drop"] = "refuse",
    save: bool = True,
    replace: bool = True,
) -> tuple[pd.DataFrame, ImportReport]:
    """Read, check and (by default) store a candle file as dataset `import-<SYMBOL>-<timeframe>`. With
    `replace=False` a dataset of that id already held is left alone: `store.DatasetExists` is raised."""
    if not symbol or not str(symbol).strip():
        raise DataError("give the symbol the file holds (e.g. MYCOIN/USDT)")
    symbol = str(symbol).strip()
    df, report = read_candle_file(src, timeframe, filename, nan_policy)
    df.attrs.update(symbol=symbol)
    if save:
        from core.data.store import dataset_id, refuse_to_replace, save_candles

        if not replace:
            refuse_to_replace(dataset_id(SOURCE, symbol, report.timeframe))
        info = save_candles(df, SOURCE, symbol, report.timeframe,
                            meta={"file": filename or (str(src) if isinstance(src, (str, Path)) else None),
                                  "import_report": {k: v for k, v in report.to_dict().items() if k != "gaps"}})
        report.dataset = info.id
        df.attrs["dataset"] = info.id
    return df, report


__all__ = ["ImportReport", "import_candles", "read_candle_file"]
