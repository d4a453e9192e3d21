"""From the latest candles to a trading signal with a trained run: features exactly as in training,
probabilities, the signal, its confidence, the suggested size and the stop / target levels.

Exactly as in training means: the run's own feature list (its `data_config.preset`) through
`core.features.compute_features`, scaled with the run's saved `scaler.joblib` (fitted on the run's train
rows, never refitted here), windows of the run's length, and the batch path of the trainer
(`build_source` + `predict_outputs`). Indicators with long memory (EMA 200, Wilder ATR) need history
before the window: `LiveModel.lookback` asks the feed for the window plus `WARMUP_BARS`, enough for the
recursive indicators to agree with the training features to well under 1e-3.

The settings are core.backtest's `BacktestConfig` (threshold, long-only, sizing, stop and take-profit), so
a live signal is the entry the backtest would take on that bar: long when P(up) > threshold, short when
P(down) > threshold (unless long-only), otherwise flat; size fixed, confidence-scaled, Kelly (capped) or
half-Kelly; stop fixed % or k x ATR(14) from the entry; take-profit fixed %. The position rule is
core.backtest's `signals_from_probabilities` when it is there.

`tick` is one turn of the live loop: read the feed, decide, log. A failure (no connection, bad data)
comes back as `TickResult.error` - a sentence for the page - and the loop simply ticks again later.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

from core.errors import UserError

WARMUP_BARS = 1000
LIVE_INPUT_KINDS = ("sequence", "flat", "chart_image")


# ------------------------------------------------------------------------------------------------ model

@dataclass
class LiveModel:
    """A run loaded for inference on fresh candles."""

    run_id: str
    name: str
    config: dict[str, Any]
    class_names: list[str]
    feature_names: list[str]
    window: int
    input_kind: str
    scaler: Any
    model: Any
    device: Any
    dataset_id: str

    @property
    def lookback(self) -> int:
        """Candles to ask the feed for: the window plus the indicators' warm-up."""
        return int(self.window) + WARMUP_BARS

    def market(self) -> tuple[str, str, str]:
        """(symbol, timeframe, Bybit market type) the run was trained on, for the live feed's defaults;
        a synthetic or imported dataset maps to the USDT perpetual of its symbol."""
        from core.data.store import dataset_info

        try:
            info = dataset_info(self.dataset_id)
            symbol, tf, source = info.symbol, info.timeframe, info.source
        except Exception:  # noqa: BLE001 - the dataset may be gone: read what its id says
            parts = self.dataset_id.split("-")
            source, symbol, tf = (parts + ["", "BTCUSDT", "1h"][len(parts):])[:3]
        market = "spot" if source == "bybit_spot" else "linear"
        return symbol.split(":")[0].replace("/", "") or "BTCUSDT", tf or "1h", market

    @property
    def timeframe(self) -> str:
        """The timeframe of the candles the run was trained on."""
        return self.market()[1]

    @property
    def preset(self) -> Any:
        return (self.config.get("data_config") or {}).get("preset", "resnet15")


def load_live_model(run_id: str, device: Any = None) -> LiveModel:
    """Load a run's model (weights_only), scaler and config; CUDA when present, else CPU."""
    from core.device import best_device
    from core.train.runs import load_run

    run = load_run(run_id)
    cfg = run.config
    kind = cfg.get("input_kind", "sequence")
    if kind not in LIVE_INPUT_KINDS:
        raise UserError(f"live signals work with sequence and chart-image models; run {run_id} is a "
                        f"{kind} model (its encoding is fitted on the training data, not on live bars)")
    if (cfg.get("data_config") or {}).get("label") == "multitask" and not cfg.get("targets_scaling"):
        raise UserError(f"run {run_id} has no target scaling saved; retrain it to use it live")
    dev = best_device() if device is None else device
    scaler = run.scaler()
    names = list(cfg.get("feature_names") or [])
    if names and list(getattr(scaler, "feature_names", []) or names) != names:
        raise UserError(f"the scaler saved with run {run_id} does not match its features; retrain the run")
    return LiveModel(run_id=run_id, name=str(cfg.get("name") or run_id), config=cfg,
                     class_names=list(run.class_names), feature_names=names,
                     window=int((cfg.get("data_config") or {}).get("window", 64)), input_kind=kind,
                     scaler=scaler, model=run.model(str(dev)), device=dev,
                     dataset_id=str(cfg.get("dataset_id", "")))


