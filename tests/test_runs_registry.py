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


def test_a_run_folder_linked_out_of_the_workspace_is_refused_in_a_sentence(workspace, tmp_path):
    outside = tmp_path / "outside" / "victim"
    outside.mkdir(parents=True)
    (outside / "keep.txt").write_text("precious")
    (workspace / "runs").mkdir(parents=True, exist_ok=True)
    (workspace / "runs" / "evil-link").symlink_to(outside, target_is_directory=True)
    for action in (runs.load_run, runs.delete_run):
        with pytest.raises(UserError, match="not a valid run id"):  # was a raw ValueError traceback
            action("evil-link")
    assert (outside / "keep.txt").read_text() == "precious"


def test_a_run_saved_with_the_old_macro_f1_reads_back_with_todays(workspace, tmp_path):
    """Before 2026-11-29 an empty class ("flat" at threshold 0) counted as an F1 of 0 in the average: such
    runs are read back with macro F1 over the classes that occur, so the overview compares like with like."""
    rid = _save()
    path = workspace / "runs" / rid / "metrics.json"
    doc = json.loads(path.read_text())
    old = {"accuracy": 0.6, "macro_f1": (0.5 + 0.0 + 0.7) / 3, "confusion": [[5, 0, 5], [0, 0, 0], [3, 0, 7]],
           "per_class": {"down": {"f1": 0.5}, "flat": {"f1": 0.0}, "up": {"f1": 0.7}}}
    doc["metrics"] = old
    doc["baselines"] = {"majority": dict(old, macro_f1=0.1, per_class={"down": {"f1": 0.2}, "flat": {"f1": 0.0},
                                                                        "up": {"f1": 0.0}})}
    path.write_text(json.dumps(doc))
    back = runs.load_run(rid).metrics
    assert back["metrics"]["macro_f1"] == pytest.approx(0.6)  # (0.5 + 0.7) / 2
    assert back["baselines"]["majority"]["macro_f1"] == pytest.approx(0.1)  # (0.2 + 0.0) / 2
    assert runs.runs_table().set_index("run_id").loc[rid, "macro_f1"] == pytest.approx(0.6)


def test_run_names_are_at_most_100_characters(workspace):
    a = _save()
    with pytest.raises(UserError, match="at most 100 characters"):
        runs.rename_run(a, "x" * 101)
    runs.rename_run(a, "  " + "x" * 100 + "  ")
    assert runs.load_run(a).config["name"] == "x" * 100
    with pytest.raises(UserError, match="at most 100 characters"):  # refused before any training
        from core.train.trainer import train_run

        train_run("no-such-dataset", "cnn1d", name="y" * 1500)


def test_new_run_ids_are_unique_and_safe(workspace):
    from datetime import datetime, timezone

    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    a = runs.new_run_id("resnet/../x", {"k": 1}, now)
    assert a.startswith("20240501-120000-resnet----x-") and "/" not in a
    assert (workspace / "runs" / a).is_dir()  # reserved at once: a run finishing in the same second gets -2
    assert runs.new_run_id("resnet/../x", {"k": 1}, now) == a + "-2"
    assert runs.run_documents() == []  # reserved folders without a config are not runs (yet)


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


def _damage(folder, name: str, content: bytes | None) -> None:
    f = folder / name
    f.unlink() if content is None else f.write_bytes(content)


def test_a_damaged_run_is_left_out_of_every_list_and_shown_for_deletion(workspace):
    """One malformed run must not take down every page that lists runs: it is left out of list_runs and
    listed by damaged_runs with what is wrong, and can be deleted."""
    good = _save()
    cases = {
        "20240102-000000-cnn-aaaaaa": ("metrics.json", b'{"metrics": "x"}', "'metrics' must be an object"),
        "20240102-000000-cnn-bbbbbb": ("metrics.json", b"{not json", "metrics.json cannot be read"),
        "20240102-000000-cnn-cccccc": ("config.json", b"[]", "config.json must hold an object"),
        "20240102-000000-cnn-dddddd": ("config.json", b'{"schema_version": 1, "model_name": "cnn"}',
                                       "config.json has no valid 'dataset_id'"),
        "20240102-000000-cnn-eeeeee": ("metrics.json", b'{"baselines": {"majority": {"accuracy": "high"}}}',
                                       "baselines.majority.accuracy must be a number"),
    }
    for rid, (name, content, _) in cases.items():
        _damage(workspace / "runs" / _save(rid), name, content)
    unfinished = workspace / "runs" / "20240103-000000-cnn-ffffff"
    unfinished.mkdir()
    assert [r.run_id for r in runs.list_runs()] == [good] and list(runs.runs_table()["run_id"]) == [good]
    broken = dict(runs.damaged_runs())
    assert set(broken) == set(cases)  # the folder without config.json may still be being written
    for rid, (_, _, words) in cases.items():
        assert words in broken[rid], (rid, broken[rid])
        with pytest.raises(UserError, match="run " + rid):
            runs.load_run(rid)
    later = dict(runs.damaged_runs(now=unfinished.stat().st_mtime + runs.UNFINISHED_GRACE_S + 1))
    assert "save that never finished" in later[unfinished.name]
    for rid in [*cases, unfinished.name]:
        runs.delete_run(rid)
    assert runs.damaged_runs() == [] and [r.run_id for r in runs.list_runs()] == [good]


@pytest.mark.parametrize("name, content, words", [
    ("model.pt", b"PK\x03\x04 truncated", "model.pt is damaged"),
    ("model.pt", None, "model.pt is missing"),
    ("scaler.joblib", b"\x80\x04", "scaler.joblib is damaged"),
    ("scaler.joblib", None, "scaler.joblib is missing"),
    ("predictions.parquet", b"PAR1 truncated", "predictions.parquet is damaged"),
])
def test_a_damaged_run_file_is_a_sentence_that_says_what_to_do(workspace, name, content, words):
    rid = _save()
    folder = workspace / "runs" / rid
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_name": "cnn1d"}))  # a registered model
    _damage(folder, name, content)
    run = runs.load_run(rid)  # the documents are fine: the run still lists and opens
    read = {"model.pt": lambda: run.model(), "scaler.joblib": run.scaler,
            "predictions.parquet": lambda: run.predictions}[name]
    with pytest.raises(UserError, match=f"{words}.*Delete the run .*runs delete {rid}"):
        read()


def test_an_unreadable_history_leaves_the_run_usable(workspace):
    rid = _save()
    (workspace / "runs" / rid / "history.csv").write_bytes(b'"unterminated\n1,2\n')
    assert runs.load_run(rid).history.empty
    (workspace / "runs" / rid / "history.csv").write_text("val_loss\n1.0\n0.9\n")
    assert list(runs.load_run(rid).history["epoch"]) == [1, 2]  # numbered, so the curves can be drawn


def test_run_statuses_read_as_words_in_the_pickers():
    from core.train.runs import status_words

    assert [status_words(s) for s in ("completed", "early_stopped", "stopped", "failed: NaN loss")] == \
        ["completed", "stopped early", "stopped by the user", "failed: NaN loss"]
