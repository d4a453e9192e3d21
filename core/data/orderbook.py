"""Order-book snapshots on disk: a long table per recording under workspace/data/orderbooks.

Layout (what `core.encodings.orderbook_heatmap` reads): one row per (snapshot, side, level) with columns
`timestamp` (UTC), `side` ("bid"/"ask"), `level` (1 = best), `price`, `size`. Each book is
`<book_id>.parquet` plus `<book_id>.json` metadata (source, symbol, levels, snapshots, start, end,
interval). The parquet file's own metadata carries the table's fingerprint (`stored_digest`): written with the
table in one atomic write, so it cannot disagree with it, and read from the file's footer, not its rows.
Writes are atomic, so a recorder can rewrite the file after every snapshot and an interruption keeps
everything recorded so far.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DataError
from core.workspace import atomic_write, atomic_write_json, read_json, safe_name, ws_path

BOOK_COLUMNS = ("timestamp", "side", "level", "price", "size")
_DIGEST_KEY = b"cnn_lab_book_digest"  # in the parquet file's own metadata


@dataclass
class BookInfo:
    id: str
    source: str
    symbol: str
    levels: int
    snapshots: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = None if self.start is None else self.start.isoformat()
        d["end"] = None if self.end is None else self.end.isoformat()
        return d


def _dir() -> Path:
    return ws_path("data", "orderbooks")


def _paths(book_id: str) -> tuple[Path, Path]:
    try:
        safe_name(book_id)
    except ValueError:
        raise DataError(f"{book_id!r} is not a valid order-book id") from None
    return _dir() / f"{book_id}.parquet", _dir() / f"{book_id}.json"


def snapshot_rows(book: Mapping[str, Any], levels: int, timestamp: Any = None) -> pd.DataFrame:
    """Turn one ccxt order book ({'bids': [[price, size], ...], 'asks': ..., 'timestamp': ms}) into rows."""
    ts = timestamp if timestamp is not None else book.get("timestamp")
    if ts is None:
        raise DataError("the order-book snapshot has no timestamp")
    ts = pd.Timestamp(ts, unit="ms", tz="UTC") if isinstance(ts, (int, float, np.integer)) else pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    rows = []
    for side, key in (("bid", "bids"), ("ask", "asks")):
        for i, lvl in enumerate((book.get(key) or [])[:levels]):
            rows.append((ts, side, i + 1, float(lvl[0]), float(lvl[1])))
    df = pd.DataFrame(rows, columns=list(BOOK_COLUMNS))
    return _normalise(df)


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in BOOK_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"the order book has no {', '.join(missing)} column")
    out = df.loc[:, list(BOOK_COLUMNS)].copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).dt.as_unit("ns")
    out["side"] = out["side"].astype(str)
    out["level"] = out["level"].astype("int32")
    out["price"] = out["price"].astype("float64")
    out["size"] = out["size"].astype("float64")
    if len(out) and not set(out["side"].unique()) <= {"bid", "ask"}:
        raise DataError("order-book sides must be 'bid' or 'ask'")
    return out


def save_order_book(
    book: pd.DataFrame,
    book_id: str,
    source: str,
    symbol: str,
    meta: dict[str, Any] | None = None,
) -> BookInfo:
    """Store (replace) the snapshot table `book` as `book_id`."""
    book = _normalise(book).sort_values(["timestamp", "side", "level"], kind="stable", ignore_index=True)
    parquet_path, json_path = _paths(book_id)
    ts = book["timestamp"]
    full = {
        **(meta or {}),
        "id": book_id,
        "source": source,
        "symbol": symbol,
        "levels": int(book["level"].max()) if len(book) else 0,
        "snapshots": int(ts.nunique()),
        "start": ts.iloc[0].isoformat() if len(book) else None,
        "end": ts.iloc[-1].isoformat() if len(book) else None,
    }
    table = pa.Table.from_pandas(book, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _DIGEST_KEY: book_digest(book).encode()})
    atomic_write(parquet_path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    atomic_write_json(json_path, full)
    return _info(full)


def _info(meta: dict[str, Any]) -> BookInfo:
    known = {"id", "source", "symbol", "levels", "snapshots", "start", "end"}
    return BookInfo(
        id=meta["id"], source=meta["source"], symbol=meta["symbol"], levels=int(meta["levels"]),
        snapshots=int(meta["snapshots"]),
        start=pd.Timestamp(meta["start"]) if meta.get("start") else None,
        end=pd.Timestamp(meta["end"]) if meta.get("end") else None,
        meta={k: v for k, v in meta.items() if k not in known},
    )


def order_book_info(book_id: str) -> BookInfo:
    parquet_path, json_path = _paths(book_id)
    if not parquet_path.exists() or not json_path.exists():
        raise DataError(f"there is no order book {book_id!r}")
    return _info(read_json(json_path))


def load_order_book(book_id: str) -> pd.DataFrame:
    """The snapshots of `book_id` as the long table `timestamp, side, level, price, size`."""
    info = order_book_info(book_id)
    try:
        table = pq.read_table(_paths(book_id)[0])
    except (OSError, pa.ArrowException) as exc:  # truncated, not parquet, unreadable
        raise DataError(f"the order book {book_id!r} is damaged ({type(exc).__name__}): record or simulate it "
                        "again (Data page), or delete it") from None
    try:
        df = _normalise(table.to_pandas())
    except DataError as exc:
        raise DataError(f"the order book {book_id!r} is damaged ({exc}): record or simulate it again "
                        "(Data page), or delete it") from None
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DataError(f"the order book {book_id!r} is damaged ({type(exc).__name__}): record or simulate it "
                        "again (Data page), or delete it") from None
    df.attrs.update(source=info.source, symbol=info.symbol, book_id=book_id)
    return df


def list_order_books() -> list[BookInfo]:
    out = []
    for p in sorted(_dir().glob("*.json")):
        if p.name.startswith("."):
            continue
        try:
            out.append(order_book_info(p.stem))
        except (DataError, OSError, ValueError, KeyError):
            continue
    return out


def order_book_exists(book_id: str) -> bool:
    """Whether an order book `book_id` is stored (either of its files); DataError for an invalid id."""
    return any(p.exists() for p in _paths(book_id))


def delete_order_book(book_id: str) -> None:
    parquet_path, json_path = _paths(book_id)
    if not parquet_path.exists() and not json_path.exists():
        raise DataError(f"there is no order book {book_id!r}")
    parquet_path.unlink(missing_ok=True)
    json_path.unlink(missing_ok=True)



def book_digest(book: pd.DataFrame) -> str:
    """A short fingerprint of a snapshot table's times, sides, levels, prices and sizes (float32, as
    `core.data.candles.candles_digest`): a saved order-book run records the one of the book it learnt from,
    so a book replaced since under the same id (re-recorded, simulated again) is noticed."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(pd.DatetimeIndex(book["timestamp"]).as_unit("ns").asi8).tobytes())
    h.update(np.ascontiguousarray(book["side"].astype(str).str.lower().to_numpy() == "bid").tobytes())
    h.update(np.ascontiguousarray(book["level"].to_numpy(dtype=np.int64)).tobytes())
    h.update(np.ascontiguousarray(book[["price", "size"]].to_numpy(dtype=np.float64).astype(np.float32)).tobytes())
    return h.hexdigest()


