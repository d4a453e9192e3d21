"""Sweep grids: parsing YAML/JSON as plain data, expansion into validated cells, and the ranking with its
spread across seeds (no training here: fast)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.sweep.grid import expand_grid, load_grid, parse_grid
from core.sweep.runner import ranking_note, summarize, summary_columns, top_pick_note

GRID_YAML = """
name: zoo
preset: quick
data: {max_rows: 3000, preset: chapter6}
train: {epochs: 2}
grid:
  model: [cnn1d, tcn]
  seed: [0, 1, 2]
  symbol: [BTC/USDT, ETH/USDT]
  window: [16, 32]
  train.lr: [0.001, 0.003]
"""


def test_grid_expands_to_every_combination_with_each_value_in_its_place():
    spec = load_grid(GRID_YAML)
    cells = expand_grid(spec)
    assert len(cells) == 2 * 3 * 2 * 2 * 2
    seen = set()
    for c in cells:
        p = c.params
        assert c.model_name == p["model"]
        assert c.train_config["seed"] == p["seed"] and c.train_config["lr"] == p["train.lr"]
        assert c.data_config["window"] == p["window"]
        assert c.dataset_id == {"BTC/USDT": "synthetic-BTCUSDT-1h", "ETH/USDT": "synthetic-ETHUSDT-1h"}[p["symbol"]]
        # the file's base settings reach every cell; the preset fills the rest
        assert c.data_config["max_rows"] == 3000 and c.data_config["preset"] == "chapter6"
        assert c.train_config["epochs"] == 2 and c.train_config["batch_size"] == 128
        seen.add(json.dumps(p, sort_keys=True))
        assert "seed" not in c.group and f"model={p['model']}" in c.group
    assert len(seen) == len(cells)
    # the last axis varies fastest, the first slowest
    assert [c.params["train.lr"] for c in cells[:2]] == [0.001, 0.003]
    assert {c.params["model"] for c in cells[:24]} == {"cnn1d"}
    # cells that differ only by seed share a group; 2 models x 2 symbols x 2 windows x 2 lrs = 16 groups
    assert len({c.group for c in cells}) == 16


def test_json_file_and_dataset_axis(tmp_path):
    p = tmp_path / "g.json"
    p.write_text(json.dumps({"name": "j", "dataset": "import-MYCOIN-1h",
                             "grid": {"dataset": ["import-MYCOIN-1h", "bybit_linear-BTCUSDT-4h"],
                                      "model.dropout": [0.1]}, "model": "cnn1d"}))
    cells = expand_grid(load_grid(p))
    assert [c.dataset_id for c in cells] == ["import-MYCOIN-1h", "bybit_linear-BTCUSDT-4h"]
    assert all(c.model_config.get("dropout") == 0.1 for c in cells)
    # symbol axis keeps the base dataset's source and timeframe
    cells = expand_grid(parse_grid({"dataset": "bybit_linear-BTCUSDT-4h", "grid": {"symbol": ["ETH/USDT"]}}))
    assert cells[0].dataset_id == "bybit_linear-ETHUSDT-4h"
    # a dataset kept under a name suffix (the Data page's variants) sweeps too, its suffix carried along
    cells = expand_grid(parse_grid({"dataset": "synthetic-BTCUSDT-1h-short",
                                    "grid": {"dataset": ["synthetic-BTCUSDT-1h-short"], "seed": [0]}}))
    assert cells[0].dataset_id == "synthetic-BTCUSDT-1h-short"
    cells = expand_grid(parse_grid({"dataset": "synthetic-BTCUSDT-1h-short", "grid": {"symbol": ["ETH/USDT"]}}))
    assert cells[0].dataset_id == "synthetic-ETHUSDT-1h-short"
    with pytest.raises(UserError, match="not a dataset id"):
        expand_grid(parse_grid({"grid": {"dataset": ["nodashes"]}}))


@pytest.mark.parametrize("text, words", [
    ("grid: {seed: [0, 1]}\nfoo: 1\n", "unknown grid file key"),
    ("name: x\n", "needs a 'grid'"),
    ("grid: {seed: []}\n", "has no values"),
    ("grid: {seed: [1, 1]}\n", "repeats a value"),
    ("grid: {model: [cnn1d, nosuchnet]}\n", "unknown model 'nosuchnet'"),
    ("grid: {nosuchkey: [1, 2]}\n", "unknown key"),
    ("grid: {train.nosuch: [1]}\n", "unknown train setting"),
    ("grid: {window: [1]}\n", "window must be at least 2"),
    ("model: cnn1d\ngrid: {model.nosuch: [1]}\n", "has no setting"),
    ("grid: {seed: [0, 1.5]}\n", "grid cell 1 (seed=1.5): train.seed must be a whole number, got 1.5"),
    ("grid: {train.epochs: [1, abc]}\n", "grid cell 1 (train.epochs=abc): train.epochs must be a whole number, got 'abc'"),
    ("grid: {train.batch_size: [2.5], seed: [0, 1]}\n", "grid cell 0 (train.batch_size=2.5, seed=0): train.batch_size must be a whole number"),
    ("grid: {train.amp: [maybe]}\n", "train.amp must be true or false, got 'maybe'"),
    ("grid: {data.max_rows: [-5]}\n", "data.max_rows must be empty (all rows) or a positive whole number, got -5"),
    ("grid: {train.lr: [.nan]}\n", "train.lr must be a finite number, got nan"),
    ("model: cnn1d\ngrid: {model.channels: [abc]}\n", "grid cell 0 (model.channels=abc): cnn1d: setting 'channels' must be a whole number"),
    ("train: {epochs: abc}\ngrid: {seed: [0]}\n", "data/train sections: train.epochs must be a whole number, got 'abc'"),
    ("grid: {seed: [0, 1], window: [8, 16, 32]}\nmax_cells: 5\n", "6 cells, more than max_cells=5"),
    ("grid:\n  seed: [0, 1\n", "not valid YAML at line"),
    ("{\"grid\": ", "not valid JSON"),
    ("rank_by: profit\ngrid: {seed: [0]}\n", "rank_by must be one of"),
    ("grid: {dataset: [import-X-1h], symbol: [BTC/USDT]}\n", "either the 'dataset' axis"),
])
def test_bad_grids_are_refused_with_a_sentence(text, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        expand_grid(load_grid(text))


def test_grid_values_are_converted_to_the_config_types():
    cells = expand_grid(load_grid("train: {amp: 'no', baselines: majority}\ngrid: {window: ['16', 32.0], train.lr: ['0.01']}\n"))
    assert [c.data_config["window"] for c in cells] == [16, 32]
    assert all(type(c.data_config["window"]) is int and c.train_config["lr"] == 0.01 for c in cells)
    assert all(c.train_config["amp"] is False and c.train_config["baselines"] == ["majority"] for c in cells)


def test_yaml_is_read_as_plain_data_only(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"grid: {{seed: [0]}}\nname: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(UserError, match="not valid YAML"):
        load_grid(evil)
    assert not marker.exists()


def _table(groups: dict[str, list[float]], metric: str = "balanced_accuracy") -> pd.DataFrame:
    rows = []
    for g, vals in groups.items():
        for seed, v in enumerate(vals):
            rows.append({"cell": len(rows), "group": g, "seed": seed, "model": g, "dataset": "d",
                         "run_id": f"r{len(rows)}", metric: v, "vs_baseline": v - 0.4, "beats_baseline": v > 0.45})
    return pd.DataFrame(rows)


def test_ranking_shows_mean_std_and_which_gaps_are_noise():
    t = _table({"steady": [0.50, 0.52, 0.51], "worse": [0.40, 0.41, 0.42], "noisy": [0.49, 0.55, 0.43]})
    s = summarize(t, "balanced_accuracy")
    assert list(s["group"]) == ["steady", "noisy", "worse"] and list(s["rank"]) == [1, 2, 3]
    row = s.set_index("group")
    assert row.loc["steady", "balanced_accuracy_mean"] == pytest.approx(0.51)
    assert row.loc["steady", "balanced_accuracy_std"] == pytest.approx(np.std([0.50, 0.52, 0.51], ddof=1))
    assert row.loc["steady", "n_seeds"] == 3 and row.loc["steady", "beats_baseline"] == "3/3"
    assert row.loc["steady", "vs_best"] == "top on test"
    assert row.loc["noisy", "vs_best"] == "within seed noise (-0.020)"   # 0.49 vs 0.51 with std 0.06
    assert row.loc["worse", "vs_best"] == "worse beyond seed noise (-0.100)"
    assert row.loc["steady", "test balanced_accuracy (mean ± std)"] == "0.510 ± 0.010"
    assert s.attrs["ranked_on"] == "test" and "flatters the winner" in ranking_note(s, "balanced_accuracy")
    # lower is better for log loss; a single seed cannot tell noise
    t2 = _table({"a": [0.9], "b": [0.7]}, "log_loss")
    s2 = summarize(t2, "log_loss")
    assert list(s2["group"]) == ["b", "a"] and s2.loc[1, "vs_best"] == "one seed: spread unknown"
    # failed cells (no run) are left out, not counted as zeros
    t3 = _table({"a": [0.5, 0.6]})
    t3.loc[1, "run_id"] = None
    assert summarize(t3).loc[0, "n_seeds"] == 1


def test_the_noise_test_counts_only_seeds_that_have_the_figure():
    """A seed whose ranking metric is undefined (ROC AUC with a class absent) is no evidence: the standard
    error divides by the seeds with a figure, and a group left with one such seed has no known spread."""
    t = _table({"best": [0.60, 0.62, 0.61], "gappy": [0.55, np.nan, np.nan], "three": [0.50, 0.70, 0.60]},
               "roc_auc")
    s = summarize(t, "roc_auc").set_index("group")
    assert s.loc["gappy", "n_seeds"] == 3 and s.loc["gappy", "roc_auc_n"] == 1
    assert s.loc["gappy", "vs_best"] == "one seed: spread unknown"
    bound = _welch_bound([0.5, 0.7, 0.6], [0.60, 0.62, 0.61], comparisons=2)
    assert _code_bound([0.5, 0.7, 0.6], [0.60, 0.62, 0.61], comparisons=2) == pytest.approx(bound)
    assert s.loc["three", "vs_best"] == "within seed noise (-0.010)" and bound > 0.01
    t.loc[t["group"] == "three", "roc_auc"] = [0.50, np.nan, 0.49]  # two figures: SE over 2, not 3
    s = summarize(t, "roc_auc").set_index("group")
    bound = _welch_bound([0.5, 0.49], [0.60, 0.62, 0.61], comparisons=2)
    assert _code_bound([0.5, 0.49], [0.60, 0.62, 0.61], comparisons=2) == pytest.approx(bound)
    assert s.loc["three", "vs_best"] == "worse beyond seed noise (-0.115)" and bound < 0.115


def _code_bound(a: list[float], b: list[float], comparisons: int) -> float:
    from core.sweep.runner import noise_bound

    return noise_bound(np.std(a, ddof=1), len(a), np.std(b, ddof=1), len(b), comparisons=comparisons)


def _welch_bound(a: list[float], b: list[float], comparisons: int) -> float:
    from scipy import stats

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float(stats.t.ppf(1 - 0.05 / comparisons / 2, df) * np.sqrt(va + vb))


def test_the_noise_test_does_not_call_identical_settings_worse():
    """With 2 or 3 seeds a fixed 2 SE calls identical settings "worse" one time in six or more: the test is
    Welch's t (its critical value at Welch-Satterthwaite degrees of freedom), corrected for the k - 1
    comparisons with the top group, and the ranking's note says so."""
    # two seeds each, a 0.03 gap with a 0.014 standard error: beyond 2 SE, not beyond Welch's t (df 2)
    s = summarize(_table({"a": [0.52, 0.50], "b": [0.47, 0.49]})).set_index("group")
    assert s.loc["b", "vs_best"] == "within seed noise (-0.030)"
    note = ranking_note(summarize(_table({"a": [0.52, 0.50], "b": [0.47, 0.49], "c": [0.4, 0.41]})),
                        "balanced_accuracy")
    assert "worse than the top group beyond seed noise (Welch t test, 95 %, corrected for 2 comparisons)" in note
    assert "vs_best" not in note and '"vs top group" column' in note
    # identical settings, seeds only noise: few groups are called worse, even with 6 groups of 3 seeds
    rng = np.random.default_rng(0)
    worse = total = 0
    for _ in range(150):
        s = summarize(_table({f"g{g}": list(0.4 + rng.normal(0, 0.02, 3)) for g in range(6)}))
        worse += int(s["vs_best"].str.startswith("worse").sum())
        total += len(s) - 1
    assert worse / total < 0.05


