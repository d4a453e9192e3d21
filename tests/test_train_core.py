"""The training engine without any dataset: losses, augmentations, schedule, metrics, baselines, the loop."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn import metrics as skm
from sklearn.utils.class_weight import compute_class_weight

from core.errors import UserError
from core.progress import CancelToken, Cancelled
from core.train import augment as A
from core.train.baselines import fit_baselines, window_features
from core.train.config import DataConfig, TrainConfig, apply_overrides, from_dict, preset, PRESETS
from core.train.losses import FocalLoss, MultiTaskLoss, balanced_class_weights, build_loss
from core.train.metrics import (FAST_METRICS, block_bootstrap_indices, classification_metrics,
                                optimal_block_length, paired_block_bootstrap, regression_metrics)
from core.train.trainer import TensorSource, fit, lr_factor


# ------------------------------------------------------------------------------------------------ losses


def test_focal_with_gamma_zero_is_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 3, generator=g), torch.randint(0, 3, (50,), generator=g)
    w = torch.tensor([1.2, 0.8, 1.2])
    assert torch.allclose(FocalLoss(0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)
    assert torch.allclose(FocalLoss(0.0, w)(logits, y), F.cross_entropy(logits, y, weight=w), atol=1e-6)
    assert torch.allclose(FocalLoss(0.0, label_smoothing=0.1)(logits, y),
                          F.cross_entropy(logits, y, label_smoothing=0.1), atol=1e-6)
    assert torch.allclose(FocalLoss(0.0, w, label_smoothing=0.1)(logits, y),  # both: each smoothed class weighted
                          F.cross_entropy(logits, y, weight=w, label_smoothing=0.1), atol=1e-6)
    # focusing down-weights easy examples: the loss can only shrink
    assert FocalLoss(2.0)(logits, y) < F.cross_entropy(logits, y)


def test_multitask_loss_weights_the_three_terms():
    g = torch.Generator().manual_seed(1)
    out = {"direction": torch.randn(8, 3, generator=g), "magnitude": torch.randn(8, generator=g),
           "volatility": torch.randn(8, generator=g)}
    y, m, v = torch.randint(0, 3, (8,), generator=g), torch.randn(8, generator=g), torch.randn(8, generator=g)
    expected = (F.cross_entropy(out["direction"], y) + 0.5 * F.mse_loss(out["magnitude"], m)
                + 0.3 * F.mse_loss(out["volatility"], v))
    assert torch.allclose(MultiTaskLoss(nn.CrossEntropyLoss())(out, y, m, v), expected, atol=1e-6)


def test_balanced_class_weights_match_sklearn():
    y = np.array([0] * 10 + [1] * 30 + [2] * 60)
    ours = balanced_class_weights(torch.tensor(y), 3).numpy()
    assert np.allclose(ours, compute_class_weight("balanced", classes=np.arange(3), y=y))
    with pytest.raises(UserError):
        build_loss("hinge", 3)
    with pytest.raises(UserError):
        build_loss("ce", 3, torch.ones(2))


# ----------------------------------------------------------------------------------------- augmentations

def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_augmentations_keep_shape_and_are_seeded():
    x = torch.randn(16, 4, 32, generator=_gen(5))
    s = A.AugmentSettings(0.1, 0.9, 1.1, 0.3, 0.2, p=1.0)
    a, b = A.augment_batch(x, s, _gen(1)), A.augment_batch(x, s, _gen(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, A.augment_batch(x, s, _gen(2)))


def test_magnitude_scaling_stays_in_range():
    x = torch.ones(200, 2, 8)
    y = A.magnitude_scale(x, 0.9, 1.1, _gen(), p=1.0)
    f = y[:, 0, 0]
    assert f.min() >= 0.9 and f.max() <= 1.1 and f.std() > 0.02
    assert torch.allclose(y, f[:, None, None].expand_as(y))  # one factor per sample


def test_time_warp_keeps_end_points_and_values_in_range():
    x = torch.cumsum(torch.randn(8, 3, 50, generator=_gen(3)), dim=2)
    y = A.time_warp(x, 0.5, _gen(), p=1.0)
    assert torch.allclose(y[..., 0], x[..., 0]) and torch.allclose(y[..., -1], x[..., -1], atol=1e-5)
    assert (y.amax(2) <= x.amax(2) + 1e-5).all() and (y.amin(2) >= x.amin(2) - 1e-5).all()
    assert not torch.allclose(y, x)


def test_window_slice_crops_the_start_and_keeps_the_last_bar():
    x = torch.arange(20, dtype=torch.float32).repeat(6, 2, 1)
    y = A.window_slice(x, 0.5, _gen(4), p=1.0)
    assert torch.equal(y[..., -1], x[..., -1])
    for row in y[:, 0]:
        crop = int(row[0])
        assert crop < 10 and torch.equal(row[crop:], x[0, 0, crop:])
        assert (row[:crop] == crop).all()  # padded with the first kept bar


# --------------------------------------------------------------------------------------------- schedule

def test_lr_schedule_warms_up_then_decays_to_floor():
    f = [lr_factor(s, 100, 10, 0.01) for s in range(101)]
    assert f[0] == pytest.approx(0.01) and f[10] == pytest.approx(1.0)
    assert all(a <= b + 1e-12 for a, b in zip(f[:10], f[1:11]))
    assert all(a >= b - 1e-12 for a, b in zip(f[10:], f[11:]))
    assert f[100] == pytest.approx(0.01)


# ---------------------------------------------------------------------------------------------- metrics

def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet([1, 1, 1], 300)
    p[np.arange(300), y] += 0.3  # some skill
    p /= p.sum(1, keepdims=True)
    m = classification_metrics(y, p, ["down", "flat", "up"])
    pred = p.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert np.array_equal(m["confusion"], skm.confusion_matrix(y, pred))
    assert m["per_class"]["up"]["recall"] == pytest.approx(skm.recall_score(y, pred, average=None)[2])
    for name, f in FAST_METRICS.items():
        assert f(y, pred, 3) == pytest.approx(m[name])
    # a model (or a baseline padding a class absent from train) that never gives "flat" any probability: that
    # column is all ties, AUC 0.5 (clipping and renormalising first ordered it by float rounding: 0.49)
    q = np.column_stack([p[:, 0], np.zeros(300), p[:, 1] + p[:, 2]])
    assert classification_metrics(y, q, ["down", "flat", "up"])["roc_auc"] == pytest.approx(
        np.mean([skm.roc_auc_score(y == c, q[:, c]) for c in range(3)]))


def test_macro_f1_leaves_out_a_class_that_never_occurs_like_sklearn():
    """At threshold 0 the "flat" class is empty: counting it as an F1 of 0 understated macro F1 by a third."""
    rng = np.random.default_rng(4)
    y = rng.choice([0, 2], 500)  # down / up only
    p = rng.dirichlet([1, 1, 1], 500)
    p[:, 1] *= 0.01  # "flat" is never the most likely
    p[np.arange(500), y] += 0.2
    p /= p.sum(1, keepdims=True)
    pred = p.argmax(1)
    assert 1 not in set(pred) | set(y)
    m = classification_metrics(y, p, ["down", "flat", "up"])
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["macro_f1"] > 0.5
    assert m["per_class"]["flat"]["support"] == 0  # still listed
    assert FAST_METRICS["macro_f1"](y, pred, 3) == pytest.approx(m["macro_f1"])
    wrong = np.where(pred == 0, 1, pred)  # predicting the absent class: it counts (F1 0), as in sklearn
    assert FAST_METRICS["macro_f1"](y, wrong, 3) == pytest.approx(skm.f1_score(y, wrong, average="macro"))


def test_optimal_block_length_equals_arch():
    """Our Politis & White block length is the algorithm of arch.bootstrap.optimal_block_length."""
    from arch.bootstrap import optimal_block_length as arch_block

    rng = np.random.default_rng(5)
    for n in (50, 700, 3000):
        ar = np.zeros(n)
        e = rng.normal(size=n)
        for i in range(1, n):
            ar[i] = 0.7 * ar[i - 1] + e[i]
        persistent = np.repeat(rng.integers(-1, 2, n // 20 + 1), 20)[:n].astype(float)
        neg = np.zeros(n)
        for i in range(1, n):
            neg[i] = -0.9 * neg[i - 1] + e[i]
        alternating = np.tile([1.0, 1.0, -1.0, -1.0], n // 4 + 1)[:n]  # long-run variance estimate <= 0
        for x in (rng.normal(size=n), ar, persistent, neg, alternating):
            assert optimal_block_length(x) == pytest.approx(arch_block(x)["circular"].iloc[0], rel=1e-9)
    assert optimal_block_length(np.zeros(100)) == 1.0  # two models that agree everywhere


def test_bootstrap_blocks_grow_when_answers_persist():
    """Labels of a 24-bar horizon and answers that hold for 50 bars make the per-sample differences hang
    together over tens of bars: blocks of n^(1/3) (14 here) call a difference between two unrelated models
    too often (bench/bench_bootstrap_coverage.py)."""
    rng = np.random.default_rng(6)
    n = 2900
    walk = np.cumsum(rng.normal(size=n + 24))
    y = (walk[24:] > walk[:-24]).astype(np.int64)
    a, b = (np.repeat(rng.integers(0, 2, n // 50 + 1), 50)[:n] for _ in range(2))
    slow = paired_block_bootstrap(y, a, b, 2, "accuracy", n_boot=50)
    assert slow["block"] > 30
    fast = paired_block_bootstrap(y, rng.integers(0, 2, n), rng.integers(0, 2, n), 2, "accuracy", n_boot=50)
    assert fast["block"] == round(n ** (1 / 3))
    assert paired_block_bootstrap(y, a, b, 2, "accuracy", horizon=200, n_boot=50)["block"] == 200


def test_block_bootstrap_draws_contiguous_blocks():
    idx = block_bootstrap_indices(100, 10, 5, np.random.default_rng(0))
    assert idx.shape == (5, 100)
    steps = np.diff(idx.reshape(5, 10, 10), axis=2) % 100
    assert (steps == 1).all()


def test_paired_bootstrap_sees_a_real_difference_and_no_difference():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    good = np.where(rng.random(600) < 0.8, y, 1 - y)
    coin = rng.integers(0, 2, 600)
    r = paired_block_bootstrap(y, good, coin, 2, "accuracy", horizon=5, n_boot=300)
    assert r["ci_low"] > 0.15 and r["block"] >= 5
    same = paired_block_bootstrap(y, coin, coin, 2, "macro_f1", n_boot=100)
    assert same["diff"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0


def test_the_verdict_also_says_another_metric_that_is_worse_beyond_noise():
    """A CNN that answers the majority class is within noise of the baseline on accuracy but far worse on
    macro F1: the verdict must say both, not only the headline metric's."""
    from core.train.trainer import compare_to_baselines, verdict_text

    rng = np.random.default_rng(3)
    n = 1500
    y = rng.choice([0, 1, 2], size=n, p=[0.2, 0.6, 0.2])
    base = np.where(y == 1, np.where(rng.random(n) < 0.7, 1, rng.choice([0, 2], n)),
                    np.where(rng.random(n) < 0.5, y, 1))
    cnn = np.full(n, 1)
    vs = compare_to_baselines(y, np.eye(3)[cnn], {"logistic": np.eye(3)[base]}, 3, horizon=1, n_boot=300)
    assert not vs["beats"] and not vs["worse"] and vs["others"]["macro_f1"]["worse"]
    text = verdict_text(vs)
    assert text.startswith(vs["verdict"]) and "within noise" in text
    assert "worse than the best baseline (logistic) on macro F1" in text
    assert verdict_text({}) == ""
    # "beats on accuracy" is green only when no other metric is worse beyond noise
    from core.train.trainer import verdict_is_good

    assert not verdict_is_good(vs) and not verdict_is_good({})
    assert verdict_is_good({**vs, "beats": True, "others": {}})
    assert not verdict_is_good({**vs, "beats": True})


