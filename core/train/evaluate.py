"""Walk-forward evaluation: out-of-sample predictions across the whole test span, fold after fold.

`walk_forward(...)` cuts the dataset with `core.features.walk_forward_folds` (purged, expanding or rolling),
and for every fold refits the feature scaler on that fold's training rows, trains a fresh model (same
seed), scores the fold's test block and fits the baselines on the same fold. The test blocks are
contiguous and do not overlap, so their concatenation is one out-of-sample prediction series; metrics and
the bootstrap comparison with the best baseline are computed over all of it, and per fold.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from core.errors import UserError
from core.progress import CancelToken, Progress, ProgressCallback
from core.train.config import DataConfig, TrainConfig
from core.train.metrics import HEADLINE, classification_metrics


@dataclass
class WalkForwardResult:
    predictions: pd.DataFrame           # timestamp, y_true, prob_<class>..., split="test", fold
    folds: list[dict[str, Any]]         # per fold: span, sizes, status, CNN and baseline headline metrics
    metrics: dict[str, Any]             # over all test blocks together
    baselines: dict[str, dict[str, Any]]
    vs_best_baseline: dict[str, Any]
    config: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {"mode": "walk_forward", "n_folds": len(self.folds), "model_name": self.config["model_name"],
                "dataset_id": self.config["dataset_id"], "metrics": self.metrics, "baselines": self.baselines,
                "vs_best_baseline": self.vs_best_baseline, "folds": self.folds}

    def text(self) -> str:
        lines = [f"walk-forward over {len(self.folds)} folds, {self.metrics['n']} out-of-sample predictions"]
        for f in self.folds:
            lines.append(f"  fold {f['fold']}: {f['test_start']} .. {f['test_end']}  n={f['n_test']}  "
                         f"accuracy {f['metrics']['accuracy']:.3f}  macro F1 {f['metrics']['macro_f1']:.3f}  "
                         f"({f['status']})")
        m = self.metrics
        lines.append(f"all: accuracy {m['accuracy']:.3f}  balanced {m['balanced_accuracy']:.3f}  "
                     f"macro F1 {m['macro_f1']:.3f}  ROC AUC {m['roc_auc']:.3f}")
        for name, b in self.baselines.items():
            lines.append(f"  {name:<9} accuracy {b['accuracy']:.3f}  macro F1 {b['macro_f1']:.3f}")
        if self.vs_best_baseline:
            lines.append(self.vs_best_baseline["verdict"])
        return "\n".join(lines)


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
                 cancel: Optional[CancelToken] = None, candles: Optional[pd.DataFrame] = None) -> WalkForwardResult:
    """Train and score `k` walk-forward folds; returns the stitched out-of-sample predictions and metrics."""
    from core.features import SplitConfig, walk_forward_folds
    from core.train.trainer import (_load_candles, _resolve, _stager, compare_to_baselines, fit_and_score,
                                    prepare_for_run)

    data, train, model_config, dataset_id, input_kind = _resolve(dataset_id, model_name, model_config,
                                                                  data_config, train_config)
    stage = _stager(progress, cancel)
    stage("prepare", f"preparing {dataset_id} for {k} walk-forward folds")
    config: dict[str, Any] = {"dataset_id": dataset_id, "model_name": model_name, "model_config": model_config,
                              "data_config": asdict(data), "train_config": asdict(train)}
    base = prepare_for_run(config, candles if candles is not None else _load_candles(dataset_id))
    split_cfg = SplitConfig(train=data.train, val=data.val, test=data.test, purge=data.purge)
    folds = walk_forward_folds(len(base.features), int(base.window), data.horizon, k, mode, split_cfg)
    class_names = [str(c) for c in base.class_names]
    preds, fold_rows, bl_all = [], [], {}
    for i, split in enumerate(folds):
        if progress is not None:
            progress(Progress("fold", i, len(folds), f"fold {i + 1}/{len(folds)}"))
        sc = fit_and_score(fold_prepared(base, split), config, data, train, input_kind, progress, cancel, stage)
        if cancel is not None:
            cancel.raise_if_cancelled()  # a stopped fold ends the whole evaluation
        p = sc.predictions.assign(fold=i + 1)
        preds.append(p)
        for name, pr in sc.baseline_proba.items():
            bl_all.setdefault(name, []).append(pr)
        fold_rows.append({
            "fold": i + 1, "status": sc.fit.status, "best_epoch": sc.fit.best_epoch,
            "n_train": sc.n_samples["train"], "n_val": sc.n_samples["val"], "n_test": len(p),
            "test_start": str(p["timestamp"].iloc[0]), "test_end": str(p["timestamp"].iloc[-1]),
            "metrics": {m: sc.metrics[m] for m in HEADLINE},
            "baselines": {b: {m: v[m] for m in HEADLINE} for b, v in sc.baselines.items()},
        })
        config = sc.config
    if progress is not None:
        progress(Progress("fold", len(folds), len(folds), "walk-forward done"))
    all_preds = pd.concat(preds, ignore_index=True)
    y = all_preds["y_true"].to_numpy()
    proba = all_preds[[f"prob_{c}" for c in class_names]].to_numpy()
    bl = {name: np.concatenate(v) for name, v in bl_all.items()}
    baselines = {name: classification_metrics(y, p, class_names) for name, p in bl.items()}
    vs = compare_to_baselines(y, proba, bl, len(class_names), data.horizon, train.n_boot, train.seed,
                              train.compare_metric)
    config = dict(config, n_folds=len(folds), mode=mode)
    return WalkForwardResult(all_preds, fold_rows, classification_metrics(y, proba, class_names), baselines, vs,
                             config)
