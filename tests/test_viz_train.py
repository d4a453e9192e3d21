"""Training-curve figures: the epoch axis has whole epochs only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.viz.experiments import curves_figure
from core.viz.train import epoch_ticks, history_figure


def _history(n: int) -> pd.DataFrame:
    e = np.arange(1, n + 1)
    return pd.DataFrame({"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.5 + e / 1e3,
                         "val_accuracy": 0.49 + e / 1e3, "best": e == n})


def _tick_positions(axis, lo: float, hi: float) -> np.ndarray:
    """Where plotly puts the ticks for a linear tick mode over [lo, hi]."""
    assert axis.tickmode == "linear", "plotly would pick fractional epochs (1.2, 1.4, ...) by itself"
    t0, d = float(axis.tick0), float(axis.dtick)
    k = np.arange(np.ceil((lo - t0) / d), np.floor((hi - t0) / d) + 1)
    return t0 + k * d


@pytest.mark.parametrize("n", [1, 2, 5, 12, 13, 40, 300])
def test_history_figure_has_no_fractional_epoch_ticks(n):
    fig = history_figure(_history(n), total_epochs=n)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        ticks = _tick_positions(axis, 0.5, n + 0.5)
        assert len(ticks) >= 1 and np.all(ticks == np.round(ticks))
        assert len(ticks) <= 13  # readable
        assert axis.tickformat == "d"
    if n <= 12:  # short runs: every epoch has its tick
        assert list(_tick_positions(fig.layout.xaxis, 0.5, n + 0.5)) == list(range(1, n + 1))


def test_a_running_history_and_the_compare_curves_use_whole_epochs_too():
    fig = history_figure(_history(2))  # no total yet: the history decides
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickmode == "linear"
    cmp = curves_figure({"a": _history(2), "b": _history(3)})
    assert cmp.layout.xaxis.dtick == 1 and cmp.layout.xaxis2.dtick == 1
    assert epoch_ticks(0)["dtick"] == 1


@pytest.mark.parametrize("epochs", [1, 2, 30])
def test_lr_preview_ticks_whole_epochs(epochs):
    from core.viz.train import lr_schedule_figure

    fig = lr_schedule_figure(epochs, warmup=0.5, lr=1e-3, min_lr=1e-5)
    ticks = _tick_positions(fig.layout.xaxis, 0, epochs)  # the curve runs from epoch 0 to the last one
    assert np.all(ticks == np.round(ticks)) and fig.layout.xaxis.tickformat == "d"
    if epochs == 2:
        assert list(ticks) == [0, 1, 2]  # not 0, 0.5, 1, 1.5, 2


def test_walk_forward_title_fits_on_short_lines():
    from core.viz.train import folds_figure

    folds = [{"fold": i, "test_start": f"2025-0{i + 1}-01", "n_test": 100, "status": "done",
              "metrics": {"accuracy": 0.5}, "baselines": {"majority": {"accuracy": 0.45}}} for i in range(3)]
    fig = folds_figure(folds)
    lines = fig.layout.title.text.replace("<sup>", "").replace("</sup>", "").split("<br>")
    # one 70-character line was cut at the page's width: each line stays short, and the whole message stays
    assert len(lines) >= 2 and all(len(l) <= 45 for l in lines), lines
    assert "later folds train on more history" in fig.layout.title.text
    assert fig.layout.margin.t >= 60  # room for the two title lines
    capped = [dict(f, n_train=2000) for f in folds]  # max training samples: the folds do not grow
    assert "every fold trains on equally many samples" in folds_figure(capped).layout.title.text
    grown = [dict(f, n_train=1000 * (i + 1)) for i, f in enumerate(folds)]
    assert "later folds train on more history" in folds_figure(grown).layout.title.text


def test_loss_names_title_the_curves_and_differing_losses_are_called_incomparable():
    from core.train.config import TrainConfig
    from core.train.config import loss_name

    assert loss_name(TrainConfig()) == "cross-entropy"
    assert loss_name({"loss": "focal", "label_smoothing": 0.1}) == "focal loss (gamma 2) with label smoothing 0.1"
    assert loss_name({}, multitask=True) == \
        "multi-task loss: 1 x cross-entropy + 0.5 x magnitude MSE + 0.3 x volatility MSE"
    assert loss_name({"loss": "focal", "class_weights": "balanced"}, multitask=True).startswith(
        "multi-task loss: 1 x class-weighted focal loss (gamma 2) + 0.5")
    assert loss_name({"class_weights": [1, 2, 1]}) == "class-weighted cross-entropy"
    fig = history_figure(_history(2), loss="focal loss (gamma 2)")
    assert fig.layout.annotations[0].text == "focal loss (gamma 2)"
    same = curves_figure({"a": _history(2), "b": _history(3)}, losses={"a": "cross-entropy", "b": "cross-entropy"})
    assert same.layout.annotations[0].text == "loss: cross-entropy"
    mixed = curves_figure({"a": _history(2), "b": _history(3)}, losses={"a": "cross-entropy", "b": "focal loss"})
    assert mixed.layout.annotations[0].text == "training losses differ between runs: not comparable"


def test_training_summary_says_what_the_settings_do():
    from core.train.config import TrainConfig, preset
    from core.viz.train import run_caption, training_summary

    off = training_summary(TrainConfig(patience=0, clip=0), "cpu")
    assert "no early stopping (patience 0)" in off and "no gradient clipping" in off
    assert "the best epoch's weights (by val_loss) are kept" in off and "(cpu here)" in off
    conv = training_summary(preset("convnext")["train"])
    assert "label smoothing 0.1" in conv and "classes weighted by the training split's balance" in conv
    assert "augmentation of train batches (noise 0.03, scaling 0.9-1.1, time warp 0.2, window slicing 0.1)" in conv
    assert "class weights 1.2, 0.8, 1.2" in training_summary(preset("resnet")["train"])
    cap = run_caption({"model_name": "cnn1d", "dataset_id": "d", "test_start": "2025-09-14 10:00:00+00:00",
                       "test_end": "2025-10-01 00:00:00+00:00"}, {"status": "completed", "metrics": {"n": 5}})
    assert "test 2025-09-14 10:00 to 2025-10-01 00:00 UTC (5 samples)" in cap


def test_lr_preview_title_says_the_shape():
    from core.viz.train import lr_schedule_figure

    assert lr_schedule_figure(6, 1, 2e-3, 1e-6).layout.title.text == \
        "learning rate<br><sup>1 warm-up epoch(s), cosine to 1e-06</sup>"
    assert lr_schedule_figure(1, 1, 2e-3, 1e-6).layout.title.text == \
        "learning rate<br><sup>the whole run is warm-up (up to 2e-03)</sup>"
    assert lr_schedule_figure(80, 0, 5e-4, 5e-4).layout.title.text == \
        "learning rate<br><sup>no warm-up, then constant at 5e-04</sup>"


def test_the_interval_note_says_how_it_was_drawn_even_when_counts_are_missing():
    from core.viz.train import interval_note

    note = interval_note({"block": 36, "n": 2594, "n_boot": 1000, "confidence": 0.95})
    assert note.startswith("Paired block bootstrap over 2,594 test samples in blocks of 36 (1,000 resamples)")
    assert "firmer test" in note and "firmer test" not in interval_note({"block": 36}, walk_forward=True)
    assert interval_note({"block": 12}).startswith("Paired block bootstrap over ? test samples")  # (an old zip)
    assert interval_note({}) == ""


def _fold(i: int, best_epoch: int, status: str = "completed") -> dict:
    return {"fold": i, "status": status, "best_epoch": best_epoch, "n_train": 100 * i, "n_val": 20, "n_test": 30,
            "test_start": "2025-01-01 00:00", "test_end": "2025-01-02 00:00",
            "metrics": {"accuracy": 0.4, "macro_f1": 0.3}, "baselines": {"majority": {"accuracy": 0.45}}}


def test_walk_forward_folds_say_statuses_in_words_and_when_every_best_epoch_was_the_first():
    from core.viz.train import FIRST_EPOCH_NOTE, fold_warnings, folds_table

    folds = [_fold(1, 1, "early_stopped"), _fold(2, 1)]
    assert list(folds_table(folds)["status"]) == ["stopped early", "completed"]
    notes = fold_warnings(folds)
    assert notes == [FIRST_EPOCH_NOTE] and "best validation epoch was the first" in FIRST_EPOCH_NOTE
    assert fold_warnings([_fold(1, 1), _fold(2, 3)]) == []  # one fold learnt past its first epoch


def test_walk_forward_evaluations_table_puts_the_answer_first():
    from core.viz.train import walk_forwards_table

    vs = {"metric": "accuracy", "diff": -0.013, "ci_low": -0.044, "ci_high": 0.016, "baseline": "majority",
          "beats": False, "worse": False}
    t = walk_forwards_table([{"wf_id": "w1", "model_name": "cnn1d", "n_folds": 2, "metrics": {"n": 10},
                              "vs_best_baseline": vs}])
    assert list(t.columns[:5]) == ["evaluation", "CNN - baseline (points)", "95 % CI", "verdict", "best baseline"]
    assert t.loc[0, "verdict"] == "within noise" and t.loc[0, "95 % CI"] == "-4.4 to +1.6"


def test_walk_forward_verdicts_name_the_metric_and_a_second_best_baseline_readably():
    from core.train.trainer import readable_verdicts, verdict_text

    ci = {"confidence": 0.95}
    vs = {"metric": "accuracy", "diff": -0.013, "ci_low": -0.044, "ci_high": 0.016, "baseline": "majority",
          "beats": False, "worse": False, "verdict": "old", **ci,
          "others": {"macro_f1": {"metric": "macro_f1", "diff": -0.033, "ci_low": -0.057, "ci_high": -0.010,
                                  "baseline": "logistic", "beats": False, "worse": True, "verdict": "old", **ci}}}
    text = verdict_text(readable_verdicts(vs))
    assert text.startswith("The model does not clearly beat the best baseline (majority) on accuracy: "
                           "-1.3 points is within noise (95 % CI -4.4 to +1.6 points).")
    assert ("On macro F1, where the best baseline is logistic rather than majority, the model is worse: "
            "-3.3 points (95 % CI -5.7 to -1.0 points).") in text
    assert "macro f1" not in text and vs["verdict"] == "old"  # a new dict; the input is left as it was