# -------------------------------------------------------------------------------------------- baselines

def test_baselines_majority_frequencies_and_logistic_learns_last_step():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(1200, 3)).astype(np.float32)
    y = (feats[:, 1] > 0).astype(np.int64)  # label = sign of channel 1 at the window's last bar
    ends = np.arange(9, 1200)
    tr, te = ends[:800], ends[800:]
    out = fit_baselines(feats, y, tr, te, 10, 2, ["majority", "logistic", "mlp"])
    freq = np.bincount(y[tr], minlength=2) / len(tr)
    assert np.allclose(out["majority"].proba, freq)
    assert (out["logistic"].proba.argmax(1) == y[te]).mean() > 0.95
    assert (out["mlp"].proba.argmax(1) == y[te]).mean() > 0.8
    wf = window_features(feats, te[:2], 10)
    w = feats[te[0] - 9:te[0] + 1].T
    assert np.allclose(wf[0], np.concatenate([w[:, -1], w.mean(1), w.std(1), w.min(1), w.max(1),
                                              w[:, -1] - w[:, 0]]), atol=1e-6)
    assert window_features(feats, te[:2], 10, "flat").shape == (2, 30)
    assert "before converging" not in out["logistic"].description


def test_the_mlp_baseline_stops_early_on_the_validation_split_not_on_shuffled_train_samples(monkeypatch):
    """sklearn's early stopping held out a shuffled 10 % of train, whose windows overlap their neighbours:
    a nearly in-sample score that stopped late (real BTC: test accuracy 0.399 below majority's 0.408)."""
    from core.train import baselines

    rng = np.random.default_rng(7)
    feats = rng.normal(size=(1500, 3)).astype(np.float32)
    y = (feats[:, 1] > 0).astype(np.int64)
    ends = np.arange(9, 1500)
    tr, va, te = ends[:900], ends[950:1200], ends[1250:]
    seen = []
    real = baselines._fit_mlp
    monkeypatch.setattr(baselines, "_fit_mlp", lambda *a: seen.append(a) or real(*a))
    out = fit_baselines(feats, y, tr, te, 10, 2, ["mlp"], val_ends=va)
    x_tr, y_tr, x_va, y_va = seen[0][:4]
    assert np.array_equal(y_va, y[va]) and np.array_equal(x_va, window_features(feats, va, 10))
    assert np.array_equal(y_tr, y[tr])
    assert "early stopping on the validation split" in out["mlp"].description
    assert (out["mlp"].proba.argmax(1) == y[te]).mean() > 0.8
    # without a validation split: the chronologically last 15 % of train, `window` samples apart
    out = fit_baselines(feats, y, tr, te, 10, 2, ["mlp"])
    x_tr, y_tr, x_va, y_va = seen[1][:4]
    assert np.array_equal(y_va, y[tr[765:]]) and np.array_equal(y_tr, y[tr[:755]])
    assert "last 15 % of the training samples" in out["mlp"].description
    # seeded: the same inputs give the same probabilities
    again = fit_baselines(feats, y, tr, te, 10, 2, ["mlp"])
    assert np.array_equal(again["mlp"].proba, out["mlp"].proba)


