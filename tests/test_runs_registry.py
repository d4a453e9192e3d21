"""The run registry on disk: save, list, load, rename, delete, schema upgrade, names that cannot escape."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from core.errors import UserError
from core.train import runs


def _save(run_id="20240101-000000-cnn-abc123", status="completed", created="2024-01-01T00:00:00+00:00"):
    ts = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    preds = pd.DataFrame({"timestamp": ts, "y_true": [0, 1, 2, 1, 0], "prob_down": [.5] * 5,
                          "prob_flat": [.3] * 5, "prob_up": [.2] * 5, "split": "test"})
    cfg = {"dataset_id": "synthetic-BTCUSDT-1h", "model_name": "cnn", "model_config": {}, "data_config": {},
           "train_config": {}, "class_names": ["down", "flat", "up"], "input_kind": "sequence",
           "feature_names": ["a", "b"], "in_channels": 2, "status": status, "created_at": created, "name": ""}
    met = {"status": status, "metrics": {"accuracy": 0.4, "macro_f1": float("nan")},
           "vs_best_baseline": {"diff": 0.01, "beats": False}}
    runs.save_run(run_id, cfg, pd.DataFrame({"epoch": [1], "val_loss": [1.0]}), met,
                  {"w": torch.ones(2)}, StandardScaler().fit(np.ones((3, 2))), preds)
    return run_id


def test_save_list_load_rename_delete(workspace):
    a = _save()
    b = _save("20240102-000000-cnn-def456", status="stopped", created="2024-01-02T00:00:00+00:00")
    folder = workspace / "runs" / a
    assert {p.name for p in folder.iterdir()} == {"config.json", "history.csv", "metrics.json", "model.pt",
                                                   "scaler.joblib", "predictions.parquet"}
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["schema_version"] == runs.SCHEMA_VERSION and cfg["run_id"] == a
    assert json.loads((folder / "metrics.json").read_text())["metrics"]["macro_f1"] is None  # strict JSON
    listed = runs.list_runs()
    assert [r.run_id for r in listed] == [b, a] and listed[0].status == "stopped"
    assert listed[1].metrics["accuracy"] == 0.4
    loaded = runs.load_run(a)
    assert str(loaded.predictions["timestamp"].dt.tz) == "UTC"
    assert list(loaded.predictions.columns) == ["timestamp", "y_true", "prob_down", "prob_flat", "prob_up", "split"]
    assert torch.equal(torch.load(folder / "model.pt", weights_only=True)["w"], torch.ones(2))
    assert loaded.scaler().n_features_in_ == 2
    runs.rename_run(a, "my first run")
    assert runs.load_run(a).config["name"] == "my first run"
    assert runs.runs_table().set_index("run_id").loc[a, "name"] == "my first run"
    with pytest.raises(UserError):
        runs.rename_run(a, "  ")
    runs.delete_run(a)
    assert [r.run_id for r in runs.list_runs()] == [b]
    with pytest.raises(UserError, match="no run"):
        runs.load_run(a)


def test_half_written_run_is_not_listed(workspace):
    (workspace / "runs" / "20240101-broken").mkdir(parents=True)
    (workspace / "runs" / "20240101-broken" / "history.csv").write_text("epoch\n1\n")
    assert runs.list_runs() == []


@pytest.mark.parametrize("bad", ["../escape", "..", "a/b", "/etc", ""])
def test_run_names_cannot_escape_the_workspace(bad):
    with pytest.raises(UserError):
        runs.load_run(bad)
    with pytest.raises(UserError):
        runs.delete_run(bad)


def test_new_run_ids_are_unique_and_safe(workspace):
    from datetime import datetime, timezone

    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    a = runs.new_run_id("resnet/../x", {"k": 1}, now)
    assert a.startswith("20240501-120000-resnet----x-") and "/" not in a
    (workspace / "runs" / a).mkdir()
    assert runs.new_run_id("resnet/../x", {"k": 1}, now) == a + "-2"


def test_a_v0_config_is_upgraded(workspace):
    rid = "legacy-run"
    folder = workspace / "runs" / rid
    folder.mkdir(parents=True)
    v0 = {"model": "cnn1d", "dataset": "synthetic-BTCUSDT-1h", "classes": ["down", "up"],
          "features": ["ret", "rsi", "atr"], "config": {"model": {"width": 8}, "data": {"window": 32},
                                                        "train": {"epochs": 3}}}
    (folder / "config.json").write_text(json.dumps(v0))
    loaded = runs.load_run(rid)
    c = loaded.config
    assert c["schema_version"] == runs.SCHEMA_VERSION
    assert (c["model_name"], c["dataset_id"], c["class_names"]) == ("cnn1d", "synthetic-BTCUSDT-1h", ["down", "up"])
    assert c["feature_names"] == ["ret", "rsi", "atr"] and c["in_channels"] == 3
    assert c["model_config"] == {"width": 8} and c["data_config"] == {"window": 32}
    assert c["train_config"] == {"epochs": 3} and c["input_kind"] == "sequence"
    assert [r.run_id for r in runs.list_runs()] == [rid]
    with pytest.raises(UserError, match="newer"):
        runs.upgrade_config({"schema_version": runs.SCHEMA_VERSION + 1})
