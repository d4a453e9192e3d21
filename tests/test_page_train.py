"""The Train page in AppTest: tiny training through the page's own Start button, results, past runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "4_Train.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _small(at: AppTest, epochs: int, **numbers) -> None:
    """A tiny, quick configuration of the page's widgets (1,500 candles, 16-bar windows, an 8-channel cnn1d)."""
    for key, value in {"train_rows": 1500, "train_window": 16, "train_horizon": 4, "train_epochs": epochs,
                       "train_mc_quick_cnn1d_channels": 8, **numbers}.items():
        at.number_input(key=key).set_value(value)
    at.selectbox(key="train_feat").select("chapter6")


def test_train_from_the_page_and_view_results(workspace):
    from ui.jobs import forget_job, get_job

    at = _page()
    assert any("No runs yet" in i.value for i in at.info)
    # model settings are widgets built from the model's ModelSpec.defaults
    _small(at, epochs=2, train_mc_quick_cnn1d_layers=2, train_threshold=0.3)  # in %, as on the Indicators page
    at.text_input(key="train_name").input("page run")
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    # nothing but the progress and the curves: no internal objects written onto the page
    assert not at.get("help") and not at.get("json")  # a bare expression once wrote both configs here
    assert at.button(key="train_start").disabled  # at once, not after the next rerun: no second run by mistake
    sid = at.session_state["_session_id"]
    job = get_job(sid, "train")
    assert job is not None
    job.thread.join(240)  # AppTest cannot fire run_every: wait for the thread, then rerun like the poll would
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert not at.exception, at.exception
    runs = list((workspace / "runs").iterdir())
    assert len(runs) == 1
    cfg = json.loads((runs[0] / "config.json").read_text())
    assert cfg["name"] == "page run" and cfg["data_config"]["window"] == 16
    assert cfg["train_config"]["epochs"] == 2 and cfg["data_config"]["preset"] == "chapter6"
    assert cfg["model_name"] == "cnn1d" and cfg["model_config"]["channels"] == 8
    assert cfg["data_config"]["threshold"] == pytest.approx(0.003)
    assert cfg["model_config"]["layers"] == 2
    charts = at.get("plotly_chart")
    assert len(charts) >= 4  # live curves, bars, CI, confusion, curves
    specs = " ".join(c.proto.spec for c in charts)
    assert "confusion matrix" in specs and "best baseline" in specs
    verdicts = [e.value for e in list(at.success) + list(at.warning)]
    assert any("best baseline" in v for v in verdicts)
    assert any(v.startswith("The model") and "on accuracy" in v for v in verdicts)  # the headline verdict
    # beside the verdict: how the interval was drawn, and that its 95 % is nominal (measured in the bench)
    assert any("Paired block bootstrap over" in c.value and "is nominal" in c.value and
               "walk-forward evaluation is the firmer test" in c.value for c in at.caption)
    assert at.selectbox(key="train_run_pick").value == runs[0].name
    at.text_input(key=f"train_rename_{runs[0].name}").input("renamed").run()
    at.button(key="train_rename_btn").click().run()
    assert json.loads((runs[0] / "config.json").read_text())["name"] == "renamed"
    # two runs alike in name and status (a copied run folder) are still two options the user can pick
    import shutil

    shutil.copytree(runs[0], workspace / "runs" / "zz-copy")
    at.run()
    at.selectbox(key="train_run_pick").select("zz-copy").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_run_pick").value == "zz-copy"
    assert at.text_input(key="train_rename_zz-copy").value == "renamed"
    # what a run says about itself (a class it could not learn) and a multi-task run's heads are shown
    doc = json.loads((workspace / "runs" / "zz-copy" / "metrics.json").read_text())
    doc["warnings"] = ["Class 'flat' has no training samples, so the model cannot learn it."]
    doc["metrics"]["heads"] = {"magnitude": {"n": 10, "mae": 0.01, "rmse": 0.02, "corr": 0.1,
                                             "mae_train_mean": 0.011}}
    (workspace / "runs" / "zz-copy" / "metrics.json").write_text(json.dumps(doc))
    at.run()
    assert not at.exception, at.exception
    assert "Class 'flat' has no training samples, so the model cannot learn it." in [w.value for w in at.warning]
    heads = next(t.value for t in at.dataframe if "head" in t.value.columns)
    assert list(heads["head"]) == ["magnitude"] and heads["MAE of the training mean"].iloc[0] == 0.011
    forget_job(sid, "train")


