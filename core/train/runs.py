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
    atomic_write, atomic_write_json, atomic_write_text, jsonable, read_json, reserve_folder, safe_name, ws_path)

SCHEMA_VERSION = 1
RUNS_DIR = "runs"


def runs_root() -> Path:
    p = ws_path(RUNS_DIR)
    p.mkdir(parents=True, exist_ok=True)
    return p


MAX_NAME = 100


def check_name(name: Optional[str]) -> str:
    """A run's display name without surrounding spaces ("" for none); longer than `MAX_NAME` is refused."""
    name = (name or "").strip()
    if len(name) > MAX_NAME:
        raise UserError(f"a run name must have at most {MAX_NAME} characters (this one has {len(name)})")
    return name


def run_path(run_id: str) -> Path:
    """The folder of `run_id`; a name that is not a plain folder name is refused (cannot escape)."""
    try:
        safe_name(run_id)
        return ws_path(RUNS_DIR, run_id)
    except ValueError as exc:  # not a plain name, or a link that leads out of the workspace
        raise UserError(f"'{run_id}' is not a valid run id") from exc


def new_run_id(model_name: str, payload: dict[str, Any], now: Optional[datetime] = None) -> str:
    """`YYYYMMDD-HHMMSS-<model>-<6 hex of the config hash>`, made unique if that folder exists, and its folder
    created (reserved): two identical runs finishing in the same second get two folders, not one."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:6]
    model = "".join(c if c.isalnum() or c in "-_" else "-" for c in model_name)[:40] or "model"
    return reserve_folder(runs_root(), f"{now:%Y%m%d-%H%M%S}-{model}-{digest}")


# ----------------------------------------------------------------------------------------------- schema

STATUS_WORDS = {"completed": "completed", "early_stopped": "stopped early", "stopped": "stopped by the user"}


def status_words(status: Any) -> str:
    """A run's status as a user reads it ("early_stopped" -> "stopped early"; "failed: ..." as it is)."""
    return STATUS_WORDS.get(str(status), str(status))


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
    if cfg.get("input_kind") == "orderbook_image" and isinstance(cfg.get("data_config"), dict):
        # saved before order-book runs recorded a staleness limit: keep the rows they were trained on
        from core.encodings.datasets import legacy_encoding

        enc = cfg["data_config"].get("encoding")
        if enc is None or isinstance(enc, dict):
            cfg["data_config"] = {**cfg["data_config"],
                                  "encoding": legacy_encoding(cfg["input_kind"], enc)}
    cfg["schema_version"] = version
    return cfg


