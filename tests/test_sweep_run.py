"""Sweeps end to end on tiny configs: 2 local worker processes (loky), cancel (nothing new starts, the
running cell keeps its checkpoint), the CLI, and a local Ray instance (slow)."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from core.errors import UserError
from core.progress import CancelToken
from core.sweep import runner
from core.train import runs as registry

TINY = {"preset": "quick", "data": {"preset": "chapter6", "window": 16, "horizon": 4, "max_rows": 1000},
        "train": {"epochs": 1, "patience": 0, "n_boot": 100, "baselines": ["majority"]}}


@pytest.fixture()
def market(workspace):
    """Small offline BTC and ETH datasets (1,200 hourly bars each) in the test's workspace."""
    from core.data.store import save_candles
    from core.data.synthetic import generate_market

    for sym, df in generate_market(["BTC/USDT", "ETH/USDT"], "1h", periods=1200, seed=5).items():
        save_candles(df, "synthetic", sym, "1h")
    return workspace


def test_two_local_workers_make_one_run_per_cell_and_rank_them(market):
    events = []
    spec = {**TINY, "name": "two-workers", "grid": {"symbol": ["BTC/USDT", "ETH/USDT"], "seed": [0, 1]}}
    res = runner.run_sweep(spec, jobs=2, backend="loky", progress=events.append)
    assert res.status == "completed" and [c["status"] for c in res.cells] == ["completed"] * 4
    workers = {c["worker"] for c in res.cells}
    assert len(workers) == 2  # two worker processes shared the cells
    runs = {r.run_id: r for r in registry.list_runs()}
    assert set(runs) == {c["run_id"] for c in res.cells}
    for plan, cell in zip(res.plan, res.cells):
        cfg = registry.load_run(cell["run_id"]).config
        assert cfg["dataset_id"] == plan["dataset_id"] and cfg["train_config"]["seed"] == plan["params"]["seed"]
        assert cfg["name"] == plan["name"] and "two-workers #" in cfg["name"]
    assert {p["dataset_id"] for p in res.plan} == {"synthetic-BTCUSDT-1h", "synthetic-ETHUSDT-1h"}
    # the ranking: one group per symbol, two seeds each, mean and spread
    summ = res.summary()
    assert len(summ) == 2 and list(summ["n_seeds"]) == [2, 2] and summ.loc[0, "vs_best"].startswith("top on ")
    assert summ.attrs["ranked_on"] == "validation"  # every cell recorded its validation metrics
    assert np.isfinite(summ["val_balanced_accuracy_mean"]).all()
    table = res.table()
    for g, grp in table.groupby("group"):
        row = summ.set_index("group").loc[g]
        assert row["balanced_accuracy_mean"] == pytest.approx(grp["balanced_accuracy"].mean())
        assert row["balanced_accuracy_std"] == pytest.approx(grp["balanced_accuracy"].std(ddof=1))
    # progress per cell reached the caller; the sweep is stored and reloads the same
    cells_seen = [e.metrics.get("cells", {}) for e in events if e.stage == "sweep"]
    assert any(len(c) >= 1 for c in cells_seen) and events[-1].stage == "done"
    again = runner.load_sweep(res.sweep_id)
    assert again.status == "completed" and again.summary().equals(summ)
    assert runner.list_sweeps()[0]["sweep_id"] == res.sweep_id


def test_cancel_stops_new_cells_and_the_running_one_keeps_its_checkpoint(market):
    spec = {**TINY, "name": "cancel", "train": {**TINY["train"], "epochs": 400},
            "grid": {"seed": [0, 1, 2]}}
    token = CancelToken()

    def on_progress(p):
        cell = (p.metrics.get("cells") or {}).get(0) or {}
        if cell.get("stage") == "train" and (cell.get("fraction") or 0) >= 2 / 400:
            token.cancel()  # at least one epoch of cell 0 has finished

    res = runner.run_sweep(spec, jobs=1, progress=on_progress, cancel=token)
    assert res.status == "cancelled"
    first, *rest = res.cells
    assert first["status"] == "stopped" and first["epochs_run"] < 400
    assert registry.load_run(first["run_id"]).metrics["status"] == "stopped"
    assert [c["status"] for c in rest] == ["cancelled", "cancelled"]
    # the stopped cell trained less than the others would have: it is kept, but not ranked
    summary = res.summary()
    assert summary.empty and "1 cell stopped before training finished" in runner.ranking_note(summary, res.rank_by)
    assert [r.run_id for r in registry.list_runs()] == [first["run_id"]]
    assert (res.path / "cancel").is_file()