def test_a_baseline_stopped_at_its_iteration_limit_says_so(monkeypatch):
    """An under-fitted baseline flatters the CNN beside it: its description must say it did not converge."""
    from core.train import baselines

    rng = np.random.default_rng(3)
    feats = rng.normal(size=(600, 4)).astype(np.float32)
    y = (feats[:, 0] + 0.5 * feats[:, 1] > 0).astype(np.int64)
    ends = np.arange(9, 600)
    monkeypatch.setattr(baselines, "LOGISTIC_MAX_ITER", 2)
    out = fit_baselines(feats, y, ends[:400], ends[400:], 10, 2, ["logistic"], mode="flat")
    assert out["logistic"].description.endswith("(stopped before converging: an under-fitted baseline)")


# ------------------------------------------------------------------------------------------------ config

def test_set_overrides_are_namespaced_and_bare_keys_resolve():
    p = preset("quick")
    mc, d, t = apply_overrides({"model.width": 16, "data.window": 32, "train.epochs": 2, "lr": 0.01,
                                "horizon": 6, "dropout": 0.1}, {}, p["data"], p["train"], ["width", "dropout"])
    assert mc == {"width": 16, "dropout": 0.1} and d.window == 32 and d.horizon == 6
    assert t.epochs == 2 and t.lr == 0.01
    with pytest.raises(UserError, match="unknown"):
        apply_overrides({"nonsense": 1}, {}, DataConfig(), TrainConfig())
    with pytest.raises(UserError, match="ambiguous"):
        apply_overrides({"epochs": 1}, {}, DataConfig(), TrainConfig(), ["epochs"])
    with pytest.raises(UserError):
        apply_overrides({"train.epochs": 0}, {}, DataConfig(), TrainConfig())
    assert set(PRESETS) >= {"quick", "resnet", "convnext", "dilated", "chapter"}
    assert preset("convnext")["train"].label_smoothing == 0.1
    assert preset("dilated")["train"].multitask_weights == [1.0, 0.5, 0.3]


