"""The Experiments overview: every run of the registry as one table row, filtering, and what comparing
several runs needs (histories, out-of-sample backtests).

Rows come from the registry's public API (`list_runs`, `run_path`, `upgrade_config`); backtest figures come
from `core.backtest.backtest_run` (the run's test span: out of sample) and are cached as plain JSON in
`workspace/experiments/backtests/<run_id>.json`, so the table shows them without re-running backtests.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Any, Iterable, Optional, Sequence

import pandas as pd

from core.errors import UserError
from core.train.metrics import HEADLINE
from core.workspace import atomic_write_json, read_json, safe_name, ws_path

BT_METRICS = ("total_return", "sharpe", "max_drawdown", "n_trades")


def backtest_available() -> bool:
    """Whether core.backtest provides backtest_run (it is another area's work and may be missing)."""
    try:
        return importlib.util.find_spec("core.backtest.api") is not None
    except (ImportError, ValueError):
        return False


def _bt_cache_path(run_id: str) -> Any:
    return ws_path("experiments", "backtests", f"{safe_name(run_id)}.json")


def cached_backtest(run_id: str) -> Optional[dict[str, Any]]:
    p = _bt_cache_path(run_id)
    if not p.is_file():
        return None
    try:
        return read_json(p)
    except (ValueError, OSError):
        return None


def run_backtest_for(run_id: str, config: Any = None) -> Any:
    """The run's out-of-sample backtest (`core.backtest.backtest_run`); its headline figures are cached."""
    if not backtest_available():
        raise UserError("backtests need core.backtest, which is not installed in this copy of the app")
    from core.backtest import backtest_run

    res = backtest_run(run_id, config)
    record_backtest(run_id, res.metrics, res.buy_and_hold, default_config=config is None)
    return res


def record_backtest(run_id: str, metrics: dict[str, Any], buy_and_hold: Optional[dict[str, Any]],
                    default_config: bool) -> None:
    """Cache a run's out-of-sample backtest headline figures for the runs table (e.g. the demo's, which
    backtests its run on the way)."""
    strat = {k: _num(metrics.get(k)) for k in BT_METRICS}
    bh = {k: _num((buy_and_hold or {}).get(k)) for k in BT_METRICS}
    atomic_write_json(_bt_cache_path(run_id), {"run_id": run_id, "strategy": strat, "buy_and_hold": bh,
                                               "default_config": bool(default_config)})


def _num(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def runs_overview() -> pd.DataFrame:
    """One row per run: ids, dataset, model, key config, test metrics, best baseline, the CNN's gap to it
    (with whether the bootstrap interval clears zero), and cached out-of-sample backtest figures."""
    from core.train.runs import run_documents, run_info

    rows = []
    for run_id, cfg, met in run_documents():  # each run's files are read once
        info = run_info(run_id, cfg, met)
        d, t = cfg.get("data_config") or {}, cfg.get("train_config") or {}
        m = met.get("metrics") or {}
        bl = met.get("baselines") or {}
        vs = met.get("vs_best_baseline") or {}
        row: dict[str, Any] = {
            "run_id": info.run_id, "name": info.name, "created_at": info.created_at, "status": info.status,
            "dataset": info.dataset_id, "model": info.model_name, "features": d.get("preset"),
            "window": d.get("window"), "label": d.get("label"), "horizon": d.get("horizon"),
            "epochs": met.get("epochs_run"), "lr": t.get("lr"), "seed": t.get("seed"),
            "params": cfg.get("n_params"),
        }
        for k in HEADLINE:
            row[k] = _num(m.get(k))
        best_bl, best_val = None, None
        for name, b in bl.items():
            v = _num((b or {}).get("accuracy"))
            if v is not None and (best_val is None or v > best_val):
                best_bl, best_val = name, v
        row["best_baseline"] = best_bl
        row["baseline_accuracy"] = best_val
        row["vs_baseline"] = _num(vs.get("diff"))
        row["beats_baseline"] = vs.get("beats")
        bt = cached_backtest(info.run_id) or {}
        s, b = bt.get("strategy") or {}, bt.get("buy_and_hold") or {}
        row["bt_return"] = s.get("total_return")
        row["bt_sharpe"] = s.get("sharpe")
        row["bt_max_dd"] = s.get("max_drawdown")
        row["bt_trades"] = s.get("n_trades")
        row["bh_return"] = b.get("total_return")
        rows.append(row)
    # what a user compares first on the left; the key config and the ids after it
    cols = ["name", "model", "dataset", "status", "balanced_accuracy", "accuracy", "macro_f1", "roc_auc", "log_loss",
            "best_baseline", "baseline_accuracy", "vs_baseline", "beats_baseline", "bt_return", "bh_return",
            "bt_sharpe", "bt_max_dd", "bt_trades", "features", "window", "label", "horizon", "epochs", "lr", "seed",
            "params", "created_at", "run_id"]
    df = pd.DataFrame(rows, columns=cols)
    for c in (*HEADLINE, "baseline_accuracy", "vs_baseline", "bt_return", "bt_sharpe", "bt_max_dd", "bt_trades",
              "bh_return", "lr"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


# the overview's sort keys, and those where smaller (or A..Z) comes first by nature
SORT_COLUMNS = ("created_at", "balanced_accuracy", "accuracy", "macro_f1", "roc_auc", "log_loss", "vs_baseline",
                "bt_return", "bt_sharpe", "name", "model", "dataset")
LOW_FIRST = ("log_loss", "name", "model", "dataset")


def filter_overview(df: pd.DataFrame, text: str = "", models: Iterable[str] = (), datasets: Iterable[str] = (),
                    statuses: Iterable[str] = (), sort_by: Optional[str] = None,
                    ascending: bool = False) -> pd.DataFrame:
    """Rows whose name/id/model/dataset contain `text` (case-insensitive) and whose model, dataset and status
    are among those given (empty = all), sorted by `sort_by` (missing values last)."""
    out = df
    text = (text or "").strip().lower()
    if text:
        hay = (out["name"].astype(str) + " " + out["run_id"].astype(str) + " " + out["model"].astype(str) + " "
               + out["dataset"].astype(str)).str.lower()
        out = out[hay.str.contains(text, regex=False)]
    for col, allowed in (("model", models), ("dataset", datasets), ("status", statuses)):
        allowed = list(allowed)
        if allowed:
            out = out[out[col].isin(allowed)]
    if sort_by:
        if sort_by not in out.columns:
            raise UserError(f"cannot sort by {sort_by!r}: no such column")
        out = out.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")
    return out.reset_index(drop=True)


def training_curves(run_ids: Sequence[str]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """run label -> its per-epoch history (for overlaid training curves), and run label -> the loss those
    curves show (runs trained with different losses have incomparable curves); each run is read once."""
    from core.train.runs import load_run
    from core.train.config import loss_name

    curves, losses = {}, {}
    for rid in run_ids:
        run = load_run(rid)
        label = _label(run.config, rid)
        curves[label] = run.history
        losses[label] = loss_name(run.config.get("train_config") or {}, run.config.get("targets_scaling") is not None)
    return curves, losses


def metrics_of(run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """run label -> test metrics and the best baseline's metrics (for metric bars)."""
    from core.train.runs import load_run

    out = {}
    for rid in run_ids:
        run = load_run(rid)
        m = run.metrics.get("metrics") or {}
        bl = run.metrics.get("baselines") or {}
        best = max(bl.items(), key=lambda kv: _num(kv[1].get("accuracy")) or -1.0)[1] if bl else {}
        out[_label(run.config, rid)] = {"model": {k: _num(m.get(k)) for k in HEADLINE},
                                        "best_baseline": {k: _num(best.get(k)) for k in HEADLINE}}
    return out


def comparability_note(run_ids: Sequence[str]) -> Optional[str]:
    """A sentence when the runs to compare were scored on different data - datasets, targets (label kind,
    horizon, threshold...) or test spans - so their metrics are not like for like (None when alike)."""
    from core.sweep.runner import scale_note, target_label
    from core.train.runs import load_run

    if len(run_ids) < 2:
        return None
    cfgs = {rid: load_run(rid).config for rid in run_ids}
    facts = {
        "datasets": {rid: str(c.get("dataset_id") or "?") for rid, c in cfgs.items()},
        "targets": {rid: target_label(c.get("data_config") or {}) for rid, c in cfgs.items()},
        "test spans": {rid: _span(c) for rid, c in cfgs.items()},
    }
    what = []
    for kind, by_run in facts.items():
        values = list(dict.fromkeys(by_run.values()))
        if len(values) > 1:
            what.append(f"{kind} ({'; '.join(values[:4])}{'; ...' if len(values) > 4 else ''})")
    if not what:
        return None
    scale = scale_note(facts["targets"].values())
    return (f"These runs differ in {', '.join(what)}: their metrics and curves are not like for like; compare "
            f"each against its own baseline (vs_baseline).{' ' + scale if scale else ''}")


def _span(cfg: dict[str, Any]) -> str:
    a, b = cfg.get("test_start"), cfg.get("test_end")
    if not a:
        return "?"
    try:
        return f"{pd.Timestamp(a):%Y-%m-%d %H:%M} to {pd.Timestamp(b):%Y-%m-%d %H:%M}" if b else f"from {a}"
    except (ValueError, TypeError):
        return f"{a} to {b}"


def _label(cfg: dict[str, Any], rid: str) -> str:
    name = str(cfg.get("name") or rid)
    return name if name == rid else f"{name} ({rid[-6:]})"


def run_labels(run_ids: Sequence[str]) -> dict[str, str]:
    from core.train.runs import load_run

    return {rid: _label(load_run(rid).config, rid) for rid in run_ids}


def equity_curves(run_ids: Sequence[str], backtest: Any = None) -> tuple[dict[str, pd.Series], dict[str, pd.Series],
                                                                         list[str]]:
    """Out-of-sample equity and buy and hold of each run (default backtest settings), keyed by its label, and
    the sentences to show: a run whose dataset changed since training, or whose backtest failed (one failing
    run must not hide the rest). `backtest(run_id) -> (equity, buy_and_hold, note)` defaults to
    `run_backtest_for`; a page passes its cached wrapper."""
    if backtest is None:
        def backtest(rid: str) -> tuple[Any, Any, str]:
            res = run_backtest_for(rid)
            return res.equity, res.benchmark_equity, res.note
    names = run_labels(run_ids)
    curves: dict[str, pd.Series] = {}
    bench: dict[str, pd.Series] = {}
    notes: list[str] = []
    for rid in run_ids:
        try:
            curves[names[rid]], bench[names[rid]], note = backtest(rid)
            if note:
                notes.append(f"{names[rid]}: {note}")
        except Exception as exc:  # noqa: BLE001 - said beside the others
            notes.append(f"{names[rid]}: {exc}")
    return curves, bench, notes


OVERVIEW_NOTE = ("Metrics are on each run's test split. \"CNN - best baseline\" is the CNN's accuracy minus the "
                 "best simple baseline's; \"beats the baseline\" is ticked only when its 95 % bootstrap interval "
                 "is above zero. The backtest columns (strategy return, buy and hold return, max drawdown, Sharpe) "
                 "fill in once a run is backtested below.")

# How the overview's columns read: (label or None for the column's own name, number format or "check")
OVERVIEW_COLUMNS: dict[str, tuple[Optional[str], str]] = {
    "accuracy": (None, "%.3f"), "balanced_accuracy": ("bal. acc.", "%.3f"), "macro_f1": (None, "%.3f"),
    "roc_auc": (None, "%.3f"), "log_loss": (None, "%.3f"), "baseline_accuracy": (None, "%.3f"),
    "vs_baseline": ("CNN - best baseline", "%+.3f"), "beats_baseline": ("beats the baseline", "check"),
    "bt_return": ("strategy return", "percent"), "bh_return": ("buy and hold return", "percent"),
    "bt_max_dd": ("max drawdown", "percent"), "bt_sharpe": ("Sharpe", "%.2f"), "bt_trades": ("trades", ""),
}


__all__ = ["backtest_available", "cached_backtest", "record_backtest", "run_backtest_for", "runs_overview", "filter_overview",
           "training_curves", "metrics_of", "run_labels", "comparability_note", "equity_curves",
           "OVERVIEW_NOTE", "OVERVIEW_COLUMNS", "BT_METRICS"]
