"""Walk-forward evaluation: out-of-sample predictions across the whole test span, fold after fold.

`walk_forward(...)` cuts the dataset with `core.features.walk_forward_folds` (purged, expanding or rolling),
and for every fold refits the feature scaler on that fold's training rows, trains a fresh model (same
seed), scores the fold's test block and fits the baselines on the same fold. The test blocks are
contiguous and do not overlap, so their concatenation is one out-of-sample prediction series; metrics and
the bootstrap comparison with the best baseline are computed over all of it, and per fold.

Each finished evaluation is saved in `workspace/walkforward/<id>/`: `summary.json` (config, folds, metrics,
baselines, the comparison) and `predictions.parquet`. `list_walk_forwards()`, `load_walk_forward(id)` and
`delete_walk_forward(id)` read them back (the Train page and `python -m core train --folds K`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from core.errors import UserError
from core.progress import CancelToken, Progress, ProgressCallback
from core.train.config import DataConfig, TrainConfig
from core.train.metrics import HEADLINE, classification_metrics
from core.workspace import atomic_write, atomic_write_json, jsonable, read_json, reserve_folder, safe_name, ws_path


WF_DIR = "walkforward"


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame           # timestamp, y_true, prob_<class>..., split="test", fold
    folds: list[dict[str, Any]]         # per fold: span, sizes, status, CNN and baseline headline metrics
    metrics: dict[str, Any]             # over all test blocks together
    baselines: dict[str, dict[str, Any]]
    vs_best_baseline: dict[str, Any]
    config: dict[str, Any]
    wf_id: str = ""                     # its folder in workspace/walkforward/ once saved

    def summary(self) -> dict[str, Any]:
        return {"mode": "walk_forward", "wf_id": self.wf_id, "n_folds": len(self.folds),
                "model_name": self.config["model_name"], "dataset_id": self.config["dataset_id"],
                "name": self.config.get("name", ""), "created_at": self.config.get("created_at", ""),
                "metrics": self.metrics, "baselines": self.baselines,
                "vs_best_baseline": self.vs_best_baseline, "folds": self.folds}

    def text(self) -> str:
        from core.train.runs import status_words

        lines = [f"walk-forward over {len(self.folds)} folds, {self.metrics['n']} out-of-sample predictions"]
        for f in self.folds:
            lines.append(f"  fold {f['fold']}: {f['test_start']} .. {f['test_end']}  n={f['n_test']}  "
                         f"accuracy {f['metrics']['accuracy']:.3f}  macro F1 {f['metrics']['macro_f1']:.3f}  "
                         f"({status_words(f['status'])})")
        m = self.metrics
        lines.append(f"all: accuracy {m['accuracy']:.3f}  balanced {m['balanced_accuracy']:.3f}  "
                     f"macro F1 {m['macro_f1']:.3f}  ROC AUC {m['roc_auc']:.3f}")
        for name, b in self.baselines.items():
            lines.append(f"  {name:<9} accuracy {b['accuracy']:.3f}  macro F1 {b['macro_f1']:.3f}")
        if self.vs_best_baseline:
            from core.train.trainer import verdict_text

            lines.append(verdict_text(self.vs_best_baseline))
        return "\n".join(lines)


def _readable(vs: dict[str, Any]) -> dict[str, Any]:
    from core.train.trainer import readable_verdicts

    return readable_verdicts(vs)


def fold_prepared(prepared: Any, split: dict[str, np.ndarray]) -> Any:
    """`prepared` re-split on one fold, with the feature scaler refitted on that fold's training rows."""
    from core.features import ChannelScaler, rows_touched

    if prepared.raw_features is None:
        raise UserError("walk-forward needs the unscaled features of the prepared dataset")
    y = np.asarray(prepared.y)
    splits = {k: np.asarray(v, dtype=np.int64)[y[v] >= 0] for k, v in split.items()}
    for k, v in splits.items():
        if len(v) == 0:
            raise UserError(f"a walk-forward fold has no labelled {k} samples: use fewer folds or more candles")
    raw = prepared.raw_features.to_numpy(np.float64)
    scaler = ChannelScaler.fit(raw, rows_touched(splits["train"], prepared.window, len(raw)),
                               list(prepared.feature_names))
    return dataclasses.replace(prepared, features=np.ascontiguousarray(scaler.transform(raw)), splits=splits,
                               scaler=scaler)