def predict_probabilities(lm: LiveModel, candles: pd.DataFrame, last: int = 1) -> pd.DataFrame:
    """Class probabilities for the newest `last` bars of `candles` (each with a full window behind it).

    Returns a frame indexed by bar open time with `prob_<class>` columns (and `pred_magnitude`,
    `pred_volatility` for a multi-task run), the same layout as a run's predictions.
    """
    import torch

    from core.features import PreparedData, compute_features
    from core.train.config import TrainConfig, from_dict
    from core.train.trainer import build_source, predict_outputs

    raw = compute_features(candles, lm.preset)
    if lm.feature_names and list(raw.columns) != lm.feature_names:
        raise UserError("the features computed now differ from the run's features; retrain the run")
    n = len(raw)
    if n < lm.window:
        raise UserError(f"{len(candles)} candles leave {n} bars after the indicators' warm-up, fewer than "
                        f"the run's window of {lm.window}: ask for more history")
    x = lm.scaler.transform(raw.to_numpy(np.float64))
    ends = np.arange(max(lm.window - 1, n - int(last)), n, dtype=np.int64)
    prepared = PreparedData(features=np.ascontiguousarray(x), feature_names=list(raw.columns),
                            timestamps=pd.DatetimeIndex(raw.index), y=np.full(n, -1, np.int64),
                            splits={"train": ends, "live": ends}, scaler=lm.scaler,
                            class_names=lm.class_names, window=lm.window, candles=candles.loc[raw.index])
    data_cfg = lm.config.get("data_config") or {}
    # no target scaling here: live bars have no targets; the model's regression outputs are unscaled below
    src = build_source(prepared, lm.input_kind, "live", data_cfg.get("encoding"), None, ends)
    train = from_dict(TrainConfig, lm.config.get("train_config") or {})
    dev = lm.device if isinstance(lm.device, torch.device) else torch.device(str(lm.device))
    out = predict_outputs(lm.model, src, dev, train.eval_batch_size, train)
    df = pd.DataFrame({f"prob_{c}": out["proba"][:, i] for i, c in enumerate(lm.class_names)},
                      index=pd.DatetimeIndex(raw.index[ends], name="timestamp"))
    for k in ("magnitude", "volatility"):
        if k in out and lm.config.get("targets_scaling"):
            mu, sd = lm.config["targets_scaling"][k]
            df[f"pred_{k}"] = out[k] * sd + mu
    return df


# ---------------------------------------------------------------------------------------------- signal

# The settings of the backtest that decide a single entry: the live page shows the same decision the
# backtest would take on that bar (same threshold rule, sizing, stop and take-profit distances).
SIGNAL_KEYS = ("threshold", "long_only", "sizing", "fixed_fraction", "kelly_cap", "win_loss_ratio",
               "max_position", "stop_loss", "stop_loss_pct", "stop_atr_k", "take_profit", "take_profit_pct",
               "atr_window", "initial_capital")


def signal_config(config: Any = None, **overrides: Any) -> Any:
    """A validated core.backtest BacktestConfig (from a config, a dict, or None) plus overrides."""
    from core.backtest.config import make_config

    return make_config(config, **overrides)


