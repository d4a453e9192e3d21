"""`python -m core live` and `python -m core demo`: the Live page's loop and the home page's demo without a browser.

    python -m core live --run RUN_ID [--replay [--dataset ID] [--start TS] [--step K]] [--ticks N]
                        [--every SECONDS] [--set key=value ...] [--json]
    python -m core live --run RUN_ID --bybit [--symbol BTCUSDT] [--market linear] [--timeframe 1h] ...
    python -m core demo [--set data.max_rows=3000 --set train.epochs=2 ...] [--json]

Replay is the default (no network): the clock starts at the run's test split (out of sample) and moves
`--step` bars a tick, without waiting unless `--every` is given. With --bybit, a tick every `--every`
seconds (default 60) asks Bybit for the latest closed candles; a failed fetch is printed and the loop goes
on. Every signal is appended to the workspace's signal log. `--set` keys are the BacktestConfig fields that
shape a signal (threshold, long_only, sizing, stop_loss, stop_atr_k, take_profit_pct, ...).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("live", help="signals of a run on the latest candles (Bybit) or a replay",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="RUN_ID", help="a saved run (see `python -m core runs list`)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--replay", action="store_true", help="replay a stored dataset as if live (default)")
    src.add_argument("--bybit", action="store_true", help="the latest closed candles from Bybit (ccxt)")
    p.add_argument("--dataset", default=None, help="replay: dataset id (default: the run's dataset)")
    p.add_argument("--start", default=None, help="replay: first bar (default: the run's test split start)")
    p.add_argument("--step", type=int, default=1, help="replay: bars per tick (default 1)")
    p.add_argument("--symbol", default=None, help="bybit: symbol (default: the run's dataset symbol)")
    p.add_argument("--market", default=None, choices=["spot", "linear"],
                   help="bybit: market type (default: the run's, linear for synthetic data)")
    p.add_argument("--timeframe", default=None, help="bybit: timeframe (default: the run's dataset timeframe)")
    p.add_argument("--ticks", type=int, default=10, help="how many ticks to run (default 10)")
    p.add_argument("--every", type=float, default=None, help="seconds between ticks (replay: 0, bybit: 60)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a signal/sizing setting")
    p.add_argument("--json", action="store_true", help="print one JSON object with the signals")
    p.set_defaults(func=cmd_live)

    d = sub.add_parser("demo", help="the one-click demo: offline market -> quick CNN -> out-of-sample backtest",
                       description="Runs the home page's demo: the offline market, the quick preset, baselines, and "
                                   "a backtest of the test split against buy and hold. --set takes data.*, train.*, "
                                   "model.* and backtest.* keys.")
    d.add_argument("--dataset", default=None, help="dataset id (default: the offline market)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    d.add_argument("--json", action="store_true", help="print one JSON object with the summary")
    d.set_defaults(func=cmd_demo)


def cmd_live(args: argparse.Namespace) -> int:
    from core.cli import parse_set, print_json
    from core.errors import UserError
    from core.live.feed import BybitFeed, ReplayFeed
    from core.live.session import LiveSession
    from core.live.signals import load_live_model, replay_start, signal_config

    if args.ticks < 1 or args.step < 1:
        raise UserError("--ticks and --step must be at least 1")
    lm = load_live_model(args.run)
    cfg = signal_config(parse_set(args.set))
    if args.bybit:
        symbol, timeframe, market = lm.market()
        feed: Any = BybitFeed(args.symbol or symbol, args.timeframe or timeframe, args.market or market)
        every, step = 60.0 if args.every is None else args.every, 0
    else:
        from core.data.store import load_candles

        feed = ReplayFeed(load_candles(args.dataset or lm.dataset_id))
        moved = replay_start(lm, feed, args.start)  # an unreadable --start is a UserError: one line, exit 2
        if moved:
            print(moved, file=sys.stderr)
        every, step = args.every or 0.0, args.step
    session = LiveSession()  # the feed is made above: a bad symbol or --start is a one-line exit 2, not a tick
    said: set = set()
    out = []
    for i in range(args.ticks):
        t0 = time.monotonic()
        res = session.tick(lm, lambda: (feed, None), cfg, step)  # the first tick decides at the start bar
        for note in res.notes:  # each warning once, not every tick
            if note not in said:
                said.add(note)
                print(f"warning: {note}", file=sys.stderr)
        if res.error:
            out.append({"error": res.error})
            print(f"tick {i + 1}: {res.error} (carrying on)", file=sys.stderr)
        else:
            rec = res.signal.to_record()
            if res.notes:
                rec["notes"] = list(res.notes)
            out.append(rec)
            if not args.json:
                s = res.signal
                print(f"{s.timestamp:%Y-%m-%d %H:%M} {s.action:5s} conf {s.confidence:.2f} size {s.size * 100:5.1f} % "
                      f"close {s.price:,.2f} stop {'-' if s.stop is None else f'{s.stop:,.2f}'} "
                      f"target {'-' if s.target is None else f'{s.target:,.2f}'}")
        if res.finished:
            break
        if i + 1 < args.ticks and every > 0:
            time.sleep(max(0.0, every - (time.monotonic() - t0)))
    if args.json:
        print_json({"run_id": lm.run_id, "source": feed.source, "signals": out})
    return 0 if any("error" not in r for r in out) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from core.cli import parse_set, print_json
    from core.demo import run_demo

    def show(p: Any) -> None:
        if not args.json:
            print(f"\r{p.done:5.1f} % {p.message[:90]:90s}", end="", file=sys.stderr, flush=True)

    res = run_demo(progress=show, dataset_id=args.dataset, overrides=parse_set(args.set))
    if not args.json:
        print(file=sys.stderr)
    s = res.summary()
    if args.json:
        print_json(s)
    else:
        bt, bh = s["backtest"], s["buy_and_hold"]
        print(f"run {s['run_id']} ({s['model_name']}) in {s['seconds']['total']:.1f} s")
        if s["vs_best_baseline"].get("verdict"):
            print(s["vs_best_baseline"]["verdict"])
        print(f"strategy {bt.get('total_return', 0) * 100:+.1f} % vs buy and hold {bh.get('total_return', 0) * 100:+.1f} % "
              f"over {s['test_start'][:10]} .. {s['test_end'][:10]} ({bt.get('n_trades')} trades)")
    return 0
