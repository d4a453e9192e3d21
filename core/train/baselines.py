"""Simple baselines fitted on exactly the samples, labels and split the CNN sees.

- `majority`: always predicts the class proportions of the training split (its argmax is the majority
  class); the floor any model must clear.
- `logistic`: multinomial logistic regression (sklearn) on *window summary features*: for every input
  channel, the last value, the mean, std, min and max over the window, and the change last - first
  (6 x C numbers per sample). `window_features(..., mode="flat")` gives the whole flattened window instead
  (C x window numbers) for those who want the model to see exactly what the CNN sees.
- `mlp`: a small multi-layer perceptron (sklearn, one hidden layer of 64) on the same summary features,
  trained epoch by epoch and stopped early on the *validation split* (log loss, patience 10; the best epoch's
  weights are kept), like the CNN; only on request because it is slower. sklearn's own early stopping
  holds out a shuffled 10 % of the training samples, whose windows overlap their neighbours in train: that
  score is nearly in-sample, so it stopped late and left an over-fitted baseline that flattered the CNN.
All are fitted on the train split only (the scaler too) and seeded.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.errors import UserError

BASELINES = ("majority", "logistic", "mlp")
LOGISTIC_MAX_ITER = 2000
MLP_MAX_EPOCHS, MLP_PATIENCE = 200, 10
DESCRIPTIONS = {
    "majority": "predicts the training class frequencies (majority class)",
    "logistic": "logistic regression on per-channel last/mean/std/min/max/change over the window",
    "mlp": "MLP (64 hidden, early stopping on the validation split) on per-channel last/mean/std/min/max/change "
           "over the window",
}


def _not_converged(clf: Any) -> bool:
    """Whether an sklearn solver stopped at its iteration limit (n_iter_ reached max_iter)."""
    n_iter = np.max(getattr(clf, "n_iter_", 0))
    return int(n_iter) >= int(getattr(clf, "max_iter", np.inf))


@dataclass
class BaselineResult:
    name: str
    description: str
    proba: np.ndarray  # (n_test, K)


def window_features(features: np.ndarray, ends: np.ndarray, window: int, mode: str = "summary") -> np.ndarray:
    """Per-sample tabular features of the windows ending at `ends` (float64 `(n, d)`)."""
    f = np.asarray(features, dtype=np.float32)
    ends = np.asarray(ends, dtype=np.int64)
    views = sliding_window_view(f, window, axis=0)  # (T - window + 1, C, window), no copy
    w = views[ends - window + 1].astype(np.float64)  # (n, C, window)
    if mode == "flat":
        return w.reshape(len(ends), -1)
    if mode != "summary":
        raise UserError(f"unknown baseline feature mode {mode!r}; use 'summary' or 'flat'")
    last, first = w[:, :, -1], w[:, :, 0]
    return np.concatenate([last, w.mean(2), w.std(2), w.min(2), w.max(2), last - first], axis=1)


def _full_proba(model: Any, x: np.ndarray, k: int) -> np.ndarray:
    """predict_proba padded to all K classes (a class absent from train gets probability 0)."""
    p = model.predict_proba(x)
    out = np.zeros((x.shape[0], k))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = p
    return out


def _mlp_split(train_ends: np.ndarray, val_ends: np.ndarray | None, y: np.ndarray,
               window: int) -> tuple[np.ndarray, np.ndarray]:
    """The MLP's training and early-stopping samples: train and the given validation split, or else the
    training samples before and after a chronological cut at 85 %, `window` samples apart (not purged by the
    label horizon, which this function does not know: the trainer always passes its purged validation split)."""
    if val_ends is not None and len(val_ends):
        return train_ends, np.asarray(val_ends, dtype=np.int64)
    cut = int(len(train_ends) * 0.85)
    fit_ends, stop_ends = train_ends[:max(1, cut - window)], train_ends[cut:]
    if stop_ends.size == 0 or np.unique(y[fit_ends]).size < 2:
        raise UserError("too few training samples for the MLP baseline: leave it out or use more data")
    return fit_ends, stop_ends


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba[np.arange(y.size), y], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


def _fit_mlp(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, n_classes: int,
             seed: int) -> tuple[Any, bool]:
    """A scaled MLP trained one epoch at a time, keeping the epoch of lowest validation log loss (patience
    `MLP_PATIENCE`); returns the fitted pipeline and whether it ran out of epochs still improving."""
    import copy

    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_tr)
    xt, xv = scaler.transform(x_tr), scaler.transform(x_va)
    clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=seed)
    classes = np.unique(y_tr)
    best, best_loss, since = None, np.inf, 0
    for _ in range(MLP_MAX_EPOCHS):
        clf.partial_fit(xt, y_tr, classes=classes)  # one shuffled pass (seeded by random_state)
        loss = _log_loss(y_va, _full_proba(clf, xv, n_classes))
        if loss < best_loss - 1e-4:
            best, best_loss, since = copy.deepcopy(clf), loss, 0
        else:
            since += 1
            if since >= MLP_PATIENCE:
                break
    return make_pipeline(scaler, best if best is not None else clf), since < MLP_PATIENCE


def fit_baselines(features: np.ndarray, y: np.ndarray, train_ends: np.ndarray, test_ends: np.ndarray,
                  window: int, n_classes: int, names: Sequence[str] = ("majority", "logistic"),
                  seed: int = 0, mode: str = "summary",
                  val_ends: np.ndarray | None = None) -> dict[str, BaselineResult]:
    """Fit each named baseline on the train samples and return its test-set probabilities.

    `val_ends`, the purged validation split, is where the MLP stops early; without it the MLP holds out the
    last 15 % of the training samples (in time order, `window` samples apart from the rest).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise UserError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    y = np.asarray(y, dtype=np.int64)
    y_tr = y[np.asarray(train_ends)]
    if y_tr.size == 0:
        raise UserError("the training split is empty: use a longer dataset or a larger train share")
    out: dict[str, BaselineResult] = {}
    n_test = len(test_ends)
    if "majority" in names:
        freq = np.bincount(y_tr, minlength=n_classes).astype(np.float64)
        out["majority"] = BaselineResult("majority", DESCRIPTIONS["majority"],
                                         np.tile(freq / freq.sum(), (n_test, 1)))
    want = [n for n in names if n in ("logistic", "mlp")]
    if not want:
        return out
    x_tr = window_features(features, train_ends, window, mode)
    x_te = window_features(features, test_ends, window, mode)
    single_class = np.unique(y_tr).size < 2
    for name in want:
        if single_class:  # nothing to learn: degenerate to the majority answer
            freq = np.bincount(y_tr, minlength=n_classes).astype(np.float64)
            out[name] = BaselineResult(name, DESCRIPTIONS[name] + " (one class in train)",
                                       np.tile(freq / freq.sum(), (n_test, 1)))
            continue
        # One BLAS thread: these problems are small, and a multi-threaded BLAS on cores that are busy
        # (training beside it, other jobs) is 10 to 100 times slower than one thread.
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # said in the description instead
            if name == "logistic":
                # 2,000 iterations: the flattened 64-bar window of 15 channels (960 inputs) on two years of 1h
                # bars needs about 750; 500 left that baseline under-fitted, flattering the CNN beside it
                clf = LogisticRegression(max_iter=LOGISTIC_MAX_ITER, C=1.0, random_state=seed)
                model = make_pipeline(StandardScaler(), clf).fit(x_tr, y_tr)
                unconverged = _not_converged(clf)
            else:
                fit_ends, stop_ends = _mlp_split(np.asarray(train_ends), val_ends, y, window)
                model, unconverged = _fit_mlp(window_features(features, fit_ends, window, mode), y[fit_ends],
                                              window_features(features, stop_ends, window, mode), y[stop_ends],
                                              n_classes, seed)
        desc = DESCRIPTIONS[name] if mode == "summary" else DESCRIPTIONS[name].replace(
            " on per-channel last/mean/std/min/max/change over the window", " on the flattened scaled window")
        if name == "mlp" and (val_ends is None or not len(val_ends)):
            desc = desc.replace("on the validation split", "on the last 15 % of the training samples")
        if unconverged:
            desc += " (stopped before converging: an under-fitted baseline)"
        with threadpool_limits(limits=1):
            proba = _full_proba(model, x_te, n_classes)
        out[name] = BaselineResult(name, desc, proba)
    return out
