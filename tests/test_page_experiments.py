"""The Experiments page in AppTest: the runs table (filter), comparing runs (curves, bars, equity), rename,
delete, export, import (a hostile zip is refused in the page), and a sweep started from the page."""
from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.page_helpers import horizontal_rows, row_keys

ROOT = Path(__file__).resolve().parents[1]
SMALL_DATA = dict(preset="chapter6", window=16, horizon=4, threshold=0.002, max_rows=1200)
SMALL_TRAIN = dict(epochs=1, batch_size=64, lr=3e-3, patience=0, n_boot=100, baselines=["majority"])


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """One real tiny run (cnn1d) trained once, as a run zip, plus the candles it was trained on."""
    from core.data.synthetic import generate_market
    from core.train.archive import export_run_zip
    from core.train.trainer import train_run

    candles = next(iter(generate_market("BTC/USDT", "1h", periods=1200, seed=11).values()))
    ws = tmp_path_factory.mktemp("page_src_ws")
    old = os.environ.get("CNN_LAB_WORKSPACE")
    os.environ["CNN_LAB_WORKSPACE"] = str(ws)
    try:
        res = train_run("synthetic-BTCUSDT-1h", "cnn1d", {}, SMALL_DATA, SMALL_TRAIN, candles=candles, name="alpha cnn")
        blob = export_run_zip(res.run_id)
    finally:
        if old is None:
            os.environ.pop("CNN_LAB_WORKSPACE", None)
        else:
            os.environ["CNN_LAB_WORKSPACE"] = old
    return res.run_id, blob, candles


def _store(candles) -> None:
    """The runs' dataset (the page's backtests load the candles of a run's dataset)."""
    from core.data.store import save_candles

    save_candles(candles, "synthetic", "BTC/USDT", "1h")


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "8_Experiments.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def _table(at, *columns: str):
    """The st.dataframe that has all `columns` (AppTest dataframes carry no widget key)."""
    for df in at.dataframe:
        v = df.value
        if all(c in v.columns for c in columns):
            return v
    raise AssertionError(f"no table with columns {columns}")


RUNS = ("run_id", "bt_return")
SUMMARY = ("n_seeds", "vs_best")
CELLS = ("cell", "run_id", "status", "error")


def _specs(at) -> str:
    return " ".join(c.proto.spec for c in at.get("plotly_chart"))


def test_runs_table_compare_rename_delete_export_import(zips, workspace):
    from core.sweep.compare import backtest_available
    from core.train import runs as registry
    from core.train.archive import import_run_zip

    rid_a, zip_a, candles = zips
    _store(candles)
    at = _page()
    assert any("No runs yet" in i.value for i in at.info)
    import_run_zip(zip_a)
    rid_b = import_run_zip(zip_a)  # a second copy under a new id, renamed: two runs to compare
    registry.rename_run(rid_b, "beta copy")
    met = registry.runs_root() / rid_b / "metrics.json"
    met.write_text(json.dumps(dict(json.loads(met.read_text()), status="early_stopped")))
    at.run()
    table = _table(at, *RUNS)
    # statuses and the caption in words, not code names
    assert "stopped early" in set(table["status"]) and "early_stopped" not in set(table["status"])
    runs_caption = next(c.value for c in at.caption if "runs. Metrics are on each run's test split" in c.value)
    assert not any(w in runs_caption for w in ("vs_baseline", "beats_baseline", "bt_", "bh_return"))
    assert "buy and hold" in runs_caption
    assert set(table["run_id"]) == {rid_a, rid_b} and set(table["model"]) == {"cnn1d"}
    assert table["balanced_accuracy"].notna().all() and table["best_baseline"].eq("majority").all()
    # filter and sort
    at.text_input(key="exp_filter").input("beta").run()
    assert list(_table(at, *RUNS)["run_id"]) == [rid_b]
    at.text_input(key="exp_filter").input("").run()
    at.multiselect(key="exp_models").set_value(["cnn1d"]).run()
    assert len(_table(at, *RUNS)) == 2
    at.multiselect(key="exp_models").set_value([]).run()
    at.selectbox(key="exp_sort").select("name").run()
    assert list(_table(at, *RUNS)["name"]) == ["alpha cnn", "beta copy"]
    # compare both: overlaid curves and metric bars with the baselines marked
    at.multiselect(key="exp_pick").set_value([rid_a, rid_b]).run()
    assert not at.exception, at.exception
    specs = _specs(at)
    assert "alpha cnn" in specs and "beta copy" in specs and "best baseline" in specs and "val_loss" in specs
    if backtest_available():
        at.toggle(key="exp_equity").set_value(True).run()
        assert not at.exception, at.exception
        assert "buy and hold" in _specs(at) and "equity" in _specs(at)
        assert _table(at, *RUNS)["bt_return"].notna().all()  # the table shows the figures
        # the zip kept the run's fingerprint of its candles: no note; other prices since training: said
        assert not at.warning, [w.value for w in at.warning]
        repriced = candles.copy()
        repriced[["open", "high", "low", "close"]] *= 1.01
        _store(repriced)
        at.run()
        assert any("no longer holds the candles this run learnt from" in w.value for w in at.warning)
        _store(candles)
        at.run()
    # export is offered as a zip download
    assert any(getattr(b.proto, "label", "") == "Export zip" for b in at.get("download_button"))
    # rename and delete through the page
    at.selectbox(key="exp_manage").select(rid_a).run()
    at.text_input(key=f"exp_rename_{rid_a}").input("renamed run").run()
    at.button(key="exp_rename_btn").click().run()
    assert registry.load_run(rid_a).config["name"] == "renamed run"
    assert at.button(key="exp_delete_btn").disabled
    at.checkbox(key=f"exp_delete_sure_{rid_a}").check().run()
    at.button(key="exp_delete_btn").click().run()
    assert not at.exception, at.exception
    assert [r.run_id for r in registry.list_runs()] == [rid_b]
    # import: the exported zip comes back; a hostile one is refused with a sentence and changes nothing
    at.file_uploader(key="exp_upload").set_value(("run.zip", zip_a, "application/zip")).run()
    at.button(key="exp_import_btn").click().run()
    assert not at.exception, at.exception
    assert any(f"Imported as run {rid_a}" in s.value for s in at.success)
    assert {r.run_id for r in registry.list_runs()} == {rid_a, rid_b}
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("x/../../escape.txt", b"hello")
    at.file_uploader(key="exp_upload").set_value(("evil.zip", evil.getvalue(), "application/zip")).run()
    at.button(key="exp_import_btn").click().run()
    assert any("outside its run folder" in e.value for e in at.error)
    assert {r.run_id for r in registry.list_runs()} == {rid_a, rid_b}
    assert not (workspace.parent / "escape.txt").exists()
    # a run damaged on disk is left out of the table (every page keeps working) and offered for deletion
    (workspace / "runs" / rid_b / "metrics.json").write_text('{"metrics": "x"}')
    at.run()
    assert not at.exception, at.exception
    assert list(_table(at, *RUNS)["run_id"]) == [rid_a]
    assert any("Damaged runs (1)" in e.label for e in at.expander)
    assert any(rid_b in m.value and "must be an object of metrics" in m.value for m in at.markdown)
    at.button(key=f"exp_delete_damaged_{rid_b}").click().run()
    assert not at.exception, at.exception
    assert registry.damaged_runs() == [] and not (workspace / "runs" / rid_b).exists()