@pytest.mark.parametrize("key, value, words", [
    ("data.window", "abc", "data.window must be a whole number, got 'abc'"),
    ("data.window", 16.5, "data.window must be a whole number, got 16.5"),
    ("data.horizon", "abc", "data.horizon must be a whole number"),
    ("data.threshold", "abc", "data.threshold must be a finite number, got 'abc'"),
    ("data.train", "abc", "data.train must be a finite number"),
    ("data.max_rows", -5, "data.max_rows must be empty (all rows) or a positive whole number, got -5"),
    ("data.max_rows", "abc", "data.max_rows must be a whole number or empty (null), got 'abc'"),
    ("data.encoding", "abc", "data.encoding must be a mapping"),
    ("data.preset", 5, "data.preset must be text or a list of names"),
    ("train.epochs", "abc", "train.epochs must be a whole number, got 'abc'"),
    ("train.epochs", True, "train.epochs must be a whole number, got True"),
    ("train.batch_size", 2.5, "train.batch_size must be a whole number, got 2.5"),
    ("train.lr", "nan", "train.lr must be a finite number, got 'nan'"),
    ("train.lr", float("inf"), "train.lr must be a finite number, got inf"),
    ("train.seed", "abc", "train.seed must be a whole number"),
    ("train.patience", "abc", "train.patience must be a whole number"),
    ("train.weight_decay", "abc", "train.weight_decay must be a finite number"),
    ("train.weight_decay", -0.1, "train.weight_decay must be zero or more"),
    ("train.clip", "abc", "train.clip must be a finite number"),
    ("train.amp", "maybe", "train.amp must be true or false, got 'maybe'"),
    ("train.baselines", "nosuch", "unknown baseline(s) nosuch; choose from"),
    ("train.class_weights", [1, "x", 1], "train.class_weights must be text, a list of numbers or empty (null)"),
    ("train.multitask_weights", "abc", "train.multitask_weights must be a list of numbers"),
    ("train.max_train_samples", 0, "train.max_train_samples must be empty (all samples) or a positive whole"),
    ("train.device", 0, "train.device must be text, got 0"),
    # found by the training audit: these ended in numpy/torch tracebacks, some after training (losing the run)
    ("train.seed", -1, "train.seed must be a whole number from 0 to 4294967293, got -1"),
    ("train.seed", 5_000_000_000, "train.seed must be a whole number from 0"),
    ("train.n_boot", 0, "train.n_boot must be at least 100 bootstrap resamples, got 0"),
    ("train.n_boot", 1, "train.n_boot must be at least 100"),  # a one-resample 'interval' is not one
    ("train.multitask_weights", [1, -5, 0.3], "train.multitask_weights must be three numbers of zero or more"),
    ("train.multitask_weights", [1, 0.5], "train.multitask_weights must be three numbers"),
    ("train.multitask_weights", [0, 0, 0], "not all zero"),
])
def test_set_values_of_the_wrong_type_are_refused_with_a_sentence(key, value, words):
    p = preset("quick")
    with pytest.raises(UserError) as err:
        apply_overrides({key: value}, {}, p["data"], p["train"])
    assert words in str(err.value)


def test_set_values_are_converted_to_the_field_types():
    p = preset("quick")
    _, d, t = apply_overrides({"data.window": "32", "data.horizon": 6.0, "data.max_rows": "null", "train.lr": "0.01",
                               "train.amp": "no", "train.baselines": "majority", "data.encoding": '{"size": 32}',
                               "train.class_weights": "[1, 2, 1]", "data.preset": ["rsi", "macd"],
                               "train.max_train_samples": "500"}, {}, p["data"], p["train"])
    assert (d.window, d.horizon, d.max_rows, d.encoding, d.preset) == (32, 6, None, {"size": 32}, ["rsi", "macd"])
    assert type(d.window) is int and type(d.horizon) is int and t.max_train_samples == 500
    assert (t.lr, t.amp, t.baselines, t.class_weights) == (0.01, False, ["majority"], [1.0, 2.0, 1.0])
    _, _, t = apply_overrides({"train.baselines": "majority, logistic", "train.amp": 1}, {}, p["data"], p["train"])
    assert t.baselines == ["majority", "logistic"] and t.amp is True
    _, _, t = apply_overrides({"train.class_weights": "balanced"}, {}, p["data"], p["train"])
    assert t.class_weights == "balanced"
    # every preset still builds and validates with its own values, warm-up epochs read as numbers
    for name in PRESETS:
        q = preset(name)
        assert q["data"].validate() is q["data"] and q["train"].validate() is q["train"]
        assert isinstance(q["train"].warmup, float) and isinstance(q["data"].window, int)


