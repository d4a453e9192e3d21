"""Run a sweep: every cell of a grid trained as a run of the registry, in parallel through joblib.

Backends:
- `loky` (default): worker processes on this machine. Workers write their runs straight into this
  workspace.
- `ray`: `ray.util.joblib.register_ray()` + `joblib.parallel_config("ray")`, with `ray.init(address=...)`
  (no address: a local Ray instance is started for the sweep and stopped after it). Ray workers may live on
  other machines without this workspace, so each worker trains in a scratch workspace of its own, sends the
  run back as a zip (`core.train.archive`), and the driver imports it into the registry. For a remote
  `--address`, the project folder is shipped as the job's `working_dir` so workers can import `core`.
  A cluster started with `ray start` (Ray 2.59 and later) wants its token: run the driver with
  RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or ~/.ray/auth_token), as `ray_auth_hint` tells a user.
- `dask`: `dask.distributed.Client(address)` (a LocalCluster of `jobs` single-threaded worker processes
  without an address) + `parallel_config("dask")`, runs shipped back like Ray's. Dask does not ship the
  code: a remote scheduler's workers need this project on their PYTHONPATH. Needs `dask` and `distributed`.

Every worker runs torch on `threads` threads (1 by default) so that N workers use N cores. With one worker
(`jobs=1`, loky only) joblib runs the cells one after another in the calling process: no start-up cost.

Progress and cancel go through the sweep folder `workspace/sweeps/<sweep_id>/`:
- `sweep.json` (the grid, backend, status), `cells.json` (the plan), `results.json` (one row per cell);
- `cells/<index>.json`: each worker's live status (stage, fraction, message), polled by the driver;
- `cancel`: written when the user cancels. The driver launches no further cell (the task generator joblib
  draws from stops), a cell that was handed out but has not started sees the file and does not start
  (status "cancelled"), and a running cell stops at its next batch and keeps its best checkpoint so far
  (status "stopped", a normal run), exactly like Stop on the Train page. Workers on other machines do not
  see the file: their running cells finish, but no new cell is launched.
"""
from __future__ import annotations

import contextlib

import math
import os
import re
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd

from core.errors import UserError
from core.progress import CancelToken, Cancelled, Progress, ProgressCallback
from core.sweep.grid import RANK_METRICS, GridSpec, SweepCell, expand_grid, load_grid, parse_grid
from core.train.metrics import HEADLINE
from core.workspace import (
    atomic_write_json, ENV_VAR, read_json, reserve_folder, safe_name, workspace_root, ws_path)

BACKENDS = ("loky", "ray", "dask")
SWEEPS_DIR = "sweeps"
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------- cancel file

class FileCancelToken(CancelToken):
    """A CancelToken that is also set by the sweep's cancel file (checked at most every `interval` s)."""

    def __init__(self, path: str | Path, interval: float = 0.25) -> None:
        super().__init__()
        self.path = str(path)
        self.interval = interval
        self._next = 0.0

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set():
            now = time.monotonic()
            if now >= self._next:
                self._next = now + self.interval
                if os.path.exists(self.path):
                    self._event.set()
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("the sweep was cancelled")


# ------------------------------------------------------------------------------------------- the worker

def _status_writer(path: Path, index: int) -> Any:
    state = {"index": index, "status": "running", "stage": "prepare", "fraction": 0.0, "message": "starting",
             "started_at": time.time()}
    last = [0.0]

    def write(force: bool = False, **kw: Any) -> None:
        state.update(kw)
        now = time.monotonic()
        if force or now - last[0] >= 0.5:
            last[0] = now
            try:
                atomic_write_json(path, state)
            except OSError:
                pass  # status is best effort (e.g. a remote worker without the driver's folder)

    return write


