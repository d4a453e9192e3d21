"""The run registry: every training run is a folder `workspace/runs/<run_id>/`.

Files (the contract in docs/ARCHITECTURE.md):
- `config.json`: `schema_version`, `run_id`, `name` (display name, renamable), `created_at`, `status`,
  `dataset_id`, `model_name`, `model_config`, `data_config`, `train_config`, `class_names`, `input_kind`,
  `feature_names`, `in_channels`, `n_params`, `device`, `targets_scaling` (multi-task only), `versions`.
- `history.csv`: one row per epoch (epoch, train_loss, train_accuracy, val_loss, val_accuracy,
  val_macro_f1, lr, seconds, samples_per_second, best).
- `metrics.json`: `status`, `metrics` (test), `val_metrics`, `baselines` (name -> metrics + description),
  `vs_best_baseline`, `best_epoch`, `epochs_run`, `train_seconds`, `samples_per_second`, ...
- `model.pt`: the best weights as a state_dict (read back with `weights_only=True`).
- `scaler.joblib`: the feature scaler fitted on the train rows.
- `predictions.parquet`: `timestamp` (UTC), `y_true`, `prob_<class>` per class name, `split` ("test").

`config.json` is written last, so a half-written folder never shows up in `list_runs()`.
Schema history: v0 (before the registry had a version) used `model`, `dataset`, `classes`, `features`
and one nested `config: {model, data, train}`; `upgrade_config` turns it into the current v1.
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from core.errors import UserError
from core.workspace import (
    atomic_write, atomic_write_json, atomic_write_text, jsonable, read_json, safe_name, unique_name, ws_path)

SCHEMA_VERSION = 1
RUNS_DIR = "runs"


def runs_root() -> Path:
    p = ws_path(RUNS_DIR)
    p.mkdir(parents=True, exist_ok=True)
    return p


def run_path(run_id: str) -> Path:
    """The folder of `run_id`; a name that is not a plain folder name is refused (cannot escape)."""
    try:
        safe_name(run_id)
    except ValueError as exc:
        raise UserError(f"'{run_id}' is not a valid run id") from exc
    return ws_path(RUNS_DIR, run_id)


def new_run_id(model_name: str, payload: dict[str, Any], now: Optional[datetime] = None) -> str:
    """`YYYYMMDD-HHMMSS-<model>-<6 hex of the config hash>`, made unique if that folder exists."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:6]
    model = "".join(c if c.isalnum() or c in "-_" else "-" for c in model_name)[:40] or "model"
    return unique_name(runs_root(), f"{now:%Y%m%d-%H%M%S}-{model}-{digest}")


# ----------------------------------------------------------------------------------------------- schema