def test_sweep_from_the_page(zips, workspace):
    from ui.jobs import forget_job, get_job

    _store(zips[2])
    at = _page()
    at.text_area(key="exp_grid").input("grid: {model: [cnn1d, nosuchnet]}\n").run()
    assert any("unknown model 'nosuchnet'" in e.value.lower() for e in at.error)
    assert at.button(key="exp_sweep_start").disabled
    grid = ("name: page\npreset: quick\ndataset: synthetic-BTCUSDT-1h\n"
            "data: {preset: chapter6, window: 16, horizon: 4, max_rows: 1000}\n"
            "train: {epochs: 1, n_boot: 100, baselines: [majority]}\ngrid:\n  seed: [0, 1]\n")
    at.text_area(key="exp_grid").input(grid).run()
    assert not at.error and not at.button(key="exp_sweep_start").disabled
    assert any("2 cells" in c.value for c in at.caption)
    at.number_input(key="exp_jobs").set_value(1).run()
    at.button(key="exp_sweep_start").click().run()
    assert not at.exception, at.exception
    sid = at.session_state["_session_id"]
    job = get_job(sid, "sweep")
    assert job is not None
    job.thread.join(240)  # AppTest cannot fire run_every: wait, then rerun like the poll would
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert not at.exception, at.exception
    assert any("completed: 2/2 cells saved as runs" in s.value for s in at.success)
    summ = _table(at, *SUMMARY)
    assert len(summ) == 1 and summ.loc[0, "n_seeds"] == 2 and "±" in summ.iloc[0]["test balanced_accuracy (mean ± std)"]
    assert "±" in summ.iloc[0]["val balanced_accuracy (mean ± std)"]  # the ranking chose on validation
    assert any("Ranked by validation balanced_accuracy" in c.value for c in at.caption)
    assert "mean ± std across seeds" in _specs(at) and "order: validation" in _specs(at)
    assert "top on validation" in _specs(at) and not any("vs_best" in c.value for c in at.caption)
    cells = _table(at, *CELLS)
    assert list(cells["status"]) == ["completed", "completed"]
    assert set(_table(at, *RUNS)["run_id"]) == set(cells["run_id"])
    # "compare this sweep's runs" fills the comparison
    at.button(key="exp_sweep_compare").click().run()
    assert set(at.multiselect(key="exp_pick").value) == set(cells["run_id"])
    (first,) = [p.name for p in (workspace / "sweeps").iterdir()]
    meta = json.loads((workspace / "sweeps" / first / "sweep.json").read_text())
    assert meta["status"] == "completed" and meta["n_cells"] == 2

    # a long sweep, cancelled from the page while its first cell trains
    at.text_area(key="exp_grid").input(grid.replace("epochs: 1", "epochs: 400, patience: 0").replace("[0, 1]", "[0, 1, 2]")).run()
    at.button(key="exp_sweep_start").click().run()
    job = get_job(sid, "sweep")
    deadline = time.time() + 120
    while time.time() < deadline and not job.done:
        last = job.snapshot()[1].get("sweep")
        cell = (last.metrics.get("cells") or {}).get(0, {}) if last else {}
        if cell.get("stage") == "train" and (cell.get("fraction") or 0) >= 2 / 400:
            break
        time.sleep(0.2)
    at.run()
    assert not at.exception, at.exception
    assert at.get("progress") and "progress" in _table(at, "cell", "progress", "message").columns
    at.button(key="exp_sweep_cancel").click().run()
    job.thread.join(240)
    at.run()
    at.run()
    assert any("cancelled: 1/3 cells saved as runs" in w.value for w in at.warning)
    statuses = list(_table(at, *CELLS)["status"])
    assert statuses == ["stopped by the user", "cancelled", "cancelled"]
    forget_job(sid, "sweep")