def config_key(cfg: Any) -> str:
    """A short hash of the settings that shape a signal (to log a bar once per settings)."""
    d = {k: getattr(cfg, k) for k in SIGNAL_KEYS if hasattr(cfg, k)}
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclass
class Signal:
    run_id: str
    source: str
    mode: str                         # "live" or "replay"
    timestamp: pd.Timestamp           # open time of the newest closed bar the decision used
    price: float                      # its close: the reference price of the levels
    action: str                       # "long", "short" or "flat"
    confidence: float                 # probability of the class acted on (flat: of no trade)
    probabilities: dict[str, float]
    size: float                       # suggested fraction of equity (0 when flat)
    notional: float                   # size x equity
    stop: Optional[float]
    target: Optional[float]
    atr: float
    config_key: str = ""
    extra: dict[str, float] = field(default_factory=dict)   # multi-task outputs

    def to_record(self) -> dict[str, Any]:
        rec = {k: v for k, v in asdict(self).items() if k not in ("probabilities", "extra")}
        rec["timestamp"] = pd.Timestamp(self.timestamp).isoformat()
        for c, p in self.probabilities.items():
            rec[f"prob_{c}"] = float(p)
        rec.update({f"pred_{k}": float(v) for k, v in self.extra.items()})
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}


def _position(probs: pd.DataFrame, class_names: list[str], cfg: Any) -> tuple[int, float]:
    """(+1 long / -1 short / 0 flat, confidence) for the newest row, by core.backtest's own rule."""
    from core.backtest.signals import confidence_from_probabilities, signals_from_probabilities

    frame = probs.reset_index()
    pos = signals_from_probabilities(frame, class_names, cfg.threshold, cfg.long_only)
    conf = confidence_from_probabilities(frame, class_names)
    return int(pos.iloc[-1]), float(conf.iloc[-1])


def suggested_size(action: int, confidence: float, cfg: Any) -> float:
    """Fraction of equity for a new position, by core.backtest's sizing rule (0 when flat)."""
    from core.backtest.sizing import position_fractions

    if action == 0:
        return 0.0
    return float(position_fractions(1, np.array([confidence], dtype=np.float64), cfg)[0])


def levels(action: int, price: float, atr_value: float, cfg: Any) -> tuple[Optional[float], Optional[float]]:
    """Stop and take-profit prices of a long (+1) or short (-1) entry at `price` (None when off or flat)."""
    if action == 0:
        return None, None
    stop = target = None
    if cfg.stop_loss == "fixed":
        stop = price * (1 - action * cfg.stop_loss_pct)
    elif cfg.stop_loss == "atr" and math.isfinite(atr_value):
        stop = price - action * cfg.stop_atr_k * atr_value
    if cfg.take_profit == "fixed":
        target = price * (1 + action * cfg.take_profit_pct)
    return stop, target


def decide(lm: LiveModel, candles: pd.DataFrame, cfg: Any = None, source: str = "", mode: str = "live") -> Signal:
    """The signal for the newest closed bar of `candles` under backtest settings `cfg`."""
    from core.features.indicators import atr

    cfg = signal_config(cfg)
    probs = predict_probabilities(lm, candles, last=1)
    ts = probs.index[-1]
    price = float(candles.loc[ts, "close"])
    atr_value = float(atr(candles["high"], candles["low"], candles["close"], int(cfg.atr_window)).loc[ts])
    action, side_conf = _position(probs, lm.class_names, cfg)
    p = {c: float(probs[f"prob_{c}"].iloc[-1]) for c in lm.class_names}
    # the confidence of a trade is the probability of its side; of no trade, P(flat) (or 1 - both sides)
    confidence = side_conf if action else (p["flat"] if "flat" in p else 1.0 - side_conf)
    stop, target = levels(action, price, atr_value, cfg)
    size = suggested_size(action, confidence, cfg)
    extra = {k[5:]: float(probs[k].iloc[-1]) for k in probs.columns if k.startswith("pred_")}
    return Signal(run_id=lm.run_id, source=source, mode=mode, timestamp=ts, price=price,
                  action={1: "long", -1: "short", 0: "flat"}[action], confidence=float(confidence),
                  probabilities=p, size=size, notional=size * float(cfg.initial_capital), stop=stop,
                  target=target, atr=atr_value, config_key=config_key(cfg), extra=extra)


# -------------------------------------------------------------------------------------------- the loop