def test_configs_built_directly_or_from_dicts_are_checked_too():
    # the pages build DataConfig/TrainConfig themselves and call validate(); stored runs go through from_dict
    with pytest.raises(UserError, match="data.window must be a whole number, got 'abc'"):
        DataConfig(window="abc").validate()
    with pytest.raises(UserError, match="train.epochs must be a whole number, got 2.5"):
        from_dict(TrainConfig, {"epochs": 2.5})
    d = DataConfig(window="24").validate()
    assert d.window == 24 and type(d.window) is int
    assert from_dict(TrainConfig, {"amp": "false", "seed": "3"}) == TrainConfig(amp=False, seed=3)


@pytest.mark.parametrize("pair, words", [
    ("data.window=abc", "data.window must be a whole number, got 'abc'"),
    ("train.batch_size=2.5", "train.batch_size must be a whole number, got 2.5"),
    ("train.lr=nan", "train.lr must be a finite number, got 'nan'"),
    ("train.amp=maybe", "train.amp must be true or false, got 'maybe'"),
    ("data.encoding=abc", "data.encoding must be a mapping"),
    ("train.baselines=nosuch", "unknown baseline(s) nosuch;"),
])
def test_cli_set_values_of_the_wrong_type_exit_2_with_the_sentence(pair, words, capsys):
    from core.cli import main

    assert main(["train", "--quiet", "--set", pair]) == 2  # refused before any data is read
    assert words in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------- loop

class _Tiny(nn.Module):
    def __init__(self, c: int = 4, k: int = 2, multitask: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c, 8, 3, padding=1)
        self.head = nn.Linear(8, k)
        self.reg = nn.Linear(8, 2) if multitask else None
        self.seen_train: list[torch.Tensor] = []
        self.seen_eval: list[torch.Tensor] = []

    def forward(self, x):
        (self.seen_train if self.training else self.seen_eval).append(x.detach().clone())
        h = torch.relu(self.conv(x)).mean(2)
        if self.reg is None:
            return self.head(h)
        r = self.reg(h)
        return {"direction": self.head(h), "magnitude": r[:, 0], "volatility": r[:, 1]}


def _data(n=500, c=4, t=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, t, generator=g)
    y = (x[:, 0, :].mean(1) > 0).long()
    return TensorSource(x[: int(n * .7)], y[: int(n * .7)]), TensorSource(x[int(n * .7):], y[int(n * .7):])


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return _Tiny(**kw)


def test_fit_learns_and_is_deterministic():
    tr, va = _data()
    cfg = TrainConfig(epochs=6, batch_size=32, lr=1e-2, noise_std=0.05, scale_min=0.9, scale_max=1.1,
                      time_warp=0.1, window_slice=0.1, class_weights="balanced", patience=0)
    events = []
    r1 = fit(_model(), tr, va, cfg, 2, torch.device("cpu"), progress=events.append)
    r2 = fit(_model(), tr, va, cfg, 2, torch.device("cpu"))
    cols = ["train_loss", "val_loss", "val_accuracy", "lr"]
    assert r1.history[cols].equals(r2.history[cols])
    assert r1.history["val_accuracy"].max() > 0.75
    assert r1.status == "completed" and len(r1.history) == 6
    epochs = [e for e in events if e.stage == "epoch"]
    batches = [e for e in events if e.stage == "batch"]
    assert len(epochs) == 6 and {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(epochs[0].metrics)
    assert len(batches) == 6 * math.ceil(len(tr) / 32) and batches[-1].fraction == 1.0


def test_weighted_validation_loss_is_over_the_whole_split():
    """'balanced' weights give a class the training samples lack weight 0; a validation batch of only that
    class has no loss of its own (0/0), which used to stop the run as a NaN blamed on the learning rate."""
    from core.train.trainer import _evaluate_loss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, 16, generator=g)
    tr = TensorSource(x[:60], (x[:60, 0].mean(1) > 0).long())             # classes 0 and 1 only
    va = TensorSource(x[60:], torch.tensor([0, 1] * 14 + [2] * 8))         # the last 8: class 2 alone
    cfg = TrainConfig(epochs=2, batch_size=16, class_weights="balanced", eval_batch_size=8, patience=0)
    r = fit(_model(k=3), tr, va, cfg, 3, torch.device("cpu"))
    assert r.status == "completed" and np.isfinite(r.history["val_loss"]).all()
    model, w = _model(k=3).eval(), torch.tensor([1.0, 3.0, 0.0])
    with torch.no_grad():
        whole = F.cross_entropy(model(va.x), torch.as_tensor(va.labels), weight=w)
    got = _evaluate_loss(model, va, nn.CrossEntropyLoss(weight=w), torch.device("cpu"), cfg, False, 3, w)
    assert got["val_loss"] == pytest.approx(float(whole), rel=1e-6)
    only_absent = TensorSource(x[60:68], torch.full((8,), 2))
    with pytest.raises(UserError, match="every validation sample is of a class with class weight 0"):
        fit(_model(k=3), tr, only_absent, cfg, 3, torch.device("cpu"))


def test_augmentation_touches_train_batches_only():
    tr, va = _data(200)
    m = _model()
    fit(m, tr, va, TrainConfig(epochs=1, batch_size=len(tr), noise_std=0.5, augment_p=1.0, patience=0),
        2, torch.device("cpu"))
    assert not torch.allclose(m.seen_train[0].sort(0).values, tr.x.sort(0).values)
    assert torch.equal(torch.cat(m.seen_eval), va.x)  # validation batches are the raw inputs