def walk_forward(dataset_id: Optional[str], model_name: str, model_config: Optional[dict[str, Any]] = None,
                 data_config: DataConfig | dict[str, Any] | None = None,
                 train_config: TrainConfig | dict[str, Any] | None = None, k: int = 4,
                 mode: str = "expanding", progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None, candles: Optional[pd.DataFrame] = None,
                 name: Optional[str] = None, save: bool = True) -> WalkForwardResult:
    """Train and score `k` walk-forward folds; returns the stitched out-of-sample predictions and metrics,
    saved in the workspace unless `save=False`. A cancel ends the whole evaluation (nothing is saved)."""
    from core.features import SplitConfig, walk_forward_folds
    from core.train.trainer import (_load_candles, _resolve, _stager, compare_to_baselines, data_span,
                                    fit_and_score, prepare_for_run, run_candles)
    from core.train.runs import check_name

    name = check_name(name) or None
    data, train, model_config, dataset_id, input_kind = _resolve(dataset_id, model_name, model_config,
                                                                  data_config, train_config)
    stage = _stager(progress, cancel)
    stage("prepare", f"preparing {dataset_id} for {k} walk-forward folds")
    config: dict[str, Any] = {"dataset_id": dataset_id, "model_name": model_name, "model_config": model_config,
                              "data_config": asdict(data), "train_config": asdict(train)}
    candles = run_candles(config, candles if candles is not None else _load_candles(dataset_id))
    base = prepare_for_run(config, candles)
    split_cfg = SplitConfig(train=data.train, val=data.val, test=data.test, purge=data.purge)
    folds = walk_forward_folds(len(base.features), int(base.window), data.horizon, k, mode, split_cfg)
    class_names = [str(c) for c in base.class_names]
    preds, fold_rows, bl_all, bl_desc = [], [], {}, {}
    for i, split in enumerate(folds):
        if progress is not None:
            progress(Progress("fold", i, len(folds), f"fold {i + 1}/{len(folds)}"))
        fold_progress = _fold_progress(progress, i, len(folds))
        sc = fit_and_score(fold_prepared(base, split), config, data, train, input_kind, fold_progress, cancel,
                           _fold_stage(fold_progress, cancel))
        if cancel is not None:
            cancel.raise_if_cancelled()  # a stopped fold ends the whole evaluation
        p = sc.predictions.assign(fold=i + 1)
        preds.append(p)
        for bl_name, pr in sc.baseline_proba.items():
            bl_all.setdefault(bl_name, []).append(pr)
            bl_desc.setdefault(bl_name, [])
            if sc.baselines[bl_name].get("description", "") not in bl_desc[bl_name]:
                bl_desc[bl_name].append(sc.baselines[bl_name].get("description", ""))
        fold_rows.append({
            "fold": i + 1, "status": sc.fit.status, "best_epoch": sc.fit.best_epoch,
            "n_train": sc.n_samples["train"], "n_val": sc.n_samples["val"], "n_test": len(p),
            "test_start": str(p["timestamp"].iloc[0]), "test_end": str(p["timestamp"].iloc[-1]),
            "metrics": {m: sc.metrics[m] for m in HEADLINE},
            "baselines": {b: {m: v[m] for m in HEADLINE} for b, v in sc.baselines.items()},
            "warnings": sc.warnings,
        })
        config = sc.config
    if progress is not None:
        progress(Progress("fold", len(folds), len(folds), "walk-forward done"))
    all_preds = pd.concat(preds, ignore_index=True)
    y = all_preds["y_true"].to_numpy()
    proba = all_preds[[f"prob_{c}" for c in class_names]].to_numpy()
    bl = {b: np.concatenate(v) for b, v in bl_all.items()}
    baselines = {b: dict(classification_metrics(y, p, class_names),  # a fold's own note ("one class in
                         description=" | ".join(bl_desc.get(b) or [b])  # train", ...) is kept beside the rest
                         + ", refitted on each fold's training rows")
                 for b, p in bl.items()}
    vs = compare_to_baselines(y, proba, bl, len(class_names), data.horizon, train.n_boot, train.seed,
                              train.compare_metric)
    from core.train.trainer import datetime_now

    config = dict(config, n_folds=len(folds), mode=mode, name=name or "", created_at=datetime_now(),
                  **data_span(candles))
    res = WalkForwardResult(all_preds, fold_rows, classification_metrics(y, proba, class_names), baselines, vs,
                            config)
    if save:
        save_walk_forward(res)
    return res