@dataclass
class TickResult:
    signal: Optional[Signal] = None
    error: Optional[str] = None
    logged: bool = False            # a new line in the signal log (False: same bar as before, or error)
    candles: Optional[pd.DataFrame] = None
    finished: bool = False          # replay: the data has run out
    notes: list[str] = field(default_factory=list)  # warnings about this signal (gaps, another timeframe)


def timeframe_note(lm: LiveModel, timeframe: str) -> Optional[str]:
    """A sentence when the candles are of another timeframe than the run was trained on (None when alike)."""
    trained = lm.timeframe
    if not timeframe or not trained or timeframe == trained:
        return None
    return (f"The run was trained on {trained} candles; its signals on {timeframe} bars are out of its "
            "training distribution.")


def live_gap_note(candles: pd.DataFrame, timeframe: str = "") -> Optional[str]:
    """A sentence when the candles the signal was computed on have holes (None when every bar is there)."""
    from core.features.dataset import gap_summary

    found = gap_summary(candles, timeframe)
    if found is None:
        return None
    _, missing, first = found
    return (f"{missing:,} bar{'s are' if missing != 1 else ' is'} missing from the last {len(candles):,} candles "
            f"(the first at {first:%Y-%m-%d %H:%M} UTC): the indicators and the window "
            "run across the gap as if the bars were consecutive, so this signal is not the one the full data "
            "would give.")


def _candles_timeframe(feed: Any, candles: pd.DataFrame) -> str:
    from core.data.candles import bar_seconds, timeframe_name

    tf = str(getattr(feed, "timeframe", "") or candles.attrs.get("timeframe", "") or "")
    return tf or timeframe_name(bar_seconds(candles))


def replay_start(lm: LiveModel, feed: Any, start: Any = None) -> Optional[str]:
    """Put a replay's clock on its first bar: `start` (the bar opening at or last before it), or by default
    the run's test split start on its own dataset (out of sample), else the first bar with the full history
    a signal needs. A start inside the indicators' warm-up moves to that first usable bar; the sentence
    (None otherwise) says so. The first tick then decides at this bar (`tick(..., advance=0)`)."""
    first_usable = min(len(feed.candles) - 1, lm.lookback - 1)
    if start is None or start == "":
        if feed.candles.attrs.get("dataset") != lm.dataset_id or not lm.config.get("test_start"):
            feed.cursor = first_usable
            return None
        start = lm.config["test_start"]
    pos = feed.position_of(start)
    if pos < first_usable:
        feed.cursor = first_usable
        return (f"{start} is inside the first {lm.lookback:,} bars a signal needs (its window and the indicators' "
                f"warm-up): the replay starts at {feed.candles.index[first_usable]:%Y-%m-%d %H:%M} UTC instead.")
    feed.cursor = pos
    return None


def tick(lm: LiveModel, feed: Any, cfg: Any = None, advance: int = 1, log: bool = True) -> TickResult:
    """One turn of the loop: (replay: move the clock `advance` bars; 0 decides where the clock stands, as
    the first tick does), read the latest closed candles, decide, and append the signal to the log once per
    bar. `notes` warn about the signal: holes in the candles, or another timeframe than the run's. Never
    raises for a user-facing problem."""
    from core.live.log import append_signal

    finished = False
    try:
        if getattr(feed, "mode", "") == "replay" and advance:
            finished = not feed.advance(advance)
        candles = feed.latest(lm.lookback)
        tf = _candles_timeframe(feed, candles)
        notes = [n for n in (timeframe_note(lm, tf), live_gap_note(candles, tf)) if n]
        sig = decide(lm, candles, cfg, source=feed.source, mode=feed.mode)
        logged = append_signal(sig) if log else False
        return TickResult(signal=sig, logged=logged, candles=candles, finished=finished, notes=notes)
    except UserError as exc:      # ExchangeUnavailable and DataError are UserErrors: a sentence
        return TickResult(error=str(exc), finished=finished)
    except Exception as exc:  # noqa: BLE001 - the loop must carry on; the page shows what happened
        return TickResult(error=f"{type(exc).__name__}: {exc}", finished=finished)
