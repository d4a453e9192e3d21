"""Benchmark of the backtest engine: 1,000,000 bars with ATR stop, trailing stop, take-profit and time exits.

Target (issue 7): under 1 s on 2 cores. Prints figures; asserts nothing. Also times, on the same candles and
the same signals, vectorbt and backtesting.py where they are importable (neither is a project dependency:
install them in a scratch environment to compare), as a ratio to this engine.

    .venv/bin/python bench/bench_backtest.py [--bars 1000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RULES = {"stop_loss": "atr", "stop_atr_k": 2.0, "trailing_atr_k": 1.5, "take_profit": "fixed",
         "take_profit_pct": 0.03, "max_hold_hours": 12, "signal_exit": "reversal", "slippage_vol_k": 0.05}


def make_candles(n: int, seed: int = 0) -> pd.DataFrame:
    """A 1-minute random walk with realistic bar ranges (fast to make for a million bars)."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.0008, n)
    close = 30_000 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.0001, n))
    wick = np.abs(rng.normal(0, 0.0005, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    idx = pd.date_range("2023-01-01", periods=n, freq="min", tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=idx)
    df.attrs["timeframe"] = "1m"
    return df


CPU: dict[int, float] = {}


def best_of(fn, repeat: int) -> float:
    """Best wall time of `repeat` calls; the best CPU time of the same calls is kept in CPU[id(fn)] (on a
    shared, loaded machine the wall time overstates the work; both are printed)."""
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU[id(fn)] = min(cpu)
    return min(times)


def _load() -> str:
    try:
        return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:
        return "load average unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--others-bars", type=int, default=100_000,
                    help="bars for backtesting.py (its Python loop is slow); vectorbt runs on --bars")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    t0 = time.perf_counter()
    from core.backtest import engine
    from core.backtest.api import backtest_baseline
    from core.backtest.signals import ma_cross_signals
    print(f"import core.backtest.engine (numba={'yes' if engine.NUMBA else 'no'}, compile or cache load): "
          f"{time.perf_counter() - t0:.2f} s")

    candles = make_candles(args.bars)
    sig = ma_cross_signals(candles, 20, 50)
    print(f"{len(candles):,} bars of 1m candles, MA(20/50) cross signals, rules: {RULES}")

    t = time.perf_counter()
    first = backtest_baseline("ma_cross", candles.iloc[:5000], RULES)
    print(f"first call on 5,000 bars (includes JIT compile unless cached): {time.perf_counter() - t:.2f} s")
    del first

    cfg = engine.make_config(RULES)
    p = engine._align(candles, sig, None, None, None)
    frac = engine.position_fractions(len(p.sig), None, cfg)
    k_fn = lambda: engine.simulate(p, cfg, p.sig, frac)  # noqa: E731
    kernel = best_of(k_fn, args.repeat)
    res = backtest_baseline("ma_cross", candles, RULES)
    f_fn = lambda: backtest_baseline("ma_cross", candles, RULES)  # noqa: E731
    full = best_of(f_fn, args.repeat)
    reasons = res.trades["exit_reason"].value_counts().to_dict()
    FULL_CPU[0] = CPU[id(f_fn)]
    print(f"[{_load()}]")
    print(f"engine state machine only: {kernel * 1000:.1f} ms wall, {CPU[id(k_fn)] * 1000:.1f} ms CPU "
          f"({CPU[id(k_fn)] / len(candles) * 1e9:.0f} ns/bar)")
    print(f"run_backtest end to end (ATR, MA signals, strategy + buy & hold, trades table, metrics): "
          f"{full * 1000:.0f} ms wall, {CPU[id(f_fn)] * 1000:.0f} ms CPU  -> target < 1000 ms: "
          f"{'met' if min(full, CPU[id(f_fn)]) < 1 else 'NOT met'}{'' if full < 1 else ' (CPU; wall inflated by load)'}")
    print(f"  {res.metrics['n_trades']:,} trades; exits: {reasons}")

    n_py = min(50_000, len(candles))
    p_small = engine._align(candles.iloc[:n_py], sig.iloc[:n_py], None, None, None)
    frac_small = frac[:n_py]
    t = time.perf_counter()
    engine._simulate_py(*_kernel_args(p_small, cfg, frac_small))
    py = time.perf_counter() - t
    print(f"the same state machine in plain Python: {py / n_py * 1e9:.0f} ns/bar "
          f"(~{py / n_py * len(candles):.1f} s for {len(candles):,} bars): numba is "
          f"{(py / n_py) / (kernel / len(candles)):.0f}x faster")

    _vectorbt(candles, sig, cfg, kernel, full)
    _backtesting_py(candles.iloc[: args.others_bars], sig.iloc[: args.others_bars], cfg, args.others_bars)


def _kernel_args(p, cfg, frac):
    from core.backtest.engine import max_hold_bars

    a = p.arrays
    return (a["open"], a["high"], a["low"], a["close"], a["atr"], p.sig, frac, a["day"], a["week"],
            bool(cfg.long_only), engine_codes("stop", cfg.stop_loss), cfg.stop_loss_pct, cfg.stop_atr_k,
            cfg.trailing_atr_k, cfg.take_profit == "fixed", cfg.take_profit_pct,
            engine_codes("exit", cfg.signal_exit), max_hold_bars(cfg.max_hold_hours, p.bar_seconds), cfg.daily_dd_halve, cfg.weekly_dd_halt, cfg.fee_taker,
            cfg.fee_maker, cfg.slippage_bps, cfg.slippage_vol_k, cfg.initial_capital)


def engine_codes(kind: str, value: str) -> int:
    from core.backtest import engine

    return (engine._STOP_CODES if kind == "stop" else engine._SIGNAL_EXIT_CODES)[value]


FULL_CPU = [float("nan")]


def _vectorbt(candles: pd.DataFrame, sig: pd.Series, cfg, kernel: float, full: float) -> None:
    try:
        import vectorbt as vbt
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
        print(f"vectorbt: not importable here ({type(exc).__name__}: {exc}); pip install vectorbt in a scratch "
              "environment to compare")
        return
    # Same signals, the closest vectorbt settings: long on +1, short on -1, fill at the next open, fixed %
    # stop, trailing stop and take-profit checked on high/low. vectorbt has no time exit or drawdown rules.
    s = sig.to_numpy()
    prev = np.r_[0, s[:-1]]
    entries = pd.Series((prev == 1), index=candles.index)
    short_entries = pd.Series((prev == -1), index=candles.index)
    kw = dict(open=candles["open"], high=candles["high"], low=candles["low"], price=candles["open"],
              fees=cfg.fee_taker, slippage=cfg.slippage_bps * 1e-4, sl_stop=0.02, sl_trail=True, tp_stop=0.03,
              init_cash=cfg.initial_capital, freq="1min")

    def run():
        pf = vbt.Portfolio.from_signals(candles["close"], entries, None, short_entries, None, **kw)
        return pf.total_return()

    t = time.perf_counter()
    try:
        run()
    except Exception as exc:  # noqa: BLE001
        print(f"vectorbt {vbt.__version__}: failed on this pandas/numpy ({type(exc).__name__}: {exc})")
        return
    first = time.perf_counter() - t
    best = best_of(run, 2)
    cpu = CPU[id(run)]
    print(f"vectorbt {vbt.__version__} Portfolio.from_signals on the same {len(candles):,} bars and signals "
          f"(fixed 2 % trailing stop, 3 % target): {best * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU (first "
          f"call {first:.1f} s with its JIT); ratio vectorbt / this engine end to end: {best / full:.1f}x wall, "
          f"{cpu / FULL_CPU[0]:.1f}x CPU")


def _backtesting_py(candles: pd.DataFrame, sig: pd.Series, cfg, n: int) -> None:
    try:
        from backtesting import Backtest, Strategy
    except Exception as exc:  # noqa: BLE001
        print(f"backtesting.py: not importable here ({type(exc).__name__}: {exc}); pip install backtesting in "
              "a scratch environment to compare")
        return
    import warnings

    from core.backtest.api import backtest_baseline

    data = candles.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    s = sig.to_numpy()

    class FromSignals(Strategy):
        def init(self):
            self.s = self.I(lambda: s.astype(float), name="signal", plot=False)

        def next(self):
            v = self.s[-1]
            price = self.data.Close[-1]
            if v > 0 and not self.position.is_long:
                self.buy(sl=price * 0.98, tp=price * 1.03)
            elif v < 0 and not self.position.is_short:
                self.sell(sl=price * 1.02, tp=price * 0.97)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, FromSignals, cash=1e12, commission=cfg.fee_taker, trade_on_close=False,
                      exclusive_orders=True, finalize_trades=True)
        t, c = time.perf_counter(), time.process_time()
        bt.run()
        theirs, theirs_cpu = time.perf_counter() - t, time.process_time() - c
    o_fn = lambda: backtest_baseline("ma_cross", candles, RULES)  # noqa: E731
    ours = best_of(o_fn, 3)
    print(f"backtesting.py on {n:,} bars, same signals (fixed 2 % stop, 3 % target): {theirs:.2f} s wall, "
          f"{theirs_cpu:.2f} s CPU; this engine on the same bars: {ours * 1000:.0f} ms wall, "
          f"{CPU[id(o_fn)] * 1000:.0f} ms CPU; ratio {theirs / ours:.0f}x wall, {theirs_cpu / CPU[id(o_fn)]:.0f}x CPU")


if __name__ == "__main__":
    os.environ.setdefault("NUMBA_NUM_THREADS", "2")
    os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
    main()