def test_early_stopping_restores_the_best_weights():
    tr, va = _data(300)
    va.labels = 1 - va.labels  # validation anti-correlated: val loss gets worse as train improves
    m = _model()
    states = []
    cfg = TrainConfig(epochs=30, batch_size=32, lr=2e-2, patience=2, warmup=0)
    r = fit(m, tr, va, cfg, 2, torch.device("cpu"),
            progress=lambda p: states.append({k: v.clone() for k, v in m.state_dict().items()})
            if p.stage == "epoch" else None)
    assert r.status == "early_stopped" and len(r.history) == r.best_epoch + 2
    assert r.history["val_loss"].idxmin() + 1 == r.best_epoch
    best = states[r.best_epoch - 1]
    assert all(torch.equal(v, best[k]) for k, v in m.state_dict().items())


def test_cancel_keeps_the_best_checkpoint_and_status_stopped():
    tr, va = _data()
    tok = CancelToken()
    seen = []

    def on(p):
        if p.stage == "epoch":
            seen.append(p.done)
            if p.done == 2:
                tok.cancel()
    r = fit(_model(), tr, va, TrainConfig(epochs=10, batch_size=32, patience=0), 2, torch.device("cpu"), on, tok)
    assert r.status == "stopped" and len(r.history) == 2 and r.best_epoch >= 1
    tok2 = CancelToken()
    tok2.cancel()
    with pytest.raises(Cancelled):
        fit(_model(), tr, va, TrainConfig(epochs=2), 2, torch.device("cpu"), None, tok2)


def test_nan_loss_stops_with_a_clear_message():
    tr, va = _data(200)
    bad = TensorSource(tr.x.clone(), tr.labels)
    bad.x[5:] = float("nan")  # the first epoch sees NaN within its first batches
    with pytest.raises(UserError, match="NaN at epoch 1 batch 1"):
        fit(_model(), bad, va, TrainConfig(epochs=2, batch_size=64), 2, torch.device("cpu"))
    # after a good epoch the run ends as failed but keeps the good weights
    class Boom(_Tiny):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            out = super().forward(x)
            return out * float("nan") if self.training and Boom.calls > 8 else out
    torch.manual_seed(0)
    r = fit(Boom(), tr, va, TrainConfig(epochs=5, batch_size=32, patience=0), 2, torch.device("cpu"))
    assert r.status.startswith("failed: loss became NaN at epoch 2") and r.best_epoch == 1


def test_batch_losses_are_reported_in_order_and_make_the_epoch_loss():
    """Every batch is reported once, in order, with its own loss; the epoch's train loss is their weighted
    mean (the live curve and the history agree)."""
    tr, va = _data(240)  # 168 training samples: batches of 40, 40, 40, 40 and 8
    events = []
    r = fit(_model(), tr, va, TrainConfig(epochs=2, batch_size=40, patience=0), 2, torch.device("cpu"),
            progress=events.append)
    batches = [e for e in events if e.stage == "batch"]
    per_epoch = math.ceil(len(tr) / 40)
    assert [e.done for e in batches] == list(range(1, 2 * per_epoch + 1))
    assert [e.metrics["epoch"] for e in batches] == [1] * per_epoch + [2] * per_epoch
    sizes = [40] * (per_epoch - 1) + [len(tr) - 40 * (per_epoch - 1)]
    for ep in (1, 2):
        losses = [e.metrics["loss"] for e in batches if e.metrics["epoch"] == ep]
        want = sum(v * n for v, n in zip(losses, sizes)) / len(tr)
        assert r.history.loc[ep - 1, "train_loss"] == pytest.approx(want, rel=1e-12)
    # the epoch event comes after all of its batches
    kinds = [(e.stage, e.metrics.get("epoch", e.done)) for e in events]
    assert kinds.index(("epoch", 1)) == per_epoch


def test_nan_loss_on_an_epochs_last_batch_is_named():
    tr, va = _data(200)  # 140 training samples: batches 1-3 of 64, 64, 12

    class LastBad(_Tiny):
        calls = 0

        def forward(self, x):
            LastBad.calls += 1
            out = super().forward(x)
            return out * float("nan") if self.training and LastBad.calls == 3 else out
    torch.manual_seed(0)
    with pytest.raises(UserError, match="NaN at epoch 1 batch 3"):
        fit(LastBad(), tr, va, TrainConfig(epochs=2, batch_size=64), 2, torch.device("cpu"))


def test_multitask_fit_uses_the_regression_targets():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, 16, generator=g)
    y = (x[:, 0, -1] > 0).long()
    extra = {"magnitude": x[:, 1, -1].numpy(), "volatility": x[:, 2, :].std(1).numpy()}
    tr = TensorSource(x[:200], y[:200], {k: v[:200] for k, v in extra.items()})
    va = TensorSource(x[200:], y[200:], {k: v[200:] for k, v in extra.items()})
    r = fit(_model(multitask=True), tr, va, TrainConfig(epochs=3, batch_size=32, lr=1e-2, patience=0), 2,
            torch.device("cpu"))
    assert r.history["train_loss"].iloc[-1] < r.history["train_loss"].iloc[0]
    # with class weights, the validation loss is the split's, whatever the evaluation batch (the regression
    # terms were weighted by each batch's class weights, and dropped with a zero-weight batch)
    from core.train.losses import MultiTaskLoss
    from core.train.trainer import _evaluate_loss

    w = torch.tensor([3.0, 0.5])
    crit = MultiTaskLoss(nn.CrossEntropyLoss(weight=w))
    model = _model(multitask=True).eval()
    got = [_evaluate_loss(model, va, crit, torch.device("cpu"), TrainConfig(eval_batch_size=bs), True, 2, w)["val_loss"]
           for bs in (7, 16, 100)]
    with torch.no_grad():
        out = model(va.x)
        whole = crit(out, torch.as_tensor(va.labels), va.extra["magnitude"], va.extra["volatility"])
    assert got == pytest.approx([float(whole)] * 3, rel=1e-5)