def upgrade_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Bring a config.json of any earlier schema up to `SCHEMA_VERSION` (returns a new dict)."""
    cfg = dict(cfg)
    version = int(cfg.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise UserError(f"this run was saved by a newer version of the app (schema {version}); update the app")
    if version == 0:
        nested = cfg.pop("config", {}) or {}
        cfg["model_name"] = cfg.pop("model", cfg.get("model_name"))
        cfg["dataset_id"] = cfg.pop("dataset", cfg.get("dataset_id"))
        cfg["class_names"] = list(cfg.pop("classes", cfg.get("class_names", [])))
        cfg["feature_names"] = list(cfg.pop("features", cfg.get("feature_names", [])))
        cfg.setdefault("model_config", nested.get("model", {}))
        cfg.setdefault("data_config", nested.get("data", {}))
        cfg.setdefault("train_config", nested.get("train", {}))
        cfg.setdefault("input_kind", "sequence")  # v0 knew only 1D sequence models
        cfg.setdefault("in_channels", len(cfg["feature_names"]))
        cfg.setdefault("status", "completed")
        version = 1
    cfg.setdefault("name", cfg.get("run_id", ""))
    cfg["schema_version"] = version
    return cfg


# ------------------------------------------------------------------------------------------------- save

def save_run(run_id: str, config: dict[str, Any], history: pd.DataFrame, metrics: dict[str, Any],
             state_dict: dict[str, Any], scaler: Any, predictions: pd.DataFrame) -> Path:
    """Write every file of a run atomically; config.json last."""
    import joblib
    import torch

    folder = run_path(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "history.csv", history.to_csv(index=False))
    atomic_write_json(folder / "metrics.json", jsonable(metrics))
    atomic_write(folder / "model.pt", lambda t: torch.save(state_dict, t))
    atomic_write(folder / "scaler.joblib", lambda t: joblib.dump(scaler, t))
    atomic_write(folder / "predictions.parquet", lambda t: predictions.to_parquet(t, index=False))
    cfg = dict(config, run_id=run_id, schema_version=SCHEMA_VERSION)
    atomic_write_json(folder / "config.json", jsonable(cfg))
    return folder


# ------------------------------------------------------------------------------------------------- read

@dataclass
class RunInfo:
    run_id: str
    name: str
    created_at: str
    status: str
    dataset_id: str
    model_name: str
    input_kind: str
    metrics: dict[str, Any] = field(default_factory=dict)   # headline test metrics
    vs_best_baseline: dict[str, Any] = field(default_factory=dict)


def run_documents() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """`(run_id, config, metrics)` of every readable run, newest first (config upgraded to the current schema;
    metrics `{}` when there are none). Folders without a config.json (being written, or broken) are skipped."""
    docs = []
    for folder in runs_root().iterdir():
        if not (folder / "config.json").is_file():
            continue
        try:
            cfg = upgrade_config(read_json(folder / "config.json"))
            met = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
        except (ValueError, OSError, UserError):
            continue
        docs.append((folder.name, cfg, met))
    docs.sort(key=lambda d: (str(d[1].get("created_at", "")), d[0]), reverse=True)
    return docs


def run_info(run_id: str, cfg: dict[str, Any], met: dict[str, Any]) -> RunInfo:
    """The list row of one run from its config and metrics documents."""
    from core.train.metrics import HEADLINE  # (sklearn behind it: loaded when first needed)

    head = {k: (met.get("metrics") or {}).get(k) for k in HEADLINE}
    return RunInfo(run_id, cfg.get("name") or run_id, str(cfg.get("created_at", "")),
                   str(met.get("status", cfg.get("status", ""))), str(cfg.get("dataset_id", "")),
                   str(cfg.get("model_name", "")), str(cfg.get("input_kind", "")), head,
                   met.get("vs_best_baseline") or {})


def list_runs() -> list[RunInfo]:
    """All readable runs, newest first (see `run_documents`)."""
    return [run_info(*doc) for doc in run_documents()]


def runs_table() -> pd.DataFrame:
    """`list_runs()` as a table for pages and the CLI."""
    rows = []
    for r in list_runs():
        vs = r.vs_best_baseline or {}
        rows.append({"run_id": r.run_id, "name": r.name, "created_at": r.created_at, "status": r.status,
                     "dataset_id": r.dataset_id, "model_name": r.model_name, **r.metrics,
                     "vs_baseline": vs.get("diff"), "beats_baseline": vs.get("beats")})
    return pd.DataFrame(rows, columns=None if rows else ["run_id", "name", "created_at", "status",
                                                          "dataset_id", "model_name"])


@dataclass
class LoadedRun:
    run_id: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: pd.DataFrame

    @functools.cached_property
    def predictions(self) -> pd.DataFrame:
        """The stored test-set predictions, read on first use (most views of a run need only its metrics)."""
        f = self.path / "predictions.parquet"
        preds = pd.read_parquet(f) if f.is_file() else pd.DataFrame()
        if "timestamp" in preds:
            preds["timestamp"] = pd.to_datetime(preds["timestamp"], utc=True)
        return preds

    @property
    def class_names(self) -> list[str]:
        return list(self.config["class_names"])

    def model(self, device: str = "cpu") -> Any:
        """The model with the run's best weights, in eval mode (`torch.load(weights_only=True)`)."""
        import torch

        from core.models import create_model

        cfg = self.config
        model_config = dict(cfg.get("model_config") or {})
        if model_config.get("pretrained"):
            # the saved state_dict holds every weight: the pretrained file need not exist any more
            model_config["pretrained"] = ""
        m = create_model(cfg["model_name"], int(cfg["in_channels"]), len(cfg["class_names"]), **model_config)
        state = torch.load(self.path / "model.pt", map_location=device, weights_only=True)
        m.load_state_dict(state)
        return m.to(device).eval()

    def scaler(self) -> Any:
        import joblib

        return joblib.load(self.path / "scaler.joblib")

    def prepare(self, candles: Optional[pd.DataFrame] = None) -> Any:
        """Rebuild the run's PreparedData (from its dataset unless `candles` are given): the candles of the
        span it was trained on, so the same split and the same train-only scaler."""
        from core.train.trainer import prepare_for_run

        return prepare_for_run(self.config, candles)

    def data_note(self, prepared: Any) -> Optional[str]:
        """None when `prepared` (from `prepare`) has the test windows the run was scored on; else a sentence
        saying the dataset changed since training (rows replaced or removed, or a run saved before runs
        recorded their span), so windows and inputs may differ from what the model saw."""
        from core.encodings.samples import selectable_ends

        stored = self.predictions
        if stored.empty or "timestamp" not in stored:
            return None
        if "split" in stored:
            stored = stored[stored["split"] == "test"]
        now = pd.DatetimeIndex(prepared.timestamps[selectable_ends(prepared, "test")])
        now = now.tz_localize("UTC") if now.tz is None else now.tz_convert("UTC")
        then = pd.DatetimeIndex(stored["timestamp"])
        if len(now) == len(then) and (now == then).all():
            return None
        return (f"The dataset {self.config.get('dataset_id')!r} has changed since this run was trained: its test "
                f"period now has {len(now):,} windows ({now[0]:%Y-%m-%d} .. {now[-1]:%Y-%m-%d}) where the run "
                f"was scored on {len(then):,} ({then[0]:%Y-%m-%d} .. {then[-1]:%Y-%m-%d}). The split and the "
                "scaler are rebuilt from today's candles, so what is shown may differ from what the model saw."
                if len(now) and len(then) else
                f"The dataset {self.config.get('dataset_id')!r} has changed since this run was trained: its "
                "test period no longer matches the one the run was scored on.")

    def predict(self, candles: Optional[pd.DataFrame] = None, split: str = "test",
                device: str = "cpu") -> pd.DataFrame:
        """Recompute the predictions table of `split` with the saved model (same layout as predictions)."""
        from core.train.trainer import predictions_for

        prepared = self.prepare(candles)
        return predictions_for(self.model(device), prepared, self.config, split, device)


def load_run(run_id: str) -> LoadedRun:
    folder = run_path(run_id)
    if not (folder / "config.json").is_file():
        raise UserError(f"there is no run '{run_id}'; see `python -m core runs list`")
    cfg = upgrade_config(read_json(folder / "config.json"))
    met = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
    hist = pd.read_csv(folder / "history.csv") if (folder / "history.csv").is_file() else pd.DataFrame()
    return LoadedRun(run_id, folder, cfg, met, hist)


def rename_run(run_id: str, name: str) -> None:
    """Set the display name (the folder keeps its id, so references stay valid)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise UserError("a run name must have 1 to 100 characters")
    folder = run_path(run_id)
    if not (folder / "config.json").is_file():
        raise UserError(f"there is no run '{run_id}'")
    cfg = read_json(folder / "config.json")
    cfg["name"] = name
    atomic_write_json(folder / "config.json", cfg)


def delete_run(run_id: str) -> None:
    folder = run_path(run_id)
    if not folder.is_dir():
        raise UserError(f"there is no run '{run_id}'")
    shutil.rmtree(folder)
