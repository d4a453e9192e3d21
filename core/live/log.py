"""The signal log: every signal the live loop decided, kept in the workspace, append-only.

Layout: `workspace/live/signals/<run_id>/<YYYY-MM-DD>.jsonl`, one JSON object per line, one file per day
of the bar's open time (so a file stays small and a year of hourly replay is 365 small files). Appending
rewrites the day's file through `core.workspace.atomic_write` (temp file + rename): earlier lines are
copied byte for byte, so the log only ever grows, and a crash leaves the old file or the new one, never a
torn line. Appends are one at a time across threads (a lock) and processes (fcntl.flock on the run folder's
`.lock`), so the page and a CLI loop logging the same run lose no line. A signal is logged once per (source, mode, bar, settings): the live loop re-deciding the same
closed bar every few seconds adds nothing.
"""
from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from core.errors import UserError
from core.workspace import atomic_write_bytes, safe_name, ws_path

LOG_DIR = ("live", "signals")
_LOCK = threading.Lock()  # pages (threads of one server) append through here one at a time
LOCK_FILE = ".lock"       # in a run's log folder: processes (the page, a CLI loop) append one at a time


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock between processes (fcntl.flock on a file in `folder`) around a read-modify-write
    of a log file; where there is no fcntl (Windows) only the thread lock holds."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux/macOS
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _run_dir(run_id: str) -> Path:
    try:
        safe_name(run_id)
    except ValueError as exc:
        raise UserError(f"'{run_id}' is not a valid run id") from exc
    return ws_path(*LOG_DIR, run_id)


def _key(rec: dict[str, Any]) -> tuple:
    return (rec.get("source"), rec.get("mode"), rec.get("timestamp"), rec.get("config_key"))


def append_signal(signal: Any) -> bool:
    """Append one signal (a `Signal` or its record dict); False when that bar was already logged."""
    rec = signal.to_record() if hasattr(signal, "to_record") else dict(signal)
    ts = pd.Timestamp(rec["timestamp"])
    rec["logged_at"] = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
    path = _run_dir(str(rec["run_id"])) / f"{ts:%Y-%m-%d}.jsonl"
    with _LOCK, _folder_lock(path.parent):
        old = path.read_bytes() if path.is_file() else b""
        key = _key(rec)
        for line in old.splitlines():
            try:
                if _key(json.loads(line)) == key:
                    return False
            except ValueError:
                continue  # a line we cannot read is kept as it is, never rewritten
        if old and not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(path, old + json.dumps(rec, sort_keys=True).encode() + b"\n")
    return True


def read_signals(run_id: Optional[str] = None, mode: Optional[str] = None, limit: Optional[int] = 500) -> pd.DataFrame:
    """Logged signals (all runs, or one), newest bar first; at most `limit` rows."""
    root = ws_path(*LOG_DIR)
    if run_id is not None:
        folders = [_run_dir(run_id)]
    else:
        folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    rows: list[dict[str, Any]] = []
    for folder in folders:
        for f in sorted(folder.glob("*.jsonl")):
            for line in f.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    if not rows:
        return pd.DataFrame(columns=["timestamp", "run_id", "mode", "source", "action", "confidence", "price",
                                     "size", "notional", "stop", "target", "atr", "logged_at"])
    df = pd.DataFrame(rows)
    if mode is not None:
        df = df[df["mode"] == mode]
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df = df.sort_values(["timestamp", "logged_at"], ascending=False, kind="stable").reset_index(drop=True)
    first = ["timestamp", "run_id", "mode", "source", "action", "confidence", "price", "size", "notional",
             "stop", "target", "atr"]
    cols = [c for c in first if c in df] + sorted(c for c in df if c not in first)
    df = df[cols]
    return df.head(limit) if limit else df