def test_clipping_and_given_class_weights_reach_the_step(monkeypatch):
    tr, va = _data(200)
    calls = []
    real = nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **kw):
        calls.append(max_norm)
        return real(params, max_norm, *a, **kw)
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    r = fit(_model(), tr, va, TrainConfig(epochs=1, batch_size=32, clip=0.5, class_weights=[2.0, 0.5],
                                          patience=0), 2, torch.device("cpu"))
    assert calls and set(calls) == {0.5} and len(calls) == math.ceil(len(tr) / 32)
    assert r.class_weights == [2.0, 0.5]
    calls.clear()
    fit(_model(), tr, va, TrainConfig(epochs=1, batch_size=32, clip=0, patience=0), 2, torch.device("cpu"))
    assert calls == []
    with pytest.raises(UserError, match="class_weights has 3 entries"):
        fit(_model(), tr, va, TrainConfig(epochs=1, class_weights=[1, 1, 1]), 2, torch.device("cpu"))


def test_cosine_schedule_is_what_the_optimizer_uses():
    tr, va = _data(320)  # 224 train samples: 7 steps per epoch at batch 32
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, min_lr=1e-4, warmup=1, patience=0)
    r = fit(_model(), tr, va, cfg, 2, torch.device("cpu"))
    steps = math.ceil(len(tr) / 32)
    # each epoch's row holds the rate its last step ran at (not the next epoch's first rate)
    last_step = [1e-2 * lr_factor(e * steps - 1, 4 * steps, steps, 1e-2) for e in range(1, 5)]
    assert np.allclose(r.history["lr"], last_step)
    assert r.history["lr"].iloc[0] == pytest.approx(1e-2 * (0.01 + 0.99 * 6 / 7))  # still warming up
    assert r.history["lr"].iloc[1] < 1e-2 and r.history["lr"].iloc[-1] > 1e-4  # decaying towards the floor


@pytest.mark.parametrize("loss,smoothing", [("focal", 0.0), ("ce", 0.1), ("focal", 0.1)])
def test_focal_loss_and_label_smoothing_train(loss, smoothing):
    tr, va = _data()
    r = fit(_model(), tr, va, TrainConfig(epochs=4, batch_size=32, lr=1e-2, loss=loss, label_smoothing=smoothing,
                                          class_weights="balanced", patience=0), 2, torch.device("cpu"))
    assert r.history["val_accuracy"].max() > 0.75
    assert r.history["train_loss"].iloc[-1] < r.history["train_loss"].iloc[0]


def test_presets_follow_the_source_documents():
    """Checked against the documents' own lines: 000's noise sigma 0.01; 001's cross-entropy weighted by class
    frequency; 002's 0.1 % direction threshold; 004's Keras AdamW(learning_rate=5e-4): a constant rate, Keras's
    default weight decay 0.004, EarlyStopping's min_delta 0."""
    assert preset("resnet")["train"].noise_std == 0.01
    assert preset("convnext")["train"].class_weights == "balanced"
    assert preset("dilated")["data"].threshold == 0.001 and preset("dilated")["data"].horizon == 1
    chapter = preset("chapter")["train"]
    assert chapter.weight_decay == 0.004 and chapter.min_delta == 0 and chapter.warmup == 0
    assert all(lr_factor(s, 1000, 0, chapter.min_lr / chapter.lr) == 1.0 for s in (0, 500, 1000))


def test_bad_training_settings_are_refused_before_training():
    for bad, match in (({"class_weights": [1, 1, -1]}, "positive"), ({"class_weights": [1.2, 0, 1.2]}, "positive"),
                       ({"class_weights": [1, float("nan"), 1]}, "class_weights"), ({"min_delta": -0.1}, "min_delta")):
        with pytest.raises(UserError, match=match):
            TrainConfig(**bad).validate()
    TrainConfig(class_weights=[1.2, 0.1, 1.2], min_delta=0.0).validate()


def test_run_warnings_name_an_empty_class_a_constant_answer_and_an_oversized_batch():
    from core.train.trainer import run_warnings

    names = ["down", "flat", "up"]
    train_y = np.array([0, 2] * 50)
    mixed = np.array([0, 1, 2] * 20)
    w = run_warnings(train_y, mixed, names, DataConfig(threshold=0.0), TrainConfig(batch_size=64))
    assert len(w) == 1 and "Class 'flat' has no training samples" in w[0] and "threshold 0" in w[0]
    w = run_warnings(np.array([0, 1, 2] * 40), np.r_[np.zeros(99), 2], names, DataConfig(), TrainConfig(batch_size=4096))
    assert "answers 'down' for 99% of the test bars" in w[0]
    assert "batch size (4,096) is larger than the 120 training samples" in w[1]
    assert run_warnings(np.array([0, 1, 2] * 40), mixed, names, DataConfig(), TrainConfig()) == []