def _wait_for(cond, timeout=120.0):
    import time

    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_stop_keeps_the_best_checkpoint(workspace):
    from ui.jobs import forget_job, get_job

    at = _page()
    at.number_input(key="train_rows").set_value(1500)
    at.number_input(key="train_window").set_value(16)
    at.number_input(key="train_epochs").set_value(200)
    at.number_input(key="train_pat").set_value(0)
    at.number_input(key="train_mc_quick_cnn1d_channels").set_value(8)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    sid = at.session_state["_session_id"]
    job = get_job(sid, "train")
    _wait_for(lambda: "epoch" in job.snapshot()[1] or job.done)
    assert not job.done
    at.run()  # the poll: progress bar and the Stop button of the running job
    assert at.get("progress")
    assert at.button(key="train_stop").label == "Stop (keeps the best checkpoint)"  # an epoch is done
    assert " so far" in at.get("progress")[0].proto.text  # how long it has run (and, once known, how long left)
    at.button(key="train_stop").click().run()
    job.thread.join(120)
    assert job.done and job.error is None and job.result is not None
    assert job.result.status == "stopped" and 1 <= len(job.result.history) < 200
    at.run()
    at.run()
    assert not at.exception, at.exception
    cfg = json.loads((workspace / "runs" / job.result.run_id / "config.json").read_text())
    assert cfg["status"] == "stopped" and (workspace / "runs" / job.result.run_id / "model.pt").is_file()
    assert any("stopped" in c.value for c in at.caption)
    forget_job(sid, "train")


def test_bad_settings_show_an_error_and_start_nothing(workspace):
    from ui.jobs import get_job

    at = _page()
    at.number_input(key="train_share").set_value(0.9)
    at.number_input(key="train_val_share").set_value(0.3).run()
    assert not at.exception, at.exception
    # said at once (not only after Start), and neither Start nor the walk-forward can be pressed
    assert any("sum to at most 1; they are 0.9 + 0.3 + 0.15 = 1.35." in e.value for e in at.error)
    assert at.button(key="train_start").disabled and at.button(key="train_wf_start").disabled
    assert get_job(at.session_state["_session_id"], "train") is None
    # another preset resets the settings to its own values
    at.selectbox(key="train_preset").select("chapter").run()
    assert at.number_input(key="train_share").value == pytest.approx(0.7)
    assert at.selectbox(key="train_label").value == "binary"
    assert at.selectbox(key="train_model_chapter").value == "multiscale_cnn"
    assert at.number_input(key="train_mc_chapter_multiscale_cnn_filters").value == 32
    # class weights typed in: one per class, said at once when the count is wrong
    at.selectbox(key="train_cw").select("custom").run()  # the chapter preset: binary labels
    at.text_input(key="train_cw_custom").input("1, 2, 3").run()
    assert [e.value for e in at.error] == ["Give one class weight for each of the 2 classes (down, up), got 3"]
    assert at.button(key="train_start").disabled
    at.text_input(key="train_cw_custom").input("1, 3").run()
    assert not at.error and any("class weights 1, 3" in c.value for c in at.caption)
    at.selectbox(key="train_cw").select("none").run()
    # a window that the chosen candles cannot hold is said before Start too
    at.number_input(key="train_rows").set_value(500)
    at.number_input(key="train_window").set_value(1024).run()
    assert any(e.value.startswith("500 candles are too few: the chapter6 features need 33 bars of warm-up, which "
                                  "leaves 467 rows, and windows of 1024 bars") for e in at.error)
    assert at.button(key="train_start").disabled
    at.number_input(key="train_rows").set_value(0)
    at.number_input(key="train_window").set_value(64).run()
    assert not at.error and not at.button(key="train_start").disabled
    # a multi-task model with one-head labels is said before Start, in the page's words, and blocks Start
    at.selectbox(key="train_model_chapter").select("wavenet_multitask").run()
    assert any(e.value.startswith("The model wavenet_multitask answers direction, magnitude and volatility: it "
                                  "needs the multitask label (the Label box") for e in at.error)
    assert at.button(key="train_start").disabled
    at.selectbox(key="train_label").select("multitask").run()
    assert not at.error and not at.button(key="train_start").disabled
    # a one-head model with the multitask labels: the page says it learns the direction only
    at.selectbox(key="train_model_chapter").select("tcn").run()
    assert any("tcn has one head: with the multitask label it learns the direction classes only" in c.value
               for c in at.caption)
    # the preset's description names its own model: another model is said under it
    assert any("with **tcn** instead of multiscale_cnn" in c.value for c in at.caption)


def test_stop_button_and_viz_builders():
    from core.viz import train as vt

    hist = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.1, 1.0], "val_loss": [1.2, 1.1],
                         "train_accuracy": [.4, .5], "val_accuracy": [.38, .41], "best": [True, True]})
    fig = vt.history_figure(hist, 5)
    assert len(fig.data) == 4 and fig.layout.xaxis.range == (0.5, 5.5)
    cm = vt.confusion_figure([[5, 5], [0, 10]], ["down", "up"])
    assert cm.data[0].z[0][0] == 0.5 and cm.data[0].z[1][1] == 1.0
    vs = {"metric": "accuracy", "diff": .02, "ci_low": -.01, "ci_high": .05, "confidence": .95,
          "baseline": "logistic", "beats": False, "worse": False, "verdict": "within noise", "others": {}}
    assert len(vt.comparison_figure(vs).data) == 1
    lr = vt.lr_schedule_figure(epochs=10, warmup=2, lr=1e-3, min_lr=1e-5).data[0]
    assert lr.y[0] == pytest.approx(1e-5) and max(lr.y) == pytest.approx(1e-3)  # warm-up from 1 % of lr
    assert lr.x[int(np.argmax(lr.y))] == pytest.approx(2.0) and lr.y[-1] == pytest.approx(1e-5)
    t = vt.per_class_table({"per_class": {"up": {"precision": .5, "recall": .4, "f1": .44, "support": 9}}})
    assert t.loc[0, "class"] == "up"
    # chart and order-book pictures are not augmented: the summary says so when augmentations are on
    from core.train.config import preset

    on = preset("convnext")["train"]
    assert "not used for this model" in vt.training_summary(on, "cpu", "chart_image")
    assert "not used" not in vt.training_summary(on, "cpu", "sequence")
    assert "not used" not in vt.training_summary(preset("chapter")["train"], "cpu", "orderbook_image")