def check_config(cfg: Any, where: str = "config.json") -> dict[str, Any]:
    """`cfg` upgraded to the current schema, or a UserError naming what is wrong in it (`where` says whose).
    Pages, the CLI and the importer rely on these keys and types."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where} must hold an object")
    cfg = upgrade_config(cfg)
    need = {"model_name": str, "dataset_id": str, "input_kind": str, "class_names": list, "in_channels": int,
            "model_config": dict, "data_config": dict, "train_config": dict}
    for key, typ in need.items():
        if not isinstance(cfg.get(key), typ) or isinstance(cfg.get(key), bool):
            raise UserError(f"{where} has no valid {key!r}")
    names = cfg["class_names"]
    if not 2 <= len(names) <= 100 or not all(isinstance(c, str) and c for c in names) or \
            len(set(names)) != len(names):
        raise UserError(f"{where}: class_names must be 2 to 100 distinct names")
    if not 0 < cfg["in_channels"] <= 100_000:
        raise UserError(f"{where}: in_channels is out of range")
    feats = cfg.get("feature_names", [])
    if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
        raise UserError(f"{where}: feature_names must be a list of names")
    return cfg


def _recount_macro_f1(met: dict[str, Any]) -> dict[str, Any]:
    """Macro F1 of every metric set as it is counted now (over the classes that occur), so runs saved before
    that change compare fairly with new ones; the same number for runs saved since."""
    from core.train.metrics import macro_f1_of_saved

    sets = [met.get("metrics"), met.get("val_metrics"), *(met.get("baselines") or {}).values()]
    for m in sets:
        if isinstance(m, dict) and m.get("macro_f1") is not None:
            value = macro_f1_of_saved(m)
            if value is not None:
                m["macro_f1"] = value
    return met


def check_metrics(met: Any, where: str = "metrics.json") -> dict[str, Any]:
    """`met` when it has the shapes pages read (objects where objects are expected, numbers or null for the
    headline metrics), else a UserError naming what is wrong."""
    from core.train.metrics import HEADLINE

    if not isinstance(met, dict):
        raise UserError(f"{where} must hold an object")

    def metric_set(m: Any, name: str) -> None:
        if not isinstance(m, dict):
            raise UserError(f"{where}: {name!r} must be an object of metrics")
        for k in HEADLINE:
            v = m.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise UserError(f"{where}: {name}.{k} must be a number")

    for key in ("metrics", "val_metrics"):
        if key in met:
            metric_set(met[key], key)
    if "baselines" in met:
        if not isinstance(met["baselines"], dict):
            raise UserError(f"{where}: 'baselines' must be an object")
        for b, m in met["baselines"].items():
            metric_set(m, f"baselines.{b}")
    if not isinstance(met.get("vs_best_baseline", {}), dict):
        raise UserError(f"{where}: 'vs_best_baseline' must be an object")
    w = met.get("warnings", [])
    if not (isinstance(w, list) and all(isinstance(x, str) for x in w)):
        raise UserError(f"{where}: 'warnings' must be a list of sentences")
    heads = (met.get("metrics") or {}).get("heads", {})
    if not (isinstance(heads, dict) and all(isinstance(h, dict) for h in heads.values())):
        raise UserError(f"{where}: 'metrics.heads' must be an object of metrics per head")
    return met


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


def _documents(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run folder's checked (config, metrics); UserError saying what is damaged."""
    try:
        cfg = read_json(folder / "config.json")
    except (ValueError, OSError):
        raise UserError(f"run {folder.name}: config.json cannot be read") from None
    cfg = check_config(cfg, f"run {folder.name}: config.json")
    met: Any = {}
    if (folder / "metrics.json").is_file():
        try:
            met = read_json(folder / "metrics.json")
        except (ValueError, OSError):
            raise UserError(f"run {folder.name}: metrics.json cannot be read") from None
    return cfg, _recount_macro_f1(check_metrics(met, f"run {folder.name}: metrics.json"))


def run_documents() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """`(run_id, config, metrics)` of every sound run, newest first (config upgraded to the current schema;
    metrics `{}` when there are none). Folders without a config.json (being written) and damaged runs (see
    `damaged_runs`) are left out, so that no page trips over them."""
    docs = []
    for folder in runs_root().iterdir():
        if not (folder / "config.json").is_file():
            continue
        try:
            cfg, met = _documents(folder)
        except UserError:
            continue
        docs.append((folder.name, cfg, met))
    docs.sort(key=lambda d: (str(d[1].get("created_at", "")), d[0]), reverse=True)
    return docs


UNFINISHED_GRACE_S = 600  # a folder without config.json younger than this may still be being written


