"""File import: formats, column matching, timestamp units, and every bad-input case with its sentence."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from core.data.importer import import_candles, read_candle_file
from core.data.store import list_datasets, load_candles
from core.errors import DataError

HEADER = "timestamp,open,high,low,close,volume\n"


def _csv(rows: list[str], header: str = HEADER) -> bytes:
    return (header + "\n".join(rows) + "\n").encode()


def _rows(n=6, start_s=1704067200, step=3600, unit="s"):
    mult = {"s": 1, "ms": 1000}[unit]
    return [f"{(start_s + i * step) * mult},{100 + i},{102 + i},{99 + i},{101 + i},{10 + i}" for i in range(n)]


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_epoch_units_are_detected(unit):
    df, rep = read_candle_file(_csv(_rows(unit=unit)))
    assert rep.timestamp_format == unit and rep.timeframe == "1h" and rep.rows == 6
    assert df.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_iso_text_and_case_insensitive_columns():
    text = "Open_Time,OPEN,High,low,Close,Volume\n" + "\n".join(
        f"2024-01-0{1 + i // 24} {i % 24:02d}:00:00,{100 + i},{102 + i},{99 + i},{101 + i},5" for i in range(5))
    df, rep = read_candle_file(text.encode())
    assert rep.timestamp_format == "iso" and rep.timestamp_column == "Open_Time"
    assert list(df.columns) == ["open", "high", "low", "close", "volume"] and len(df) == 5


def test_parquet_from_file_like_and_path(tmp_path):
    df, _ = read_candle_file(_csv(_rows(10)))
    out = df.reset_index()
    out["timestamp"] = out["timestamp"].astype("int64") // 10**6  # ms epoch, as exchanges export
    p = tmp_path / "c.parquet"
    out.to_parquet(p)
    a, _ = read_candle_file(p)
    b, _ = read_candle_file(io.BytesIO(p.read_bytes()), filename="upload.parquet")
    pd.testing.assert_frame_equal(a, df)
    pd.testing.assert_frame_equal(b, df)


def test_missing_column():
    with pytest.raises(DataError, match="the file lacks the 'volume' column;"):
        read_candle_file(_csv([r.rsplit(",", 1)[0] for r in _rows()], "timestamp,open,high,low,close\n"))
    with pytest.raises(DataError, match="lacks the 'timestamp' column"):
        read_candle_file(_csv(["1,2,0.5,1.5,3"], "open,high,low,close,volume\n"))
    # a file of something else (an order-book dump of 84 columns): what is missing, and the first columns only
    wide = ",".join(f"bid_{i}" for i in range(84))
    with pytest.raises(DataError, match=r"lacks the 'timestamp', 'open', 'high', 'low', 'close' and 'volume' "
                                        r"columns.*its 84 columns: bid_0, .*, bid_11 and 72 more\. A candle"):
        read_candle_file(_csv([",".join(["1"] * 84)], wide + "\n"))


def test_unparseable_timestamps():
    rows = _rows()
    rows[2] = "not a date" + rows[2][rows[2].index(","):]
    rows = [("2024-01-01 0%d:00" % i) + r[r.index(","):] if i != 2 else r for i, r in enumerate(rows)]
    with pytest.raises(DataError, match=r"1 timestamps could not be read \(first at data row 3: 'not a date'\)"):
        read_candle_file(_csv(rows))


def test_non_positive_prices():
    rows = _rows()
    rows[4] = rows[4].split(",")[0] + ",0,102,0,101,5"
    with pytest.raises(DataError, match="1 row has a price of zero or below \\(data row 5\\)"):
        read_candle_file(_csv(rows))


def test_high_below_low():
    rows = _rows()
    rows[1] = rows[1].split(",")[0] + ",100,98,99,99,5"
    with pytest.raises(DataError, match="1 row has high below low \\(data row 2\\)"):
        read_candle_file(_csv(rows))


def test_nan_rows_refused_or_dropped():
    rows = _rows()
    rows[3] = rows[3].split(",")[0] + ",103,105,,104,5"
    with pytest.raises(DataError, match="1 row has missing values \\(data row 4\\)"):
        read_candle_file(_csv(rows))
    df, rep = read_candle_file(_csv(rows), nan_policy="drop")
    assert rep.nan_rows_dropped == 1 and len(df) == 5
    assert rep.gap_count == 1 and rep.missing_bars == 1  # the dropped row is a gap, not invented


def test_duplicates_dropped_and_counted():
    rows = _rows()
    rows.insert(3, rows[2])
    df, rep = read_candle_file(_csv(rows))
    assert rep.duplicates_dropped == 1 and rep.conflicting_duplicates == 0 and len(df) == 6


def test_unsorted_rows_are_sorted():
    rows = _rows()
    df, rep = read_candle_file(_csv(rows[::-1]))
    assert rep.sorted is True and df.index.is_monotonic_increasing and len(df) == 6


def test_gaps_reported_never_invented():
    rows = _rows(10)
    del rows[4:7]
    df, rep = read_candle_file(_csv(rows))
    assert len(df) == 7 and rep.gap_count == 1 and rep.missing_bars == 3
    assert rep.gaps[0]["start"] == "2024-01-01T04:00:00+00:00"


def test_wrong_timeframe_is_refused():
    # Hourly rows called daily candles would be nonsense: refused with the timeframe the file has.
    with pytest.raises(DataError, match="are 1h apart, not 1d"):
        read_candle_file(_csv(_rows()), timeframe="1d")


def test_failed_import_keeps_what_is_stored():
    good, _ = import_candles(_csv(_rows(6)), "MYCOIN/USDT", "1h")
    assert good.attrs["dataset"] == "import-MYCOINUSDT-1h"
    rows = _rows(8)
    rows[5] = rows[5].split(",")[0] + ",-1,102,99,101,5"
    with pytest.raises(DataError):
        import_candles(_csv(rows), "MYCOIN/USDT", "1h")
    assert len(load_candles("import-MYCOINUSDT-1h")) == 6
    assert [d.id for d in list_datasets()] == ["import-MYCOINUSDT-1h"]


def test_empty_and_garbage_files():
    with pytest.raises(DataError, match="empty"):
        read_candle_file(b"")
    with pytest.raises(DataError, match="header but no rows"):
        read_candle_file(HEADER.encode())
    with pytest.raises(DataError, match="has 1 value that is not a number .first at data row 1: 'abc'"):
        read_candle_file(_csv(["1704067200,abc,2,0.5,1,1", "1704070800,1,2,0.5,1,1"]))
    with pytest.raises(DataError, match="has 2 values that are not numbers"):
        read_candle_file(_csv(["1704067200,abc,2,0.5,1,1", "1704070800,x,2,0.5,1,1"]))
    # a file named .parquet that is not one (or was cut short): a sentence, not pyarrow's words
    with pytest.raises(DataError, match="not a Parquet file, or it was cut short") as err:
        read_candle_file(b"timestamp,open\n1,2\n", filename="upload.parquet")
    assert "magic" not in str(err.value)


# ---- bad input found by the robustness probe: each a sentence, nothing stored ------------------------------

@pytest.mark.parametrize("stamps, row, value", [
    # 1e16 reads as microseconds: the year 2286, past what a dataset can hold (nanoseconds end in 2262)
    ([10**16 + i * 3_600_000_000 for i in range(6)], 1, "10000000000000000"),
    # milliseconds of the year 2291 (an epoch in seconds * 4000)
    ([10_136_092_032_000 + i * 3_600_000 for i in range(6)], 1, "10136092032000"),
    # too large even for int64 nanoseconds
    ([10**20] * 6, 1, "100000000000000000000"),
])
def test_timestamps_out_of_range_name_the_first_row(stamps, row, value):
    rows = [f"{t},{100 + i},{102 + i},{99 + i},{101 + i},5" for i, t in enumerate(stamps)]
    with pytest.raises(DataError, match=rf"the timestamp at data row {row} \('{value}'\) is outside the dates a "
                                        r"dataset can hold \(1677-09-21 to 2262-04-11\)"):
        import_candles(_csv(rows), "FAR/USDT", "1h")
    assert list_datasets() == []


def test_iso_dates_out_of_range_name_the_first_row():
    rows = [r.replace(r.split(",")[0], f"2024-01-01 0{i}:00") for i, r in enumerate(_rows())]
    rows[3] = "2300-01-01 03:00" + rows[3][rows[3].index(","):]
    with pytest.raises(DataError, match=r"data row 4 \('2300-01-01 03:00'\) is outside the dates"):
        read_candle_file(_csv(rows))


def test_utf8_byte_order_mark_is_not_part_of_the_header():
    # Excel's "CSV UTF-8" starts with a BOM; the first column must still be found as 'timestamp'.
    data = b"\xef\xbb\xbf" + _csv(_rows())
    df, rep = read_candle_file(data, filename="excel.csv")
    assert rep.timestamp_column == "timestamp" and len(df) == 6
    assert df.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    # a BOM before a semicolon-separated header too
    semi = b"\xef\xbb\xbf" + _csv([r.replace(",", ";") for r in _rows()], HEADER.replace(",", ";"))
    assert len(read_candle_file(semi)[0]) == 6


def test_a_row_in_another_epoch_unit_is_refused():
    # milliseconds with one row in seconds: it would land in 1970 with a 54-year gap
    rows = _rows(8, unit="ms")
    t = int(rows[5].split(",")[0]) // 1000
    rows[5] = f"{t}" + rows[5][rows[5].index(","):]
    with pytest.raises(DataError, match=rf"the timestamp at data row 6 \('{t}'\) reads as seconds while the "
                                        r"file's timestamps are in milliseconds"):
        import_candles(_csv(rows), "MIX/USDT")
    # seconds with one row divided by 1000 (still "seconds" by magnitude, but decades from the rest)
    rows = _rows(8)
    t = int(rows[2].split(",")[0]) // 1000
    rows[2] = f"{t}" + rows[2][rows[2].index(","):]
    with pytest.raises(DataError, match=rf"data row 3 \('{t}'\) is far from the file's other timestamps "
                                        r"\(typically \d+ seconds\): is it in another unit"):
        import_candles(_csv(rows), "MIX/USDT")
    assert list_datasets() == []
    # one unit throughout (even a file near 1970) is still read
    assert read_candle_file(_csv(_rows(6, start_s=0)))[1].rows == 6


def test_a_single_candle_is_not_a_dataset():
    with pytest.raises(DataError, match="a dataset needs at least 2 candles; the file has 1"):
        import_candles(_csv(_rows(1)), "ONE/USDT", "1h")
    # many rows of one timestamp are one candle too
    with pytest.raises(DataError, match="the file has 1 once its 3 duplicate timestamps are dropped"):
        import_candles(_csv(_rows(1) * 4), "ONE/USDT", "1h")
    assert list_datasets() == []
    assert import_candles(_csv(_rows(2)), "TWO/USDT", "1h")[1].rows == 2


# ---- from the data-layer review --------------------------------------------------------------------------------

@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_the_separators_candle_files_use_are_recognised(sep):
    df, rep = read_candle_file(_csv([r.replace(",", sep) for r in _rows(6)], HEADER.replace(",", sep)))
    assert rep.rows == 6 and df["close"].iloc[-1] == 106.0


def test_odd_files_get_sentences_that_fit_them():
    # one column: its real name is said (the old guessed separator 't' split 'timestamp' into 'Unnamed: 0, imes')
    with pytest.raises(DataError, match="its 1 column: timestamp\\. A candle file"):
        read_candle_file(b"timestamp\n1704067200\n1704070800\n")
    with pytest.raises(DataError, match="the file is not text"):
        read_candle_file(b"\x00" * 64)
    rows = _rows(6)
    rows[3] = rows[3].rsplit(",", 1)[0] + ",inf"
    with pytest.raises(DataError, match="1 row has an infinite value \\(data row 4\\)"):
        read_candle_file(_csv(rows))
    # "... UTC" as some exports write it is a UTC time, not an unreadable one
    text = "\n".join(f"2024-01-01 {i:02d}:00:00 {'UTC' if i % 2 else 'utc'},{100 + i},{102 + i},{99 + i},{101 + i},5"
                     for i in range(6))
    df, _ = read_candle_file(_csv([text]))
    assert df.index[1] == pd.Timestamp("2024-01-01 01:00", tz="UTC")


def test_a_coarser_file_is_not_taken_for_a_finer_timeframe():
    # hourly candles called 1m would be a 1m dataset that is 98 % gaps
    with pytest.raises(DataError, match="are 1h apart, not 1m: choose 1h"):
        read_candle_file(_csv(_rows()), timeframe="1m")


def test_a_symbol_in_other_letters_is_refused_not_cut_short():
    # 'БТЦ/USDT' used to become import-USDT-1h, a name another symbol could share
    with pytest.raises(DataError, match="Latin letters and digits"):
        import_candles(_csv(_rows()), "БТЦ/USDT", "1h")
    assert list_datasets() == []
