"""The one-click demo pipeline on a tiny config: the offline market -> the quick model -> baselines -> the
out-of-sample backtest, with one progress stream, a saved summary, and numbers that agree with the Backtest
page's own path for the same run."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from core.demo import last_demo, run_demo
from core.errors import UserError
from core.progress import CancelToken, Cancelled

TINY = {"data.max_rows": 1500, "data.preset": "chapter6", "data.window": 16, "data.horizon": 4,
        "train.epochs": 1, "train.n_boot": 100}


def test_demo_runs_the_whole_path_and_saves_its_summary(workspace):
    from core.backtest.api import backtest_run
    from core.train.runs import load_run

    events = []
    res = run_demo(progress=events.append, overrides=TINY)
    # the model is a normal run of the registry, trained with the quick preset's model and settings
    run = load_run(res.run_id)
    assert run.config["model_name"] == res.model_name == "cnn1d"
    assert re.fullmatch(r"demo \d{4}-\d\d-\d\d \d\d:\d\d UTC \(quick preset\)", run.config["name"])  # two demos differ
    assert run.config["data_config"]["preset"] == "chapter6" and run.config["data_config"]["label"] == "direction3"
    assert run.config["train_config"]["lr"] == 2e-3  # the quick preset's, not the TrainConfig default
    assert res.dataset_id == "synthetic-BTCUSDT-1h"
    # model against baselines on the same test split
    assert set(res.baselines) == {"majority", "logistic"}
    assert res.metrics["n"] == res.baselines["majority"]["n"] > 0
    assert res.vs_best_baseline["verdict"]
    # out of sample: the backtest span is the test split, and equals the Backtest page's own result
    preds = run.predictions
    assert res.test_start == str(preds["timestamp"].min()) and res.test_end == str(preds["timestamp"].max())
    page = backtest_run(res.run_id)
    assert res.backtest["total_return"] == pytest.approx(page.metrics["total_return"])
    assert res.buy_and_hold["total_return"] == pytest.approx(page.buy_and_hold["total_return"])
    assert list(res.equity.columns) == ["strategy", "buy_and_hold"]
    np.testing.assert_allclose(res.equity["strategy"].to_numpy(), page.equity.to_numpy())
    # the runs table (Experiments) shows those default-rule figures at once, without a second backtest
    from core.sweep.compare import runs_overview

    row = runs_overview().set_index("run_id").loc[res.run_id]
    assert row["bt_return"] == pytest.approx(page.metrics["total_return"])
    assert row["bh_return"] == pytest.approx(page.buy_and_hold["total_return"])
    # one progress stream from 0 to 100 through every stage
    assert all(e.stage == "demo" for e in events)
    done = [e.done for e in events]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 100
    stages = {e.metrics.get("stage") for e in events}
    assert {"data", "prepare", "train", "evaluate", "baselines", "backtest"} <= stages
    assert set(res.seconds) >= {"data", "train", "backtest", "total"}
    # saved in the workspace, read back after a restart
    summary = json.loads((workspace / "demo" / "summary.json").read_text())
    assert summary["run_id"] == res.run_id
    again = last_demo()
    assert again is not None and again.run_id == res.run_id
    np.testing.assert_allclose(again.equity["strategy"].to_numpy(), res.equity["strategy"].to_numpy())


def test_cancel_and_bad_settings(workspace):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_demo(cancel=token, overrides=TINY)
    with pytest.raises(UserError, match="unknown backtest setting"):
        run_demo(overrides={**TINY, "backtest.nope": 1})
    with pytest.raises(UserError):
        run_demo(overrides={**TINY, "data.window": 1})
    assert last_demo() is None
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_cli_demo_and_last_demo_forgets_a_deleted_run(workspace, capsys):
    from core.cli import main
    from core.train.runs import delete_run

    args = ["demo", "--json"] + [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert main(args + ["--set", "backtest.threshold=0.4", "--set", "backtest.sizing=half_kelly"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backtest_config"]["threshold"] == 0.4 and out["backtest_config"]["sizing"] == "half_kelly"
    assert {"run_id", "metrics", "baselines", "backtest", "buy_and_hold", "seconds"} <= set(out)
    assert last_demo().run_id == out["run_id"]
    delete_run(out["run_id"])
    assert last_demo() is None  # a demo whose run was deleted is not shown
