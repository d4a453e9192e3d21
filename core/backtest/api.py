"""What pages, the CLI and other areas call: backtest a saved run or a rule baseline, sweep the threshold.

`backtest_run(run_id, config=None)` loads the run's test-split probabilities and the candles of the run's
dataset (`config.json` -> `dataset_id`) and backtests them over the run's test span (out-of-sample: the
model never trained or early-stopped on those bars) unless `start`/`end` narrow it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from core.backtest.config import BacktestConfig, make_config
from core.backtest.engine import BacktestResult, _align, _stamp, run_backtest, simulate
from core.backtest.metrics import compute_metrics
from core.backtest.signals import (BASELINES, baseline_signals, confidence_from_probabilities,
                                   signals_from_probabilities)
from core.backtest.sizing import position_fractions
from core.errors import UserError


def run_predictions(run: Any) -> pd.DataFrame:
    """The run's out-of-sample predictions (the test split), sorted by time."""
    preds = run.predictions
    if preds is None or preds.empty:
        raise UserError(f"run '{run.run_id}' has no saved predictions to backtest")
    if "split" in preds and (preds["split"] == "test").any():
        preds = preds[preds["split"] == "test"]
    return preds.sort_values("timestamp").reset_index(drop=True)


def load_run_candles(run: Any, load: Optional[Callable[[str], pd.DataFrame]] = None) -> pd.DataFrame:
    """The candles of the dataset a run was trained on (`load` e.g. a page's cached loader)."""
    from core.data.store import load_candles

    ds = run.config.get("dataset_id")
    if not ds:
        raise UserError(f"run '{run.run_id}' does not say which dataset it was trained on")
    try:
        return (load or load_candles)(ds)
    except UserError:
        raise
    except (OSError, ValueError) as exc:
        raise UserError(f"the dataset '{ds}' of run '{run.run_id}' cannot be loaded ({exc}); fetch or "
                        "generate it again on the Data page") from exc


def _check_overlap(preds: pd.DataFrame, candles: pd.DataFrame, run_id: str) -> None:
    ts = pd.DatetimeIndex(preds["timestamp"])
    if not ts.isin(candles.index).any():
        raise UserError(f"the predictions of '{run_id}' ({ts[0]:%Y-%m-%d} to {ts[-1]:%Y-%m-%d}) match no "
                        "candle of its dataset: the dataset was replaced since training")


@dataclass
class RunInputs:
    """What a run's backtest reads: its test predictions and the candles of its dataset, checked to match."""

    predictions: pd.DataFrame
    class_names: list[str]
    candles: pd.DataFrame
    dataset_id: str
    name: str
    note: Optional[str] = None        # the dataset changed since training (`changed_candles_note`)


def run_inputs(run_id: str, candles: Optional[pd.DataFrame] = None,
               load: Optional[Callable[[str], pd.DataFrame]] = None) -> RunInputs:
    """Load a run's test predictions and its dataset's candles (or use `candles`), and check they overlap."""
    from core.train.runs import load_run
    from core.train.trainer import changed_candles_note

    run = load_run(run_id)
    preds = run_predictions(run)
    if candles is None:
        candles = load_run_candles(run, load)
    _check_overlap(preds, candles, run_id)
    return RunInputs(preds, list(run.class_names), candles, str(run.config.get("dataset_id")),
                     str(run.config.get("name") or run_id), changed_candles_note(run.config, candles))


def walk_forward_inputs(wf_id: str, candles: Optional[pd.DataFrame] = None,
                        load: Optional[Callable[[str], pd.DataFrame]] = None) -> RunInputs:
    """A saved walk-forward evaluation's stitched out-of-sample predictions (every fold's test block: a
    longer honest span than one run's test split) and its dataset's candles, checked to overlap."""
    from core.data.store import load_candles
    from core.train.evaluate import load_walk_forward
    from core.train.trainer import changed_candles_note

    wf = load_walk_forward(wf_id)
    ds = str(wf.config.get("dataset_id") or "")
    if not ds:
        raise UserError(f"walk-forward '{wf_id}' does not say which dataset it ran on")
    if candles is None:
        try:
            candles = (load or load_candles)(ds)
        except UserError:
            raise
        except (OSError, ValueError) as exc:
            raise UserError(f"the dataset '{ds}' of walk-forward '{wf_id}' cannot be loaded ({exc})") from exc
    preds = wf.predictions.sort_values("timestamp").reset_index(drop=True)
    _check_overlap(preds, candles, wf_id)
    return RunInputs(preds, [str(c) for c in wf.config.get("class_names", [])], candles, ds,
                     str(wf.config.get("name") or wf_id), changed_candles_note(wf.config, candles, "evaluation"))


