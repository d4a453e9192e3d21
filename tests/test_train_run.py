"""train_run end to end on small slices of the offline market and of real BTC candles: the run folder,
reload reproducing predictions, determinism, stop, walk-forward, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from core.errors import UserError
from core.progress import CancelToken
from core.train import runs as registry
from core.train.config import DataConfig, TrainConfig
from core.train.trainer import train_run


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SMALL_DATA = dict(preset="chapter6", window=16, horizon=4, threshold=0.002, max_rows=1000)
SMALL_TRAIN = dict(epochs=2, batch_size=64, lr=3e-3, patience=0, n_boot=200)


def _model() -> tuple[str, dict]:
    """A small sequence model of the zoo with a small config."""
    from core.models import list_models

    specs = {s.name: s for s in list_models() if s.input_kind == "sequence"}
    assert "cnn1d" in specs
    return "cnn1d", {"channels": 16, "layers": 2}


@pytest.fixture(scope="module")
def candles():
    from core.data.synthetic import generate_market

    return next(iter(generate_market("BTC/USDT", "1h", periods=1000, seed=7).values()))


def _train(candles, **over):
    name, mc = _model()
    d = DataConfig(**{**SMALL_DATA, **over.pop("data", {})})
    t = TrainConfig(**{**SMALL_TRAIN, **over.pop("train", {})})
    return train_run("synthetic-BTCUSDT-1h", name, mc, d, t, candles=candles, **over)


def test_run_folder_follows_the_contract_and_reloads_exactly(candles, workspace):
    res = _train(candles)
    folder = workspace / "runs" / res.run_id
    cfg = json.loads((folder / "config.json").read_text())
    for key in ("schema_version", "dataset_id", "model_name", "model_config", "data_config", "train_config",
                "class_names", "input_kind", "feature_names"):
        assert key in cfg, key
    assert cfg["class_names"] == ["down", "flat", "up"] and cfg["input_kind"] == "sequence"
    preds = pd.read_parquet(folder / "predictions.parquet")
    assert list(preds.columns) == ["timestamp", "y_true", "prob_down", "prob_flat", "prob_up", "split"]
    assert str(preds["timestamp"].dt.tz) == "UTC" and (preds["split"] == "test").all()
    assert np.allclose(preds[["prob_down", "prob_flat", "prob_up"]].sum(1), 1.0, atol=1e-5)
    hist = pd.read_csv(folder / "history.csv")
    assert len(hist) == 2 and {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(hist.columns)
    met = json.loads((folder / "metrics.json").read_text())
    assert set(met["baselines"]) == {"majority", "logistic"}
    for k in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"):
        assert isinstance(met["metrics"][k], float)
    vs = met["vs_best_baseline"]
    assert vs["ci_low"] <= vs["diff"] <= vs["ci_high"] and vs["baseline"] in met["baselines"]
    # the majority baseline really is the training class frequencies, evaluated on the same test labels
    assert met["baselines"]["majority"]["n"] == met["metrics"]["n"] == len(preds)

    run = registry.load_run(res.run_id)
    again = run.predict(candles=candles)
    pd.testing.assert_frame_equal(again, run.predictions, check_exact=True)
    assert [r.run_id for r in registry.list_runs()] == [res.run_id]

    # the same run as an older app version saved it (schema v0: no version, other key names) still loads,
    # rebuilds its model and reproduces its predictions
    v0 = {"model": cfg["model_name"], "dataset": cfg["dataset_id"], "classes": cfg["class_names"],
          "features": cfg["feature_names"], "created_at": cfg["created_at"],
          "config": {"model": cfg["model_config"], "data": cfg["data_config"], "train": cfg["train_config"]}}
    (folder / "config.json").write_text(json.dumps(v0))
    old = registry.load_run(res.run_id)
    assert old.config["schema_version"] == registry.SCHEMA_VERSION and old.config["input_kind"] == "sequence"
    pd.testing.assert_frame_equal(old.predict(candles=candles), run.predictions, check_exact=True)


def test_a_run_reloads_on_its_own_candles_after_the_dataset_grew(candles):
    """Datasets grow in place (incremental fetches, back-fills). A reloaded run must rebuild the split and
    the train-only scaler from the candles it was trained on, not from today's dataset: else its "test"
    windows would include training samples and its inputs would be scaled differently."""
    then = candles.iloc[100:900]
    res = _train(then)
    run = registry.load_run(res.run_id)
    assert run.config["data_span"] == [str(then.index[0]), str(then.index[-1])] and run.config["data_rows"] == 800
    prepared = run.prepare(candles)  # the dataset grew at both ends since
    pd.testing.assert_frame_equal(run.predict(candles=candles), run.predictions, check_exact=True)
    assert run.data_note(prepared) is None and run.data_note(prepared, candles) is None
    # the same times with other prices (a dataset regenerated or corrected): said too, when candles are given
    repriced = candles.copy()
    repriced.iloc[500, repriced.columns.get_loc("close")] *= 1.01
    assert "no longer holds the candles this run learnt from" in run.data_note(run.prepare(repriced), repriced)
    assert run.data_note(run.prepare(repriced)) is None  # without candles only the windows are compared
    # rows inside the span replaced: the page says the data changed
    assert "has changed since this run was trained" in run.data_note(run.prepare(candles.drop(candles.index[300:340])))
    # a run saved before runs recorded their span rebuilds from the dataset's last max_rows, and says so
    old = registry.load_run(res.run_id)
    old.config.pop("data_span")
    assert "has changed since this run was trained" in old.data_note(old.prepare(candles))
    with pytest.raises(UserError, match="no longer holds the candles"):
        run.prepare(candles.iloc[950:])


def test_same_config_same_numbers(candles):
    a = _train(candles)
    b = _train(candles)
    assert a.run_id != b.run_id
    assert a.metrics == b.metrics and a.baselines == b.baselines
    assert a.history.drop(columns=["seconds", "samples_per_second"]).equals(
        b.history.drop(columns=["seconds", "samples_per_second"]))
    c = _train(candles, train={"seed": 1})
    assert c.metrics["log_loss"] != a.metrics["log_loss"]


def test_two_trainings_at_once_give_the_numbers_of_one_alone(candles):
    """Two jobs (two tabs) train in threads of one process while a page builds models in a third (the
    Architectures page, loading a run). Dropout drew from torch's global generator, so each took the others'
    draws and the same config gave other numbers; now a run's dropout has its own generator and model
    creation is seeded inside one lock."""
    import threading

    from core.inspect.receptive_field import create_registered

    name, mc = _model()
    mc = {**mc, "dropout": 0.5}
    d, t = DataConfig(**SMALL_DATA), TrainConfig(**SMALL_TRAIN)
    alone = train_run("synthetic-BTCUSDT-1h", name, mc, d, t, candles=candles)
    out, done = {}, threading.Event()

    def one(key):
        out[key] = train_run("synthetic-BTCUSDT-1h", name, mc, d, t, candles=candles)

    def pages():  # what the other pages do meanwhile: build a seeded model, load a run's model
        while not done.is_set():
            create_registered("cnn1d", 15, 3, {})
            registry.load_run(alone.run_id).model()

    threads = [threading.Thread(target=one, args=(k,)) for k in "ab"]
    busy = threading.Thread(target=pages)
    busy.start()
    [th.start() for th in threads]
    [th.join() for th in threads]
    done.set()
    busy.join()
    assert out["a"].metrics == out["b"].metrics == alone.metrics
    assert out["a"].history["val_loss"].tolist() == alone.history["val_loss"].tolist()


def test_stop_keeps_the_best_checkpoint_as_a_usable_run(candles):
    tok = CancelToken()

    def on(p):
        if p.stage == "epoch" and p.done == 1:
            tok.cancel()
    res = _train(candles, train={"epochs": 5}, progress=on, cancel=tok)
    assert res.status == "stopped" and len(res.history) == 1
    run = registry.load_run(res.run_id)
    assert run.metrics["status"] == "stopped" and run.config["status"] == "stopped"
    pd.testing.assert_frame_equal(run.predict(candles=candles), run.predictions)


def test_bad_settings_are_user_errors(candles):
    with pytest.raises(UserError):
        _train(candles, data={"window": 1})
    with pytest.raises(UserError, match="unknown model"):
        train_run("x", "no_such_model", {}, DataConfig(**SMALL_DATA), TrainConfig(**SMALL_TRAIN), candles=candles)


def test_walk_forward_covers_the_test_span_out_of_sample(candles):
    from core.train.evaluate import walk_forward

    name, mc = _model()
    events = []
    wf = walk_forward("synthetic-BTCUSDT-1h", name, mc, DataConfig(**SMALL_DATA),
                      TrainConfig(**{**SMALL_TRAIN, "epochs": 1}), k=3, candles=candles, progress=events.append,
                      name="three folds")
    # one progress bar for the whole evaluation: batch fractions run from fold 1 to fold 3 without going back
    # (stage messages - train, evaluate, baselines - stand at their fold's share too, never back at 0)
    batch = [e for e in events if e.stage == "batch"]
    fr = [e.fraction for e in events if e.fraction is not None]
    assert fr == sorted(fr) and fr[0] < 1 / 3 and fr[-1] == pytest.approx(1.0)
    assert len(fr) == len(events) - 1  # all but the opening "prepare" message
    assert batch[0].message.startswith("fold 1/3") and batch[-1].message.startswith("fold 3/3")
    assert any(e.stage == "baselines" and e.message.startswith("fold 3/3") for e in events)
    ts = wf.predictions["timestamp"]
    assert ts.is_monotonic_increasing and ts.is_unique
    assert sorted(wf.predictions["fold"].unique()) == [1, 2, 3]
    assert wf.metrics["n"] == len(wf.predictions) == sum(f["n_test"] for f in wf.folds)
    # each fold trains strictly before its test block
    for f in wf.folds:
        assert f["n_train"] > 0 and f["test_start"] < f["test_end"]
    assert set(wf.baselines) == {"majority", "logistic"} and "verdict" in wf.vs_best_baseline
    assert wf.baselines["logistic"]["description"].endswith("refitted on each fold's training rows")
    assert all(isinstance(f["warnings"], list) for f in wf.folds)
    from core.viz.train import fold_warnings

    assert fold_warnings([{"fold": 2, "warnings": ["Class 'flat' has no training samples."]}, {"fold": 3}]) == \
        ["Fold 2: Class 'flat' has no training samples."]
    # saved in the workspace and read back as it was
    from core.train.evaluate import delete_walk_forward, list_walk_forwards, load_walk_forward
    from core.train.metrics import HEADLINE

    assert wf.wf_id and [(d["wf_id"], d["name"]) for d in list_walk_forwards()] == [(wf.wf_id, "three folds")]
    back = load_walk_forward(wf.wf_id)
    pd.testing.assert_frame_equal(back.predictions, wf.predictions, check_exact=True)
    assert {k: back.metrics[k] for k in HEADLINE} == pytest.approx({k: wf.metrics[k] for k in HEADLINE})
    assert back.folds[2]["n_test"] == wf.folds[2]["n_test"]
    assert back.config["model_name"] == name and back.vs_best_baseline["verdict"] == wf.vs_best_baseline["verdict"]
    # it records the candles it learnt from, so a backtest of it notices a dataset changed since
    from core.backtest.api import walk_forward_inputs

    assert back.config["data_digest"] and walk_forward_inputs(wf.wf_id, candles).note is None
    repriced = candles.copy()
    repriced["volume"] *= 2
    assert "no longer holds the candles this evaluation learnt from" in walk_forward_inputs(wf.wf_id, repriced).note
    from core.viz.train import walk_forwards_table

    row = walk_forwards_table(list_walk_forwards()).iloc[0]
    assert row["id"] == wf.wf_id and row["folds"] == 3 and row["predictions"] == len(wf.predictions)
    assert row["CNN - baseline (points)"] == pytest.approx(100 * wf.vs_best_baseline["diff"])
    assert row["beats it"] == bool(wf.vs_best_baseline["beats"]) and row["labels"] == "direction3 h=4"
    with pytest.raises(UserError):
        load_walk_forward("../escape")
    delete_walk_forward(wf.wf_id)
    assert list_walk_forwards() == []


def test_on_real_btc_candles(shared_data):
    raw = pd.read_csv(shared_data / "binance_spot_BTCUSDT_1h.csv")
    ts_col = next(c for c in raw.columns if "time" in c.lower())
    ts = raw[ts_col]
    idx = pd.to_datetime(ts, unit="ms", utc=True) if np.issubdtype(ts.dtype, np.number) else \
        pd.to_datetime(ts, utc=True)
    c = raw.set_index(idx.rename("timestamp"))[["open", "high", "low", "close", "volume"]].astype(float)
    c = c[~c.index.duplicated()].sort_index().iloc[-1000:]
    c.attrs.update(source="binance", symbol="BTC/USDT", timeframe="1h")
    res = _train(c, train={"epochs": 1})
    assert res.metrics["n"] > 100 and 0 <= res.metrics["accuracy"] <= 1


def test_cli_train_json_and_runs_commands(workspace, candles, capsys):
    from core.cli import main
    from core.data.store import save_candles

    ds = save_candles(candles, "synthetic", "BTC/USDT", "1h").id
    env = {"CNN_LAB_WORKSPACE": str(workspace), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "core", "train", "--dataset", ds, "--model", "cnn1d", "--json",
           "--set", "model.channels=16", "--set", "layers=2", "--set", "data.window=16", "--set", "horizon=4",
           "--set", "train.epochs=2", "--set", "n_boot=100", "--set", "data.preset=chapter6"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)  # stdout is exactly one JSON object; the progress bar goes to stderr
    assert "[" in out.stderr and "epoch 2/2" in out.stderr and "100.0%" in out.stderr
    assert {"run_id", "metrics", "baselines", "vs_best_baseline"} <= set(obj)
    assert {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"} <= set(obj["metrics"])
    assert {"majority", "logistic"} <= set(obj["baselines"]) and obj["dataset_id"] == ds
    assert obj["epochs_run"] == 2 and obj["model_name"] == "cnn1d"
    rid = obj["run_id"]
    assert (workspace / "runs" / rid / "model.pt").is_file()

    def run(*a):
        capsys.readouterr()
        code = main(["runs", *a])
        o = capsys.readouterr()
        return code, o.out, o.err
    code, text, _ = run("list", "--json")
    assert code == 0 and [r["run_id"] for r in json.loads(text)["runs"]] == [rid]
    assert run("rename", rid, "cli run")[0] == 0
    code, text, _ = run("show", rid, "--json")
    shown = json.loads(text)
    assert shown["config"]["name"] == "cli run" and len(shown["history"]) == 2
    code, _, err = run("show", "../../etc")
    assert code == 2 and "not a valid run id" in err
    assert run("delete", rid)[0] == 0
    assert json.loads(run("list", "--json")[1])["runs"] == []
    capsys.readouterr()
    assert main(["train", "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    # walk-forward from the command line: out-of-sample metrics over the folds, no run folder
    assert main(["train", "--dataset", ds, "--model", "cnn1d", "--folds", "2", "--json", "--quiet",
                 "--set", "model.channels=8", "--set", "layers=2", "--set", "data.window=16", "--set", "horizon=4",
                 "--set", "train.epochs=1", "--set", "n_boot=100", "--set", "data.preset=chapter6"]) == 0
    wf = json.loads(capsys.readouterr().out)
    assert wf["mode"] == "walk_forward" and wf["n_folds"] == 2 and len(wf["folds"]) == 2
    assert wf["metrics"]["n"] == sum(f["n_test"] for f in wf["folds"]) and "logistic" in wf["baselines"]
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


# ---- mixed precision: the CUDA code path, run on CPU by letting autocast act there ----------------------------

@pytest.fixture
def amp_on_cpu(monkeypatch):
    """Give CPU the mixed-precision treatment CUDA gets: the same autocast / GradScaler code then runs here."""
    from core.train import trainer

    monkeypatch.setattr(trainer, "AMP_DEVICE_TYPES", ("cuda", "cpu"))
    return trainer


def _forward_dtypes(monkeypatch) -> list[torch.dtype]:
    """Record the dtype of every training-mode forward output of the models built from now on."""
    from core import models

    seen: list[torch.dtype] = []
    orig = models.create_model

    def create(*a, **k):
        m = orig(*a, **k)
        m.register_forward_hook(lambda mod, i, out: seen.append(out.dtype) if mod.training else None)
        return m

    monkeypatch.setattr(models, "create_model", create)  # train_run imports it from core.models when it runs
    return seen


@pytest.mark.parametrize("half", ["bf16", "fp16"])
def test_mixed_precision_trains_and_the_run_reloads_exactly(candles, amp_on_cpu, monkeypatch, half):
    if half == "fp16":  # a GPU without bf16: float16 with loss scaling
        monkeypatch.setattr(amp_on_cpu, "_half_dtype", lambda device: torch.float16)
    seen = _forward_dtypes(monkeypatch)
    res = _train(candles, train=dict(lr=1e-3, clip=1.0))
    assert set(seen) == {torch.bfloat16 if half == "bf16" else torch.float16}  # the steps ran in half precision
    assert res.config["precision"] == half and res.summary()["precision"] == half
    hist = res.history
    assert np.isfinite(hist[["train_loss", "val_loss"]].to_numpy()).all()
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0] + 0.05  # it learns, it does not diverge
    # stored predictions are float32 computations: a reload on a machine without mixed precision (a GPU run
    # opened on a laptop) reproduces them exactly
    monkeypatch.setattr(amp_on_cpu, "AMP_DEVICE_TYPES", ("cuda",))
    run = registry.load_run(res.run_id)
    assert run.config["precision"] == half
    pd.testing.assert_frame_equal(run.predict(candles=candles), run.predictions, check_exact=True)


def test_mixed_precision_is_off_without_amp_and_on_cpu(candles, monkeypatch):
    from core.train import trainer

    seen = _forward_dtypes(monkeypatch)
    res = _train(candles)  # CPU is not an AMP device: float32 even with amp=True (the default)
    assert set(seen) == {torch.float32} and res.config["precision"] == "fp32"
    monkeypatch.setattr(trainer, "AMP_DEVICE_TYPES", ("cuda", "cpu"))
    assert trainer.amp_dtype(torch.device("cpu"), TrainConfig(amp=False)) is None
    assert trainer.amp_dtype(torch.device("cpu"), TrainConfig()) == torch.bfloat16


def test_fp16_loss_scaling_skips_overflowing_steps(amp_on_cpu, monkeypatch):
    """float16 overflows where float32 does not: the GradScaler skips those steps instead of writing inf into
    the weights, and the fit still ends with finite weights."""
    from core.train.config import TrainConfig as TC
    from core.train.trainer import TensorSource, fit

    monkeypatch.setattr(amp_on_cpu, "_half_dtype", lambda device: torch.float16)
    g = torch.Generator().manual_seed(0)
    x = 30 * torch.randn(256, 4, 16, generator=g)  # large inputs: scaled float16 gradients overflow
    y = (x[:, 0, -1] > 0).long().numpy()
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 2))
    cfg = TC(epochs=3, batch_size=64, lr=3e-3, patience=0, warmup=0.0)
    fr = fit(model, TensorSource(x[:192], y[:192]), TensorSource(x[192:], y[192:]), cfg, 2, torch.device("cpu"))
    assert fr.precision == "fp16"
    # the initial scale 65536 overflows float16 gradients: the first steps are skipped while the scale drops
    assert fr.skipped_steps >= 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert np.isfinite(fr.history["val_loss"]).all()


def test_walk_forward_stop_ends_at_once_and_saves_nothing(candles, workspace):
    """Stop during a fold: the evaluation ends right there (no test scoring or baselines for the stopped
    fold, no later fold) and nothing is saved - the folds only make sense together."""
    from core.progress import Cancelled
    from core.train.evaluate import list_walk_forwards, walk_forward

    name, mc = _model()
    token, events = CancelToken(), []

    def progress(p):
        events.append(p)
        if p.stage == "epoch":  # the first fold finished an epoch: press Stop
            token.cancel()

    with pytest.raises(Cancelled):
        walk_forward("synthetic-BTCUSDT-1h", name, mc, DataConfig(**SMALL_DATA),
                     TrainConfig(**{**SMALL_TRAIN, "epochs": 3}), k=3, candles=candles, progress=progress,
                     cancel=token)
    after = events[next(i for i, e in enumerate(events) if e.stage == "epoch") + 1:]
    assert not any(e.stage in ("evaluate", "baselines") for e in after)
    assert not any(e.message.startswith("fold 2/3") for e in events)
    assert list_walk_forwards() == []


def test_ctrl_c_in_cli_training_keeps_the_run_like_stop(workspace, candles):
    """Ctrl-C used to end `python -m core train` with nothing saved; now it stops like the app's Stop button:
    the run is saved with its best epoch so far (status "stopped") and reloads."""
    import signal
    import threading
    import time

    from core.data.store import save_candles

    ds = save_candles(candles, "synthetic", "BTC/USDT", "1h").id
    env = {"CNN_LAB_WORKSPACE": str(workspace), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "core", "train", "--dataset", ds, "--model", "cnn1d", "--json",
           "--set", "model.channels=8", "--set", "layers=2", "--set", "data.window=16", "--set", "horizon=4",
           "--set", "train.epochs=500", "--set", "train.patience=0", "--set", "n_boot=100",
           "--set", "data.preset=chapter6"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.time() + 120
    while "epoch 3/500" not in "".join(err) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0, "".join(err)[-2000:]
    reader.join(timeout=10)
    assert "stopping: the run is saved with its best epoch so far" in "".join(err)
    obj = json.loads(out)
    assert obj["status"] == "stopped" and 2 <= obj["epochs_run"] < 500
    run = registry.load_run(obj["run_id"])
    assert run.metrics["status"] == "stopped" and len(run.history) == obj["epochs_run"]


def test_a_second_ctrl_c_quits_at_once_and_the_handler_is_restored(capfd):
    import os
    import signal

    from core.cli import ctrl_c_cancels

    before = signal.getsignal(signal.SIGINT)
    token = CancelToken()
    with pytest.raises(KeyboardInterrupt), ctrl_c_cancels(token, "what happens"):
        os.kill(os.getpid(), signal.SIGINT)
        assert token.cancelled and "stopping: what happens (Ctrl-C again" in capfd.readouterr().err
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_cli_folds_below_two_are_refused(workspace, capsys):
    # the Train page asks for 2..10 folds; the CLI says the same in a sentence (exit 2), before any work
    from core.cli import main

    for k in ("1", "-3"):
        assert main(["train", "--folds", k, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"--folds must be 2 or more (got {k})" in err and "Traceback" not in err
    assert not (workspace / "walkforward").exists() and not (workspace / "data").exists()


# ---- order-book runs: the book they read is checked, recorded and compared on reload --------------------------
OB_TRAIN = dict(epochs=1, batch_size=64, lr=3e-3, patience=0, n_boot=100, max_train_samples=128,
                baselines=["majority"])


def _probs(df):
    return df[[c for c in df if c.startswith("prob_")]].to_numpy()


def _stored(candles, symbol="BTC/USDT") -> str:
    from core.data.store import save_candles

    c = candles.copy()
    c.attrs.update(symbol=symbol)
    return save_candles(c, "synthetic", symbol, "1h").id


def test_orderbook_run_with_a_heatmap_dict_reloads_and_notes_a_replaced_book(candles):
    """The CLI/config.json form of `heatmap` (a dict) trains and reloads exactly; the run records its book
    (snapshots, span, fingerprint), and a book simulated again under the same id is said by data_note."""
    from core.data.orderbook import make_synthetic_order_book, order_book_info

    ds = _stored(candles)
    make_synthetic_order_book(ds, levels=10, seed=0)
    res = train_run(ds, "orderbook_cnn", {}, DataConfig(**{**SMALL_DATA, "encoding": {"heatmap": {"n_bins": 40}}}),
                    TrainConfig(**OB_TRAIN), candles=candles)
    run = registry.load_run(res.run_id)
    assert run.config["data_config"]["encoding"]["heatmap"] == {"n_bins": 40}
    rec = run.config["order_book"]
    info = order_book_info(f"{ds}-book")
    assert rec["book_id"] == info.id and rec["snapshots"] == info.snapshots and len(rec["digest"]) == 16
    np.testing.assert_allclose(_probs(run.predict(candles)), _probs(res.predictions), atol=1e-6)
    prepared = run.prepare(candles)
    assert run.data_note(prepared, candles) is None
    make_synthetic_order_book(ds, levels=10, seed=7)  # the Data page's "simulate book" again
    note = registry.load_run(res.run_id).data_note(prepared, candles)
    assert note and f"order book '{ds}-book' no longer holds the snapshots this run learnt from" in note


def test_orderbook_run_refuses_a_book_of_another_market(candles):
    from core.data.orderbook import make_synthetic_order_book

    btc = _stored(candles)
    eth = _stored(candles, "ETH/USDT")
    book = make_synthetic_order_book(eth, levels=10).id
    with pytest.raises(UserError, match="is of ETH/USDT, not of BTC/USDT"):
        train_run(btc, "orderbook_cnn", {}, DataConfig(**{**SMALL_DATA, "encoding": {"book_id": book}}),
                  TrainConfig(**OB_TRAIN), candles=candles)


def test_an_orderbook_run_saved_before_the_staleness_limit_reproduces_its_predictions(candles):
    """A run trained on a book that stopped early (saved before the limit existed: no staleness key in its
    config) still reloads with its old rows and gives its stored predictions; a new training is refused."""
    from core.data.orderbook import load_order_book, make_synthetic_order_book, save_order_book
    from core.workspace import read_json, atomic_write_json

    ds = _stored(candles)
    make_synthetic_order_book(ds, levels=10)
    book = load_order_book(f"{ds}-book")
    cut = candles.index[-200]
    save_order_book(book[book["timestamp"] <= cut], "stopped", "test", "BTC/USDT")
    data = DataConfig(**{**SMALL_DATA, "encoding": {"book_id": "stopped"}})
    with pytest.raises(UserError, match="covers"):
        train_run(ds, "orderbook_cnn", {}, data, TrainConfig(**OB_TRAIN), candles=candles)
    res = train_run(ds, "orderbook_cnn", {}, DataConfig(**{**SMALL_DATA, "encoding": {
        "book_id": "stopped", "max_staleness_seconds": None}}), TrainConfig(**OB_TRAIN), candles=candles)
    path = registry.run_path(res.run_id) / "config.json"
    cfg = read_json(path)
    del cfg["data_config"]["encoding"]["max_staleness_seconds"]  # as a run saved before the limit
    atomic_write_json(path, cfg)
    np.testing.assert_allclose(_probs(registry.load_run(res.run_id).predict(candles)), _probs(res.predictions),
                               atol=1e-6)