def test_run_settings_are_checked_before_any_work():
    """What the Train page says as settings change, and train_run says before preparing any data."""
    from core.train.config import model_start_config
    from core.train.trainer import check_run_settings, train_run

    with pytest.raises(UserError, match="wavenet_multitask answers direction, magnitude and volatility"):
        check_run_settings("wavenet_multitask", DataConfig(label="direction3"), TrainConfig())
    with pytest.raises(UserError, match="wavenet_multitask answers"):  # no dataset needed to be told
        train_run("no-such-dataset", "wavenet_multitask", data_config=DataConfig(label="direction3"))
    with pytest.raises(UserError, match="500 candles are too few: the resnet15 features need 25 bars of warm-up"):
        check_run_settings("cnn1d", DataConfig(window=1024), TrainConfig(), dataset_rows=500)
    check_run_settings("wavenet_multitask", DataConfig(label="multitask"), TrainConfig(), dataset_rows=5000)
    assert DataConfig(label="binary").class_names() == ["down", "up"]
    assert DataConfig(label="multitask").class_names() == ["down", "flat", "up"]
    assert model_start_config("resnet", "resnet18_1d")["width"] == 64  # the preset's own value
    assert model_start_config("quick", "resnet18_1d")["width"] == 32  # another preset's model: its defaults


def test_regression_metrics_match_sklearn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(8)
    t = rng.normal(size=400)
    p = 0.5 * t + rng.normal(scale=0.5, size=400)
    m = regression_metrics(np.r_[t, np.nan], np.r_[p, 1.0], train_mean=0.1)  # a NaN target is left out
    assert m["n"] == 400 and m["mae"] == pytest.approx(mean_absolute_error(t, p))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(t, p)))
    assert m["corr"] == pytest.approx(np.corrcoef(t, p)[0, 1]) and m["corr"] > 0.5
    assert m["mae_train_mean"] == pytest.approx(np.mean(np.abs(t - 0.1)))
    assert np.isnan(regression_metrics(t, np.zeros(400), 0.0)["corr"])  # a constant head: no correlation


def test_class_weight_choices_and_augmentation_switch():
    """What the Train page offers: class weights none / balanced / the preset's own list / custom (typed in), and
    one switch that turns every augmentation off."""
    t = TrainConfig(class_weights=[1.0, 2.0, 1.0], noise_std=0.01)
    assert t.class_weight_choices() == ["none", "balanced", "preset", "custom"] and t.class_weight_choice() == "preset"
    t.choose_class_weights("preset")
    assert t.class_weights == [1.0, 2.0, 1.0]
    t.choose_class_weights("balanced")
    assert t.class_weights == "balanced" and t.class_weight_choice() == "balanced"
    t.choose_class_weights("none")
    assert t.class_weights is None and t.class_weight_choices() == ["none", "balanced", "custom"]
    t.choose_class_weights("custom", "1.5, 0.5 ,1", ["down", "flat", "up"])
    assert t.class_weights == [1.5, 0.5, 1.0]
    with pytest.raises(UserError, match="one class weight for each of the 2 classes \\(down, up\\), got 3"):
        t.choose_class_weights("custom", "1, 2, 3", ["down", "up"])
    with pytest.raises(UserError, match="numbers separated by commas"):
        t.choose_class_weights("custom", "1, heavy", ["down", "up"])
    assert t.augments and not TrainConfig(noise_std=0.0, time_warp=0.0, window_slice=0.0).augments
    assert TrainConfig(noise_std=0.0, scale_min=0.9).augments  # magnitude scaling alone is an augmentation
    t.without_augmentation()
    assert not t.augments and (t.scale_min, t.scale_max) == (1.0, 1.0)


def test_a_runs_dropout_draws_from_its_own_generator_as_torchs_would():
    """Dropout and drop-path draw from the run's generator (thread-local), not torch's global one that other
    jobs share; with the same state they give exactly torch's own dropout, so a run's numbers did not move."""
    from core.models.blocks import DropPath, Dropout, private_rng

    x = torch.randn(8, 4, 16)
    torch.manual_seed(5)
    want = F.dropout(x, 0.3, True)
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(99)  # the global generator elsewhere: not used
    with private_rng(g):
        got = Dropout(0.3).train()(x)
    assert torch.equal(got, want)
    with private_rng(torch.Generator().manual_seed(7)):
        paths = DropPath(0.5).train()(x)  # whole samples dropped, from the same private stream
    keep = torch.empty(8, 1, 1).bernoulli_(0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(paths, x * keep / 0.5)
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(99).get_state())  # no global draw was taken
    assert torch.equal(Dropout(0.3).eval()(x), x)


def test_weight_decay_can_spare_biases_norms_and_layer_scale():
    """The convnext preset follows ConvNeXt's own recipe: decay 0.05 on the conv and linear weights only. With
    zero gradients one AdamW step leaves the 1-D parameters as they were and shrinks the others by lr x decay;
    every other preset decays all parameters, as the documents (and Keras) do."""
    from core.models import create_model
    from core.train.trainer import param_groups
    from core.viz.train import training_summary

    cfg = preset("convnext")["train"]
    assert cfg.decay_norms_and_biases is False
    assert all(preset(p)["train"].decay_norms_and_biases for p in PRESETS if p != "convnext")
    model = create_model("convnext1d", 4, 3)
    gammas = [n for n, p in model.named_parameters() if n.endswith("gamma")]
    assert gammas  # the layer-scale gammas are among the parameters tested
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=0.1, weight_decay=cfg.weight_decay)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        expected = before[n] if p.ndim <= 1 else before[n] * (1 - 0.1 * cfg.weight_decay)
        assert torch.allclose(p.detach(), expected), n
    assert "not on biases and norms" in training_summary(cfg)
    assert len(param_groups(model, TrainConfig())) == 1 and "not on" not in training_summary(TrainConfig())