def backtest_predictions(candles: pd.DataFrame, predictions: pd.DataFrame, class_names: Sequence[str],
                         config: Any = None, start: Any = None, end: Any = None, label: str = "") -> BacktestResult:
    """Backtest a predictions table (timestamp, prob_<class>...) on candles."""
    cfg = make_config(config)
    # the engine applies long_only itself, so a P(down) signal still closes a long in long-only mode
    sig = signals_from_probabilities(predictions, class_names, cfg.threshold, long_only=False)
    conf = confidence_from_probabilities(predictions, class_names)
    if start is None:
        start = sig.index.min()
    if end is None:
        end = sig.index.max()
    return run_backtest(candles, sig, cfg, conf, start=start, end=end, label=label)


def backtest_inputs(inp: RunInputs, config: Any = None, start: Any = None, end: Any = None,
                    what: str = "run") -> BacktestResult:
    """Backtest the checked predictions of a run or walk-forward evaluation (`run_inputs`,
    `walk_forward_inputs`); the result carries their note (a dataset changed since training)."""
    result = backtest_predictions(inp.candles, inp.predictions, inp.class_names, config, start, end,
                                  label=f"{what} {inp.name}")
    result.note = inp.note or ""
    return result


def backtest_run(run_id: str, config: Any = None, start: Any = None, end: Any = None,
                 candles: Optional[pd.DataFrame] = None) -> BacktestResult:
    """Backtest a saved run on its test span (or [start, end] inside it) with `config` (dict or
    BacktestConfig; defaults from the source documents)."""
    return backtest_inputs(run_inputs(run_id, candles), config, start, end)


def backtest_baseline(name: str, candles: pd.DataFrame, config: Any = None, start: Any = None,
                      end: Any = None) -> BacktestResult:
    """Backtest a rule baseline (`buy_and_hold`, `ma_cross`) on candles; the whole dataset by default."""
    cfg = make_config(config)
    if name not in BASELINES:
        raise UserError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    if cfg.sizing != "fixed":
        raise UserError(f"{cfg.sizing} sizing needs a run's probabilities; a rule baseline uses fixed sizing")
    if name == "buy_and_hold":
        # held through: stops, targets, time exits and drawdown throttles would turn the benchmark into a
        # churning strategy (a 12 h time exit re-enters every 12 bars) that is no longer buy and hold
        cfg = replace(cfg, stop_loss="none", trailing_atr_k=0.0, take_profit="none", max_hold_hours=0.0,
                      daily_dd_halve=0.0, weekly_dd_halt=0.0)
    sig = baseline_signals(name, candles, cfg.ma_fast, cfg.ma_slow, long_only=False)
    return run_backtest(candles, sig, cfg, None, start=start, end=end, label=f"baseline {name}")


def strongest_probability(predictions: pd.DataFrame, start: Any = None, end: Any = None,
                          long_only: bool = False) -> float:
    """The largest P(up) or P(down) (P(up) alone when `long_only`) in [start, end]: the highest threshold
    that still gives an entry signal."""
    ts = pd.DatetimeIndex(pd.to_datetime(predictions["timestamp"], utc=True))
    keep = np.ones(len(predictions), dtype=bool)
    if start is not None:
        keep &= ts >= _stamp(start, ts)
    if end is not None:
        keep &= ts <= _stamp(end, ts)
    cols = [c for c in (("prob_up",) if long_only else ("prob_up", "prob_down")) if c in predictions]
    if not keep.any() or not cols:
        return float("nan")
    return float(predictions.loc[keep, cols].to_numpy().max())


def no_trades_note(predictions: pd.DataFrame, class_names: Sequence[str], threshold: float, long_only: bool,
                   start: Any = None, end: Any = None) -> str:
    """Why a model's backtest made no trade in [start, end], in a sentence for the page."""
    sig = signals_from_probabilities(predictions, class_names, threshold, long_only)
    keep = np.ones(len(sig), dtype=bool)
    if start is not None:
        keep &= sig.index >= _stamp(start, sig.index)
    if end is not None:
        keep &= sig.index <= _stamp(end, sig.index)
    n = int((sig[keep] != 0).sum())
    if n:
        return (f"No trades, though {n:,} bars give a signal: none could be filled (a position size of 0 from the "
                "sizing rule, a signal on the span's last bar, a week halted by the drawdown rule, or no ATR yet "
                "for the stop). Check the sizing, widen the span or loosen the rules.")
    top = strongest_probability(predictions, start, end, long_only)
    which = "P(up) never exceeds" if long_only else "neither P(up) nor P(down) exceeds"
    if top > threshold:  # a threshold under 0.5: above it, but the other side was more likely each time
        return (f"No trades: no bar gives a signal at the threshold {threshold:.2f}: wherever "
                f"{'P(up)' if long_only else 'P(up) or P(down)'} exceeds it, the other side is more likely.")
    return (f"No trades: {which} the threshold {threshold:.2f} in this span (the highest is {top:.2f}"
            f"{'; long only ignores P(down)' if long_only else ''}). Lower the threshold; the sweep below "
            "shows what each one gives.")