def test_ranking_chooses_on_validation_and_reports_test_beside_it():
    """Choosing the best of N settings by their test score flatters the winner: groups are ranked on the
    validation split, and the test figures are shown untouched by the choice."""
    t = _table({"lucky on test": [0.56, 0.58, 0.57], "good on val": [0.50, 0.52, 0.51]})
    t["val_balanced_accuracy"] = [0.45, 0.46, 0.44, 0.55, 0.54, 0.56]
    s = summarize(t, "balanced_accuracy")
    assert list(s["group"]) == ["good on val", "lucky on test"] and s.attrs["ranked_on"] == "validation"
    row = s.set_index("group")
    assert row.loc["good on val", "val balanced_accuracy (mean ± std)"] == "0.550 ± 0.010"
    assert row.loc["good on val", "test balanced_accuracy (mean ± std)"] == "0.510 ± 0.010"
    assert row.loc["lucky on test", "vs_best"] == "worse beyond seed noise (-0.100)"  # the gap on validation
    assert row.loc["good on val", "vs_best"] == "top on validation"
    assert summary_columns(s, "balanced_accuracy")[3:5] == ["val balanced_accuracy (mean ± std)",
                                                            "test balanced_accuracy (mean ± std)"]
    assert "played no part in the choice" in ranking_note(s, "balanced_accuracy")
    # vs_baseline has no validation figure: ranked on test, and the note says the choice is optimistic
    s2 = summarize(t, "vs_baseline")
    assert s2.attrs["ranked_on"] == "test" and list(s2["group"]) == ["lucky on test", "good on val"]
    assert "no validation figure" in ranking_note(s2, "vs_baseline")