def _fold_stage(progress: Optional[ProgressCallback], cancel: Optional[CancelToken]):
    """Stage messages of a fold. Unlike a single run, which is still scored and saved after Stop, a stopped
    fold ends the whole evaluation at once: its test scoring and baselines would be thrown away anyway."""
    def stage(s: str, msg: str) -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(Progress(s, 0, None, msg))
    return stage


def _fold_progress(progress: Optional[ProgressCallback], i: int, k: int) -> Optional[ProgressCallback]:
    """Fold `i`'s training events as progress of the whole evaluation: "fold 2/4 · ..." and fractions of all k."""
    if progress is None:
        return None

    reached = [float(i)]  # a stage message without a fraction stands where the fold has got to

    def report(p: Progress) -> None:
        if p.fraction is not None:
            reached[0] = i + p.fraction
        progress(Progress(p.stage, reached[0] * 1000, k * 1000, f"fold {i + 1}/{k} · {p.message}", p.metrics))

    return report


# ------------------------------------------------------------------------------------------ saved results

def wf_root() -> Path:
    p = ws_path(WF_DIR)
    p.mkdir(parents=True, exist_ok=True)
    return p


def wf_path(wf_id: str) -> Path:
    try:
        return ws_path(WF_DIR, safe_name(wf_id))
    except ValueError as exc:
        raise UserError(f"'{wf_id}' is not a valid walk-forward id") from exc


def save_walk_forward(res: WalkForwardResult) -> str:
    """Write `res` under workspace/walkforward/<id>/ (summary.json last: its presence means complete)."""
    cfg = res.config
    model = "".join(c if c.isalnum() or c in "-_" else "-" for c in cfg["model_name"])[:40] or "model"
    stamp = str(cfg.get("created_at", ""))[:19].replace("-", "").replace(":", "").replace("T", "-")
    res.wf_id = reserve_folder(wf_root(), f"{stamp or 'wf'}-{model}-k{len(res.folds)}")
    folder = wf_path(res.wf_id)
    atomic_write(folder / "predictions.parquet", lambda t: res.predictions.to_parquet(t, index=False))
    atomic_write_json(folder / "summary.json", jsonable({**res.summary(), "config": cfg}))
    return res.wf_id


def list_walk_forwards() -> list[dict[str, Any]]:
    """The saved evaluations' summaries, newest first (unreadable folders are skipped)."""
    out = []
    for folder in wf_root().iterdir():
        if (folder / "summary.json").is_file():
            try:
                out.append(read_json(folder / "summary.json"))
            except (ValueError, OSError):
                continue
    return sorted(out, key=lambda d: (str(d.get("created_at", "")), str(d.get("wf_id", ""))), reverse=True)


def load_walk_forward(wf_id: str) -> WalkForwardResult:
    folder = wf_path(wf_id)
    if not (folder / "summary.json").is_file():
        raise UserError(f"there is no walk-forward evaluation '{wf_id}'")
    doc = read_json(folder / "summary.json")
    preds = pd.read_parquet(folder / "predictions.parquet")
    preds["timestamp"] = pd.to_datetime(preds["timestamp"], utc=True)
    return WalkForwardResult(preds, doc.get("folds", []), doc.get("metrics", {}), doc.get("baselines", {}),
                             _readable(doc.get("vs_best_baseline", {})), doc.get("config", {}),
                             wf_id=doc.get("wf_id", wf_id))  # (saved before the verdicts were reworded)


def delete_walk_forward(wf_id: str) -> None:
    import shutil

    folder = wf_path(wf_id)
    if not folder.is_dir():
        raise UserError(f"there is no walk-forward evaluation '{wf_id}'")
    shutil.rmtree(folder)