def risk_rule_note(result: BacktestResult) -> Optional[str]:
    """What the drawdown rules did in a backtest, in a sentence for the page (None when neither acted).

    The rules act on the equity, so a sizing that puts more of it at risk trips them more often: that is why
    the same signals can give a different number of trades under another sizing."""
    cfg, counts = result.config, result.rule_counts
    blocked, halved = int(counts.get("weekly_blocked", 0)), int(counts.get("daily_halved", 0))
    halts = int((result.trades["exit_reason"] == "halt").sum()) if len(result.trades) else 0
    if not blocked and not halved and not halts:
        return None
    parts = []
    if blocked or halts:
        parts.append(f"the weekly drawdown rule (no trading for the rest of the ISO week after a "
                     f"{cfg.weekly_dd_halt * 100:g} % fall from the week's peak) closed {halts:,} position"
                     f"{'' if halts == 1 else 's'} and blocked the entry signal of {blocked:,} bar{'' if blocked == 1 else 's'} "
                     "(each would have opened a position)")
    if halved:
        parts.append(f"the daily rule (half size for the rest of the UTC day after a "
                     f"{cfg.daily_dd_halve * 100:g} % fall) halved {halved:,} entr{'y' if halved == 1 else 'ies'}")
    text = "; ".join(parts)
    why = ("The rules act on equity, so a sizing that risks more of it trips them more often: the same signals "
           "can give fewer trades under another sizing" if blocked or halts else
           "The rules act on equity, so another sizing trips them on other days")
    return f"{text[0].upper()}{text[1:]}. {why} (Risk rules, above, sets or turns them off)."


def threshold_sweep(candles: pd.DataFrame, predictions: pd.DataFrame, class_names: Sequence[str], config: Any = None,
                    thresholds: Optional[Sequence[float]] = None, start: Any = None,
                    end: Any = None) -> pd.DataFrame:
    """Sharpe, total return, trades and max drawdown of the strategy at each threshold, every other setting
    fixed, on the same span. (Choosing the threshold from this table and then reporting this span's result
    is in-sample: the span was used to choose.)"""
    cfg = make_config(config)
    if thresholds is None:
        # from just above chance (1 / number of classes) to 0.9
        lo = np.ceil(100.0 / max(2, len(class_names))) / 100.0
        # and the threshold in use, so the chart marks it on its curve, not past the axis' end
        thresholds = sorted({*np.round(np.arange(lo, 0.901, 0.02), 2).tolist(), round(float(cfg.threshold), 4)})
    sig0 = signals_from_probabilities(predictions, class_names, cfg.threshold)
    conf_s = confidence_from_probabilities(predictions, class_names)
    p = _align(candles, sig0, conf_s, sig0.index.min() if start is None else start,
               sig0.index.max() if end is None else end, cfg.atr_window)
    rows = []
    for thr in thresholds:
        # the one signal rule, then onto the span's bars as `_align` does (bars without a prediction: flat);
        # long_only is left to the engine, as in `backtest_predictions`
        sig_s = signals_from_probabilities(predictions, class_names, float(thr))
        sig = sig_s.reindex(p.candles.index).fillna(0).to_numpy().astype(np.int8)
        c = make_config(cfg, threshold=float(thr))
        frac = position_fractions(len(sig), p.confidence, c)
        out = simulate(p, c, sig, frac)
        m = compute_metrics(out[0], c.initial_capital, p.bar_seconds, None, out[2], index=p.candles.index)
        rows.append({"threshold": float(thr), "sharpe": m["sharpe"], "total_return": m["total_return"],
                     "max_drawdown": m["max_drawdown"], "n_trades": int(len(out[5])),
                     "exposure": m["exposure"]})
    return pd.DataFrame(rows)


def run_threshold_sweep(run_id: str, config: Any = None, thresholds: Optional[Sequence[float]] = None,
                        start: Any = None, end: Any = None,
                        candles: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    inp = run_inputs(run_id, candles)
    return threshold_sweep(inp.candles, inp.predictions, inp.class_names, config, thresholds, start, end)


__all__ = ["BacktestConfig", "strongest_probability", "no_trades_note", "risk_rule_note", "backtest_inputs", "backtest_run",
           "backtest_baseline", "backtest_predictions", "threshold_sweep", "run_threshold_sweep", "run_predictions",
           "load_run_candles", "run_inputs", "RunInputs"]