def test_stopped_cells_stay_out_of_the_spread_and_mixed_test_sets_are_said():
    """A cancelled sweep's half-trained cell would mix training length into the seed spread; groups scored on
    different markets or test spans are not like for like: both are said beside the ranking."""
    t = _table({"a": [0.50, 0.52, 0.10], "b": [0.40, 0.41, 0.42]})
    t["status"] = ["completed", "completed", "stopped", "completed", "early_stopped", "completed"]
    t["test_start"], t["n_test"] = "2025-12-22 19:00", 209
    s = summarize(t, "balanced_accuracy")
    row = s.set_index("group")
    assert row.loc["a", "n_seeds"] == 2 and row.loc["a", "balanced_accuracy_mean"] == pytest.approx(0.51)
    note = ranking_note(s, "balanced_accuracy")
    assert "1 cell stopped before training finished" in note and "not like for like" not in note
    assert "test span" not in summary_columns(s, "balanced_accuracy")
    t.loc[t["group"] == "b", "test_start"] = "2025-12-23 10:00"  # a longer window: fewer, later samples
    t.loc[t["group"] == "b", "n_test"] = 194
    t.loc[t["group"] == "b", "dataset"] = "e"
    s = summarize(t, "balanced_accuracy")
    note = ranking_note(s, "balanced_accuracy")
    assert "different markets (d, e) and different test spans" in note and "not like for like" in note
    assert "test span" in summary_columns(s, "balanced_accuracy")
    assert s.set_index("group").loc["b", "test span"] == "194 samples from 2025-12-23 10:00"