def test_settings_survive_a_visit_to_another_page(zips, workspace):
    """Filters, sort, picked runs and the sweep grid are still what the user chose after visiting another
    page; runs handed over by another page still win over the kept filters."""
    from core.train import runs as registry
    from core.train.archive import import_run_zip

    rid_a, zip_a, candles = zips
    _store(candles)
    import_run_zip(zip_a)
    rid_b = import_run_zip(zip_a)
    registry.rename_run(rid_b, "beta copy")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/8_Experiments.py").run()
    at.text_input(key="exp_filter").input("beta").run()
    at.selectbox(key="exp_sort").select("name").run()
    at.multiselect(key="exp_pick").set_value([rid_b]).run()
    grid = "name: mine\npreset: quick\ndataset: synthetic-BTCUSDT-1h\ngrid:\n  model: [tcn]\n  seed: [4, 5]\n"
    at.text_area(key="exp_grid").input(grid).run()
    at.number_input(key="exp_jobs").set_value(3).run()
    assert not at.exception, at.exception
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception and "exp_filter" not in at.session_state  # Streamlit dropped the page's widgets
    at.switch_page("pages/8_Experiments.py").run()
    assert not at.exception, at.exception
    assert at.text_input(key="exp_filter").value == "beta"
    assert at.selectbox(key="exp_sort").value == "name"
    assert at.multiselect(key="exp_pick").value == [rid_b]
    assert list(_table(at, *RUNS)["run_id"]) == [rid_b]
    assert at.text_area(key="exp_grid").value == grid and at.number_input(key="exp_jobs").value == 3
    assert any("2 cells" in c.value for c in at.caption)  # the kept grid is the one in use
    # "compare with other runs" from the home page: the handed-over run shows and is picked, filters or not
    at.switch_page("pages/1_Data.py").run()
    at.session_state["exp_pick_request"] = [rid_a]
    at.switch_page("pages/8_Experiments.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="exp_pick").value == [rid_a] and at.text_input(key="exp_filter").value == ""
    assert "exp_pick_request" not in at.session_state


def test_comparing_runs_on_other_data_or_targets_says_so(zips, workspace):
    """Two runs on different markets and targets (a 3-class and a 2-class label) side by side: the page
    warns that their figures are not like for like; two runs alike get no such warning."""
    from core.train import runs as registry
    from core.train.archive import import_run_zip
    from core.workspace import atomic_write_json, read_json

    rid_a, zip_a, candles = zips
    _store(candles)
    import_run_zip(zip_a)
    rid_b = import_run_zip(zip_a)
    at = _page()
    at.multiselect(key="exp_pick").set_value([rid_a, rid_b]).run()
    assert not any("not like for like" in w.value for w in at.warning)
    cfg_path = registry.runs_root() / rid_b / "config.json"
    cfg = read_json(cfg_path)
    cfg["dataset_id"] = "synthetic-ETHUSDT-1h"
    cfg["data_config"]["label"] = "binary"
    atomic_write_json(cfg_path, cfg)
    at.run()
    assert not at.exception, at.exception
    warn = [w.value for w in at.warning if "not like for like" in w.value]
    assert len(warn) == 1 and "datasets (synthetic-BTCUSDT-1h; synthetic-ETHUSDT-1h)" in warn[0]
    assert "targets (direction3, horizon 4, threshold 0.002; binary, horizon 4)" in warn[0]
    assert "2-class and a 3-class" in warn[0]


def test_rename_and_export_wrap_on_a_narrow_window(zips, workspace):
    """In fifths of a 1,000 px window (sidebar open) the buttons read "Rena..." and "Expor...": they are a
    wrapping row at their own width now, beside the name."""
    from core.train.archive import import_run_zip

    _, zip_a, candles = zips
    _store(candles)
    import_run_zip(zip_a)
    at = _page()
    keys = [row_keys(row) for row in horizontal_rows(at)]
    assert any(len(k) == 2 and k[0] == "exp_rename_btn" and "exp_export" in k[1] for k in keys), keys