def test_walk_forward_from_the_page(workspace):
    """k fresh models on expanding folds from the page's settings, saved, then shown fold by fold beside the
    baselines - with no run in the registry (the runs section says so and the page goes on)."""
    from ui.jobs import forget_job, get_job

    at = _page()
    _small(at, epochs=1, train_wf_k=3)
    at.button(key="train_wf_start").click().run()
    assert not at.exception, at.exception
    sid = at.session_state["_session_id"]
    job = get_job(sid, "walkforward")
    assert job is not None
    job.thread.join(240)
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert not at.exception, at.exception
    saved = list((workspace / "walkforward").iterdir())
    assert len(saved) == 1 and (saved[0] / "predictions.parquet").is_file()
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())  # not a run
    assert any("No runs yet" in i.value for i in at.info)
    assert at.selectbox(key="train_wf_pick").value == saved[0].name
    folds = next(df.value for df in at.dataframe if "fold" in df.value.columns)
    assert list(folds["fold"]) == [1, 2, 3] and (folds["test samples"] > 0).all()
    assert folds["train samples"].is_monotonic_increasing  # expanding: later folds train on more history
    spec = next(c.proto.spec for c in at.get("plotly_chart") if "each fold's test block" in c.proto.spec)
    assert '"name":"CNN"' in spec.replace(" ", "") and "logistic" in spec
    verdicts = [e.value for e in list(at.success) + list(at.warning)]
    assert any("best baseline" in v for v in verdicts)
    # one epoch per fold: every best epoch is the first, and the page says what that means
    from core.viz.train import FIRST_EPOCH_NOTE

    assert list(folds["best epoch"]) == [1, 1, 1] and FIRST_EPOCH_NOTE in verdicts
    assert any(v.startswith("The model") and "on accuracy" in v for v in verdicts)  # the headline verdict
    # a second evaluation: the saved ones are also shown side by side
    from core.train.evaluate import load_walk_forward, walk_forward

    first = load_walk_forward(saved[0].name)
    walk_forward(first.config["dataset_id"], "cnn1d", first.config["model_config"], first.config["data_config"],
                 first.config["train_config"], k=2, name="two folds")
    at.run()
    side = next(df.value for df in at.dataframe if "CNN - baseline (points)" in df.value.columns)
    assert sorted(side["folds"]) == [2, 3] and "two folds" in set(side["evaluation"])
    assert list(side.columns[:5]) == ["evaluation", "CNN - baseline (points)", "95 % CI", "verdict", "best baseline"]
    at.selectbox(key="train_wf_pick").set_value(saved[0].name).run()
    at.button(key="train_wf_delete").click().run()
    assert not at.exception and len(list((workspace / "walkforward").iterdir())) == 1
    forget_job(sid, "walkforward")


def test_walk_forward_cancel_saves_nothing_and_says_so(workspace):
    from ui.jobs import forget_job, get_job

    at = _page()
    at.number_input(key="train_rows").set_value(1500)
    at.number_input(key="train_window").set_value(16)
    at.number_input(key="train_epochs").set_value(50)
    at.button(key="train_wf_start").click().run()
    sid = at.session_state["_session_id"]
    job = get_job(sid, "walkforward")
    job.stop()  # a cancelled fold ends the whole evaluation, whatever fold it was in
    job.thread.join(240)
    assert job.done and job.cancelled and job.error is None
    at.run()
    at.run()
    assert not at.exception, at.exception
    assert any("nothing is saved" in w.value for w in at.warning)
    assert not (workspace / "walkforward").exists() or not any((workspace / "walkforward").iterdir())
    forget_job(sid, "walkforward")



def test_the_order_book_list_offers_only_books_of_the_datasets_market(workspace):
    from core.data.orderbook import make_synthetic_order_book
    from core.data.store import ensure_default_dataset, list_datasets

    ds = ensure_default_dataset()
    eth = next(d.id for d in list_datasets() if "ETH" in d.id)
    make_synthetic_order_book(eth, levels=5, max_snapshots=200)
    at = _page()
    at.selectbox(key="train_model_quick").select("orderbook_cnn").run()
    assert not at.exception, at.exception
    assert not at.get("selectbox") or "train_book" not in [s.key for s in at.selectbox]
    assert any("order-book snapshots of BTC/USDT" in i.value for i in at.info), [i.value for i in at.info]
    own = make_synthetic_order_book(ds, levels=5, max_snapshots=200).id
    at.run()
    assert at.selectbox(key="train_book").options == [own]
