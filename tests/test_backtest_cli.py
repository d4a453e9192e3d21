"""backtest_run on a saved run (its test span), and `python -m core backtest` with --json and the CSVs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.backtest.api import (backtest_baseline, backtest_run, no_trades_note, run_threshold_sweep,
                               strongest_probability)
from core.cli import main
from core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
NO_RULES = {"stop_loss": "none", "trailing_atr_k": 0, "take_profit": "none", "max_hold_hours": 0,
            "signal_exit": "weak", "daily_dd_halve": 0, "weekly_dd_halt": 0}


@pytest.fixture
def dataset(workspace):
    from core.data.store import save_candles
    from core.data.synthetic import generate_market

    c = next(iter(generate_market("BTC/USDT", "1h", periods=900, seed=5).values()))
    return save_candles(c, "synthetic", "BTC/USDT", "1h").id, c


def _save_run(ds_id: str, candles: pd.DataFrame, kind: str, test_from: int = 600, **extra) -> str:
    """A run folder whose test predictions are either an oracle (knows the next bar) or noise."""
    from core.train.runs import new_run_id, save_run

    o = candles["open"].to_numpy()
    t = np.arange(test_from, len(candles) - 2)
    if kind == "oracle":  # the signal at t's close is traded from t+1's open to t+2's open
        up = o[t + 2] > o[t + 1]
        p_up = np.where(up, 0.8, 0.1)
        p_down = np.where(up, 0.1, 0.8)
    else:
        rng = np.random.default_rng(0)
        p_up = rng.uniform(0.2, 0.7, len(t))
        p_down = np.clip(0.9 - p_up, 0, 1)
    preds = pd.DataFrame({"timestamp": candles.index[t], "y_true": 0, "prob_down": p_down,
                          "prob_flat": 1 - p_up - p_down, "prob_up": p_up, "split": "test"})
    cfg = {"dataset_id": ds_id, "model_name": "cnn1d", "class_names": ["down", "flat", "up"], "in_channels": 1,
           "input_kind": "sequence", "status": "completed", "created_at": "2026-01-01T00:00:00+00:00",
           "name": f"{kind} run", "model_config": {}, "data_config": {}, "train_config": {}, **extra}
    rid = new_run_id("cnn1d", {"kind": kind})
    save_run(rid, cfg, pd.DataFrame({"epoch": [1]}), {"status": "completed"}, {}, None, preds)
    return rid


def test_backtest_run_uses_the_runs_test_span_and_its_dataset(dataset):
    ds, candles = dataset
    oracle = _save_run(ds, candles, "oracle")
    res = backtest_run(oracle, NO_RULES)
    assert res.start == candles.index[600] and res.end == candles.index[len(candles) - 3]
    assert res.label == "run oracle run" and res.metrics["n_trades"] > 50
    # knowing the next bar beats buy and hold even after taker fees; noise does not make money after fees
    assert res.metrics["total_return"] > 0.2 and res.metrics["total_return"] > res.buy_and_hold["total_return"]
    noise = backtest_run(_save_run(ds, candles, "noise"), {**NO_RULES, "threshold": 0.45})
    assert noise.metrics["n_trades"] > 20 and noise.metrics["fees_paid"] > 0
    assert noise.metrics["total_return"] < res.metrics["total_return"]
    # narrowing the span; fewer bars, same engine
    part = backtest_run(oracle, NO_RULES, start=candles.index[700], end=candles.index[800])
    assert len(part.equity) == 101 and part.start == candles.index[700]
    sweep = run_threshold_sweep(oracle, NO_RULES)
    assert sweep["threshold"].iloc[0] == pytest.approx(0.34)
    assert (sweep.loc[sweep.threshold >= 0.8, "n_trades"] == 0).all()
    assert sweep.loc[sweep.threshold == 0.5, "total_return"].item() == pytest.approx(res.metrics["total_return"])
    # the threshold in use is on the curve, even off the grid or below it (the chart marks it there)
    low = run_threshold_sweep(oracle, {**NO_RULES, "threshold": 0.3})
    assert low["threshold"].iloc[0] == pytest.approx(0.3) and low["threshold"].is_monotonic_increasing
    assert (run_threshold_sweep(oracle, {**NO_RULES, "threshold": 0.55})["threshold"] == 0.55).sum() == 1
    preds = __import__("core.train.runs", fromlist=["load_run"]).load_run(oracle).predictions
    assert strongest_probability(preds) == pytest.approx(0.8)
    assert np.isnan(strongest_probability(preds, start="2030-01-01"))
    # long only trades on P(up) alone: the "highest" a no-trade message quotes is P(up)'s
    skewed = preds.assign(prob_up=0.3, prob_down=0.92)
    assert strongest_probability(skewed, long_only=True) == pytest.approx(0.3)
    classes = ["down", "flat", "up"]
    note = no_trades_note(skewed, classes, 0.9, True)
    assert "P(up) never exceeds the threshold 0.90" in note and "highest is 0.30" in note
    assert "highest is 0.92" in no_trades_note(skewed, classes, 0.95, False)
    assert "the other side is more likely" in no_trades_note(skewed, classes, 0.2, True)
    assert "bars give a signal: none could be filled" in no_trades_note(skewed, classes, 0.9, False)
    with pytest.raises(UserError, match="no run"):
        backtest_run("no-such-run")


def test_a_run_whose_dataset_was_replaced_is_a_sentence(dataset):
    from core.data.store import save_candles
    from core.data.synthetic import generate_market

    ds, candles = dataset
    rid = _save_run(ds, candles, "oracle")
    other = next(iter(generate_market("BTC/USDT", "1h", periods=300, start="2020-01-01", seed=1).values()))
    save_candles(other, "synthetic", "BTC/USDT", "1h")
    with pytest.raises(UserError, match="match no candle"):
        backtest_run(rid)


def test_cli_json_and_csvs(dataset, workspace, capsys):
    ds, candles = dataset
    rid = _save_run(ds, candles, "oracle")
    # the CSVs go inside the workspace: a relative path is taken from its root, an absolute one inside it works
    rets, trades = workspace / "exports" / "r.csv", workspace / "t.csv"
    rc = main(["backtest", "--run", rid, "--json", "--set", "signal_exit=weak", "--set", "stop_loss=fixed",
               "--returns-csv", "exports/r.csv", "--trades-csv", str(trades)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor",
                "n_trades", "avg_holding", "exposure", "turnover", "fees_paid", "volatility",
                "max_drawdown_duration"):
        assert key in out["strategy"] and key in out["buy_and_hold"], key
    assert out["config"]["stop_loss"] == "fixed" and out["span"]["bars"] == len(candles) - 2 - 600
    r = pd.read_csv(rets)
    assert list(r.columns[:2]) == ["timestamp", "strategy_return"] and len(r) == out["span"]["bars"]
    assert np.prod(1 + r["strategy_return"]) - 1 == pytest.approx(out["strategy"]["total_return"])
    assert len(pd.read_csv(trades)) == out["strategy"]["n_trades"]

    assert main(["backtest", "--baseline", "ma_cross", "--dataset", ds, "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert base["label"] == "baseline ma_cross" and base["span"]["bars"] == len(candles)
    assert main(["backtest", "--baseline", "ma_cross", "--dataset", ds]) == 0
    assert "Sharpe" in capsys.readouterr().out

    assert main(["backtest", "--run", "missing-run"]) == 2
    assert "there is no run" in capsys.readouterr().err
    assert main(["backtest", "--baseline", "ma_cross", "--dataset", ds, "--set", "sizing=kelly"]) == 2
    assert "needs a run's probabilities" in capsys.readouterr().err
    assert main(["backtest", "--run", rid, "--set", "threshold=2"]) == 2


def test_csv_paths_outside_the_workspace_are_refused(dataset, workspace, tmp_path, capsys):
    # house rule: every file the app writes stays inside its workspace (like `features --out`)
    ds, _ = dataset
    outside = tmp_path / "outside.csv"
    for flag, path in (("--returns-csv", str(outside)), ("--trades-csv", "../escape.csv"),
                       ("--returns-csv", "/etc/cnn_lab_probe.csv")):
        assert main(["backtest", "--baseline", "buy_and_hold", "--dataset", ds, flag, path]) == 2
        err = capsys.readouterr().err
        assert f"{flag} '{path}' is outside the workspace ({workspace}); give a path inside it" in err
    assert not outside.exists() and not (tmp_path / "escape.csv").exists()
    assert not Path("/etc/cnn_lab_probe.csv").exists()
    assert main(["backtest", "--baseline", "buy_and_hold", "--dataset", ds, "--returns-csv", "."]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_python_m_core_backtest_is_wired(dataset):
    ds, _ = dataset
    proc = subprocess.run([sys.executable, "-m", "core", "backtest", "--baseline", "buy_and_hold", "--dataset", ds,
                           "--json", "--set", "stop_loss=none", "--set", "trailing_atr_k=0",
                           "--set", "take_profit=none", "--set", "max_hold_hours=0", "--set", "weekly_dd_halt=0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # the baseline "buy and hold" with every rule off is the benchmark itself
    assert out["strategy"]["total_return"] == pytest.approx(out["buy_and_hold"]["total_return"])
    assert out["strategy"]["n_trades"] == 1


def test_baseline_refuses_probability_sizing(dataset):
    _, candles = dataset
    with pytest.raises(UserError, match="fixed sizing"):
        backtest_baseline("ma_cross", candles, {"sizing": "half_kelly"})


def test_a_replaced_dataset_is_a_sentence_on_the_page_and_in_core(dataset):
    from core.data.store import save_candles
    from core.data.synthetic import generate_market
    from core.errors import UserError
    from streamlit.testing.v1 import AppTest

    ds, candles = dataset
    rid = _save_run(ds, candles, "oracle")
    later = next(iter(generate_market("BTC/USDT", "1h", start="2030-01-01", periods=900, seed=5).values()))
    save_candles(later, "synthetic", "BTC/USDT", "1h")  # the same id, other dates: replaced since training
    with pytest.raises(UserError, match="replaced since training"):
        backtest_run(rid)
    at = AppTest.from_file(str(ROOT / "pages" / "7_Backtest.py"), default_timeout=120)
    at.session_state["bt_source"] = f"run:{rid}"
    at.run()
    assert not at.exception
    assert any("replaced since training" in e.value for e in at.error)


def test_a_dataset_with_other_prices_since_training_is_said_everywhere(dataset, capsys):
    """The same times with other prices (the synthetic market made again with another seed, a corrected
    file): a run's predictions were made on the old candles, so its backtest says so (page, CLI, core);
    a dataset that only grew since does not."""
    from core.data.store import save_candles
    from core.data.synthetic import generate_market
    from core.train.trainer import data_span
    from streamlit.testing.v1 import AppTest

    ds, candles = dataset
    rid = _save_run(ds, candles, "oracle", **data_span(candles))
    assert backtest_run(rid, NO_RULES).note == ""
    later = candles.iloc[-50:].copy()
    later.index = later.index + pd.Timedelta(hours=50)
    save_candles(pd.concat([candles, later]), "synthetic", "BTC/USDT", "1h")  # 50 bars more, the rest the same
    assert backtest_run(rid, NO_RULES).note == ""
    other = next(iter(generate_market("BTC/USDT", "1h", periods=900, seed=6).values()))
    assert other.index.equals(candles.index)
    save_candles(other, "synthetic", "BTC/USDT", "1h")
    res = backtest_run(rid, NO_RULES)
    assert "no longer holds the candles this run learnt from" in res.note
    assert main(["backtest", "--run", rid, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "warning: The dataset" in err and "no longer holds" in json.loads(out)["note"]
    at = AppTest.from_file(str(ROOT / "pages" / "7_Backtest.py"), default_timeout=120)
    at.session_state["bt_source"] = f"run:{rid}"
    at.run()
    assert not at.exception and not at.error
    assert any("no longer holds the candles this run learnt from" in w.value for w in at.warning)


def test_cli_backtests_a_saved_walk_forward(dataset, capsys):
    """`--walk-forward ID` trades the stitched out-of-sample predictions of every fold on its dataset; an
    oracle series makes money, noise does not, and a wrong combination or id is a sentence."""
    from core.train.evaluate import WalkForwardResult, save_walk_forward

    ds, candles = dataset
    o = candles["open"].to_numpy()
    t = np.arange(300, len(candles) - 2)
    up = o[t + 2] > o[t + 1]
    preds = pd.DataFrame({"timestamp": candles.index[t], "y_true": 0, "prob_down": np.where(up, 0.1, 0.8),
                          "prob_flat": 0.1, "prob_up": np.where(up, 0.8, 0.1), "split": "test",
                          "fold": np.repeat([1, 2, 3], -(-len(t) // 3))[:len(t)]})
    cfg = {"dataset_id": ds, "model_name": "cnn1d", "class_names": ["down", "flat", "up"],
           "created_at": "2026-01-01T00:00:00+00:00", "name": "oracle folds"}
    wf_id = save_walk_forward(WalkForwardResult(preds, [{"fold": i} for i in (1, 2, 3)], {}, {}, {}, cfg))
    assert main(["backtest", "--walk-forward", wf_id, "--json", "--set", "threshold=0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["strategy"]["total_return"] > 0.5 and out["strategy"]["n_trades"] > 10
    assert out["span"]["start"].startswith(f"{candles.index[300]:%Y-%m-%d}") and out["label"] == "walk-forward oracle folds"
    assert main(["backtest", "--walk-forward", wf_id, "--dataset", ds]) == 2
    assert "--dataset goes with --baseline" in capsys.readouterr().err
    assert main(["backtest", "--walk-forward", "no-such-wf"]) == 2
    assert "no walk-forward evaluation" in capsys.readouterr().err
