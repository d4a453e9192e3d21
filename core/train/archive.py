"""Runs as zip files: export one to share it, import one from someone else (treated as untrusted).

A run zip holds one folder `<run_id>/` with exactly these plain files:
`config.json`, `metrics.json`, `history.csv`, `model.pt` (a state_dict), `predictions.parquet` and
`scaler.json` - the feature scaler as plain numbers (`mean`, `scale`, `feature_names`, `n_rows`).

The run folder keeps its scaler as `scaler.joblib`, which is a pickle; a pickle from someone else can run any
code when loaded, so it never travels: export converts our own (trusted) `scaler.joblib` to `scaler.json`,
and import reads `scaler.json` as JSON and writes a fresh `scaler.joblib` from those numbers, so the
imported run works everywhere a trained one does (Live, Inspect, Backtest).

Import checks, before anything lands in the registry:
- the archive: at most `MAX_MEMBERS` members, all regular files inside one top folder with a plain name; no
  absolute paths, drive letters, backslashes, `..`, symlinks or other special files, no encryption, no
  duplicate names; only the file names above; each member read with a byte limit (a zip bomb stops at the
  limit, whatever its header claims);
- the content: JSON parsed strictly; the config upgraded and its data/train settings validated; the weights
  read with `torch.load(weights_only=True)` and matched (names, shapes, dtypes) against the model the config
  names, built on the meta device so that a hostile config cannot make this process allocate it; the
  predictions' columns and types checked and the parquet rewritten without its metadata; the history read
  as a numeric CSV.
Files are written into a staging folder in the workspace and renamed into `runs/` in one step, with
`config.json` written last, so a failed import leaves nothing behind.
"""
from __future__ import annotations

import io
import json
import shutil
import stat
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np

from core.errors import UserError
from core.workspace import (
    atomic_write, atomic_write_bytes, atomic_write_json, jsonable, safe_name, unique_name, ws_path)

SCALER_JSON = "scaler.json"
RUN_FILES = ("config.json", "metrics.json", "history.csv", "model.pt", "predictions.parquet", SCALER_JSON)
MAX_MEMBERS = 16
MAX_ZIP_BYTES = 1536 * 2**20
MAX_FILE_BYTES = {
    "config.json": 2 * 2**20,
    "metrics.json": 8 * 2**20,
    "history.csv": 16 * 2**20,
    "model.pt": 1024 * 2**20,          # convnext1d_base's float32 weights are ~350 MB
    "predictions.parquet": 256 * 2**20,
    SCALER_JSON: 2 * 2**20,
}
MAX_TOTAL_BYTES = sum(MAX_FILE_BYTES.values())


# ------------------------------------------------------------------------------------------------ scaler

def scaler_to_dict(scaler: Any) -> dict[str, Any]:
    """The feature scaler as plain JSON-able numbers (the form that travels in a zip)."""
    mean = np.asarray(getattr(scaler, "mean"), dtype=np.float64).reshape(-1)
    scale = np.asarray(getattr(scaler, "scale"), dtype=np.float64).reshape(-1)
    return {"kind": "channel_zscore", "mean": mean.tolist(), "scale": scale.tolist(),
            "feature_names": [str(n) for n in (getattr(scaler, "feature_names", None) or [])],
            "n_rows": int(getattr(scaler, "n_rows", 0) or 0)}


