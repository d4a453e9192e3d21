"""Honest, leakage-free results on real market data, reproducible by one command (prints one table).

For BTC/USDT and ETH/USDT 1h candles (Binance spot, imported from CSV files) and a small set of CNNs, this
trains each model with several seeds on the purged chronological split (70/15/15, train-only scaler, a
purge of horizon + window bars between splits), compares it on the test split with the trainer's own
baselines (majority class, logistic regression on window summaries: the same samples, labels and split),
and backtests its test-split probabilities out of sample with the default rules *and costs* (Bybit taker
fee 0.055 % per side, 1 bp slippage, ATR stop, trailing stop, +3 % target, 12 h time exit, drawdown
rules), beside buy and hold over the same bars and the same costs.

Everything goes through core's public API: `core.data.importer.import_candles`, `core.train.train_run`,
`core.backtest.backtest_run` / `backtest_predictions` / `backtest_baseline`, `core.train.baselines`.
Nothing here computes a metric of its own.

Rows of the table:
- one per (dataset, model, seed): test accuracy, balanced accuracy, macro F1, log loss; the best baseline
  on the headline metric (accuracy by default), the CNN minus that baseline with its 95 % paired
  block-bootstrap interval and the verdict (from the run's metrics.json); the backtest after costs
  (Sharpe, total return, max drawdown, trades), the Sharpe before costs, and buy and hold's Sharpe and
  return on the same bars;
- per dataset, the baselines themselves: `majority` and `logistic` (classification metrics from the
  runs; the logistic baseline's test probabilities are also backtested through the same engine and rules),
  and the `ma_cross` rule (MA 20/50) on the same bars.

Usage (from the repository root):

    .venv/bin/python bench/bench_results.py                      # everything (about 20 min on 2 busy cores)
    .venv/bin/python bench/bench_results.py --models cnn1d --seeds 0 --epochs 1   # a smoke run

Defaults: the `quick` preset's data and training settings (resnet15 features, 64-bar windows, 3-class
labels at horizon 12 / threshold 0.2 %, batch 128, lr 2e-3, patience 3) with at most 5 epochs instead of
6, the full training split, seeds 0 and 1.

Options: --data-dir (default ../shared/data), --workspace (default: a new temporary folder; never the
repository's ./workspace), --models, --seeds, --epochs, --max-train-samples, --threads, --out (markdown
table; a JSON file with every figure is written beside it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FILES = {"BTC/USDT": "binance_spot_BTCUSDT_1h.csv", "ETH/USDT": "binance_spot_ETHUSDT_1h.csv"}
# model -> model_config; cnn1d is the quick preset's own model, the rest use their registry defaults
# (resnet18_1d at its small default width 32, convnext1d the compact variant)
MODELS: dict[str, dict[str, Any]] = {
    "cnn1d": {}, "resnet18_1d": {}, "tcn": {}, "wavenet": {}, "multiscale_cnn": {}, "convnext1d": {},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"),
                    help="folder with binance_spot_{BTC,ETH}USDT_1h.csv (default ../shared/data)")
    ap.add_argument("--workspace", default=None,
                    help="workspace folder for datasets and runs (default: a new temporary folder)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    ap.add_argument("--preset", default="quick", help="training preset for data and training settings")
    ap.add_argument("--epochs", type=int, default=5,
                    help="max epochs (default 5: the quick preset's 6 cut by one so that 6 models x 2 seeds x 2 "
                         "datasets fit in about 25 min on 2 busy cores; early stopping still applies; 0 = the "
                         "preset's own)")
    ap.add_argument("--max-train-samples", type=int, default=None,
                    help="train (CNN and baselines) on the most recent N training samples only")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="more overrides as on the command line (data.x, train.x)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a busy machine)")
    ap.add_argument("--out", default=None,
                    help="markdown file for the table (default: <workspace>/results.md); JSON beside it")
    return ap.parse_args(argv)


def fmt(v: Any, kind: str = "f3") -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "n/a"
    if kind == "pct":
        return f"{v * 100:+.1f} %"
    if kind == "pts":
        return f"{v * 100:+.1f}"
    if kind == "f2":
        return f"{v:.2f}"
    if kind == "int":
        return f"{int(v):d}"
    return f"{v:.3f}"


def import_datasets(data_dir: Path) -> dict[str, str]:
    from core.data.importer import import_candles

    ids = {}
    for symbol, name in FILES.items():
        path = data_dir / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing: pass --data-dir (the folder with {', '.join(FILES.values())})")
        _, report = import_candles(path, symbol, timeframe="1h", filename=name)
        ids[symbol] = report.dataset
        print(f"imported {name} as {report.dataset}: {report.summary()}", flush=True)
    return ids


def backtest_figures(res: Any) -> dict[str, Any]:
    m, b = res.metrics, res.buy_and_hold
    return {"sharpe": m.get("sharpe"), "total_return": m.get("total_return"), "max_drawdown": m.get("max_drawdown"),
            "n_trades": m.get("n_trades"), "win_rate": m.get("win_rate"), "profit_factor": m.get("profit_factor"),
            "exposure": m.get("exposure"), "fees_paid_pct": m.get("fees_paid_pct"),
            "bh_sharpe": b.get("sharpe"), "bh_total_return": b.get("total_return"),
            "bh_max_drawdown": b.get("max_drawdown"), "start": str(res.start), "end": str(res.end),
            "bars": len(res.equity)}


def logistic_backtest(run_id: str, candles: Any, cost_free: dict[str, Any]) -> dict[str, Any]:
    """Backtest the trainer's logistic baseline exactly as the CNN: refit it on the run's own prepared data
    (train samples only, same seed and features) and trade its test probabilities through the engine."""
    import numpy as np
    import pandas as pd

    from core.backtest import backtest_predictions
    from core.train.baselines import fit_baselines
    from core.train.runs import load_run
    from core.train.trainer import prepare_for_run

    run = load_run(run_id)
    cfg = run.config
    tc = cfg["train_config"]
    prepared = prepare_for_run(cfg, candles)
    y = np.asarray(prepared.y)

    def valid(split: str) -> np.ndarray:
        ends = np.asarray(prepared.splits[split], dtype=np.int64)
        return ends[y[ends] >= 0]

    train_ends, test_ends = valid("train"), valid("test")
    if tc.get("max_train_samples"):
        train_ends = train_ends[-int(tc["max_train_samples"]):]
    k = len(cfg["class_names"])
    bl = fit_baselines(prepared.features, prepared.y, train_ends, test_ends, int(prepared.window), k,
                       ["logistic"], int(tc["seed"]), tc.get("baseline_features", "summary"))["logistic"]
    ts = pd.DatetimeIndex(np.asarray(prepared.timestamps)[test_ends])
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    preds = pd.DataFrame({"timestamp": ts, "y_true": y[test_ends]})
    for i, name in enumerate(cfg["class_names"]):
        preds[f"prob_{name}"] = bl.proba[:, i]
    # the predictions must be the ones the run scored: same test samples
    if not preds["timestamp"].equals(run.predictions.sort_values("timestamp")["timestamp"].reset_index(drop=True)):
        raise RuntimeError("the logistic baseline's test samples differ from the run's")
    out = backtest_figures(backtest_predictions(candles, preds, cfg["class_names"], None, label="logistic"))
    out["gross_sharpe"] = backtest_predictions(candles, preds, cfg["class_names"], cost_free).metrics.get("sharpe")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ws = Path(args.workspace).resolve() if args.workspace else Path(tempfile.mkdtemp(prefix="cnn_lab_results_"))
    if ws == (REPO / "workspace").resolve():
        raise SystemExit("use a workspace outside the repository (the app's ./workspace stays untouched)")
    ws.mkdir(parents=True, exist_ok=True)
    os.environ["CNN_LAB_WORKSPACE"] = str(ws)

    import torch

    torch.set_num_threads(args.threads)
    from core.backtest import backtest_baseline, backtest_run
    from core.data.store import load_candles
    from core.device import best_device
    from core.train import train_run
    from core.train.cli import resolve_configs

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    load0 = os.getloadavg()
    print(f"workspace {ws}\ndevice {best_device()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{os.cpu_count()} CPUs, load average {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f}", flush=True)

    t_all = time.perf_counter()
    ids = import_datasets(Path(args.data_dir))
    cost_free = {"fee_taker": 0.0, "fee_maker": 0.0, "slippage_bps": 0.0}
    rows: list[dict[str, Any]] = []
    base_rows: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    for symbol, ds in ids.items():
        candles = load_candles(ds)
        first_run = None
        for model in models:
            for seed in seeds:
                pairs = list(args.set) + [f"train.seed={seed}"]
                if args.epochs:
                    pairs.append(f"train.epochs={args.epochs}")
                if args.max_train_samples:
                    pairs.append(f"train.max_train_samples={args.max_train_samples}")
                name, mc, data, train = resolve_configs(model, args.preset, pairs)
                mc = {**MODELS.get(model, {}), **mc}
                t0 = time.perf_counter()
                res = train_run(ds, name, mc, data, train, candles=candles, name=f"results {symbol} {model} s{seed}")
                t_train = time.perf_counter() - t0
                bt = backtest_figures(backtest_run(res.run_id, None, candles=candles))
                bt["gross_sharpe"] = backtest_run(res.run_id, cost_free, candles=candles).metrics.get("sharpe")
                vs = res.vs_best_baseline
                m = res.metrics
                row = {"dataset": symbol, "dataset_id": ds, "model": model, "seed": seed, "run_id": res.run_id,
                       "status": res.status, "epochs_run": len(res.history), "best_epoch": res.config.get("best_epoch"),
                       "n_params": res.config.get("n_params"), "n_samples": res.config.get("n_samples"),
                       "train_seconds": round(t_train, 1), "accuracy": m["accuracy"],
                       "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
                       "roc_auc": m["roc_auc"], "log_loss": m["log_loss"], "n_test": m["n"],
                       "vs_metric": vs.get("metric"), "baseline": vs.get("baseline"),
                       "baseline_value": vs.get("baseline_value"), "diff": vs.get("diff"),
                       "ci_low": vs.get("ci_low"), "ci_high": vs.get("ci_high"), "beats": vs.get("beats"),
                       "worse": vs.get("worse"), "verdict": vs.get("verdict"),
                       "others": {k: {kk: v[kk] for kk in ("baseline", "diff", "ci_low", "ci_high", "beats", "worse")}
                                  for k, v in (vs.get("others") or {}).items()},
                       **bt}
                rows.append(row)
                settings.setdefault("data_config", res.config["data_config"])
                settings.setdefault("train_config", {k: v for k, v in res.config["train_config"].items()
                                                     if k != "seed"})
                settings.setdefault("class_names", res.config["class_names"])
                print(f"{symbol} {model:<15} seed {seed}: acc {m['accuracy']:.3f} bal {m['balanced_accuracy']:.3f} "
                      f"F1 {m['macro_f1']:.3f} logloss {m['log_loss']:.3f} | vs {vs.get('baseline')} "
                      f"{fmt(vs.get('diff'), 'pts')} [{fmt(vs.get('ci_low'), 'pts')}, {fmt(vs.get('ci_high'), 'pts')}] "
                      f"| Sharpe {fmt(bt['sharpe'], 'f2')} ret {fmt(bt['total_return'], 'pct')} trades "
                      f"{bt['n_trades']} | {len(res.history)} epochs, {t_train:.0f} s", flush=True)
                if first_run is None:
                    first_run = res
        if first_run is None:
            continue
        # the baselines of this dataset: the same test samples for every run (same data settings)
        lb = logistic_backtest(first_run.run_id, candles, cost_free)
        ma = backtest_baseline("ma_cross", candles, None, start=lb["start"], end=lb["end"])
        ma_bt = backtest_figures(ma)
        ma_bt["gross_sharpe"] = backtest_baseline("ma_cross", candles, cost_free, start=lb["start"],
                                                  end=lb["end"]).metrics.get("sharpe")
        for bname, b in first_run.baselines.items():
            base_rows.append({"dataset": symbol, "model": f"baseline: {bname}", "seed": None,
                              "accuracy": b["accuracy"], "balanced_accuracy": b["balanced_accuracy"],
                              "macro_f1": b["macro_f1"], "roc_auc": b["roc_auc"], "log_loss": b["log_loss"],
                              "n_test": b["n"], "description": b["description"],
                              **(lb if bname == "logistic" else {})})
        base_rows.append({"dataset": symbol, "model": "rule: ma_cross 20/50", "seed": None, **ma_bt})
    elapsed = time.perf_counter() - t_all
    load1 = os.getloadavg()

    md = render(rows, base_rows, settings, elapsed, load0, load1, args)
    print()
    print(md)
    out = Path(args.out).expanduser() if args.out else ws / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "baselines": base_rows, "settings": settings,
                                                    "elapsed_s": elapsed, "load_start": load0, "load_end": load1},
                                                   indent=1, default=str), encoding="utf-8")
    print(f"\nwrote {out} and {out.with_suffix('.json')}; {elapsed / 60:.1f} min in all")
    return 0


def render(rows: list[dict[str, Any]], base_rows: list[dict[str, Any]], settings: dict[str, Any], elapsed: float,
           load0: tuple, load1: tuple, args: argparse.Namespace) -> str:
    import torch

    from core.device import best_device

    d = settings.get("data_config", {})
    t = settings.get("train_config", {})
    metric = rows[0]["vs_metric"].replace("_", " ") if rows else "accuracy"
    head = ("| dataset | model | seed | acc | bal acc | macro F1 | log loss | best baseline | "
            f"Δ {metric} (pts) [95 % CI] | verdict | Sharpe | return | max DD | trades | Sharpe gross | "
            "B&H Sharpe | B&H return |")
    sep = "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"
    lines = [head, sep]
    for r in rows:
        verdict = "beats" if r["beats"] else ("worse" if r["worse"] else "within noise")
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['seed']} | {fmt(r['accuracy'])} | {fmt(r['balanced_accuracy'])} | "
            f"{fmt(r['macro_f1'])} | {fmt(r['log_loss'])} | {r['baseline']} {fmt(r['baseline_value'])} | "
            f"{fmt(r['diff'], 'pts')} [{fmt(r['ci_low'], 'pts')}, {fmt(r['ci_high'], 'pts')}] | {verdict} | "
            f"{fmt(r['sharpe'], 'f2')} | {fmt(r['total_return'], 'pct')} | {fmt(r['max_drawdown'], 'pct')} | "
            f"{fmt(r['n_trades'], 'int')} | {fmt(r['gross_sharpe'], 'f2')} | {fmt(r['bh_sharpe'], 'f2')} | "
            f"{fmt(r['bh_total_return'], 'pct')} |")
    for b in base_rows:
        lines.append(
            f"| {b['dataset']} | {b['model']} | - | {fmt(b.get('accuracy'))} | {fmt(b.get('balanced_accuracy'))} | "
            f"{fmt(b.get('macro_f1'))} | {fmt(b.get('log_loss'))} | - | - | - | {fmt(b.get('sharpe'), 'f2')} | "
            f"{fmt(b.get('total_return'), 'pct')} | {fmt(b.get('max_drawdown'), 'pct')} | "
            f"{fmt(b.get('n_trades'), 'int')} | {fmt(b.get('gross_sharpe'), 'f2')} | {fmt(b.get('bh_sharpe'), 'f2')} | "
            f"{fmt(b.get('bh_total_return'), 'pct')} |")
    spans = sorted({(r["dataset"], r["start"], r["end"], r["bars"], r["n_test"]) for r in rows})
    notes = [
        f"Settings: preset `{args.preset}`: features `{d.get('preset')}`, window {d.get('window')}, labels "
        f"`{d.get('label')}` (horizon {d.get('horizon')} bars, threshold {d.get('threshold')}), split "
        f"{d.get('train')}/{d.get('val')}/{d.get('test')} with purge {d.get('purge') or 'horizon + window'}; "
        f"{t.get('epochs')} epochs max (patience {t.get('patience')}, monitor {t.get('monitor')}), batch "
        f"{t.get('batch_size')}, lr {t.get('lr')} (floor {t.get('min_lr')}), weight decay {t.get('weight_decay')}, "
        f"max_train_samples {t.get('max_train_samples')}; seeds "
        f"{args.seeds}; classes {settings.get('class_names')}.",
        "Test spans: " + "; ".join(f"{s[0]} {s[1][:16]} to {s[2][:16]} UTC ({s[3]} bars, {s[4]} test samples)"
                                   for s in spans) + ".",
        f"Δ = model minus the best baseline on {metric} (the baseline chosen on the test set, the hardest "
        "comparison), 95 % paired moving-block bootstrap interval from the run's metrics.json (blocks as long "
        "as the two models' right and wrong answers hang together, by Politis & White, and at least the label "
        "horizon); 'beats' only when the whole interval is above 0.",
        "Backtest: default BacktestConfig (threshold 0.6, long and short, fixed size 1x, taker 0.055 % per "
        "side, 1 bp slippage, 2 ATR stop behind a 1.5 ATR trailing stop from the entry (so only the trailing stop "
        "acts), +3 % target, 12 h max hold, 3 % daily / 10 % "
        "weekly drawdown rules) on the run's test span only; 'Sharpe gross' is the same with zero fees and "
        "slippage; buy and hold (B&H) pays the same costs over the same bars. Sharpe annualised with "
        "8,760 bars a year.",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, device {best_device()}, torch "
        f"{torch.__version__} with {args.threads} thread(s); load average {load0[0]:.1f} at the start, "
        f"{load1[0]:.1f} at the end; {elapsed / 60:.1f} min in all.",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