def test_a_train_seed_axis_is_the_seed():
    from core.sweep.grid import grid_preview

    spec, cells, _ = grid_preview("name: s\npreset: quick\ngrid: {model: [cnn1d], train.seed: [0, 1]}")
    assert len(cells) == 2 and len({c.group for c in cells}) == 1 and {c.seed for c in cells} == {0, 1}
    with pytest.raises(UserError, match="both 'seed' and 'train.seed'"):
        grid_preview("name: s\npreset: quick\ngrid: {seed: [0], train.seed: [0, 1]}")


def test_experiment_figures_and_tables():
    from core.viz import experiments as vx

    idx = pd.date_range("2025-01-01", periods=5, freq="h", tz="UTC")
    bh = pd.Series([100.0, 101, 99, 102, 103], idx)
    fig = vx.equity_figure({"a": pd.Series([10_000.0, 10_100, 10_050, 10_200, 10_300], idx),
                            "b": pd.Series([5_000.0, 4_900, 4_950, 5_100, 5_000], idx)}, {"a": bh, "b": bh * 2})
    names = [t.name for t in fig.data]
    assert names == ["a", "b", "buy and hold (a)"]  # one buy-and-hold line for runs on the same span
    assert fig.data[0].y[0] == 1.0 and fig.data[1].y[-1] == pytest.approx(1.0)
    bars = vx.metric_bars({"r1": {"model": {"accuracy": 0.5}, "best_baseline": {"accuracy": 0.45}},
                           "r2": {"model": {"accuracy": 0.55}, "best_baseline": {}}}, keys=("accuracy",))
    assert [t.type for t in bars.data] == ["bar", "scatter", "bar"] and bars.data[1].y[0] == 0.45
    plan = [{"index": i, "name": f"cell {i}"} for i in range(3)]
    t = vx.sweep_progress_table({0: {"status": "running", "fraction": 0.5, "message": "epoch 2"},
                                 "2": {"status": "failed", "fraction": 1.0, "message": "bad"}}, plan)
    assert list(t["status"]) == ["running", "waiting", "failed"] and list(t["progress"]) == [50, 0, 100]
    cells = _table({"x": [0.5, 0.52], "y": [0.4, 0.45]})
    cells["best_baseline_balanced_accuracy"] = 0.33
    s = summarize(cells)
    fig = vx.sweep_figure(s, cells, "balanced_accuracy")
    assert list(fig.data[0].y) == ["x", "y"] and len(fig.data[1].x) == 4  # bars per group, a dot per seed
    assert fig.data[0].error_x.array[0] == pytest.approx(np.std([0.5, 0.52], ddof=1))


