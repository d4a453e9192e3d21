"""Candle tables (validation, resampling, quality report) and the on-disk store (round trip, atomicity,
incremental ranges, the default offline dataset)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from core.data import store
from core.data.candles import (TIMEFRAMES, quality_report, resample_candles, timeframe_seconds,
                               validate_candles)
from core.data.store import (dataset_info, delete_dataset, ensure_default_dataset, list_datasets,
                             load_candles, missing_ranges, save_candles)
from core.errors import DataError


def _candles(n=48, start="2024-01-01", freq="1h") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp").as_unit("ns")
    c = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, n))
    df = pd.DataFrame({"open": c - 0.1, "high": c + 1, "low": c - 1, "close": c, "volume": np.arange(n) + 1.0},
                      index=idx)
    df.attrs.update(source="test", symbol="BTC/USDT", timeframe="1h")
    return df


def test_timeframes():
    assert list(TIMEFRAMES) == ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]
    assert timeframe_seconds("4h") == 14400
    with pytest.raises(DataError, match="unknown timeframe"):
        timeframe_seconds("7m")


def test_validate_refuses_broken_tables():
    good = _candles()
    assert validate_candles(good).index.name == "timestamp"
    bad = good.copy()
    bad.iloc[3, bad.columns.get_loc("high")] = bad["low"].iloc[3] - 1
    with pytest.raises(DataError, match="high below"):
        validate_candles(bad)
    # the sentence says where: the first of the broken bars (2024-01-01 03:00), so a user can look it up
    bad.iloc[7, bad.columns.get_loc("volume")] = -1.0
    bad.iloc[9, bad.columns.get_loc("high")] = bad["low"].iloc[9] - 1
    with pytest.raises(DataError, match=r"^1 candle has negative volume \(at 2024-01-01 07:00 UTC\)$"):
        validate_candles(bad)
    bad.iloc[7, bad.columns.get_loc("volume")] = 1.0
    with pytest.raises(DataError, match=r"^2 candles have a high below their low \(the first at 2024-01-01 03:00 UTC\)$"):
        validate_candles(bad)
    from core.data.candles import invalid_candles

    bad.iloc[7, bad.columns.get_loc("volume")] = -1.0
    assert [(t.hour, why) for t, why in invalid_candles(bad)] == \
        [(3, "high below low"), (7, "negative volume"), (9, "high below low")]
    assert invalid_candles(good) == [] and invalid_candles(good.iloc[:0]) == []
    with pytest.raises(DataError, match="not sorted"):
        validate_candles(good.iloc[::-1])
    with pytest.raises(DataError, match="no 'volume' column"):
        validate_candles(good.drop(columns="volume"))


def test_resample_matches_pandas():
    df = _candles(100)
    got = resample_candles(df, "4h")
    ref = df.resample("4h").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                 "volume": "sum"}).dropna()
    pd.testing.assert_frame_equal(got, ref, check_freq=False, check_names=False)
    with pytest.raises(DataError, match="finer"):
        resample_candles(df, "1m")


def test_quality_report_counts_gaps_duplicates_zero_volume():
    df = _candles(48)
    df = df.drop(df.index[10:13])                       # one gap of 3 bars
    df = pd.concat([df, df.iloc[[5]]]).sort_index()     # one duplicate
    df.iloc[0, df.columns.get_loc("volume")] = 0.0
    rep = quality_report(df, "1h")
    assert rep["rows"] == 46 and rep["duplicates"] == 1 and rep["zero_volume_bars"] == 1
    assert rep["gap_count"] == 1 and rep["missing_bars"] == 3
    assert rep["gaps"][0]["start"] == "2024-01-01T10:00:00+00:00"
    assert rep["gaps"][0]["end"] == "2024-01-01T12:00:00+00:00"
    assert rep["span_days"] == pytest.approx(47 / 24)


def test_round_trip_list_delete():
    df = _candles()
    info = save_candles(df, "bybit_linear", "BTC/USDT", "1h", meta={"note": "x"})
    assert info.id == "bybit_linear-BTCUSDT-1h" and info.rows == 48
    back = load_candles(info.id)
    pd.testing.assert_frame_equal(back, validate_candles(df), check_freq=False)
    assert back.attrs["source"] == "bybit_linear" and back.attrs["symbol"] == "BTC/USDT"
    got = dataset_info(info.id)
    assert got.start == df.index[0] and got.end == df.index[-1] and got.meta["note"] == "x"
    assert got.ranges == [(df.index[0], df.index[-1] + pd.Timedelta(hours=1))]
    assert [d.id for d in list_datasets()] == [info.id]
    delete_dataset(info.id)
    assert list_datasets() == []
    with pytest.raises(DataError, match="no dataset"):
        load_candles(info.id)


def test_failed_write_keeps_the_old_dataset(monkeypatch, workspace):
    info = save_candles(_candles(48), "test", "BTC/USDT", "1h")
    import pyarrow.parquet as pq

    def broken(table, path, **kw):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    with monkeypatch.context() as m, pytest.raises(OSError):
        m.setattr(pq, "write_table", broken)
        save_candles(_candles(96), "test", "BTC/USDT", "1h")
    assert len(load_candles(info.id)) == 48
    leftovers = [p for p in os.listdir(workspace / "data" / "candles") if p.endswith(".tmp")]
    assert leftovers == []
    assert dataset_info(info.id).rows == 48
    # killed between the candles and their index: the index says what the candles are, not what they were
    import core.data.store as store_mod

    def killed(*a, **kw):
        raise KeyboardInterrupt("process killed here")

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(store_mod, "atomic_write_json", killed)
        save_candles(_candles(96), "test", "BTC/USDT", "1h")
    assert dataset_info(info.id).rows == len(load_candles(info.id)) == 96
    assert [i.rows for i in list_datasets()] == [96]
    # a reader meanwhile does not write its copy of the index back (a writer could be between its parquet and
    # its json, and would find that copy over its new candles)
    assert not (workspace / "data" / "candles" / f"{info.id}.json").exists()
    save_candles(_candles(120), "test", "BTC/USDT", "1h")
    assert dataset_info(info.id).rows == 120 and (workspace / "data" / "candles" / f"{info.id}.json").exists()


def test_metadata_index_is_rebuilt_from_parquet(workspace):
    info = save_candles(_candles(), "test", "ETH/USDT", "1h")
    (workspace / "data" / "candles" / f"{info.id}.json").unlink()
    assert dataset_info(info.id).rows == 48


def test_missing_ranges():
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    held = [(t("2024-01-02"), t("2024-01-03")), (t("2024-01-05"), t("2024-01-06"))]
    assert missing_ranges(t("2024-01-01"), t("2024-01-07"), held) == [
        (t("2024-01-01"), t("2024-01-02")), (t("2024-01-03"), t("2024-01-05")), (t("2024-01-06"), t("2024-01-07"))]
    assert missing_ranges(t("2024-01-02"), t("2024-01-03"), held) == []


def test_bad_ids_are_refused():
    with pytest.raises(DataError):
        load_candles("../../etc/passwd")


def test_default_dataset_is_made_once():
    ds = ensure_default_dataset()
    assert ds == "synthetic-BTCUSDT-1h"
    ids = [d.id for d in list_datasets()]
    assert ids == ["synthetic-BTCUSDT-1h", "synthetic-ETHUSDT-1h"]
    info = dataset_info(ds)
    assert info.source == "synthetic" and info.meta["seed"] == 42 and info.rows == 17544
    assert info.end == pd.Timestamp("2025-12-31 23:00", tz="UTC")
    before = os.path.getmtime(store._paths(ds)[0])
    assert ensure_default_dataset() == ds and os.path.getmtime(store._paths(ds)[0]) == before


def test_dataset_version_changes_when_the_candles_are_rewritten(workspace):
    import time

    from core.data.store import dataset_version, save_candles
    from core.data.synthetic import generate_market

    c = next(iter(generate_market("BTC/USDT", "1h", periods=200, seed=1).values()))
    info = save_candles(c, "synthetic", "BTC/USDT", "1h")
    v1 = dataset_version(info.id)
    assert v1 > 0 and dataset_version("synthetic-NOPE-1h") == 0
    time.sleep(0.01)
    save_candles(c.iloc[:150], "synthetic", "BTC/USDT", "1h")
    assert dataset_version(info.id) != v1  # the app's candle cache is keyed on this


def test_a_dataset_needs_at_least_two_candles(workspace):
    # one candle crashes every range slider and feature downstream: refused at the store, for every source
    for n in (0, 1):
        with pytest.raises(DataError, match=f"a dataset needs at least 2 candles; this one has {n}: choose a "
                                            "longer span"):
            save_candles(_candles(n), "test", "BTC/USDT", "1h")
    assert list_datasets() == [] and not [p for p in workspace.rglob("*") if p.is_file()]
    info = save_candles(_candles(2), "test", "BTC/USDT", "1h")
    # a failed save leaves the stored dataset as it was
    with pytest.raises(DataError, match="at least 2 candles"):
        save_candles(_candles(1), "test", "BTC/USDT", "1h")
    assert dataset_info(info.id).rows == 2 and len(load_candles(info.id)) == 2


def test_synthetic_market_refuses_one_candle_and_bad_dates():
    from core.data.store import make_synthetic_datasets

    with pytest.raises(DataError, match="a dataset needs at least 2 candles; this span holds 1 1d candle"):
        make_synthetic_datasets(["BTC/USDT"], "1d", start="2024-01-01", end="2024-01-02")
    with pytest.raises(DataError, match="at least 2 candles; this span holds 1 1h candle"):
        make_synthetic_datasets(["BTC/USDT"], "1h", start="2024-01-01", periods=1)
    with pytest.raises(DataError, match="the start 'notadate' is not a date; use e.g. 2024-01-01"):
        make_synthetic_datasets(["BTC/USDT"], "1h", start="notadate", periods=10)
    with pytest.raises(DataError, match="the end 'soon' is not a date"):
        make_synthetic_datasets(["BTC/USDT"], "1h", start="2024-01-01", end="soon")
    with pytest.raises(DataError, match=r"the start \(3000-01-01\) is outside the dates a dataset can hold"):
        make_synthetic_datasets(["BTC/USDT"], "1h", start="3000-01-01", periods=10)
    assert list_datasets() == []
    # two 1-minute candles (a single simulated hour) are fine, and finite
    info = make_synthetic_datasets(["BTC/USDT"], "1m", start="2024-01-01", periods=2)[0]
    assert info.rows == 2 and np.isfinite(load_candles(info.id).to_numpy()).all()


def test_data_cli_sentences(capsys):
    from core.cli import main

    assert main(["data", "synth", "--start", "notadate"]) == 2
    err = capsys.readouterr().err
    assert "the start 'notadate' is not a date" in err and "Traceback" not in err
    assert main(["data", "synth", "--periods", "1"]) == 2
    assert "a dataset needs at least 2 candles" in capsys.readouterr().err
    assert main(["data", "synth", "--periods", "1", "--suffix", "../x"]) == 2
    assert "is not a usable name suffix" in capsys.readouterr().err and list_datasets() == []
    assert main(["data", "synth", "--symbols", "BTC/USDT", "--periods", "48", "--suffix", "short"]) == 0
    assert "synthetic-BTCUSDT-1h-short: 48 candles" in capsys.readouterr().out
    delete_dataset("synthetic-BTCUSDT-1h-short")
    assert main(["data", "delete", "no-such"]) == 2
    assert "there is no dataset or order book 'no-such'" in capsys.readouterr().err
    assert list_datasets() == []
    # a real order book and a real dataset are still deleted by the same command
    from core.data.orderbook import list_order_books, make_synthetic_order_book

    ds = save_candles(_candles(48), "test", "BTC/USDT", "1h").id
    book = make_synthetic_order_book(ds, levels=5, max_snapshots=10)
    assert main(["data", "delete", book.id]) == 0 and list_order_books() == []
    assert main(["data", "delete", ds]) == 0 and list_datasets() == []


def test_a_name_suffix_keeps_a_synthetic_variant_beside_the_default(workspace):
    """A 2-day BTC/USDT 1h market was refused because synthetic-BTCUSDT-1h is held, and Replace would orphan
    the runs on it: a name suffix stores the variant beside it."""
    from core.data.store import make_synthetic_datasets, name_suffix, split_dataset_id

    default = ensure_default_dataset()
    rows = dataset_info(default).rows
    with pytest.raises(store.DatasetExists):
        make_synthetic_datasets(["BTC/USDT"], "1h", start="2025-01-01", end="2025-01-03", replace=False)
    info = make_synthetic_datasets(["BTC/USDT"], "1h", start="2025-01-01", end="2025-01-03", replace=False,
                                   suffix=" short ")[0]
    assert info.id == "synthetic-BTCUSDT-1h-short" and info.rows == 48 and info.meta["suffix"] == "short"
    assert info.symbol == "BTC/USDT" and info.timeframe == "1h" and info.source == "synthetic"
    assert dataset_info(default).rows == rows  # the default market is untouched
    assert [d.id for d in list_datasets()] == ["synthetic-BTCUSDT-1h", "synthetic-BTCUSDT-1h-short",
                                               "synthetic-ETHUSDT-1h"]
    assert load_candles(info.id).attrs["dataset"] == info.id
    # the variant is refused in its turn unless replaced
    with pytest.raises(store.DatasetExists):
        make_synthetic_datasets(["BTC/USDT"], "1h", start="2025-01-01", end="2025-01-03", replace=False,
                                suffix="short")
    # the ids read back: suffix and all
    assert split_dataset_id(info.id) == ("synthetic", "BTCUSDT", "1h", "short")
    assert split_dataset_id(default) == ("synthetic", "BTCUSDT", "1h", "")
    assert split_dataset_id("import-MYCOIN-4h-a-b") == ("import", "MYCOIN", "4h", "a-b")
    for bad in ("synthetic-BTCUSDT", "synthetic-BTCUSDT-1h-", "--1h"):
        with pytest.raises(DataError):
            split_dataset_id(bad)
    # the workspace's safe-name rules, as a sentence, before anything is generated
    assert name_suffix("") == "" and name_suffix(None) == "" and name_suffix("v2.try_1") == "v2.try_1"
    for bad in ("../x", "a/b", "-x", ".hidden", "two words", "x" * 129):
        with pytest.raises(DataError, match="not a usable name suffix"):
            make_synthetic_datasets(["BTC/USDT"], "1h", start="2025-01-01", end="2025-01-03", suffix=bad)
    assert len(list_datasets()) == 3


def test_a_books_fingerprint_is_stored_with_it_so_a_runs_record_reads_no_table(workspace, monkeypatch):
    """Training read the order-book file twice (once for the run's record of the book, once for the images),
    and every Inspect/Backtest view of an order-book run read it again to see whether it was replaced. The
    fingerprint sits in the parquet file's own metadata, written with the table in one atomic write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.data import orderbook as ob
    from core.train.trainer import changed_book_note

    ds = save_candles(_candles(48), "test", "BTC/USDT", "1h").id
    book = ob.make_synthetic_order_book(ds, levels=5, max_snapshots=10)
    table = ob.load_order_book(book.id)
    assert ob.stored_digest(book.id) == ob.book_digest(table)  # the same as reading the rows

    def no_read(book_id):
        raise AssertionError("the table was read")
    monkeypatch.setattr(ob, "load_order_book", no_read)
    rec = ob.book_record(book.id)
    assert rec["digest"] == ob.book_digest(table) and rec["snapshots"] == 10
    assert changed_book_note({"order_book": rec}) is None
    monkeypatch.undo()
    # other prices under the same id and span: the stored fingerprint changes with them
    moved = table.assign(price=table["price"] * 1.01)
    ob.save_order_book(moved, book.id, "synthetic", "BTC/USDT")
    note = changed_book_note({"order_book": rec})
    assert note and "the same 10 snapshots" in note and "other prices or sizes" in note
    # a book saved before books carried a fingerprint: read from the table, as before
    parquet_path, _ = ob._paths(book.id)
    pq.write_table(pa.Table.from_pandas(moved, preserve_index=False), parquet_path)
    assert b"cnn_lab_book_digest" not in (pq.read_schema(parquet_path).metadata or {})
    assert ob.book_record(book.id)["digest"] == ob.book_digest(moved)
