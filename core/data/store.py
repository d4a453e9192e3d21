"""The on-disk candle store: one parquet file per (source, symbol, timeframe) under workspace/data/candles.

Each dataset is `<id>.parquet` (the candles, with the metadata also embedded in the parquet schema so the
file alone is the truth) plus `<id>.json` (the same metadata, read by `list_datasets` without opening the
parquet). Metadata: source, symbol, timeframe, rows, start, end, fetched_at, and `ranges` - the time
ranges already covered (requested and answered), which an incremental fetch uses to ask only for what is
missing. Both files are written atomically (temp file + rename): the old json is removed, then the parquet
and the new json are written, so a crash leaves either the old dataset or the new one (without a json, the
metadata is read from the parquet itself), never a half-written file or an index that disagrees with it.

Dataset ids are file-safe: `<source>-<SYMBOL>-<timeframe>`, e.g. `synthetic-BTCUSDT-1h`,
`bybit_linear-BTCUSDT-1h`, `import-MYCOIN-1h`, optionally with a name suffix that keeps a variant beside it:
`synthetic-BTCUSDT-1h-short` (`split_dataset_id` reads the parts back).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.data.candles import (MIN_CANDLES, TIMEFRAMES, timeframe_delta, timeframe_seconds, too_few_candles,
                               validate_candles)
from core.errors import DataError
from core.workspace import atomic_write, atomic_write_json, read_json, safe_name, ws_path

DEFAULT_SYMBOL = "BTC/USDT"
DEFAULT_TIMEFRAME = "1h"
DEFAULT_SEED = 42
DEFAULT_START = "2024-01-01"
DEFAULT_END = "2026-01-01"  # exclusive: two years ending 2025-12-31
_META_KEY = b"cnn_lab_meta"


@dataclass
class DatasetInfo:
    """What the store knows about one dataset (without loading its candles)."""

    id: str
    source: str
    symbol: str
    timeframe: str
    rows: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None          # open time of the last candle
    fetched_at: pd.Timestamp | None
    ranges: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)  # [start, end) covered
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("start", "end", "fetched_at"):
            d[k] = _iso(d[k])
        d["ranges"] = [[_iso(a), _iso(b)] for a, b in self.ranges]
        return d


def _iso(ts: Any) -> str | None:
    return None if ts is None or (isinstance(ts, float) and np.isnan(ts)) else pd.Timestamp(ts).isoformat()


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def symbol_slug(symbol: str) -> str:
    """The file-safe form of a symbol: 'BTC/USDT' -> 'BTCUSDT', 'BTC/USDT:USDT' -> 'BTCUSDT'."""
    base = symbol.split(":", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9]", "", base).upper()
    dropped = [ch for ch in base if ch.isalnum() and not (ch.isascii() and ch.isalnum())]
    if dropped:  # 'БТЦ/USDT' would become 'USDT' and could land on another symbol's dataset
        raise DataError(f"{symbol!r} has letters the dataset names cannot hold ({''.join(dropped[:5])}); "
                        "write the symbol in Latin letters and digits, e.g. BTC/USDT")
    if not slug:
        raise DataError(f"{symbol!r} is not a usable symbol name")
    return slug


def name_suffix(suffix: str | None) -> str:
    """A dataset name suffix ('' for none) checked with the workspace's safe-name rules: letters, digits, '.',
    '_' or '-', starting with a letter or digit; DataError (a sentence) otherwise."""
    suffix = (suffix or "").strip()
    if not suffix:
        return ""
    try:
        safe_name(suffix)
    except ValueError:
        raise DataError(f"'{suffix}' is not a usable name suffix: use letters, digits, '.', '_' or '-', starting "
                        "with a letter or digit (e.g. short)") from None
    return suffix


def dataset_id(source: str, symbol: str, timeframe: str, suffix: str | None = None) -> str:
    """The id of the dataset holding `symbol` at `timeframe` from `source`; a `suffix` names a variant kept
    beside it ('short' -> `synthetic-BTCUSDT-1h-short`)."""
    timeframe_seconds(timeframe)
    src = re.sub(r"[^a-z0-9_]", "_", source.lower())
    tail = f"-{s}" if (s := name_suffix(suffix)) else ""
    try:
        return safe_name(f"{src}-{symbol_slug(symbol)}-{timeframe}{tail}")
    except ValueError as exc:
        raise DataError(str(exc)) from None


def split_dataset_id(ds_id: str) -> tuple[str, str, str, str]:
    """'<source>-<SYMBOL>-<timeframe>[-<suffix>]' -> (source, SYMBOL, timeframe, suffix or ''); DataError
    for anything else. Source, symbol slug and timeframe hold no '-', so the suffix is everything after."""
    parts = str(ds_id).split("-", 3)
    if len(parts) < 3 or not all(parts[:3]) or (len(parts) == 4 and not parts[3]):
        raise DataError(f"{ds_id!r} is not a dataset id of the form <source>-<SYMBOL>-<timeframe>[-<suffix>]")
    return parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else ""


def _dir() -> Path:
    return ws_path("data", "candles")


def _paths(ds_id: str) -> tuple[Path, Path]:
    try:
        safe_name(ds_id)
    except ValueError:
        raise DataError(f"{ds_id!r} is not a valid dataset id") from None
    d = _dir()
    return d / f"{ds_id}.parquet", d / f"{ds_id}.json"


def merge_ranges(ranges: Iterable[tuple[Any, Any]]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Union of [start, end) ranges, sorted, with touching ranges joined."""
    rs = sorted((_ts(a), _ts(b)) for a, b in ranges if a is not None and b is not None)
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for a, b in rs:
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def missing_ranges(
    want_start: Any, want_end: Any, held: Iterable[tuple[Any, Any]]
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The parts of [want_start, want_end) not covered by `held`."""
    a, b = _ts(want_start), _ts(want_end)
    out = []
    cur = a
    for s, e in merge_ranges(held):
        if e <= cur or s >= b:
            continue
        if s > cur:
            out.append((cur, min(s, b)))
        cur = max(cur, e)
        if cur >= b:
            break
    if cur < b:
        out.append((cur, b))
    return out


def _info_from_meta(meta: dict[str, Any]) -> DatasetInfo:
    known = {"id", "source", "symbol", "timeframe", "rows", "start", "end", "fetched_at", "ranges"}
    return DatasetInfo(
        id=meta["id"],
        source=meta["source"],
        symbol=meta["symbol"],
        timeframe=meta["timeframe"],
        rows=int(meta.get("rows", 0)),
        start=_ts(meta.get("start")),
        end=_ts(meta.get("end")),
        fetched_at=_ts(meta.get("fetched_at")),
        ranges=merge_ranges(meta.get("ranges") or []),
        meta={k: v for k, v in meta.items() if k not in known},
    )


def save_candles(
    df: pd.DataFrame,
    source: str,
    symbol: str,
    timeframe: str,
    meta: dict[str, Any] | None = None,
    suffix: str | None = None,
) -> DatasetInfo:
    """Validate and store `df` as the dataset (source, symbol, timeframe[, suffix]), replacing what was there.

    `meta` may carry `ranges` (list of [start, end) pairs already covered; default: the candles' own span)
    and any other JSON-able facts (seed, exchange, import report...). Returns the stored DatasetInfo.
    Fewer than MIN_CANDLES (2) candles are refused with a sentence (DataError) and nothing is written.
    """
    df = validate_candles(df)
    if len(df) < MIN_CANDLES:  # every way in (generate, import, fetch) ends here: none stores a lone candle
        raise too_few_candles(len(df), f"this one has {len(df)}: choose a longer span (or a shorter timeframe)")
    if df.attrs.get("timeframe") and df.attrs["timeframe"] != timeframe:
        raise DataError(f"these are {df.attrs['timeframe']} candles, not {timeframe}")
    ds_id = dataset_id(source, symbol, timeframe, suffix)
    meta = dict(meta or {})
    if suffix := name_suffix(suffix):
        meta["suffix"] = suffix
    step = timeframe_delta(timeframe)
    ranges = meta.pop("ranges", None)
    if ranges is None:
        ranges = [(df.index[0], df.index[-1] + step)] if len(df) else []
    ranges = merge_ranges(ranges)
    fetched_at = meta.pop("fetched_at", None) or pd.Timestamp.now(tz="UTC")
    full = {
        **{k: v for k, v in meta.items()},
        "id": ds_id,
        "source": source,
        "symbol": symbol,
        "timeframe": timeframe,
        "rows": int(len(df)),
        "start": _iso(df.index[0]) if len(df) else None,
        "end": _iso(df.index[-1]) if len(df) else None,
        "fetched_at": _iso(fetched_at),
        "ranges": [[_iso(a), _iso(b)] for a, b in ranges],
        "schema_version": 1,
    }
    parquet_path, json_path = _paths(ds_id)
    table = pa.Table.from_pandas(df, preserve_index=True)
    md = dict(table.schema.metadata or {})
    md[_META_KEY] = json.dumps(full, default=str).encode()
    table = table.replace_schema_metadata(md)
    # the json index goes first: a crash before the new one is written leaves no index, which dataset_info
    # rebuilds from whichever parquet is there (old or new), never an old index over new candles
    json_path.unlink(missing_ok=True)
    atomic_write(parquet_path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    atomic_write_json(json_path, full)
    return _info_from_meta(full)


def dataset_info(ds_id: str) -> DatasetInfo:
    """The stored metadata of one dataset; DataError if there is no such dataset."""
    parquet_path, json_path = _paths(ds_id)
    if not parquet_path.exists():
        raise DataError(f"there is no dataset {ds_id!r}: see the Data page or `python -m core data list`")
    try:
        meta = read_json(json_path)
    except (FileNotFoundError, json.JSONDecodeError):
        # The json index is a convenience; the parquet carries the truth: read it from there. Not written back
        # here: a writer between its parquet and its json (save_candles removes the old json first) would
        # then find this reader's copy of the old parquet's metadata over its new candles. It writes its own.
        meta = _meta_from_parquet(parquet_path)
    return _info_from_meta(meta)


def _meta_from_parquet(path: Path) -> dict[str, Any]:
    md = pq.read_schema(path).metadata or {}
    if _META_KEY not in md:
        raise DataError(f"{path.name} is not a dataset written by this app")
    return json.loads(md[_META_KEY])


def dataset_version(ds_id: str) -> int:
    """Changes whenever the dataset's candles are rewritten (the parquet's mtime in ns; 0 if absent): a key
    for caches of loaded candles."""
    parquet_path, _ = _paths(ds_id)
    try:
        return parquet_path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def load_candles(ds_id: str) -> pd.DataFrame:
    """The candles of dataset `ds_id` (attrs: source, symbol, timeframe, dataset)."""
    info = dataset_info(ds_id)
    parquet_path, _ = _paths(ds_id)
    df = pq.read_table(parquet_path).to_pandas()
    if "timestamp" in df.columns:
        df = df.set_index("timestamp")
    df.index = pd.DatetimeIndex(df.index).tz_convert("UTC").as_unit("ns").rename("timestamp")
    df = df.astype("float64")
    df.attrs.update(source=info.source, symbol=info.symbol, timeframe=info.timeframe, dataset=ds_id)
    return df


def list_datasets() -> list[DatasetInfo]:
    """Every stored dataset, sorted by id."""
    d = _dir()
    out = []
    for p in sorted(d.glob("*.parquet"), key=lambda p: p.stem):  # by id: "-1h" before its "-1h-short" variant
        if p.name.startswith("."):
            continue
        try:
            out.append(dataset_info(p.stem))
        except (DataError, OSError, ValueError):
            continue  # a foreign or damaged file: not a dataset we can offer
    return out


def delete_dataset(ds_id: str) -> None:
    """Remove a dataset (both files); DataError if it does not exist."""
    parquet_path, json_path = _paths(ds_id)
    if not parquet_path.exists() and not json_path.exists():
        raise DataError(f"there is no dataset {ds_id!r}")
    for p in (parquet_path, json_path):
        p.unlink(missing_ok=True)


def exists(ds_id: str) -> bool:
    return _paths(ds_id)[0].exists()


class DatasetExists(DataError):
    """Storing would replace a dataset that is already there (raised only when the caller asks not to)."""

    def __init__(self, info: "DatasetInfo") -> None:
        self.info = info
        span = f", {info.start:%Y-%m-%d} to {info.end:%Y-%m-%d}" if info.start is not None else ""
        super().__init__(f"a dataset {info.id} is already held ({info.rows:,} candles{span}): storing these "
                         "candles would replace it")


def refuse_to_replace(ds_id: str) -> None:
    """DatasetExists when `ds_id` is held; for callers that must not overwrite a dataset silently."""
    if exists(ds_id):
        raise DatasetExists(dataset_info(ds_id))


def ensure_default_dataset() -> str:
    """The offline synthetic BTC/USDT 1h market (2 years ending 2025-12-31, seed 42), made on first use.

    The ETH/USDT market of the same simulation (correlated with BTC) is stored alongside it.
    """
    ds_id = dataset_id("synthetic", DEFAULT_SYMBOL, DEFAULT_TIMEFRAME)
    if exists(ds_id):
        return ds_id
    make_synthetic_datasets(seed=DEFAULT_SEED)
    return ds_id


def make_synthetic_datasets(
    symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT"),
    timeframe: str = DEFAULT_TIMEFRAME,
    start: Any = DEFAULT_START,
    end: Any = DEFAULT_END,
    periods: int | None = None,
    seed: int = DEFAULT_SEED,
    replace: bool = True,
    suffix: str | None = None,
) -> list[DatasetInfo]:
    """Generate and store a synthetic market; one dataset per symbol. Returns their infos. With
    `replace=False` nothing is generated when one of those datasets is already held (`DatasetExists`). A
    `suffix` keeps the market beside the one of the same symbol and timeframe (`synthetic-BTCUSDT-1h-short`)."""
    from core.data.synthetic import generate_market

    symbols = list(symbols)
    ids = [dataset_id("synthetic", sym, timeframe, suffix) for sym in symbols]  # a bad suffix: before any work
    if not replace:
        for ds_id in ids:
            refuse_to_replace(ds_id)

    if periods is not None:
        end = None
    market = generate_market(list(symbols), timeframe, start=start, end=end, periods=periods, seed=seed)
    infos = []
    for sym, df in market.items():
        infos.append(
            save_candles(df, "synthetic", sym, timeframe,
                         meta={"seed": int(seed), "label": "synthetic (offline market)",
                               "symbols": list(market)}, suffix=suffix)
        )
    return infos


__all__ = [
    "DatasetExists",
    "DatasetInfo",
    "TIMEFRAMES",
    "dataset_id",
    "dataset_info",
    "dataset_version",
    "delete_dataset",
    "ensure_default_dataset",
    "exists",
    "name_suffix",
    "split_dataset_id",
    "list_datasets",
    "load_candles",
    "make_synthetic_datasets",
    "merge_ranges",
    "missing_ranges",
    "refuse_to_replace",
    "save_candles",
    "symbol_slug",
]