def test_bad_input_fails_before_anything_runs(market):
    with pytest.raises(UserError, match="not in the workspace"):
        runner.run_sweep({**TINY, "grid": {"dataset": ["import-NOPE-1h"]}}, jobs=1)
    with pytest.raises(UserError, match="unknown backend"):
        runner.run_sweep({**TINY, "grid": {"seed": [0]}}, backend="spark")
    with pytest.raises(UserError, match="use 2 or more workers for ray"):
        runner.run_sweep({**TINY, "grid": {"seed": [0]}}, jobs=1, backend="ray")
    assert registry.list_runs() == [] and runner.list_sweeps() == []


def test_cli_runs_a_grid_file_and_shows_it(market, tmp_path, capsys):
    from core.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text("name: cli\npreset: quick\ndata: {preset: chapter6, window: 16, horizon: 4, max_rows: 1000}\n"
                    "train: {epochs: 1, n_boot: 100, baselines: [majority]}\ngrid:\n  model: [cnn1d]\n  seed: [3]\n")
    assert main(["sweep", "--grid", str(grid), "--jobs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed" and out["n_cells"] == 1 and out["ranking"][0]["n_seeds"] == 1
    rid = out["cells"][0]["run_id"]
    assert registry.load_run(rid).config["train_config"]["seed"] == 3
    assert main(["sweep", "--show", out["sweep_id"]]) == 0
    assert "model=cnn1d" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: {model: [nosuchnet]}\n")
    assert main(["sweep", "--grid", str(bad)]) == 2
    assert "unknown model 'nosuchnet'" in capsys.readouterr().err


@pytest.fixture()
def short_market(monkeypatch):
    """`market` in a workspace whose path is short enough for Ray's sockets under workspace/cache/ray."""
    import shutil
    import tempfile
    from pathlib import Path

    ws = Path(tempfile.mkdtemp(prefix="w", dir="/tmp"))
    monkeypatch.setenv("CNN_LAB_WORKSPACE", str(ws))
    from core.data.store import save_candles
    from core.data.synthetic import generate_market

    for sym, df in generate_market(["BTC/USDT", "ETH/USDT"], "1h", periods=1200, seed=5).items():
        save_candles(df, "synthetic", sym, "1h")
    yield ws
    shutil.rmtree(ws, ignore_errors=True)


@pytest.mark.slow
def test_ray_backend_on_a_local_instance(short_market):
    import ray  # pinned in requirements-dev.txt: this test must run, not skip
    assert runner.ray_temp_dir() == str(short_market / "cache" / "ray")
    spec = {**TINY, "name": "ray", "grid": {"seed": [0, 1]}}
    res = runner.run_sweep(spec, jobs=2, backend="ray")
    assert res.status == "completed", res.cells
    assert not ray.is_initialized()  # the instance the sweep started is stopped again
    # Ray's session files went to the workspace, not /tmp/ray
    assert any(p.name.startswith("session_") for p in (short_market / "cache" / "ray").iterdir())
    for c in res.cells:
        run = registry.load_run(c["run_id"])
        # trained in a Ray worker's scratch workspace, shipped back as a zip, imported as untrusted
        assert run.config["train_config"]["seed"] == c["index"]
        assert (run.path / "scaler.json").is_file() and (run.path / "scaler.joblib").is_file()
        assert run.config["import_source"].startswith("sweep worker")
        assert run.metrics["metrics"]["balanced_accuracy"] == pytest.approx(c["metrics"]["balanced_accuracy"])
    assert len(registry.list_runs()) == 2
    assert not (res.path / "scratch").exists()


@pytest.mark.slow
def test_dask_backend_on_a_local_cluster(market, tmp_path, monkeypatch):
    import sys
    import types

    import distributed  # noqa: F401 - pinned in requirements-dev.txt: this test must run, not skip

    # as under Streamlit, whose pages run as `__main__`: spawned workers must not re-run that script
    page = tmp_path / "page.py"
    page.write_text("raise RuntimeError('a page script ran inside a sweep worker')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    res = runner.run_sweep({**TINY, "name": "dask", "grid": {"seed": [0, 1]}}, jobs=2, backend="dask")
    assert res.status == "completed", res.cells
    assert len({c["worker"] for c in res.cells}) >= 1
    for c in res.cells:
        run = registry.load_run(c["run_id"])
        assert run.config["import_source"].startswith("sweep worker")
        assert run.config["train_config"]["seed"] == c["index"]


def test_an_unreachable_cluster_is_a_clear_error_and_leaves_nothing(market):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for backend, what in (("ray", "Ray cluster"), ("dask", "Dask scheduler")):
        with pytest.raises(UserError, match=f"cannot reach the {what} at 127.0.0.1:{port}"):
            runner.run_sweep({**TINY, "grid": {"seed": [0, 1]}}, jobs=2, backend=backend,
                             address=f"127.0.0.1:{port}")
    assert runner.list_sweeps() == [] and registry.list_runs() == []


@pytest.mark.slow
def test_dask_backend_on_a_separate_scheduler_and_workers(market, tmp_path):
    """The `--address` path: a scheduler and two workers started as their own processes (as on other
    machines: another working folder, another workspace, the project only on their PYTHONPATH). Cells train
    in the workers' scratch workspaces and come back as zips into this registry."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    elsewhere = tmp_path / "other-machine"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(root), CNN_LAB_WORKSPACE=str(elsewhere / "workspace"))
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], cwd=elsewhere, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
                                       "2", "--nthreads", "1", "--no-dashboard"], cwd=elsewhere, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        res = runner.run_sweep({**TINY, "name": "remote dask", "grid": {"seed": [0, 1]}}, jobs=2,
                               backend="dask", address=address)
    finally:
        from tests.browser.conftest import stop_process

        for p in reversed(procs):
            stop_process(p, 20)
    assert res.status == "completed", res.cells
    for c in res.cells:
        run = registry.load_run(c["run_id"])
        assert run.config["import_source"].startswith("sweep worker")
        assert run.config["train_config"]["seed"] == c["index"]
        assert (run.path / "model.pt").is_file()
    assert not (elsewhere / "workspace" / "runs").exists()  # nothing stayed on the "other machine"


def test_a_refused_ray_connection_says_how_to_pass_the_clusters_token(market, monkeypatch):
    """`ray start` clusters use token authentication, and Ray sends no token for an explicit address unless
    RAY_AUTH_MODE=token: the failed connection says so (and does not when the token mode is already on)."""
    import socket

    import ray

    def refuse(**kw):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kw['address']}")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with socket.socket() as s:  # something listens, so the reachability check passes
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = "127.0.0.1:%d" % s.getsockname()[1]
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
        with pytest.raises(UserError, match="RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN"):
            runner.run_sweep({**TINY, "grid": {"seed": [0, 1]}}, jobs=2, backend="ray", address=address)
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        with pytest.raises(UserError, match="Failed to connect") as err:
            runner.run_sweep({**TINY, "grid": {"seed": [0, 1]}}, jobs=2, backend="ray", address=address)
        assert "RAY_AUTH_MODE" not in str(err.value)
    assert runner.list_sweeps() == [] and registry.list_runs() == []


@pytest.mark.slow
def test_ray_backend_on_a_cluster_started_with_ray_start(short_market, tmp_path):
    """The Ray `--address` path as a user runs it: a head started with `ray start --head` in another folder
    (token authentication on, Ray's default for `ray start`), and `python -m core sweep --backend ray
    --address` given the cluster's token. The workers get the project as the job's working_dir (nothing on
    their PYTHONPATH), train in scratch workspaces and send the runs back into this registry."""
    import os
    import secrets
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from tests.browser.conftest import free_port, stop_process

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    elsewhere = tmp_path / "head-machine"
    elsewhere.mkdir()
    head_temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's unix sockets live below it
    token = secrets.token_hex(32)  # this test's own cluster token, never written to ~/.ray
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false", "--temp-dir", head_temp, "--disable-usage-stats"], cwd=elsewhere,
                            env=dict(env, CNN_LAB_WORKSPACE=str(elsewhere / "workspace")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({**TINY, "name": "ray cluster", "grid": {"seed": [0, 1]}}))
    try:
        deadline = time.monotonic() + 90
        while True:
            assert head.poll() is None, "ray start --head exited"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the Ray head did not listen within 90 s"
            time.sleep(0.5)
        out = subprocess.run([sys.executable, "-m", "core", "sweep", "--grid", str(grid), "--backend", "ray",
                              "--address", f"127.0.0.1:{port}", "--jobs", "2", "--json", "--quiet"],
                             cwd=root, env=dict(env, CNN_LAB_WORKSPACE=str(short_market)), capture_output=True,
                             text=True, timeout=240)
    finally:
        stop_process(head, 60)  # `ray start --block` stops its cluster on SIGTERM
        shutil.rmtree(head_temp, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert token not in out.stdout + out.stderr  # the secret is never printed
    res = json.loads(out.stdout)
    assert res["status"] == "completed" and res["backend"] == "ray", res["cells"]
    assert [c["status"] for c in res["cells"]] == ["completed", "completed"]
    for c in res["cells"]:
        run = registry.load_run(c["run_id"])
        assert run.config["import_source"].startswith("sweep worker")
        assert run.config["train_config"]["seed"] == c["index"]
        assert (run.path / "model.pt").is_file()
    assert len(registry.list_runs()) == 2
    assert not (elsewhere / "workspace" / "runs").exists()  # nothing stayed on the "head machine"


def test_ctrl_c_on_the_cli_cancels_the_sweep_and_keeps_its_finished_cells(market, tmp_path, capsys):
    """Ctrl-C on `python -m core sweep` ends it as the page's Cancel does: no new cell, the sweep is marked
    cancelled (not "running" for ever), and --show ranks the cells that were saved."""
    import os
    import signal
    import time

    from core.cli import main

    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({**TINY, "name": "ctrlc", "grid": {"seed": [0, 1, 2, 3, 4, 5]}}))
    sweeps = runner.sweeps_root()
    stop = threading.Event()

    def press_ctrl_c_after_the_first_cell():
        while not stop.wait(0.1):
            for f in sweeps.glob("*/cells/*.json"):
                try:
                    if json.loads(f.read_text()).get("run_id"):
                        os.kill(os.getpid(), signal.SIGINT)
                        return
                except ValueError:
                    continue

    t = threading.Thread(target=press_ctrl_c_after_the_first_cell, daemon=True)
    t.start()
    try:
        rc = main(["sweep", "--grid", str(grid), "--jobs", "1", "--quiet"])
    finally:
        stop.set()
        t.join(5)
    time.sleep(0.1)
    assert rc == 0
    (sid,) = [p.name for p in sweeps.iterdir()]
    res = runner.load_sweep(sid)
    saved = [c for c in res.cells if c.get("run_id")]
    assert res.status == "cancelled" and 1 <= len(saved) < 6
    capsys.readouterr()
    assert main(["sweep", "--show", sid]) == 0
    out = capsys.readouterr().out
    assert "no cell finished" not in out and "vs top group" in out and "vs_best" not in out


def test_a_workers_final_status_says_which_run_it_saved(market, tmp_path):
    """A sweep whose driver was killed has no results.json: the cells' own status files carry their runs and
    figures, so the sweep still shows what finished."""
    import os

    from core.data.store import load_candles
    from core.sweep.grid import expand_grid, parse_grid
    from core.workspace import workspace_root

    (cell,) = expand_grid(parse_grid({**TINY, "name": "one", "grid": {"seed": [0]}}))
    folder = tmp_path / "sweep"
    (folder / "cells").mkdir(parents=True)
    ctx = {"workspace": str(workspace_root()), "sweep_dir": str(folder), "driver_pid": os.getpid() + 1,
           "threads": 1}
    import signal

    import torch

    handler, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    try:  # run as a worker would (it ignores Ctrl-C and sets its threads): this process gets both back after
        out = runner.run_cell(cell.to_dict(), load_candles(cell.dataset_id).iloc[-1000:], ctx)
    finally:
        signal.signal(signal.SIGINT, handler)
        torch.set_num_threads(threads)
    status = json.loads((folder / "cells" / "0.json").read_text())
    assert out["run_id"] and status["run_id"] == out["run_id"] and status["status"] == "completed"
    assert status["metrics"]["balanced_accuracy"] == out["metrics"]["balanced_accuracy"]
    table = runner.cells_table([cell.to_dict()], [status])
    assert table.loc[0, "run_id"] == out["run_id"] and np.isfinite(table.loc[0, "balanced_accuracy"])


def test_a_bad_rank_by_or_threads_fails_before_anything_trains(market, tmp_path, capsys):
    from core.cli import main

    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({**TINY, "name": "bad", "grid": {"seed": [0]}}))
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--grid", str(grid), "--jobs", "1", "--rank-by", "bogus"])
    assert exc.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    assert main(["sweep", "--grid", str(grid), "--jobs", "1", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert registry.list_runs() == [] and not any(runner.sweeps_root().iterdir())
