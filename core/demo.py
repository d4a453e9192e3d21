"""The one-click demo: data -> features -> model -> backtest on the offline market, in one call.

`run_demo()` takes the offline synthetic market (or another stored dataset), trains the training helper's
`quick` preset (a small CNN, default features and labels, chronological purged split) through
`core.train.train_run` - so the demo's model is a normal run in the registry, open on every page - and
backtests the model's out-of-sample (test split) probabilities with core.backtest's default rules, fees
and stops, against buy and hold over the same span. It reports one `Progress("demo", done, 100, ...)`
stream for the whole path, honours a CancelToken, and saves its summary in the workspace
(`demo/summary.json`, `demo/equity.parquet`) so the home page shows the last demo after a restart.

`overrides` (tests, benchmarks) are `--set`-style keys: `data.max_rows`, `train.epochs`, `model.x`, and
`backtest.<BacktestConfig key>`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import pandas as pd

from core.progress import CancelToken, Progress, ProgressCallback, check
from core.workspace import atomic_write, atomic_write_json, jsonable, read_json, ws_path

DEMO_DIR = "demo"
PRESET = "quick"
# Share of the progress bar per stage (training dominates the time).
_SPAN = {"data": (0, 5), "prepare": (5, 10), "train": (10, 85), "evaluate": (85, 90), "baselines": (90, 94),
         "backtest": (94, 100)}


@dataclass
class DemoResult:
    run_id: str
    dataset_id: str
    model_name: str
    status: str
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    vs_best_baseline: dict[str, Any]
    backtest: dict[str, Any]                  # strategy metrics over the test span
    buy_and_hold: dict[str, Any]              # buy-and-hold metrics over the same span
    test_start: str
    test_end: str
    seconds: dict[str, float]                 # per stage, and "total"
    backtest_config: dict[str, Any] = field(default_factory=dict)
    equity: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # strategy, buy_and_hold

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("equity")
        return d


class _Stages:
    """Maps the training's own progress (stages prepare/train/batch/evaluate/baselines/done) and the
    demo's stages onto one 0..100 bar with the latest sentence."""

    def __init__(self, progress: Optional[ProgressCallback]) -> None:
        self.progress = progress
        self.last_pct = -1
        self.t0 = time.perf_counter()
        self.marks: dict[str, float] = {}
        self.current = ""
        self._since = self.t0

    def enter(self, stage: str, message: str) -> None:
        now = time.perf_counter()
        if self.current:
            self.marks[self.current] = self.marks.get(self.current, 0.0) + now - self._since
        self.current, self._since = stage, now
        self.emit(_SPAN[stage][0], message, force=True)

    def finish(self) -> dict[str, float]:
        if self.current:
            self.marks[self.current] = self.marks.get(self.current, 0.0) + time.perf_counter() - self._since
        self.current = ""
        out = {k: round(v, 2) for k, v in self.marks.items()}
        out["total"] = round(time.perf_counter() - self.t0, 2)
        return out

    def emit(self, pct: float, message: str, force: bool = False) -> None:
        pct = max(0.0, min(100.0, pct))
        if self.progress is None or (not force and int(pct) == self.last_pct):
            return
        self.last_pct = int(pct)
        self.progress(Progress("demo", round(pct, 1), 100, message, {"stage": self.current}))

    def from_training(self, p: Progress) -> None:
        if p.stage in ("prepare", "train", "evaluate", "baselines"):
            self.enter(p.stage, p.message)
        elif p.stage == "batch" and p.fraction is not None:
            a, b = _SPAN["train"]
            self.emit(a + (b - a) * p.fraction, f"training: {p.message}")
        elif p.stage == "epoch":
            a, b = _SPAN["train"]
            self.emit(a + (b - a) * (p.fraction or 0.0), f"training: {p.message}", force=True)