def damaged_runs(now: Optional[float] = None) -> list[tuple[str, str]]:
    """`(run_id, what is wrong)` of the run folders `run_documents` leaves out: unreadable or malformed
    config.json / metrics.json, or no config.json for more than 10 minutes (a save that never finished). The
    Experiments page and `python -m core runs list` show them so they can be deleted."""
    import time

    now = time.time() if now is None else now
    out = []
    for folder in sorted(runs_root().iterdir()):
        if not folder.is_dir():
            continue
        if not (folder / "config.json").is_file():
            if now - folder.stat().st_mtime > UNFINISHED_GRACE_S:
                out.append((folder.name, "no config.json (a save that never finished)"))
            continue
        try:
            _documents(folder)
        except UserError as exc:
            out.append((folder.name, str(exc).split(": ", 1)[-1]))
    return out


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
        try:
            preds = pd.read_parquet(f) if f.is_file() else pd.DataFrame()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own kinds for a damaged file
            raise damaged(self.run_id, "predictions.parquet", exc) from None
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
        from core.models.blocks import MODEL_INIT

        with MODEL_INIT:  # its draws (overwritten below) must not land between another's seed and creation
            m = create_model(cfg["model_name"], int(cfg["in_channels"]), len(cfg["class_names"]), **model_config)
        try:
            state = torch.load(self.path / "model.pt", map_location=device, weights_only=True)
            m.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - a truncated zip, a pickle refused, other shapes
            raise damaged(self.run_id, "model.pt", exc) from None
        return m.to(device).eval()

    def scaler(self) -> Any:
        """The train-only feature scaler: `scaler.joblib` is our own artefact (a run zip from elsewhere never
        brings one: the importer writes it from checked numbers)."""
        import joblib

        try:
            return joblib.load(self.path / "scaler.joblib")
        except Exception as exc:  # noqa: BLE001 - missing, truncated
            raise damaged(self.run_id, "scaler.joblib", exc) from None

    def prepare(self, candles: Optional[pd.DataFrame] = None) -> Any:
        """Rebuild the run's PreparedData (from its dataset unless `candles` are given): the candles of the
        span it was trained on, so the same split and the same train-only scaler."""
        from core.train.trainer import prepare_for_run

        return prepare_for_run(self.config, candles)

    def data_note(self, prepared: Any, candles: Optional[pd.DataFrame] = None) -> Optional[str]:
        """None when `prepared` (from `prepare`) has the test windows the run was scored on, and `candles`
        (the dataset's, when given) the prices it learnt from; else a sentence saying the dataset changed
        since training (rows replaced or removed, other prices, or a run saved before runs recorded their
        span), so windows and inputs may differ from what the model saw. An order-book run also says when its
        order book was replaced or removed since (`changed_book_note`)."""
        from core.train.trainer import changed_book_note

        notes = [n for n in (self._candles_note(prepared, candles), changed_book_note(self.config)) if n]
        return " ".join(notes) if notes else None

    def _candles_note(self, prepared: Any, candles: Optional[pd.DataFrame] = None) -> Optional[str]:
        from core.encodings.samples import selectable_ends
        from core.train.trainer import changed_candles_note

        stored = self.predictions
        if stored.empty or "timestamp" not in stored:
            return None
        if "split" in stored:
            stored = stored[stored["split"] == "test"]
        now = pd.DatetimeIndex(prepared.timestamps[selectable_ends(prepared, "test")])
        now = now.tz_localize("UTC") if now.tz is None else now.tz_convert("UTC")
        then = pd.DatetimeIndex(stored["timestamp"])
        if len(now) == len(then) and (now == then).all():
            return None if candles is None else changed_candles_note(self.config, candles)
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


def weights_stamp(run_id: str) -> float:
    """When the run's weights were last written (0 when there are none): a cache key for anything computed
    from the model, so a retrained or re-imported run under the same id is not served stale."""
    p = run_path(run_id) / "model.pt"
    return p.stat().st_mtime if p.exists() else 0.0


def load_run(run_id: str) -> LoadedRun:
    """The run's documents (checked: a damaged run is a UserError saying what is wrong); its weights,
    scaler and predictions are read when first used."""
    folder = run_path(run_id)
    if not (folder / "config.json").is_file():
        raise UserError(f"there is no run '{run_id}'; see `python -m core runs list`")
    cfg, met = _documents(folder)
    return LoadedRun(run_id, folder, cfg, met, _read_history(folder / "history.csv"))


def _read_history(path: Path) -> pd.DataFrame:
    """history.csv, or an empty table when it is missing or unreadable (the curves are then not drawn; the
    run itself is still usable). Rows without an `epoch` column are numbered from 1."""
    try:
        hist = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    except (ValueError, OSError, pd.errors.ParserError):
        return pd.DataFrame()
    if not hist.empty and "epoch" not in hist:
        hist.insert(0, "epoch", range(1, len(hist) + 1))
    return hist


def damaged(run_id: str, file: str, exc: BaseException) -> UserError:
    """The sentence for a run file that is missing or cannot be read."""
    what = "is missing" if isinstance(exc, FileNotFoundError) else f"is damaged ({type(exc).__name__})"
    return UserError(f"run {run_id}: {file} {what}. Delete the run (Experiments page or `python -m core runs "
                     f"delete {run_id}`) or train it again.")


def rename_run(run_id: str, name: str) -> None:
    """Set the display name (the folder keeps its id, so references stay valid)."""
    name = check_name(name)
    if not name:
        raise UserError(f"a run name must have 1 to {MAX_NAME} characters")
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
