"""One sample of a run as its model reads it (Inspect page), window picking by time, and gallery picks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core.encodings.datasets import gallery_ends, make_dataset
from core.encodings.samples import covered_bars, end_near, sample_batch, sample_for_run, selectable_ends
from core.errors import UserError
from test_encodings_datasets import WINDOW, _prepared


def _cfg(kind: str, **encoding) -> dict:
    return {"input_kind": kind, "data_config": {"encoding": encoding}}


def test_sequence_sample_is_the_trainers_window_and_its_candles():
    p = _prepared()
    end = int(p.splits["test"][5])
    s = sample_for_run(p, _cfg("sequence"), end)
    np.testing.assert_array_equal(s.x, p.features[end - WINDOW + 1: end + 1].T)
    assert s.y == p.y[end] and s.n_bars == WINDOW
    assert s.candles.index[-1] == p.timestamps[end] and s.timestamp == p.timestamps[end]
    assert s.channel_names == p.feature_names


@pytest.mark.parametrize("kind,enc", [("indicator_image", {}), ("chart_image", {"size": 32, "chart_window": 12})])
def test_image_samples_match_make_dataset(kind, enc):
    p = _prepared()
    ends = p.splits["test"][:4]
    ds = make_dataset(p, ends, kind, **enc)
    for i, e in enumerate(ends):
        s = sample_for_run(p, _cfg(kind, **enc), int(e))
        np.testing.assert_array_equal(s.x, ds[i][0].numpy())
    if kind == "chart_image":  # the chart covers its own (shorter) window: attributions map onto those bars
        assert s.x.shape == (3, 32, 32) and s.n_bars == 12 == covered_bars(p, _cfg(kind, **enc))
        assert s.channel_names is None
    batch = sample_batch(p, _cfg(kind, **enc), ends)
    np.testing.assert_array_equal(batch, torch.stack([ds[i][0] for i in range(len(ends))]).numpy())


def test_orderbook_sample_uses_the_given_book():
    from core.data.synthetic import synthetic_order_book_snapshots

    p = _prepared()
    book = synthetic_order_book_snapshots(p.candles, levels=10, seed=1)
    s = sample_for_run(p, _cfg("orderbook_image"), int(p.splits["test"][0]), order_book=book)
    assert s.x.shape == (1, WINDOW, 100) and 0 <= s.x.min() and s.x.max() <= 1 and s.x.max() > 0
    assert len(s.channel_names) == 100


def test_bad_end_is_a_sentence():
    p = _prepared()
    with pytest.raises(UserError, match="full window"):
        sample_for_run(p, _cfg("sequence"), 2)


def test_end_near_and_selectable_ends():
    p = _prepared()
    p.y[p.splits["test"][0]] = -1  # an undefined label is never offered
    ends = selectable_ends(p, "test")
    assert p.splits["test"][0] not in ends and len(ends) == len(p.splits["test"]) - 1
    target = p.timestamps[ends[3]] + pd.Timedelta(minutes=20)
    assert end_near(p, ends, target) == ends[3]
    assert end_near(p, ends, target.tz_convert(None)) == ends[3]  # naive times are UTC
    assert end_near(p, ends, "1990-01-01") == ends[0]
    with pytest.raises(UserError):
        end_near(p, ends, "not a date")
    with pytest.raises(UserError):
        selectable_ends(p, "holdout")


def test_gallery_ends_are_grouped_by_class_seeded_and_from_the_split():
    p = _prepared(t=300)
    g = gallery_ends(p, "train", per_class=4, seed=3)
    labels = p.y[g]
    assert list(labels) == sorted(labels)  # class order: down, flat, up
    assert all(np.bincount(labels, minlength=3) == 4)
    assert set(g) <= set(p.splits["train"])
    np.testing.assert_array_equal(g, gallery_ends(p, "train", per_class=4, seed=3))
    assert not np.array_equal(g, gallery_ends(p, "train", per_class=4, seed=4))
    with pytest.raises(UserError):
        gallery_ends(p, "train", per_class=0)


def test_all_ends_and_window_facts():
    from core.encodings.samples import all_ends, window_facts

    p = _prepared()
    ends = all_ends(p)
    assert (np.diff(ends) > 0).all() and len(ends) == sum(len(p.splits[s]) for s in ("train", "val", "test"))
    for s in ("train", "val", "test"):
        e = int(p.splits[s][0])
        seg, label = window_facts(p, e)
        lab = int(p.y[e])
        assert seg == s and label == (p.class_names[lab] if lab >= 0 else "undefined")
    last = int(p.splits["test"][-1])
    assert window_facts(p, last)[0] == "test"