def test_the_shipped_example_grid_is_valid():
    from pathlib import Path

    import core.sweep

    cells = expand_grid(load_grid(Path(core.sweep.__file__).parent / "example_grid.yaml"))
    assert len(cells) == 12 and {c.model_name for c in cells} == {"cnn1d", "tcn"}
    assert {c.dataset_id for c in cells} == {"synthetic-BTCUSDT-1h", "synthetic-ETHUSDT-1h"}


def test_grid_preview_of_the_default_grid_and_a_bad_one():
    from core.sweep.grid import default_grid_text, grid_preview

    spec, cells, preview = grid_preview(default_grid_text("synthetic-BTCUSDT-1h"))
    assert len(cells) == 6 and preview.startswith("6 cells: ") and preview.endswith("model=tcn seed=2")  # all 6 named
    assert {c.model_name for c in cells} == {"cnn1d", "tcn"} and spec.rank_by == "balanced_accuracy"
    with pytest.raises(UserError):
        grid_preview("grid: {model: [nosuchnet]}\n")


def test_two_sweeps_started_in_one_second_get_two_folders(workspace):
    from core.sweep.runner import _new_sweep_id

    a, b = _new_sweep_id("grid"), _new_sweep_id("grid")
    assert a != b and (workspace / "sweeps" / a).is_dir() and (workspace / "sweeps" / b).is_dir()