def run_cell(cell: dict[str, Any], candles: Optional[pd.DataFrame], ctx: dict[str, Any]) -> dict[str, Any]:
    """Train one cell (runs inside a worker). Returns a plain dict: index, status, run_id, metrics, error,
    and in `ship` mode the run as zip bytes under "zip". Never raises for a failing cell."""
    c = SweepCell.from_dict(cell)
    sweep_dir = Path(ctx["sweep_dir"])
    in_driver = os.getpid() == ctx.get("driver_pid")
    ship = bool(ctx.get("ship")) and not in_driver
    out: dict[str, Any] = {"index": c.index, "status": "failed", "run_id": None, "error": None,
                           "worker": f"{os.uname().nodename}:{os.getpid()}"}
    cancel = FileCancelToken(sweep_dir / "cancel")
    if cancel.cancelled:
        out.update(status="cancelled", error="cancelled before it started", seconds=0.0)
        return out
    if not in_driver:
        import torch

        torch.set_num_threads(int(ctx.get("threads", 1)))
        _ignore_ctrl_c()  # Ctrl-C in a terminal reaches the workers too: the driver's cancel file stops them
    write = _status_writer(sweep_dir / "cells" / f"{c.index}.json", c.index)
    write(force=True)
    old_env = os.environ.get(ENV_VAR)
    scratch: Optional[Path] = None
    if ship:
        scratch = sweep_dir / "scratch" / f"cell-{c.index}-{os.getpid()}"
        try:
            scratch.mkdir(parents=True, exist_ok=True)
        except OSError:  # a remote node where the driver's path cannot be made: a private temp folder
            import tempfile

            scratch = Path(tempfile.mkdtemp(prefix=f"cnnlab-cell-{c.index}-"))
        os.environ[ENV_VAR] = str(scratch)
    else:
        os.environ[ENV_VAR] = str(ctx["workspace"])
    t0 = time.perf_counter()

    def on_progress(p: Progress) -> None:
        if p.stage == "batch":
            write(stage="train", fraction=float(p.fraction or 0.0), message=p.message)
        elif p.stage == "epoch":
            write(force=True, stage="train", fraction=float(p.done / p.total) if p.total else 0.0,
                  message=p.message)
        else:
            write(force=True, stage=p.stage, message=p.message)

    try:
        from core.train.trainer import train_run

        res = train_run(c.dataset_id, c.model_name, c.model_config, c.data_config, c.train_config,
                        progress=on_progress, cancel=cancel, name=c.name or None, candles=candles)
        vs = res.vs_best_baseline or {}
        out.update(status=res.status, run_id=res.run_id, metrics={k: res.metrics.get(k) for k in HEADLINE},
                   val_metrics={k: (res.val_metrics or {}).get(k) for k in HEADLINE},
                   baselines={b: {k: m.get(k) for k in HEADLINE} for b, m in (res.baselines or {}).items()},
                   vs_best_baseline={k: vs.get(k) for k in ("metric", "diff", "ci_low", "ci_high", "baseline",
                                                             "beats", "worse")},
                   epochs_run=int(len(res.history)), train_seconds=res.config.get("train_seconds"),
                   test_start=res.config.get("test_start"), n_test=int(len(res.predictions)))
        if ship:
            from core.train.archive import export_run_zip

            out["zip"] = export_run_zip(res.run_id)
    except Cancelled:
        out.update(status="cancelled", error="cancelled before the first epoch finished: nothing was saved")
    except UserError as exc:
        out.update(status="failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one failing cell must not end the sweep
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
    finally:
        if old_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old_env
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    out["seconds"] = time.perf_counter() - t0
    # the final status carries the result (not the zip): a sweep whose driver never wrote results.json (it
    # was killed) still shows its finished cells
    write(force=True, **{k: v for k, v in out.items() if k not in ("zip", "trace")}, stage="done", fraction=1.0,
          message=out.get("error") or f"{out['status']}: run {out['run_id']}")
    return out


def _ignore_ctrl_c() -> None:
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread of the worker (e.g. a Ray or Dask worker thread): leave it
        pass


# ------------------------------------------------------------------------------------------- the driver

@dataclass
class SweepResult:
    sweep_id: str
    path: Path
    spec: dict[str, Any]
    cells: list[dict[str, Any]]             # one result row per cell (no zip bytes)
    status: str                              # completed, cancelled, failed
    backend: str = "loky"
    jobs: int = 1
    seconds: float = 0.0
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rank_by(self) -> str:
        return str(self.spec.get("rank_by") or "balanced_accuracy")

    def table(self) -> pd.DataFrame:
        return cells_table(self.plan, self.cells)

    def outcome(self) -> str:
        """One sentence on how the sweep ended, for the page."""
        saved = sum(1 for c in self.cells if c.get("run_id"))
        return f"Sweep {self.sweep_id} {self.status}: {saved}/{len(self.plan)} cells saved as runs in {self.seconds:.0f} s."

    def summary(self, rank_by: Optional[str] = None) -> pd.DataFrame:
        return summarize(self.table(), rank_by or self.rank_by)

    def saved_run_ids(self, limit: int = 12) -> list[str]:
        """The runs its cells saved that are still in the registry (at most `limit`, for a comparison)."""
        from core.train.runs import runs_root

        return [c["run_id"] for c in self.cells if c.get("run_id") and (runs_root() / c["run_id"]).is_dir()][:limit]

    def caption(self) -> str:
        """How it ran, in a line."""
        return (f"{self.status} · {self.backend} x {self.jobs} workers · {self.seconds:.0f} s. Groups are the cells "
                "that differ only by seed.")

    def to_json(self) -> dict[str, Any]:
        """The `--json` object of `python -m core sweep`."""
        summ = self.summary()
        return {"sweep_id": self.sweep_id, "status": self.status, "path": str(self.path), "backend": self.backend,
                "jobs": self.jobs, "seconds": round(self.seconds, 2), "rank_by": self.rank_by,
                "n_cells": len(self.plan), "cells": [{k: v for k, v in c.items() if k != "trace"} for c in self.cells],
                "ranking": _records(summ)}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
    return out


def sweeps_root() -> Path:
    p = ws_path(SWEEPS_DIR)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _new_sweep_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "sweep"
    # the folder is made with the id: two sweeps started in the same second get two
    return reserve_folder(sweeps_root(), f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{slug}")


def _as_spec(spec: GridSpec | dict[str, Any] | str | Path) -> GridSpec:
    if isinstance(spec, GridSpec):
        return spec
    if isinstance(spec, dict):
        return parse_grid(spec)
    return load_grid(spec)


def _load_inputs(cells: list[SweepCell]) -> dict[tuple[str, Optional[int]], pd.DataFrame]:
    """Candles per (dataset, max_rows), loaded once by the driver and sent to the workers (a remote worker
    has no copy of this workspace). Slicing to max_rows here is what `prepare_for_run` would do."""
    from core.data import store

    out: dict[tuple[str, Optional[int]], pd.DataFrame] = {}
    full: dict[str, pd.DataFrame] = {}
    for c in cells:
        ds, rows = c.dataset_id, c.data_config.get("max_rows")
        if (ds, rows) in out:
            continue
        if ds not in full:
            if not store.exists(ds):
                if ds.startswith("synthetic-") and ds.endswith(f"-{store.DEFAULT_TIMEFRAME}"):
                    store.ensure_default_dataset()  # the offline market: BTC and ETH, made on first use
                if not store.exists(ds):
                    have = ", ".join(d.id for d in store.list_datasets()) or "none"
                    raise UserError(f"the grid needs dataset {ds!r}, which is not in the workspace (have: {have}); "
                                    f"fetch or import it on the Data page first")
            full[ds] = store.load_candles(ds)
        df = full[ds]
        out[(ds, rows)] = df.iloc[-int(rows):] if rows else df
    return out


class _Watcher(threading.Thread):
    """Polls the cells' status files for progress and turns the CancelToken into the cancel file."""

    def __init__(self, folder: Path, n: int, progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
                 interval: float = 0.5) -> None:
        super().__init__(name="sweep-watcher", daemon=True)
        self.folder, self.n, self.progress, self.cancel, self.interval = folder, n, progress, cancel, interval
        self.stop_event = threading.Event()
        self.cancel_written = False
        self._last_sig: Any = None

    def poll(self) -> None:
        if self.cancel is not None and self.cancel.cancelled and not self.cancel_written:
            atomic_write_json(self.folder / "cancel", {"at": time.time()})
            self.cancel_written = True
        if self.progress is None:
            return
        cells: dict[int, dict[str, Any]] = {}
        for p in (self.folder / "cells").glob("*.json"):
            try:
                st = read_json(p)
                cells[int(st["index"])] = {k: st.get(k) for k in ("status", "stage", "fraction", "message")}
            except (ValueError, OSError, KeyError, TypeError):
                continue  # being replaced right now
        done = sum(1 for s in cells.values() if s.get("status") not in (None, "running"))
        running = sum(1 for s in cells.values() if s.get("status") == "running")
        partial = sum(float(s.get("fraction") or 0) for s in cells.values() if s.get("status") == "running")
        msg = f"{done}/{self.n} cells done, {running} running"
        if self.cancel_written:
            msg += " (cancelling: no new cells start)"
        # report only on change (fractions in 2 % steps): a page's job keeps every non-batch event
        sig = (msg, tuple(sorted((i, s.get("status"), round(float(s.get("fraction") or 0) * 50))
                                 for i, s in cells.items())))
        if sig == self._last_sig:
            return
        self._last_sig = sig
        self.progress(Progress("sweep", done + partial, self.n, msg, {"cells": cells}))

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - progress must never break the sweep
                pass


def check_reachable(address: str, what: str, timeout: float = 5.0) -> None:
    """A clear sentence at once when nothing listens at `address` (Ray and Dask otherwise retry for minutes).
    Addresses without a port ('auto', 'local') are left to the backend."""
    import socket

    rest = address.split("://", 1)[-1].strip().rstrip("/")
    if ":" not in rest:
        return
    host, _, port = rest.rpartition(":")
    try:
        port_no = int(port)
    except ValueError:
        raise UserError(f"the {what} address {address!r} must look like host:port") from None
    try:
        socket.create_connection((host.strip("[]"), port_no), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"cannot reach the {what} at {address} ({exc.strerror or exc}); is the cluster running "
                        f"and the address right?") from None


RAY_SOCKET_ROOM = 36  # Ray's unix sockets live ~70 characters below its temp dir; a socket path has 107 at most


def ray_temp_dir() -> Optional[str]:
    """Where a local Ray instance keeps its session files: `workspace/cache/ray`, so the sweep writes nothing
    outside the workspace. None (Ray's default, /tmp/ray) when that path is too long for Ray's sockets."""
    path = ws_path("cache", "ray")
    return str(path) if len(str(path)) <= RAY_SOCKET_ROOM else None


def ray_auth_hint(address: Optional[str]) -> str:
    """What to add to a failed connection to a Ray cluster at an explicit address. Clusters started with
    `ray start` use token authentication by default (Ray 2.59 and later), and a driver given an explicit address
    sends the token only when RAY_AUTH_MODE=token is set before Ray is imported (Ray never turns it on by
    itself for an explicit address)."""
    if not address or os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return ""
    return (". If the cluster uses token authentication (the default of `ray start` since Ray 2.59), start "
            "this command with RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in "
            "~/.ray/auth_token)")


def _backend_context(backend: str, jobs: int, address: Optional[str]) -> tuple[Any, Any]:
    """(joblib parallel_config context, cleanup callable) for the backend."""
    import joblib

    if backend == "loky":
        return joblib.parallel_config(backend="loky", n_jobs=jobs), (lambda: None)
    if backend == "ray":
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            raise UserError("the ray backend needs Ray: pip install 'ray==2.60.0'") from None
        started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                check_reachable(address, "Ray cluster")
                kw["address"] = address
                kw["runtime_env"] = {"working_dir": str(ROOT),
                                     "excludes": ["workspace", ".venv", ".git", "tests", "bench", "*.parquet"]}
            else:
                kw["num_cpus"] = max(1, jobs)
                temp = ray_temp_dir()
                if temp is not None:
                    kw["_temp_dir"] = temp
            try:
                ray.init(**kw)
            except Exception as exc:  # noqa: BLE001 - e.g. no cluster at that address
                raise UserError(f"Ray could not start or connect{' to ' + address if address else ''}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                f"{ray_auth_hint(address)}") from None
            started = True
        register_ray()
        return joblib.parallel_config(backend="ray", n_jobs=jobs), (lambda: ray.shutdown() if started else None)
    if backend == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise UserError("the dask backend needs Dask: pip install dask distributed") from None
        if address:
            check_reachable(address, "Dask scheduler")
            client = Client(address, timeout=30)
            cleanup = client.close
        else:
            with _plain_main():
                cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            client = Client(cluster)

            def cleanup() -> None:
                client.close()
                cluster.close()
        return joblib.parallel_config(backend="dask", n_jobs=jobs), cleanup
    raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


@contextlib.contextmanager
def _plain_main() -> Iterator[None]:
    """Start worker processes with a bare `__main__`. Streamlit (and AppTest) run a page as the `__main__`
    module, and multiprocessing's spawn re-runs the main module's file in every new process: without this
    a Dask worker started from a page would execute that page script, and fail."""
    import sys
    import types

    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def run_sweep(spec: GridSpec | dict[str, Any] | str | Path, jobs: int = 2, backend: str = "loky",
              address: Optional[str] = None, progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None, threads: int = 1) -> SweepResult:
    """Expand and validate the grid, train every cell (`jobs` at a time), and save the sweep's results.

    Raises UserError before anything runs when the grid is invalid or a dataset is missing. A cell that
    fails is recorded as failed and the others go on. Cancelling (the token) stops new cells from starting
    and stops running ones at their next batch, keeping what they learned so far.
    """
    from joblib import Parallel, delayed

    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    jobs = int(jobs)
    if jobs < 1:
        raise UserError("jobs must be at least 1")
    if int(threads) < 1:
        raise UserError("threads (torch threads per worker) must be at least 1")
    if jobs == 1 and backend != "loky":
        # joblib runs a single job in the calling process whatever the backend: nothing would reach the cluster
        raise UserError(f"with 1 worker the cells run in this process; use 2 or more workers for {backend}")
    spec = _as_spec(spec)
    cells = expand_grid(spec)
    inputs = _load_inputs(cells)
    # the backend first: a cluster that cannot be reached fails here, before anything is written
    ctx_mgr, cleanup = _backend_context(backend, jobs, address)
    sweep_id = _new_sweep_id(spec.name)
    folder = sweeps_root() / sweep_id
    (folder / "cells").mkdir()
    plan = [c.to_dict() for c in cells]
    meta = {"sweep_id": sweep_id, "spec": spec.to_dict(), "backend": backend, "jobs": jobs, "address": address,
            "status": "running", "n_cells": len(cells),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(folder / "sweep.json", meta)
    atomic_write_json(folder / "cells.json", plan)
    ctx = {"workspace": str(workspace_root()), "sweep_dir": str(folder), "ship": backend != "loky",
           "driver_pid": os.getpid(), "threads": int(threads)}
    if progress is not None:
        progress(Progress("sweep", 0, len(cells), f"0/{len(cells)} cells done ({backend}, {jobs} workers)",
                          {"cells": {}}))
    watcher = _Watcher(folder, len(cells), progress, cancel)
    watcher.start()
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    pool_error: Optional[str] = None
    try:
        with ctx_mgr:
            def tasks() -> Any:
                # joblib draws from this lazily as workers free up: after a cancel nothing new is launched,
                # on any backend (remote workers may not see the cancel file)
                for c in cells:
                    if (cancel is not None and cancel.cancelled) or (folder / "cancel").exists():
                        return
                    yield delayed(run_cell)(c.to_dict(), inputs[(c.dataset_id, c.data_config.get("max_rows"))],
                                            ctx)

            # loky hands results over as cells finish, so a pool that breaks later keeps what was done
            ret = "generator_unordered" if backend == "loky" and jobs > 1 else "list"
            for r in Parallel(n_jobs=jobs, batch_size=1, pre_dispatch="n_jobs", return_as=ret)(tasks()):
                results.append(_land(r))
    except KeyboardInterrupt:  # a second Ctrl-C quits at once: the sweep is not left "running" for ever
        meta.update(status="interrupted", finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        atomic_write_json(folder / "sweep.json", meta)
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed for memory: record it, keep the rest
        pool_error = f"the worker pool failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        cleanup()
        watcher.stop_event.set()
        watcher.join(5)
        shutil.rmtree(folder / "scratch", ignore_errors=True)
    got = {r["index"] for r in results}
    if pool_error is None:  # cells never launched because of a cancel
        results += [{"index": c.index, "status": "cancelled", "run_id": None, "error": "cancelled before it started",
                     "seconds": 0.0} for c in cells if c.index not in got]
    else:
        results += [{"index": c.index, "status": "failed", "run_id": None, "error": pool_error, "seconds": 0.0}
                    for c in cells if c.index not in got]
        meta["error"] = pool_error
    cancelled = watcher.cancel_written or (cancel is not None and cancel.cancelled)
    results.sort(key=lambda r: r["index"])
    for r in results:
        atomic_write_json(folder / "cells" / f"{r['index']}.json",
                          {**{k: v for k, v in r.items() if k != "trace"}, "stage": "done", "fraction": 1.0,
                           "message": r.get("error") or f"run {r.get('run_id')}"})
    ok = [r for r in results if r.get("run_id")]
    status = "cancelled" if cancelled else ("completed" if ok and pool_error is None else "failed")
    seconds = time.perf_counter() - t0
    meta.update(status=status, seconds=seconds, finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    atomic_write_json(folder / "results.json", results)
    atomic_write_json(folder / "sweep.json", meta)
    watcher.poll()  # a last progress event with every cell's final state
    if progress is not None:
        progress(Progress("done", len(cells), len(cells), f"sweep {sweep_id} {status}: {len(ok)}/{len(cells)} "
                          f"cells saved as runs", {"sweep_id": sweep_id}))
    return SweepResult(sweep_id, folder, spec.to_dict(), results, status, backend, jobs, seconds, plan)


def _land(r: dict[str, Any]) -> dict[str, Any]:
    """A worker's result, with a shipped run imported into this workspace's registry."""
    r = dict(r)
    blob = r.pop("zip", None)
    if blob is not None:
        from core.train.archive import import_run_zip

        try:
            r["run_id"] = import_run_zip(blob, run_id=r.get("run_id"), source=f"sweep worker {r.get('worker')}")
        except UserError as exc:
            r.update(status="failed", error=f"the worker's run could not be imported: {exc}", run_id=None)
    return r


# -------------------------------------------------------------------------------------------- reading

def sweep_choices() -> dict[str, str]:
    """sweep id -> "id · status · N cells" for a picker, newest first."""
    return {s["sweep_id"]: f"{s['sweep_id']} · {s.get('status')} · {s.get('n_cells')} cells" for s in list_sweeps()}


def list_sweeps() -> list[dict[str, Any]]:
    """Every sweep folder's sweep.json, newest first."""
    out = []
    for p in sweeps_root().iterdir():
        if (p / "sweep.json").is_file():
            try:
                out.append(read_json(p / "sweep.json"))
            except (ValueError, OSError):
                continue
    return sorted(out, key=lambda m: (str(m.get("started_at", "")), str(m.get("sweep_id", ""))), reverse=True)


def load_sweep(sweep_id: str) -> SweepResult:
    try:
        safe_name(sweep_id)
    except ValueError:
        raise UserError(f"'{sweep_id}' is not a valid sweep id") from None
    folder = sweeps_root() / sweep_id
    if not (folder / "sweep.json").is_file():
        raise UserError(f"there is no sweep '{sweep_id}'")
    meta = read_json(folder / "sweep.json")
    plan = read_json(folder / "cells.json") if (folder / "cells.json").is_file() else []
    if (folder / "results.json").is_file():
        results = read_json(folder / "results.json")
    else:  # still running (or the driver died): what the workers reported so far
        results = []
        for p in sorted((folder / "cells").glob("*.json")):
            try:
                results.append(read_json(p))
            except (ValueError, OSError):
                continue
    return SweepResult(sweep_id, folder, meta.get("spec", {}), results, str(meta.get("status", "")),
                       str(meta.get("backend", "")), int(meta.get("jobs", 1)), float(meta.get("seconds") or 0.0),
                       plan)


# -------------------------------------------------------------------------------------------- tables

def cells_table(plan: list[dict[str, Any]], results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell: its axis values, group, seed, status, run id, test metrics, validation metrics
    (`val_<metric>`, what a sweep ranks by), best baseline."""
    by_index = {int(r["index"]): r for r in results if "index" in r}
    rows = []
    for c in plan:
        cell = SweepCell.from_dict(c)
        r = by_index.get(cell.index, {})
        m = r.get("metrics") or {}
        vs = r.get("vs_best_baseline") or {}
        bl = r.get("baselines") or {}
        row: dict[str, Any] = {"cell": cell.index, "group": cell.group, "seed": cell.seed,
                               "model": cell.model_name, "dataset": cell.dataset_id,
                               "window": cell.data_config.get("window"), "target": target_label(cell.data_config),
                               "status": r.get("status", "pending"), "run_id": r.get("run_id"),
                               "test_start": r.get("test_start"), "n_test": r.get("n_test")}
        for k, v in cell.params.items():
            if k not in ("seed", "model", "window", "dataset"):
                row[k] = v if not isinstance(v, (list, dict)) else str(v)
        for k in HEADLINE:
            row[k] = _num(m.get(k))
        for k in HEADLINE:
            row[f"val_{k}"] = _num((r.get("val_metrics") or {}).get(k))
        for k in ("accuracy", "balanced_accuracy", "macro_f1"):
            vals = [_num((b or {}).get(k)) for b in bl.values()]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            row[f"best_baseline_{k}"] = max(vals) if vals else float("nan")
        row["vs_baseline"] = _num(vs.get("diff"))
        row["beats_baseline"] = vs.get("beats")
        row["error"] = r.get("error")
        rows.append(row)
    return pd.DataFrame(rows)


def target_label(data_config: dict[str, Any]) -> str:
    """What a cell's model was taught to predict, in a few words: the label kind and the settings that shape
    its classes (horizon; threshold for direction3/multitask; k and the volatility window for vol_scaled)."""
    kind = str(data_config.get("label") or "direction3")
    parts = [kind, f"horizon {data_config.get('horizon')}"]
    if kind in ("direction3", "multitask"):
        parts.append(f"threshold {data_config.get('threshold')}")
    elif kind == "vol_scaled":
        parts.append(f"k {data_config.get('k')}, vol window {data_config.get('vol_window')}")
    return ", ".join(parts)


def scale_note(targets: Any) -> str:
    """A sentence when `target_label`s mix a 2-class label with a 3-class one, whose scores are not on one
    scale ("" otherwise)."""
    kinds = {str(t).split(",")[0] for t in targets}  # target_label starts with the label kind
    if "binary" in kinds and len(kinds) > 1:
        return "A 2-class and a 3-class score are not on one scale (chance 0.50 vs 0.33)."
    return ""


def _num(v: Any) -> float:
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def summarize(table: pd.DataFrame, rank_by: str = "balanced_accuracy") -> pd.DataFrame:
    """Cells grouped by everything but the seed: mean and std (across seeds) of each metric, ranked by the
    mean of `rank_by` on the validation split.

    Ranking is choosing, and a choice made on the test split flatters the winner: the best of N settings'
    test score is biased upward. So groups are ranked on validation (the split early stopping already uses),
    and the test figures (`<metric>_mean`, `test <metric> (mean ± std)`) are reported beside it, untouched by
    the choice. Where there is no validation figure (`vs_baseline`, or a sweep saved before cells recorded
    one) the ranking falls back to the test split; `out.attrs["ranked_on"]` says which ("validation" or
    "test"). `vs_best` (shown as "vs top group") says whether a group's gap to the top group on the ranking
    metric is larger than seed noise: Welch's t test at 95 %, Bonferroni-corrected for the k - 1 comparisons
    with the top group (`noise_bound`): 'worse beyond seed noise (gap)', 'within seed noise (gap)', and 'one
    seed: spread unknown' when either group has a single seed; the top row reads 'top on validation' (or
    'top on test'), not 'best': its test figure may still trail others (`top_pick_note`)."""
    if rank_by not in RANK_METRICS:
        raise UserError(f"rank_by must be one of {', '.join(RANK_METRICS)}")
    cols = ["rank", "group", "n_seeds", f"{rank_by}_mean", f"{rank_by}_std", "vs_best"]
    done = table[table["run_id"].notna()] if not table.empty else table
    # a cell stopped mid-training (a cancelled sweep) kept its best epoch so far: its figures measure a shorter
    # training, not seed noise, so it stays out of the means and spreads (its run is kept and listed)
    stopped = int((done["status"] == "stopped").sum()) if "status" in done else 0
    if stopped:
        done = done[done["status"] != "stopped"]
    if done.empty:
        out = pd.DataFrame(columns=cols)
        out.attrs["left_out"] = stopped
        return out
    on = f"val_{rank_by}" if f"val_{rank_by}" in done and np.isfinite(done[f"val_{rank_by}"].astype(float)).any() \
        else rank_by
    metrics = [m for m in (*HEADLINE, "vs_baseline", on, f"best_baseline_{rank_by}") if m in done]
    higher = RANK_METRICS[rank_by]
    rows = []
    for group, g in done.groupby("group", sort=False):
        row: dict[str, Any] = {"group": group, "n_seeds": int(len(g)),
                               "model": g["model"].iloc[0], "dataset": g["dataset"].iloc[0]}
        if "target" in g:
            row["target"] = g["target"].iloc[0]
        if "test_start" in g and g["test_start"].notna().any():  # (cells saved before spans were kept: none)
            n_test = g["n_test"].dropna()
            row["test span"] = (f"{int(n_test.iloc[0]) if len(n_test) else '?'} samples from "
                                f"{pd.Timestamp(g['test_start'].dropna().iloc[0]):%Y-%m-%d %H:%M}")
        for m in dict.fromkeys(metrics):
            v = g[m].astype(float)
            v = v[np.isfinite(v)]
            row[f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            row[f"{m}_n"] = int(len(v))  # seeds with a figure: a NaN (e.g. ROC AUC with a class absent) is none
        row["beats_baseline"] = f"{int((g['beats_baseline'] == True).sum())}/{len(g)}"  # noqa: E712
        rows.append(row)
    out = pd.DataFrame(rows)
    key = f"{on}_mean"
    out = out.sort_values(key, ascending=not higher, na_position="last", kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    best = out.iloc[0]
    notes = []
    comparisons = max(1, len(out) - 1)
    for _, row in out.iterrows():
        if row["rank"] == 1:
            notes.append(f"top on {'validation' if on != rank_by else 'test'}")
            continue
        n_row, n_best = row[f"{on}_n"], best[f"{on}_n"]
        if n_row < 2 or n_best < 2:
            notes.append("one seed: spread unknown")
            continue
        gap = row[key] - best[key]
        bound = noise_bound(row[f"{on}_std"], n_row, best[f"{on}_std"], n_best, comparisons)
        if not math.isfinite(gap) or not math.isfinite(bound):
            notes.append("n/a")
        elif abs(gap) > bound:
            notes.append(f"worse beyond seed noise ({gap:+.3f})")
        else:
            notes.append(f"within seed noise ({gap:+.3f})")
    out["vs_best"] = notes
    out.attrs["comparisons"] = comparisons
    if on != rank_by:
        out[f"val {rank_by} (mean ± std)"] = [_pm(m, s) for m, s in zip(out[key], out[f"{on}_std"])]
    out[f"test {rank_by} (mean ± std)"] = [_pm(m, s) for m, s in zip(out[f"{rank_by}_mean"], out[f"{rank_by}_std"])]
    out.attrs["ranked_on"] = "validation" if on != rank_by else "test"
    out.attrs["left_out"] = stopped
    out.attrs["mixed"] = _mixed_note(out)
    return out


NOISE_LEVEL = 0.95  # the confidence of the ranking's noise test, over all of its comparisons together


def noise_bound(std_a: float, n_a: int, std_b: float, n_b: int, comparisons: int = 1,
                level: float = NOISE_LEVEL) -> float:
    """The gap between two groups' mean scores that seed noise alone would stay under: Welch's t test (the
    critical t at Welch-Satterthwaite degrees of freedom times the standard error of the difference of the
    means), two-sided, Bonferroni-corrected for `comparisons` tests (a ranking compares k - 1 groups with the
    observed best, so with 2 or 3 seeds a fixed 2 SE calls identical settings "worse" far too often)."""
    from scipy import stats

    a, b = float(std_a) ** 2 / n_a, float(std_b) ** 2 / n_b
    se = math.sqrt(a + b)
    if not math.isfinite(se):
        return float("nan")
    if se == 0:
        return 0.0
    df = (a + b) ** 2 / ((a ** 2 / (n_a - 1) if a else 0.0) + (b ** 2 / (n_b - 1) if b else 0.0))
    alpha = (1 - level) / max(1, int(comparisons))
    return float(stats.t.ppf(1 - alpha / 2, df) * se)


def noise_test_note(comparisons: int) -> str:
    """What the "vs top group" column (`vs_best`) tested, in a few words."""
    c = max(1, int(comparisons))
    return (f"worse than the top group beyond seed noise (Welch t test, {NOISE_LEVEL * 100:.0f} %, corrected "
            f"for {c} comparison{'s' if c != 1 else ''})")


def top_pick_note(summary: pd.DataFrame, rank_by: str) -> str:
    """A plain sentence when the top group of a ranking does not lead on the test split: picked on validation
    but below other groups' test mean, and/or below the best baseline's test mean (on the same test splits),
    e.g. "model=tcn was picked on validation, but on the test split it is below cnn1d and below the best
    baseline." ("" when the top group also leads on test, or there is nothing to compare)."""
    if summary is None or summary.empty or f"{rank_by}_mean" not in summary:
        return ""
    higher = RANK_METRICS.get(rank_by, True)
    test = summary[f"{rank_by}_mean"].astype(float)
    top, top_test = str(summary["group"].iloc[0]), float(test.iloc[0])
    if not math.isfinite(top_test):
        return ""
    below_groups = [str(g) for g, v in zip(summary["group"].iloc[1:], test.iloc[1:])
                    if math.isfinite(v) and (v > top_test if higher else v < top_test)]
    base_col = f"best_baseline_{rank_by}_mean"
    if rank_by == "vs_baseline":  # already the CNN minus the best baseline: below it is below 0
        below_base = top_test < 0
    elif base_col in summary and math.isfinite(float(summary[base_col].iloc[0])):
        base = float(summary[base_col].iloc[0])
        below_base = top_test < base if higher else top_test > base
    else:
        below_base = False
    if not below_groups and not below_base:
        return ""
    word = "below" if higher else "worse than"  # (log loss: lower is better)
    what = []
    if below_groups:
        names = below_groups[:3] + ([f"{len(below_groups) - 3} more groups"] if len(below_groups) > 3 else [])
        what.append(f"{word} " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]))
    if below_base:
        what.append(f"{word} the best baseline")
    text = " and ".join(what)
    if summary.attrs.get("ranked_on") == "validation":
        return (f"{top} was picked on validation, but on the test split it is {text}: a lead on validation "
                "that does not carry over to the test split is not a finding.")
    return f"{top} ranks first on the test split, but it is {text}."


def _mixed_note(summary: pd.DataFrame) -> str:
    """A sentence when a ranking's groups were scored on different markets or test spans (a longer window or
    horizon leaves fewer, later test samples), else ""."""
    markets = sorted(set(summary["dataset"].dropna()))
    spans = set(summary["test span"].dropna()) if "test span" in summary else set()
    what = []
    if len(markets) > 1:
        what.append(f"different markets ({', '.join(markets)})")
    targets = sorted(set(summary["target"].dropna())) if "target" in summary else []
    if len(spans) > 1:
        what.append("different test spans (a longer window or horizon leaves fewer, later samples)")
    if len(targets) > 1:
        what.append(f"different targets ({'; '.join(targets)})")
    if not what:
        return ""
    scale = scale_note(targets)
    text = f"The groups were scored on {' and '.join(what)}: their figures are not like for like. " + \
        (scale + " " if scale else "")
    if len(targets) > 1:
        return text + ("Rank by vs_baseline (each group against its own baseline on its own target), or compare "
                       "groups within one target.")
    return text + "Compare groups within one market and window, and each against its own baseline (vs_baseline)."


SUMMARY_LABELS = {"vs_best": "vs top group"}  # a ranking's column names as the page and the CLI show them


def summary_columns(summary: pd.DataFrame, rank_by: str) -> list[str]:
    """The columns of a ranking to show (page and CLI), in order."""
    want = ["rank", "group", "n_seeds", f"val {rank_by} (mean ± std)", f"test {rank_by} (mean ± std)", "vs_best",
            "vs_baseline_mean", "beats_baseline"] + (["test span"] if summary.attrs.get("mixed") else []) \
        + (["target"] if "target" in summary and summary["target"].nunique() > 1 else [])
    return [c for c in want if c in summary]


def ranking_note(summary: pd.DataFrame, rank_by: str) -> str:
    """What the ranking chose by, and what makes its groups less comparable, for the page and the CLI."""
    if summary.empty:
        text = "No cell finished its training: there is nothing to rank."
    elif summary.attrs.get("ranked_on") == "validation":
        text = (f"Ranked by validation {rank_by} (the split early stopping uses); the test figures beside it "
                "played no part in the choice, so the top group's test score is not flattered by it.")
    else:
        why = ("it has no validation figure" if rank_by == "vs_baseline"
               else "this sweep's cells recorded no validation figures")
        text = (f"Ranked by test {rank_by} ({why}): choosing the best of several settings on the test split "
                "flatters the winner's score; treat the top group's figure as optimistic.")
    pick = top_pick_note(summary, rank_by)
    if pick:
        text = pick + " " + text
    if len(summary) > 1:
        text += (f" The \"vs top group\" column says whether a group is "
                 f"{noise_test_note(summary.attrs.get('comparisons', len(summary) - 1))} or within seed noise.")
    n = int(summary.attrs.get("left_out") or 0)
    if n:
        cells = f"{n} cells" if n > 1 else "1 cell"
        text += (f" {cells} stopped before training finished (a cancelled sweep): left out of the means and "
                 "spreads, their runs kept.")
    if summary.attrs.get("mixed"):
        text += " " + summary.attrs["mixed"]
    return text


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.3f} ± {std:.3f}" if math.isfinite(std) else f"{mean:.3f} (1 seed)"


__all__ = ["BACKENDS", "FileCancelToken", "SweepResult", "run_cell", "run_sweep", "list_sweeps", "load_sweep",
           "cells_table", "summarize", "summary_columns", "SUMMARY_LABELS", "ranking_note", "top_pick_note", "noise_bound",
           "noise_test_note", "sweeps_root"]