def scaler_from_dict(d: Any, n_features: Optional[int] = None) -> Any:
    """A ChannelScaler from `scaler_to_dict`'s form, with every number checked."""
    from core.features.scaling import ChannelScaler

    if not isinstance(d, dict):
        raise UserError("scaler.json must hold an object with 'mean' and 'scale'")
    if d.get("kind", "channel_zscore") != "channel_zscore":
        raise UserError(f"scaler.json holds an unknown scaler kind {d.get('kind')!r}")
    try:
        mean = np.asarray(d["mean"], dtype=np.float64)
        scale = np.asarray(d["scale"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise UserError("scaler.json must hold numeric lists 'mean' and 'scale'") from None
    if mean.ndim != 1 or mean.shape != scale.shape or mean.size == 0:
        raise UserError("scaler.json: 'mean' and 'scale' must be non-empty lists of the same length")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise UserError("scaler.json: every mean must be finite and every scale finite and positive")
    names = d.get("feature_names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or \
            (names and len(names) != mean.size):
        raise UserError("scaler.json: 'feature_names' must be a list of names, one per channel")
    if n_features is not None and mean.size != n_features:
        raise UserError(f"scaler.json has {mean.size} channels but the run has {n_features} features")
    n_rows = d.get("n_rows", 0)
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 0:
        raise UserError("scaler.json: 'n_rows' must be a whole number")
    return ChannelScaler(mean=mean, scale=scale, feature_names=list(names), n_rows=n_rows)


def write_scaler_json(run_id: str) -> Path:
    """Add `scaler.json` (the plain-data form of this app's own `scaler.joblib`) to a run folder."""
    folder = _run_folder(run_id)
    return atomic_write_json(folder / SCALER_JSON, _trusted_scaler_dict(folder))


def _trusted_scaler_dict(folder: Path) -> dict[str, Any]:
    """The scaler of a run in *our* workspace: scaler.json if present, else our own scaler.joblib."""
    if (folder / SCALER_JSON).is_file():
        return json.loads((folder / SCALER_JSON).read_text(encoding="utf-8"))
    if not (folder / "scaler.joblib").is_file():
        raise UserError(f"run '{folder.name}' has no feature scaler; it cannot be exported")
    from core.features.scaling import load_scaler

    return scaler_to_dict(load_scaler(folder / "scaler.joblib"))  # written by this app: trusted


# ------------------------------------------------------------------------------------------------ export

def _run_folder(run_id: str) -> Path:
    from core.train.runs import run_path

    folder = run_path(run_id)
    if not (folder / "config.json").is_file():
        raise UserError(f"there is no run '{run_id}'")
    return folder


def export_run_zip(run_id: str, path: Optional[str | Path] = None) -> bytes:
    """The run as zip bytes (`<run_id>/<file>` for each file of RUN_FILES); also written to `path` if given
    (a path the user chose, e.g. on the command line)."""
    folder = _run_folder(run_id)
    missing = [f for f in RUN_FILES if f != SCALER_JSON and not (folder / f).is_file()]
    if missing:
        raise UserError(f"run '{run_id}' is incomplete (missing {', '.join(missing)}); it cannot be exported")
    scaler = json.dumps(_trusted_scaler_dict(folder), indent=1).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in RUN_FILES:
            data = scaler if name == SCALER_JSON else (folder / name).read_bytes()
            info = zipfile.ZipInfo(f"{run_id}/{name}", date_time=_zip_time())
            info.compress_type = zipfile.ZIP_STORED if name in ("model.pt", "predictions.parquet") \
                else zipfile.ZIP_DEFLATED  # both are compressed or binary already
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    out = buf.getvalue()
    if path is not None:
        atomic_write_bytes(Path(path), out)
    return out


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = datetime.now(timezone.utc)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


# ------------------------------------------------------------------------------------------------ import

def _read_source(data: bytes | str | Path | BinaryIO) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    elif isinstance(data, (str, Path)):
        p = Path(data)
        if not p.is_file():
            raise UserError(f"there is no file at {p}")
        if p.stat().st_size > MAX_ZIP_BYTES:
            raise UserError("the zip is larger than the import limit (1.5 GB)")
        raw = p.read_bytes()
    else:
        raw = data.read(MAX_ZIP_BYTES + 1)
    if len(raw) > MAX_ZIP_BYTES:
        raise UserError("the zip is larger than the import limit (1.5 GB)")
    return raw


def check_members(zf: zipfile.ZipFile) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """The zip's single top folder and its members by file name, or a UserError saying what is wrong."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UserError(f"the zip has {len(infos)} entries; a run zip has {len(RUN_FILES)} files")
    top: Optional[str] = None
    members: dict[str, zipfile.ZipInfo] = {}
    declared = 0
    for info in infos:
        name = info.filename
        if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name or "\x00" in name:
            raise UserError(f"the zip entry {name!r} has an absolute or unsafe path; refusing the zip")
        parts = name.split("/")
        is_dir = name.endswith("/")
        if is_dir:
            parts = parts[:-1]
        if any(p in ("", ".", "..") for p in parts):
            raise UserError(f"the zip entry {name!r} points outside its run folder; refusing the zip")
        if info.flag_bits & 0x1:
            raise UserError("the zip is encrypted; export the run again without a password")
        mode = (info.external_attr >> 16) & 0xFFFF
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UserError(f"the zip entry {name!r} is a symbolic link; refusing the zip")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or (kind == stat.S_IFDIR and not is_dir):
            raise UserError(f"the zip entry {name!r} is not a regular file; refusing the zip")
        if len(parts) == 0 or len(parts) > 2 or (is_dir and len(parts) != 1):
            raise UserError(f"the zip entry {name!r} is not a file of the run folder; a run zip holds "
                            f"<run_id>/<file> only")
        folder = parts[0]
        try:
            safe_name(folder)
        except ValueError:
            raise UserError(f"the zip's folder name {folder!r} is not a valid run id") from None
        if top is None:
            top = folder
        elif folder != top:
            raise UserError("the zip holds more than one folder; a run zip holds exactly one run")
        if is_dir:
            continue
        fname = parts[1]
        if fname not in RUN_FILES:
            raise UserError(f"the zip holds an unexpected file {fname!r}; a run zip holds only "
                            f"{', '.join(RUN_FILES)}")
        if fname in members:
            raise UserError(f"the zip holds {fname!r} twice; refusing the zip")
        if info.file_size > MAX_FILE_BYTES[fname]:
            raise UserError(f"{fname} in the zip is larger than the limit of {MAX_FILE_BYTES[fname] >> 20} MB")
        declared += info.file_size
        members[fname] = info
    if top is None:
        raise UserError("the zip is empty")
    if declared > MAX_TOTAL_BYTES:
        raise UserError("the zip's files together are larger than the import limit")
    missing = [f for f in RUN_FILES if f not in members]
    if missing:
        raise UserError(f"the zip is not a complete run: {', '.join(missing)} missing")
    return top, members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most `limit` bytes, whatever the header says (a zip bomb stops here); CRC checked by zipfile."""
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
        raise UserError(f"the zip entry {info.filename!r} cannot be read: {exc}") from None
    if len(data) > limit:
        raise UserError(f"{info.filename} unpacks to more than its limit of {limit >> 20} MB; refusing the zip")
    return data


def _strict_json(raw: bytes, what: str) -> Any:
    def no_constants(c: str) -> Any:
        raise ValueError(f"{c} is not allowed")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{what} in the zip is not valid JSON: {exc}") from None


def _check_config(cfg: Any) -> dict[str, Any]:
    from core.train.config import DataConfig, TrainConfig, from_dict
    from core.train.runs import check_config

    cfg = check_config(cfg, "config.json in the zip")
    from_dict(DataConfig, cfg["data_config"]).validate()
    from_dict(TrainConfig, cfg["train_config"]).validate(new_run=False)  # a run trained by an older app too
    return cfg


def _check_weights(raw: bytes, cfg: dict[str, Any]) -> dict[str, Any]:
    """The state_dict, read with weights_only=True and loaded strictly into the model the config names."""
    import torch

    from core.models import create_model, get_spec

    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything a hostile file can raise is one refusal
        raise UserError(f"model.pt in the zip is not a plain weights file ({type(exc).__name__}); refusing it") \
            from None
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError("model.pt in the zip must hold a state_dict (names -> tensors)")
    name = cfg["model_name"]
    try:
        spec = get_spec(name)
    except KeyError:
        raise UserError(f"the run uses model {name!r}, which this app does not have") from None
    if spec.input_kind != cfg["input_kind"]:
        raise UserError(f"config.json says input {cfg['input_kind']!r} but {name} takes {spec.input_kind!r}")
    _check_model_config(cfg["model_config"])
    try:
        # on the meta device: the shapes the config implies, without allocating them (a hostile config
        # cannot make this process allocate a huge model)
        with torch.device("meta"):
            model = create_model(name, int(cfg["in_channels"]), len(cfg["class_names"]), **cfg["model_config"])
        expected = model.state_dict()
    except (TypeError, ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the run's model config does not build {name}: {first}") from None
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise UserError(f"the weights in the zip do not fit model {name} with its config: missing "
                        f"{', '.join(missing[:3]) or 'none'}; unexpected {', '.join(extra[:3]) or 'none'}")
    for k, want in expected.items():
        got = state[k]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise UserError(f"the weights in the zip do not fit model {name} with its config: {k} is "
                            f"{tuple(got.shape)} {got.dtype}, the model needs {tuple(want.shape)} {want.dtype}")
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def _check_model_config(mc: dict[str, Any], depth: int = 0) -> None:
    """Model settings are a few small plain values (a huge width or depth is refused before building)."""
    if depth > 3 or len(mc) > 64:
        raise UserError("config.json in the zip: the model config is too large")
    for k, v in mc.items():
        vals = v if isinstance(v, list) else [v]
        if len(vals) > 64:
            raise UserError(f"config.json in the zip: model setting {k!r} is too long")
        for x in vals:
            if isinstance(x, dict):
                _check_model_config(x, depth + 1)
            elif isinstance(x, (int, float)) and not isinstance(x, bool) and not abs(x) <= 100_000:
                raise UserError(f"config.json in the zip: model setting {k!r} = {x!r} is out of range")
            elif not isinstance(x, (int, float, str, bool, type(None), dict)):
                raise UserError(f"config.json in the zip: model setting {k!r} is not a plain value")


def _check_predictions(raw: bytes, class_names: list[str]) -> bytes:
    """Column names and types checked; the table rewritten without schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"predictions.parquet in the zip cannot be read as parquet: {exc}") from None
    expected = ["timestamp", "y_true"] + [f"prob_{c}" for c in class_names] + ["split"]
    allowed_extra = {"pred_magnitude", "pred_volatility"}
    cols = table.column_names
    if cols[:len(expected)] != expected or not set(cols[len(expected):]) <= allowed_extra or \
            len(set(cols)) != len(cols):
        raise UserError(f"predictions.parquet in the zip must have the columns {', '.join(expected)}")
    types = table.schema
    if not pa.types.is_timestamp(types.field("timestamp").type) or not pa.types.is_integer(
            types.field("y_true").type):
        raise UserError("predictions.parquet in the zip: timestamp must be a timestamp and y_true an integer")
    for c in cols:
        if c.startswith(("prob_", "pred_")) and not pa.types.is_floating(types.field(c).type):
            raise UserError(f"predictions.parquet in the zip: {c} must be a float column")
    if not (pa.types.is_string(types.field("split").type) or pa.types.is_large_string(types.field("split").type)):
        raise UserError("predictions.parquet in the zip: split must be a text column")
    clean = table.replace_schema_metadata(None)
    out = io.BytesIO()
    pq.write_table(clean, out)
    return out.getvalue()


def _check_history(raw: bytes) -> bytes:
    import pandas as pd

    try:
        hist = pd.read_csv(io.BytesIO(raw))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"history.csv in the zip cannot be read as CSV: {exc}") from None
    if not hist.empty and "epoch" not in hist:
        raise UserError("history.csv in the zip has no 'epoch' column")
    for c in hist.columns:
        if not (pd.api.types.is_numeric_dtype(hist[c]) or pd.api.types.is_bool_dtype(hist[c])):
            raise UserError(f"history.csv in the zip: column {c!r} is not numeric")
    return hist.to_csv(index=False).encode()


def _free_run_id(wanted: str) -> str:
    from core.train.runs import runs_root

    root = runs_root()
    if not (root / wanted).exists():
        return wanted
    return unique_name(root, f"{wanted[:110]}-imported")


def import_run_zip(data: bytes | str | Path | BinaryIO, run_id: Optional[str] = None, source: str = "zip") -> str:
    """Check an untrusted run zip and add it to the registry; returns the new run id.

    The id is the zip's folder name (or `run_id` if given), with `-imported` added if that id is taken.
    `source` is recorded in the config as `import_source` (e.g. "zip", or the sweep worker that made it).
    Nothing is unpickled: weights load with `weights_only=True`, the scaler comes from `scaler.json`.
    """
    import joblib
    import torch

    raw = _read_source(data)
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise UserError("the file is not a zip archive; export a run from the Experiments page to get one") \
            from None
    with zf:
        top, members = check_members(zf)
        blobs = {name: _read_member(zf, info, MAX_FILE_BYTES[name]) for name, info in members.items()}
    cfg = _check_config(_strict_json(blobs["config.json"], "config.json"))
    from core.train.runs import check_metrics

    metrics = check_metrics(_strict_json(blobs["metrics.json"], "metrics.json"), "metrics.json in the zip")
    feats = cfg.get("feature_names") or []
    scaler = scaler_from_dict(_strict_json(blobs[SCALER_JSON], SCALER_JSON), len(feats) if feats else None)
    state = _check_weights(blobs["model.pt"], cfg)
    preds = _check_predictions(blobs["predictions.parquet"], cfg["class_names"])
    history = _check_history(blobs["history.csv"])

    wanted = run_id or top
    try:
        safe_name(wanted)
    except ValueError:
        raise UserError(f"'{wanted}' is not a valid run id") from None
    new_id = _free_run_id(wanted)
    staging = ws_path("tmp", f"import-{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    try:
        atomic_write_bytes(staging / "history.csv", history)
        atomic_write_json(staging / "metrics.json", metrics)
        atomic_write(staging / "model.pt", lambda t: torch.save(state, t))
        atomic_write_bytes(staging / "predictions.parquet", preds)
        atomic_write_json(staging / SCALER_JSON, scaler_to_dict(scaler))
        atomic_write(staging / "scaler.joblib", lambda t: joblib.dump(scaler, t))  # our own object, from numbers
        original = cfg.get("run_id", top)
        cfg.update(run_id=new_id, imported_from=str(original), import_source=str(source)[:200],
                   imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if not cfg.get("name") or cfg.get("name") == original:
            cfg["name"] = new_id
        atomic_write_json(staging / "config.json", jsonable(cfg))
        from core.train.runs import run_path

        target = run_path(new_id)
        if target.exists():
            raise UserError(f"a run '{new_id}' appeared while importing; try again")
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return new_id


__all__ = ["RUN_FILES", "SCALER_JSON", "export_run_zip", "import_run_zip", "check_members", "scaler_to_dict",
           "scaler_from_dict", "write_scaler_json"]
