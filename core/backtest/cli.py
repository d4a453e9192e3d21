"""`python -m core backtest`: backtest a saved run (its test span) or a rule baseline on a dataset.

    python -m core backtest --run RUN_ID [--set key=value ...] [--json] [--returns-csv PATH] [--trades-csv PATH]
    python -m core backtest --baseline buy_and_hold|ma_cross [--dataset ID] [...]

The CSV paths are inside the workspace (relative ones are taken from the workspace root, like `features
--out`); a path outside it is refused before anything runs. With --json the one JSON object is
{"strategy": {...}, "buy_and_hold": {...}, "span": {...}, "label": ..., "config": {...}}.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backtest", help="backtest a run's predictions (or a rule baseline) after fees and risk rules",
        description="Backtest a run's out-of-sample predictions, or a rule baseline, with fees, slippage, sizing "
                    "and the stop / take-profit / time / drawdown rules. --set keys are the BacktestConfig "
                    "fields, e.g. --set threshold=0.55 --set sizing=half_kelly --set stop_loss=fixed.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", metavar="RUN_ID", help="a saved run (see `python -m core runs list`)")
    what.add_argument("--walk-forward", metavar="WF_ID", dest="walk_forward",
                      help="a saved walk-forward evaluation: every fold's test block (`python -m core train --folds K`)")
    what.add_argument("--baseline", choices=["buy_and_hold", "ma_cross"], help="a rule baseline instead of a run")
    p.add_argument("--dataset", default=None, help="dataset id for --baseline (default: the offline market)")
    p.add_argument("--start", default=None, help="first bar of the span (ISO date/time, UTC)")
    p.add_argument("--end", default=None, help="last bar of the span (ISO date/time, UTC)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.add_argument("--returns-csv", metavar="PATH",
                   help="write per-bar strategy returns with timestamps (a path inside the workspace)")
    p.add_argument("--trades-csv", metavar="PATH", help="write the trade list (a path inside the workspace)")
    p.set_defaults(func=cmd_backtest)


def _ts(value: str | None, name: str) -> Any:
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--{name} {value!r} is not a date; use e.g. 2025-06-01 or 2025-06-01T12:00") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _csv_target(path: str | None, flag: str) -> Path | None:
    """Where --returns-csv / --trades-csv write: inside the workspace (relative to its root), or a sentence."""
    from core.workspace import output_path

    return None if path is None else output_path(path, f"--{flag}")


def _write_csv(df: Any, target: Path) -> None:
    from core.workspace import atomic_write

    atomic_write(target, lambda tmp: df.to_csv(tmp, index=False))


def cmd_backtest(args: argparse.Namespace) -> int:
    from core.backtest.api import backtest_baseline, backtest_inputs, backtest_run, walk_forward_inputs
    from core.backtest.config import make_config
    from core.backtest.metrics import format_metric, METRIC_LABELS
    from core.cli import parse_set, print_json

    cfg = make_config(parse_set(args.set))
    start, end = _ts(args.start, "start"), _ts(args.end, "end")
    returns_csv = _csv_target(args.returns_csv, "returns-csv")  # checked before anything runs
    trades_csv = _csv_target(args.trades_csv, "trades-csv")
    if (args.run or args.walk_forward) and args.dataset:
        raise UserError("--dataset goes with --baseline; a run or walk-forward backtests on its own dataset")
    if args.run:
        result = backtest_run(args.run, cfg, start=start, end=end)
    elif args.walk_forward:
        result = backtest_inputs(walk_forward_inputs(args.walk_forward), cfg, start, end, "walk-forward")
    else:
        from core.data.store import ensure_default_dataset, load_candles

        ds = args.dataset or ensure_default_dataset()
        result = backtest_baseline(args.baseline, load_candles(ds), cfg, start=start, end=end)
    if result.note:
        print(f"warning: {result.note}", file=sys.stderr)
    if stop := cfg.stop_note():
        print(f"note: {stop}", file=sys.stderr)
    if returns_csv is not None:
        _write_csv(result.returns_frame(), returns_csv)
    if trades_csv is not None:
        _write_csv(result.trades.drop(columns=["entry_bar", "exit_bar"]), trades_csv)
    if args.json:
        print_json(result.summary())
        return 0
    print(f"{result.label}: {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC, "
          f"{len(result.equity):,} {result.timeframe} bars")
    print(f"{'metric':32s} {'strategy':>16s} {'buy & hold':>16s}")
    for k, label in METRIC_LABELS.items():
        print(f"{label:32s} {format_metric(k, result.metrics.get(k)):>16s} "
              f"{format_metric(k, result.buy_and_hold.get(k)):>16s}")
    return 0
