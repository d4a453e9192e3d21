"""Classification metrics and the paired block-bootstrap comparison of two models.

`classification_metrics(y_true, proba, class_names)` returns one flat, JSON-able dict with snake_case names:
accuracy, balanced_accuracy, macro_f1, roc_auc (one-vs-rest, macro), log_loss, per_class (precision /
recall / f1 / support per class name), confusion (rows = true, columns = predicted), n. sklearn does the work.
Averages over classes follow sklearn's defaults: macro F1 over the classes that occur in the labels or the
predictions (a class that never occurs, such as "flat" at threshold 0, would count as an F1 of 0), balanced
accuracy and ROC AUC over the classes that occur in the labels. `per_class` still lists every class.

`paired_block_bootstrap(...)` gives the difference of a metric between two models on the same test samples
with a confidence interval. Test samples of a time series are not independent (neighbouring windows
overlap, labels span `horizon` bars, and a model's answer often persists for many bars), so samples are
resampled in contiguous blocks (a circular moving-block bootstrap), and both models see the same resampled
indices (paired). The block length follows the data: Politis & White's automatic choice on the series of
per-sample differences (which one model got right that the other did not), never shorter than the label
horizon or n^(1/3).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
from sklearn import metrics as skm

from core.errors import UserError

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")


def _check(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[1] != n_classes:
        raise UserError(f"probabilities of shape {p.shape} do not match {y.shape[0]} labels and "
                        f"{n_classes} classes")
    if y.size == 0:
        raise UserError("there are no samples to evaluate: use a longer dataset or a larger test share")
    return y, p


def classification_metrics(y_true: Sequence[int], proba: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """All headline metrics of predicted class probabilities `proba (n, K)` against `y_true (n,)`."""
    k = len(class_names)
    y, p = _check(np.asarray(y_true), proba, k)
    labels = list(range(k))
    pred = p.argmax(1)
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    present = np.unique(y)
    # balanced accuracy over the classes present in y_true (sklearn's definition)
    bal = float(np.mean([rec[c] for c in present])) if present.size else float("nan")
    pn = np.clip(p, 1e-15, 1.0)
    pn = pn / pn.sum(1, keepdims=True)
    out: dict[str, Any] = {
        "n": int(y.size),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": bal,
        "macro_f1": float(np.mean(f1[np.union1d(present, np.unique(pred))])),
        "roc_auc": roc_auc_ovr(y, p, k),  # ranks: on the raw probabilities (clipping breaks exact ties)
        "log_loss": float(skm.log_loss(y, pn, labels=labels)),
        "per_class": {
            str(name): {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                        "support": int(sup[i])}
            for i, name in enumerate(class_names)
        },
        "confusion": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "class_names": [str(c) for c in class_names],
    }
    return out


def macro_f1_of_saved(m: dict[str, Any]) -> Optional[float]:
    """Macro F1 over the classes that occur, from a saved metric set's per-class F1 and confusion matrix (None
    when they are missing). Runs saved before 2026-11-29 averaged over every class, an empty one as 0."""
    per_class, cm = m.get("per_class"), m.get("confusion")
    try:
        cm = np.asarray(cm, dtype=np.float64)
        f1 = np.array([float(v["f1"]) for v in per_class.values()])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if cm.ndim != 2 or cm.shape != (f1.size, f1.size):
        return None
    occurs = (cm.sum(0) + cm.sum(1)) > 0
    return float(f1[occurs].mean()) if occurs.any() else None


def regression_metrics(target: np.ndarray, pred: np.ndarray, train_mean: float) -> dict[str, float]:
    """How well a regression head (the multi-task magnitude or volatility) predicts its target: MAE, RMSE,
    the correlation of prediction and target, and the MAE of always answering the training mean (the
    floor a head must clear; a head that learned nothing lands there with a correlation near 0)."""
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size == 0:
        raise UserError("there are no regression targets to evaluate")
    corr = float(np.corrcoef(t, p)[0, 1]) if t.size > 1 and t.std() > 0 and p.std() > 0 else float("nan")
    return {"n": int(t.size), "mae": float(np.mean(np.abs(p - t))), "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
            "corr": corr, "mae_train_mean": float(np.mean(np.abs(t - train_mean)))}


def roc_auc_ovr(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Macro one-vs-rest ROC AUC over classes that have both positives and negatives (NaN if none)."""
    aucs = []
    for c in range(k):
        pos = y == c
        if pos.any() and (~pos).any():
            aucs.append(skm.roc_auc_score(pos, p[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


# ---- fast metric kernels for the bootstrap (thousands of resamples: no sklearn call per resample) ----

def _acc(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(np.mean(y == pred))


def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    cm = _confusion(y, pred, k).astype(np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)
    # the classes that occur in y or pred (denom > 0), as sklearn's average="macro" does
    return float(np.mean(2 * tp[denom > 0] / denom[denom > 0])) if (denom > 0).any() else float("nan")


def _bal_acc(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    cm = _confusion(y, pred, k).astype(np.float64)
    support = cm.sum(1)
    rec = np.diag(cm)[support > 0] / support[support > 0]
    return float(rec.mean()) if rec.size else float("nan")


FAST_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "accuracy": _acc, "macro_f1": _macro_f1, "balanced_accuracy": _bal_acc,
}


def optimal_block_length(x: np.ndarray) -> float:
    """Politis & White's (2004) automatic block length for a circular block bootstrap of the mean of `x`,
    with the correction of Patton, Politis & White (2009).

    The same algorithm and tuning as `arch.bootstrap.optimal_block_length(x)["circular"]` (tested equal for
    13 samples or more; arch fails below 8):
    the bandwidth m is twice the first lag after which k_n = max(5, log10 n) autocorrelations in a row lie
    inside +-2 sqrt(log10(n) / n); the flat-top kernel estimates of the long-run variance and of
    sum |k| gamma_k give b = (2 g^2 / (4/3 sigma^4))^(1/3) n^(1/3), at most min(3 sqrt(n), n / 3). A series
    without variance (two models that agree everywhere) gives 1.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    eps = x - x.mean()
    if n < 3 or not np.any(eps):
        return 1.0
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    kn = max(5, int(math.log10(n)))
    m_max = min(math.ceil(math.sqrt(n)) + kn, n - 2)  # (the cap only binds for a handful of samples)
    lags = np.arange(m_max + 1)
    cross = np.array([eps[i:] @ eps[:n - i] for i in lags])
    acv = cross / n
    sq = np.concatenate([[0.0], np.cumsum(eps ** 2)])  # sums of squares of eps[:j] and eps[j:]
    v1, v2 = sq[n] - sq[lags + 1], sq[n - lags - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        small = np.abs(cross) / np.sqrt(v1 * v2) < 2 * math.sqrt(math.log10(n) / n)
    opt_m = next((i - kn for i in range(kn, m_max + 1) if small[i - kn:i].all()), None)
    m = min(2 * max(opt_m, 1) if opt_m is not None else m_max, m_max)
    k = np.arange(1, m + 1)
    lam = np.where(k / m <= 0.5, 1.0, 2 * (1 - k / m))
    g = float(np.sum(2 * lam * k * acv[1:m + 1]))
    lr_var = float(acv[0] + np.sum(2 * lam * acv[1:m + 1]))
    if lr_var == 0:  # the formula's limit: as long a block as allowed (arch divides by zero there)
        return float(b_max)
    return float(min((2 * g ** 2 / (4 / 3 * lr_var ** 2)) ** (1 / 3) * n ** (1 / 3), b_max))


def default_block_length(n: int, horizon: int = 1, dependence: float = 1.0) -> int:
    """Blocks at least as long as the label horizon (labels of neighbours overlap), ~n^(1/3), and `dependence`
    (Politis & White's choice for the per-sample differences between two models: a model whose answer
    persists for many bars makes those differences depend on each other over that span), at most
    min(3 sqrt(n), n / 3) for the last.

    `bench/bench_bootstrap_coverage.py` measures how often a nominal 95 % interval of two models unrelated
    to the labels excludes 0: with answers that persist for many bars, blocks of n^(1/3) alone called a
    difference far more often than 5 %; these blocks halve that excess, and very persistent answers (a few
    independent stretches in a test span) stay above 5 %, which no bootstrap fixes."""
    auto = math.ceil(min(dependence, 3 * math.sqrt(n), n / 3))
    return int(max(1, min(n, max(int(horizon), round(n ** (1 / 3)), auto))))


def block_bootstrap_indices(n: int, block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`(n_boot, n)` indices of a circular moving-block bootstrap: random starts, contiguous blocks."""
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(n_boot, -1)[:, :n]


def paired_block_bootstrap(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, k: int,
                           metric: str = "accuracy", block: int | None = None, horizon: int = 1,
                           n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """`metric(a) - metric(b)` with a percentile confidence interval from a paired block bootstrap."""
    if metric not in FAST_METRICS:
        raise UserError(f"bootstrap metric must be one of {', '.join(FAST_METRICS)}")
    f = FAST_METRICS[metric]
    y = np.asarray(y_true, dtype=np.int64)
    a = np.asarray(pred_a, dtype=np.int64)
    b = np.asarray(pred_b, dtype=np.int64)
    n = y.size
    if n < 2:
        raise UserError("too few test samples for a bootstrap interval")
    if not block:  # how far the per-sample differences (one model right, the other wrong) hang together
        block = default_block_length(n, horizon, optimal_block_length((a == y).astype(np.float64) - (b == y)))
    block = int(block)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i, idx in enumerate(block_bootstrap_indices(n, block, n_boot, rng)):
        yy = y[idx]
        diffs[i] = f(yy, a[idx], k) - f(yy, b[idx], k)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return {
        "metric": metric, "diff": f(y, a, k) - f(y, b, k), "ci_low": float(lo), "ci_high": float(hi),
        "confidence": 1 - alpha, "block": block, "n_boot": int(n_boot), "n": int(n),
        "p_not_better": float(np.mean(diffs <= 0)),
    }