def _split_overrides(overrides: Optional[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    train_side, backtest = {}, {}
    for k, v in (overrides or {}).items():
        if k.startswith("backtest."):
            backtest[k.split(".", 1)[1]] = v
        else:
            train_side[k] = v
    return train_side, backtest


def run_demo(progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
             dataset_id: Optional[str] = None, overrides: Optional[dict[str, Any]] = None,
             name: Optional[str] = None, save: bool = True) -> DemoResult:
    """Run the whole pipeline on the offline market (or `dataset_id`) and return its summary. The run is
    named "demo <UTC time> (quick preset)" unless `name` is given, so two demos are told apart in lists."""
    from core.backtest.config import make_config
    from core.data.store import ensure_default_dataset, load_candles
    from core.models import get_spec
    from core.train.config import apply_overrides, preset, preset_model
    from core.train.trainer import train_run

    st = _Stages(progress)
    train_over, bt_over = _split_overrides(overrides)
    bt_cfg = make_config(bt_over)  # refuse a bad setting before any work is done

    st.enter("data", "loading the offline market" if dataset_id is None else f"loading {dataset_id}")
    check(cancel)
    ds = dataset_id or ensure_default_dataset()
    candles = load_candles(ds)

    p = preset(PRESET)
    model_name, model_config = preset_model(PRESET)
    if "model" in train_over:  # a different registered model, same quick settings
        model_name = str(train_over.pop("model"))
        model_config = {}
    keys = list((get_spec(model_name).defaults or {}).keys())
    model_config, data_cfg, train_cfg = apply_overrides(train_over, model_config, p["data"], p["train"], keys)

    if name is None:
        name = f"demo {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC (quick preset)"
    result = train_run(ds, model_name, model_config, data_cfg, train_cfg, progress=st.from_training,
                       cancel=cancel, name=name, candles=candles)

    st.enter("backtest", "backtesting the test split's signals with fees, slippage and stops")
    check(cancel)
    preds = result.predictions.sort_values("timestamp").reset_index(drop=True)
    bt = _backtest(candles, preds, list(result.config["class_names"]), bt_cfg)
    if not bt_over:  # the default rules: the runs table shows these figures without a second backtest
        from core.sweep.compare import record_backtest

        record_backtest(result.run_id, bt["metrics"], bt["buy_and_hold_metrics"], default_config=True)
    seconds = st.finish()
    res = DemoResult(run_id=result.run_id, dataset_id=ds, model_name=model_name, status=result.status,
                     metrics=jsonable(result.metrics), baselines=jsonable(result.baselines),
                     vs_best_baseline=jsonable(result.vs_best_baseline), backtest=jsonable(bt["metrics"]),
                     buy_and_hold=jsonable(bt["buy_and_hold_metrics"]),
                     test_start=str(bt["start"]), test_end=str(bt["end"]), seconds=seconds,
                     backtest_config=bt_cfg.to_dict(), equity=bt["equity"])
    if save:
        save_demo(res)
    if progress is not None:
        progress(Progress("demo", 100, 100, f"done in {seconds['total']:.0f} s: run {result.run_id}",
                          {"run_id": result.run_id}))
    return res


def _backtest(candles: pd.DataFrame, predictions: pd.DataFrame, class_names: list[str], cfg: Any) -> dict[str, Any]:
    """The Backtest page's own path (core.backtest.api) over the test split's span, so the demo's figures
    are the ones that page shows for this run with the default rules."""
    from core.backtest.api import backtest_predictions

    r = backtest_predictions(candles, predictions, class_names, cfg, label="demo: quick model, test split")
    equity = pd.DataFrame({"strategy": r.equity, "buy_and_hold": r.benchmark_equity})
    return {"metrics": dict(r.metrics), "buy_and_hold_metrics": dict(r.buy_and_hold), "equity": equity,
            "start": r.start, "end": r.end}


def save_demo(res: DemoResult) -> None:
    folder = ws_path(DEMO_DIR)
    eq = res.equity.copy()
    eq.index = pd.DatetimeIndex(eq.index, name="timestamp")
    atomic_write(folder / "equity.parquet", lambda t: eq.to_parquet(t))
    atomic_write_json(folder / "summary.json", res.summary())  # last: its presence means a complete demo


def last_demo() -> Optional[DemoResult]:
    """The last saved demo (None when there is none, or its run was deleted since)."""
    folder = ws_path(DEMO_DIR)
    if not (folder / "summary.json").is_file():
        return None
    try:
        d = read_json(folder / "summary.json")
        eq = pd.read_parquet(folder / "equity.parquet") if (folder / "equity.parquet").is_file() else pd.DataFrame()
        res = DemoResult(**{k: v for k, v in d.items() if k in DemoResult.__dataclass_fields__ and k != "equity"},
                         equity=eq)
    except (ValueError, TypeError, OSError):
        return None
    from core.train.runs import run_path

    if not (run_path(res.run_id) / "config.json").is_file():
        return None
    return res