def stored_digest(book_id: str) -> str:
    """`book_digest` of the stored book: from the parquet file's footer, or (a book saved before books carried
    one) from reading the table."""
    parquet_path = _paths(book_id)[0]
    try:
        md = pq.read_schema(parquet_path).metadata or {}
    except (OSError, pa.ArrowException):
        md = {}  # missing or damaged: load_order_book says which
    return md[_DIGEST_KEY].decode() if _DIGEST_KEY in md else book_digest(load_order_book(book_id))


def book_record(book_id: str) -> dict[str, Any]:
    """What a saved order-book run records of its book (`book_id`, snapshot count, first and last time,
    `digest`), for `core.train.trainer.changed_book_note`."""
    info = order_book_info(book_id)
    return {"book_id": book_id, "snapshots": info.snapshots,
            "start": None if info.start is None else info.start.isoformat(),
            "end": None if info.end is None else info.end.isoformat(),
            "digest": stored_digest(book_id)}


def market_key(symbol: str) -> str:
    """A symbol reduced to its base and quote (`BTC/USDT`, `btc-usdt`, `BTCUSDT` -> `BTCUSDT`; a contract's
    settle suffix `:USDT` dropped), to tell whether a book and a dataset are of the same market: the store's
    `symbol_slug`; "" (unknown) for a symbol it cannot name."""
    from core.data.store import symbol_slug

    try:
        return symbol_slug(str(symbol or ""))
    except DataError:
        return ""


def same_market(book_symbol: str, dataset_symbol: str) -> bool:
    """Whether a book of `book_symbol` belongs to candles of `dataset_symbol` (True when either is unknown)."""
    a, b = market_key(book_symbol), market_key(dataset_symbol)
    return not a or not b or a == b


def books_for_symbol(symbol: str) -> list[BookInfo]:
    """The stored books of the market `symbol` (see `same_market`)."""
    return [b for b in list_order_books() if same_market(b.symbol, symbol)]


def book_id_for(dataset_id: str) -> str:
    """The id of a market's own order book (recorded or simulated for the dataset `dataset_id`): the book an
    order-book model of that dataset reads unless told otherwise."""
    return f"{dataset_id}-book"


def make_synthetic_order_book(dataset_id: str, levels: int = 20, seed: int = 0,
                              max_snapshots: int | None = None) -> BookInfo:
    """Synthetic snapshots (one per candle close) following a stored dataset's price path, stored as
    `<dataset_id>-book`."""
    from core.data.store import load_candles
    from core.data.synthetic import synthetic_order_book_snapshots

    candles = load_candles(dataset_id)
    book = synthetic_order_book_snapshots(candles, levels=levels, seed=seed, max_snapshots=max_snapshots)
    return save_order_book(book, book_id_for(dataset_id), "synthetic", candles.attrs.get("symbol", ""),
                           meta={"dataset": dataset_id, "seed": int(seed), "label": "synthetic"})


__all__: Sequence[str] = [
    "BOOK_COLUMNS", "BookInfo", "book_digest", "book_id_for", "book_record", "books_for_symbol",
    "delete_order_book", "list_order_books", "stored_digest",
    "load_order_book", "make_synthetic_order_book", "order_book_exists", "order_book_info", "same_market",
    "save_order_book", "snapshot_rows",
]