def test_a_ranking_of_different_targets_says_they_are_not_on_one_scale():
    """A grid over the label: a 2-class and a 3-class balanced accuracy are not one scale (chance 0.50 vs
    0.33), so the ranking's note says so and points to vs_baseline."""
    from core.sweep.runner import cells_table

    cells = expand_grid(parse_grid({"name": "labels", "preset": "quick", "dataset": "synthetic-BTCUSDT-1h",
                                    "grid": {"data.label": ["direction3", "binary"], "seed": [0, 1]}}))
    results = [{"index": c.index, "status": "completed", "run_id": f"r{c.index}",
                "metrics": {"balanced_accuracy": 0.4 + 0.1 * c.index}} for c in cells]
    s = summarize(cells_table([c.to_dict() for c in cells], results), "balanced_accuracy")
    note = ranking_note(s, "balanced_accuracy")
    assert "different targets (binary, horizon 12; direction3, horizon 12, threshold 0.002)" in note
    assert "A 2-class and a 3-class score are not on one scale (chance 0.50 vs 0.33)" in note
    assert "Rank by vs_baseline" in note and "target" in summary_columns(s, "balanced_accuracy")
    # one target, other settings (seeds only): no such note
    same = expand_grid(parse_grid({"name": "one", "preset": "quick", "grid": {"seed": [0, 1]}}))
    s1 = summarize(cells_table([c.to_dict() for c in same],
                               [{"index": c.index, "run_id": f"r{c.index}", "metrics": {"balanced_accuracy": 0.5}}
                                for c in same]), "balanced_accuracy")
    assert "different targets" not in ranking_note(s1, "balanced_accuracy")


def test_one_setting_written_two_ways_is_refused_not_run_twice_under_wrong_labels():
    base = {"name": "t", "preset": "quick", "dataset": "synthetic-BTCUSDT-1h"}
    for grid, both in (({"window": [16, 32], "data.window": [64]}, "'window' and 'data.window'"),
                       ({"lr": [0.001], "train.lr": [0.003]}, "'lr' and 'train.lr'"),
                       ({"seed": [0, 1], "train.seed": [2]}, "'seed' and 'train.seed'")):
        with pytest.raises(UserError, match=f"the grid has both {both} axes; keep one"):
            parse_grid({**base, "grid": grid})
    # data.window alone is the window axis: labelled and grouped as `window`
    cells = expand_grid(parse_grid({**base, "grid": {"data.window": [16, 32]}}))
    assert [c.data_config["window"] for c in cells] == [16, 32] and [c.params for c in cells] == [
        {"window": 16}, {"window": 32}]


def test_a_top_group_that_trails_on_test_is_said_plainly():
    """The group ranked first on validation is only "top on validation": when its test figure is below other
    groups' and below the best baseline, the ranking's note says so in a plain sentence."""
    t = _table({"model=tcn": [0.40, 0.41, 0.42], "model=cnn1d": [0.50, 0.52, 0.51], "model=lstm": [0.44, 0.45, 0.46]})
    t["val_balanced_accuracy"] = [0.60, 0.61, 0.62, 0.50, 0.51, 0.52, 0.40, 0.41, 0.42]
    t["best_baseline_balanced_accuracy"] = 0.45
    s = summarize(t, "balanced_accuracy")
    assert list(s["group"])[0] == "model=tcn" and s.loc[0, "vs_best"] == "top on validation"
    note = top_pick_note(s, "balanced_accuracy")
    assert note.startswith("model=tcn was picked on validation, but on the test split it is below model=cnn1d "
                           "and model=lstm and below the best baseline")
    assert note in ranking_note(s, "balanced_accuracy")
    # a top group that also leads on test and beats the baseline: nothing to say
    t["best_baseline_balanced_accuracy"] = 0.30
    t["val_balanced_accuracy"] = [0.40, 0.41, 0.42, 0.60, 0.61, 0.62, 0.50, 0.51, 0.52]
    s = summarize(t, "balanced_accuracy")
    assert s.loc[0, "group"] == "model=cnn1d" and top_pick_note(s, "balanced_accuracy") == ""
    # ranked on vs_baseline (test only): below 0 is below the best baseline
    s2 = summarize(_table({"a": [0.30, 0.31], "b": [0.20, 0.21]}, "vs_baseline"), "vs_baseline")
    assert top_pick_note(s2, "vs_baseline") == "a ranks first on the test split, but it is below the best baseline."
