"""Simple baselines fitted on exactly the samples, labels and split the CNN sees.

- `majority`: always predicts the class proportions of the training split (its argmax is the majority
  class); the floor any model must clear.
- `logistic`: multinomial logistic regression (sklearn) on *window summary features*: for every input
  channel, the last value, the mean, std, min and max over the window, and the change last - first
  (6 x C numbers per sample). `window_features(..., mode="flat")` gives the whole flattened window instead
  (C x window numbers) for those who want the model to see exactly what the CNN sees.
- `mlp`: a small multi-layer perceptron (sklearn, one hidden layer of 64, early stopping) on the same
  summary features; only on request because it is slower.
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
DESCRIPTIONS = {
    "majority": "predicts the training class frequencies (majority class)",
    "logistic": "logistic regression on per-channel last/mean/std/min/max/change over the window",
    "mlp": "MLP (64 hidden, early stopping) on per-channel last/mean/std/min/max/change over the window",
}


def _not_converged(clf: Any) -> bool:
    """Whether an sklearn solver stopped at its iteration limit (logistic: n_iter_; MLP: without early
    stopping having ended it)."""
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


def fit_baselines(features: np.ndarray, y: np.ndarray, train_ends: np.ndarray, test_ends: np.ndarray,
                  window: int, n_classes: int, names: Sequence[str] = ("majority", "logistic"),
                  seed: int = 0, mode: str = "summary") -> dict[str, BaselineResult]:
    """Fit each named baseline on the train samples and return its test-set probabilities."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
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
        if name == "logistic":
            # 2,000 iterations: the flattened 64-bar window of 15 channels (960 inputs) on two years of 1h
            # bars needs about 750; 500 left that baseline under-fitted, flattering the CNN beside it
            clf = LogisticRegression(max_iter=LOGISTIC_MAX_ITER, C=1.0, random_state=seed)
        else:
            clf = MLPClassifier(hidden_layer_sizes=(64,), early_stopping=True, max_iter=200,
                                random_state=seed)
        model = make_pipeline(StandardScaler(), clf)
        # One BLAS thread: these problems are small, and a multi-threaded BLAS on cores that are busy
        # (training beside it, other jobs) is 10 to 100 times slower than one thread.
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # said in the description instead
            model.fit(x_tr, y_tr)
        desc = DESCRIPTIONS[name] if mode == "summary" else DESCRIPTIONS[name].split(" on ")[0] + \
            " on the flattened scaled window"
        if _not_converged(clf):
            desc += " (stopped before converging: an under-fitted baseline)"
        with threadpool_limits(limits=1):
            proba = _full_proba(model, x_te, n_classes)
        out[name] = BaselineResult(name, desc, proba)
    return out
