"""`python -m core data ...`: make, fetch, import, list and delete candle datasets; record order books.

Light at import time (argparse only): the handlers import pandas/ccxt when they run, so `--help` is fast.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

TIMEFRAME_CHOICES = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]


def _summary(info: Any, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": info.id, "rows": info.rows,
        "start": None if info.start is None else info.start.isoformat(),
        "end": None if info.end is None else info.end.isoformat(),
        "source": info.source, "symbol": info.symbol, "timeframe": info.timeframe, **extra,
    }


def _out(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        from core.cli import print_json

        print_json(obj)
    else:
        print(text)


def _cmd_synth(args: argparse.Namespace) -> int:
    from core.data.store import make_synthetic_datasets

    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    infos = make_synthetic_datasets(symbols, args.timeframe, start=args.start, end=args.end,
                                    periods=args.periods, seed=args.seed, suffix=args.suffix)
    first = infos[0]
    obj = _summary(first, seed=args.seed, datasets=[_summary(i) for i in infos])
    _out(args, obj, "\n".join(f"{i.id}: {i.rows:,} candles {i.start} .. {i.end} (synthetic)" for i in infos))
    return 0


def _stderr_progress(p: Any) -> None:
    frac = p.fraction
    bar = f"[{'#' * int(30 * frac):<30}] {100 * frac:5.1f}% " if frac is not None else ""
    sys.stderr.write(f"\r{bar}{p.message[:80]:<80}")
    sys.stderr.flush()


def _cmd_fetch(args: argparse.Namespace) -> int:
    from core.data.bybit import fetch_candles
    from core.data.store import dataset_info

    progress = None if args.quiet else _stderr_progress
    try:
        res = fetch_candles(args.symbol, args.timeframe, args.start, args.end, args.market, progress=progress)
    finally:
        if progress:
            sys.stderr.write("\n")
    info = dataset_info(res.dataset)
    obj = _summary(info, rows_added=res.rows_added, requests=res.requests, pages=res.pages, left_out=res.left_out)
    _out(args, obj, f"{info.id}: {info.rows:,} candles ({res.rows_added:+,} new) {info.start} .. {info.end}"
         + (f"\n{res.note()}" if res.left_out else ""))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from core.data.importer import import_candles

    df, rep = import_candles(args.file, args.symbol, args.timeframe, nan_policy=args.nan)
    from core.data.store import dataset_info

    info = dataset_info(rep.dataset)
    obj = _summary(info, report={k: v for k, v in rep.to_dict().items() if k != "gaps"}, gaps=rep.gaps[:20])
    _out(args, obj, f"{info.id}: {rep.summary()}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from core.data.orderbook import list_order_books
    from core.data.store import list_datasets

    infos = list_datasets()
    books = list_order_books()
    if args.json:
        from core.cli import print_json

        print_json({"datasets": [i.to_dict() for i in infos], "order_books": [b.to_dict() for b in books]})
        return 0
    if not infos:
        print("no datasets yet: `python -m core data synth` makes the offline market")
    for i in infos:
        print(f"{i.id:<36} {i.source:<14} {i.symbol:<12} {i.timeframe:>4} {i.rows:>10,}  {i.start} .. {i.end}")
    for b in books:
        print(f"{b.id:<36} order book     {b.symbol:<12} {b.levels:>3} levels {b.snapshots:>7,} snapshots")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from core.data.orderbook import delete_order_book, order_book_exists
    from core.data.store import delete_dataset, exists
    from core.errors import DataError

    if exists(args.dataset):  # (an invalid id is refused here, with its sentence)
        delete_dataset(args.dataset)
    elif order_book_exists(args.dataset):
        delete_order_book(args.dataset)
    else:
        try:  # a dataset whose candles file is gone but whose index file is left
            delete_dataset(args.dataset)
        except DataError:
            raise DataError(f"there is no dataset or order book {args.dataset!r}; see `python -m core data list`"
                            ) from None
    _out(args, {"deleted": args.dataset}, f"deleted {args.dataset}")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    if args.synthetic:
        from core.data.orderbook import make_synthetic_order_book

        info = make_synthetic_order_book(args.synthetic, levels=args.levels, seed=args.seed,
                                         max_snapshots=args.max_snapshots)
    else:
        if not args.symbol:
            from core.errors import UserError

            raise UserError("give --symbol to record a Bybit book, or --synthetic DATASET")
        from core.data.bybit import record_order_book

        info = record_order_book(args.symbol, args.market, levels=args.levels, interval_s=args.interval,
                                 duration_s=args.duration,
                                 progress=None if args.quiet else _stderr_progress)
        if not args.quiet:
            sys.stderr.write("\n")
    _out(args, {"book": info.id, **info.to_dict()},
         f"{info.id}: {info.snapshots:,} snapshots, {info.levels} levels, {info.start} .. {info.end}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="market data: synthetic market, Bybit, file import, store")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])

    s = sub.add_parser("synth", help="generate the offline synthetic market (BTC/USDT, ETH/USDT, ...)")
    s.add_argument("--symbols", default="BTC/USDT,ETH/USDT", help="comma-separated (default: %(default)s)")
    s.add_argument("--timeframe", default="1h", choices=TIMEFRAME_CHOICES)
    s.add_argument("--start", default="2024-01-01")
    s.add_argument("--end", default="2026-01-01", help="exclusive (default: %(default)s)")
    s.add_argument("--periods", type=int, default=None, help="number of candles (instead of --end)")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--suffix", default="", help="keep this market beside the default one under a name suffix "
                                               "(e.g. short -> synthetic-BTCUSDT-1h-short)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_synth)

    f = sub.add_parser("fetch", help="fetch Bybit candles through ccxt (incremental, resumable)")
    f.add_argument("--symbol", required=True, help="e.g. BTC/USDT")
    f.add_argument("--market", default="linear", choices=["spot", "linear"])
    f.add_argument("--timeframe", default="1h", choices=TIMEFRAME_CHOICES)
    f.add_argument("--start", required=True, help="e.g. 2024-01-01")
    f.add_argument("--end", default=None, help="exclusive; default: now (closed candles only)")
    f.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=_cmd_fetch)

    i = sub.add_parser("import", help="import candles from a CSV or Parquet file")
    i.add_argument("file")
    i.add_argument("--symbol", required=True, help="what the file holds, e.g. MYCOIN/USDT")
    i.add_argument("--timeframe", default=None, choices=TIMEFRAME_CHOICES,
                   help="default: worked out from the timestamps")
    i.add_argument("--nan", default="refuse", choices=["refuse", "drop"],
                   help="rows with missing values: refuse the file (default) or drop them")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_import)

    ls = sub.add_parser("list", help="list stored datasets and order books")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_cmd_list)

    d = sub.add_parser("delete", help="delete a dataset or an order book")
    d.add_argument("dataset")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_delete)

    b = sub.add_parser("book", help="record Bybit order-book snapshots (or make synthetic ones)")
    b.add_argument("--symbol", default=None)
    b.add_argument("--market", default="linear", choices=["spot", "linear"])
    b.add_argument("--levels", type=int, default=50)
    b.add_argument("--interval", type=float, default=1.0, help="seconds between snapshots")
    b.add_argument("--duration", type=float, default=60.0, help="seconds to record")
    b.add_argument("--synthetic", default=None, metavar="DATASET",
                   help="instead of recording: synthetic snapshots along a stored dataset's prices")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-snapshots", type=int, default=None)
    b.add_argument("--quiet", action="store_true")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_book)
