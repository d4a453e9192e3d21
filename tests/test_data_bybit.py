"""Bybit through ccxt, offline: a tiny HTTP server on 127.0.0.1 answers in Bybit's documented v5 format and
ccxt's own HTTP layer and parsers talk to it (exchange.urls['api'] points there)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from core.data import bybit
from core.data.bybit import RetryConfig, fetch_candles, make_exchange, record_order_book
from core.data.orderbook import list_order_books, load_order_book
from core.data.store import dataset_info, load_candles
from core.errors import DataError, ExchangeUnavailable
from core.progress import CancelToken, Cancelled

FIX = Path(__file__).parent / "fixtures" / "bybit"
H = 3_600_000


def _fixture(name: str) -> dict:
    return json.loads((FIX / name).read_text())


class FakeBybit:
    """Serves /v5/market/{instruments-info,kline,orderbook,time}; `faults` is a list of actions consumed by the
    next kline/orderbook requests: "ratelimit" (retCode 10006) or "drop" (connection closed, no answer).
    `time_ms` is Bybit's clock ("wall": this machine's clock, as a real Bybit in sync would answer; None:
    /v5/market/time is not found); `book_ts`, when set, stamps every book (-1: books without a stamp)."""

    def __init__(self, candles: pd.DataFrame):
        self.candles = candles
        self.ms = (candles.index.as_unit("ns").asi8 // 1_000_000).astype(np.int64)
        self.requests: list[tuple[str, dict]] = []
        self.faults: list[str] = []
        self.fail_after_klines: int | None = None  # drop every kline request after this many answers
        self.kline_answers = 0
        self.time_ms: int | str | None = "wall"
        self.book_ts: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append((url.path, q))
                if url.path.endswith("/kline") or url.path.endswith("/orderbook"):
                    drop_all = (url.path.endswith("/kline") and fake.fail_after_klines is not None
                                and fake.kline_answers >= fake.fail_after_klines)
                    action = "drop" if drop_all else (fake.faults.pop(0) if fake.faults else None)
                    if action == "drop":
                        self.close_connection = True
                        self.connection.close()
                        return
                    if action == "ratelimit":
                        return self._send(_fixture("error_10006_rate_limit.json"))
                if url.path == "/v5/market/instruments-info":
                    if q.get("status") == "PreLaunch":
                        return self._send(_fixture("instruments_empty.json"))
                    return self._send(_fixture(f"instruments_{q.get('category', 'linear')}.json"))
                if url.path == "/v5/market/kline":
                    fake.kline_answers += 1
                    return self._send(fake.kline(q))
                if url.path == "/v5/market/orderbook":
                    book = _fixture("orderbook_linear_BTCUSDT_25.json")
                    n = int(q.get("limit", 25))
                    book["result"]["b"] = book["result"]["b"][:n]
                    book["result"]["a"] = book["result"]["a"][:n]
                    book["result"]["ts"] = fake.book_ts or 1706803948569 + 1000 * len(fake.requests)
                    if fake.book_ts == -1:  # a book without a stamp
                        del book["result"]["ts"]
                    return self._send(book)
                if url.path == "/v5/market/time" and fake.time_ms is not None:
                    t = int(time.time() * 1000) if fake.time_ms == "wall" else fake.time_ms
                    return self._send({"retCode": 0, "retMsg": "OK", "result": {}, "time": t})
                self.send_response(404)
                self.end_headers()

            def _send(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kline(self, q: dict) -> dict:
        """Bybit's documented behaviour: candles with start <= open time <= end, newest first, the latest
        `limit` of them, each as strings [start, open, high, low, close, volume, turnover]."""
        start, end = int(q.get("start", 0)), int(q.get("end", 2**62))
        limit = min(int(q.get("limit", 200)), 1000)
        sel = np.flatnonzero((self.ms >= start) & (self.ms <= end))[-limit:][::-1]
        template = _fixture("kline_linear_BTCUSDT_60.json")["httpResponse"]
        rows = []
        for i in sel:
            o, h, l, c, v = self.candles.iloc[i][["open", "high", "low", "close", "volume"]]
            rows.append([str(self.ms[i]), repr(o), repr(h), repr(l), repr(c), repr(v), repr(v * c)])
        template["result"]["list"] = rows
        template["result"]["category"] = q.get("category")
        template["result"]["symbol"] = q.get("symbol")
        return template

    def klines_asked(self) -> list[tuple[int, int]]:
        return [(int(q["start"]), int(q["end"])) for p, q in self.requests if p.endswith("/kline")]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def real_btc(shared_data) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "binance_spot_BTCUSDT_1h.csv", nrows=2600)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True),
                                name="timestamp").as_unit("ns")
    return df.astype(float)


@pytest.fixture
def server(real_btc):
    fake = FakeBybit(real_btc)
    yield fake
    fake.close()


def _exchange(fake: FakeBybit, market_type: str = "linear"):
    ex = make_exchange(market_type, timeout=3000)
    ex.urls["api"] = {k: fake.url for k in ex.urls["api"]}
    return ex


NO_WAIT = RetryConfig(retries=3, backoff_s=0.01, sleep=lambda s: None)
NOW = pd.Timestamp("2025-01-01", tz="UTC")


def test_recorded_kline_is_parsed_by_ccxt(server):
    """The recorded /v5/market/kline answer, served to ccxt, parses to ccxt's own recorded result."""
    rec = _fixture("kline_linear_BTCUSDT_60.json")
    ex = _exchange(server)
    ex.load_markets()
    ms = [int(r[0]) for r in rec["httpResponse"]["result"]["list"]]
    server.ms = np.array(sorted(ms))
    parsed = [[float(x) for x in row] for row in rec["parsedResponse"]]
    server.candles = pd.DataFrame([r[1:] for r in parsed], columns=["open", "high", "low", "close", "volume"],
                                  index=pd.to_datetime(server.ms, unit="ms", utc=True))
    got = ex.fetch_ohlcv(*rec["input"])
    assert got == rec["parsedResponse"]


def test_fetch_paginates_across_1000_candle_pages(server, real_btc):
    start, end = real_btc.index[0], real_btc.index[0] + pd.Timedelta(hours=2500)
    seen = []
    res = fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server),
                        progress=seen.append, retry=NO_WAIT, now=lambda: NOW)
    asked = server.klines_asked()
    assert len(asked) == 3 and res.pages == 3
    assert all((e - s) // H + 1 <= 1000 for s, e in asked)
    assert asked[1][0] == asked[0][1] + H  # pages are contiguous: no hole, no overlap
    df = load_candles(res.dataset)
    assert res.dataset == "bybit_linear-BTCUSDT-1h" and len(df) == 2500
    pd.testing.assert_frame_equal(df, real_btc.iloc[:2500], check_freq=False, check_names=False)
    assert seen[-1].done == seen[-1].total == 3


def test_retry_after_rate_limit_error(server, real_btc):
    server.faults = ["ratelimit", "ratelimit"]
    sleeps = []
    retry = RetryConfig(retries=4, backoff_s=0.5, sleep=sleeps.append)
    start = real_btc.index[0]
    res = fetch_candles("BTCUSDT", "1h", start, start + pd.Timedelta(hours=48), "linear",
                        exchange=_exchange(server), retry=retry, now=lambda: NOW)
    assert res.rows == 48
    assert sleeps == [0.5, 1.0]  # exponential backoff
    assert len(server.klines_asked()) == 3


def test_network_failure_mid_fetch_then_resume_loses_nothing(server, real_btc):
    start, end = real_btc.index[0], real_btc.index[0] + pd.Timedelta(hours=2500)
    server.fail_after_klines = 0  # the markets load, then no candle arrives: nothing was fetched
    with pytest.raises(ExchangeUnavailable) as err:
        fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server), retry=NO_WAIT,
                      now=lambda: NOW)
    assert str(err.value) == bybit.UNREACHABLE
    server.fail_after_klines = 1  # the first page arrives, then the connection goes
    with pytest.raises(ExchangeUnavailable) as err:
        fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server), retry=NO_WAIT,
                      now=lambda: NOW)
    assert str(err.value) == ("connection to Bybit lost after 1,000 candles (kept in bybit_linear-BTCUSDT-1h): "
                              "fetch again to resume")
    kept = load_candles("bybit_linear-BTCUSDT-1h")
    assert len(kept) == 1000  # the page fetched before the failure was saved
    server.fail_after_klines = None
    server.requests.clear()
    res = fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server), retry=NO_WAIT,
                        now=lambda: NOW)
    asked = server.klines_asked()
    assert asked[0][0] == int(start.value // 1_000_000) + 1000 * H  # resumes after the saved page
    assert len(asked) == 2 and res.rows_added == 1500
    pd.testing.assert_frame_equal(load_candles(res.dataset), real_btc.iloc[:2500], check_freq=False,
                                  check_names=False)
    # A third fetch of the same range asks Bybit for nothing.
    server.requests.clear()
    again = fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server), retry=NO_WAIT,
                          now=lambda: NOW)
    assert server.klines_asked() == [] and again.rows_added == 0


def test_still_open_candle_is_not_stored(server, real_btc):
    start = real_btc.index[0]
    now = start + pd.Timedelta(hours=10, minutes=30)  # the 10:00 candle is still open
    res = fetch_candles("BTC/USDT", "1h", start, None, "spot", exchange=_exchange(server, "spot"),
                        retry=NO_WAIT, now=lambda: now)
    df = load_candles(res.dataset)
    assert res.dataset == "bybit_spot-BTCUSDT-1h"
    assert len(df) == 10 and df.index[-1] == start + pd.Timedelta(hours=9)
    assert dataset_info(res.dataset).ranges[-1][1] == start + pd.Timedelta(hours=10)


def test_an_invalid_candle_is_left_out_as_a_gap_and_asked_for_again(server, real_btc):
    """One bad candle from the exchange used to throw away every page and block every later fetch; it is
    now left out as a gap (said), the rest is stored, and the next fetch asks for that bar again."""
    start, end = real_btc.index[0], real_btc.index[0] + pd.Timedelta(hours=2500)
    bad = real_btc.copy()
    bad.iloc[1500, bad.columns.get_loc("low")] = bad.iloc[1500]["high"] + 10  # page 2 of 3: low above high
    server.candles = bad
    res = fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server), retry=NO_WAIT,
                        now=lambda: NOW)
    when = real_btc.index[1500]
    assert res.left_out == [f"{when:%Y-%m-%d %H:%M} UTC (high below low)"]
    assert res.note() == (f"Bybit served 1 invalid candle, left out as gaps and asked for again on the next "
                          f"fetch: {when:%Y-%m-%d %H:%M} UTC (high below low).")
    pd.testing.assert_frame_equal(load_candles(res.dataset), real_btc.iloc[:2500].drop(when), check_freq=False,
                                  check_names=False)
    step = pd.Timedelta(hours=1)
    assert dataset_info(res.dataset).ranges == [(start, when), (when + step, end)]  # the bad bar: not covered
    server.candles = real_btc  # Bybit corrected it: the next fetch asks for that bar only and fills it
    server.requests.clear()
    again = fetch_candles("BTC/USDT", "1h", start, end, "linear", exchange=_exchange(server), retry=NO_WAIT,
                          now=lambda: NOW)
    assert server.klines_asked()[0][0] == int(when.value // 1_000_000) and again.rows_added == 1
    assert again.left_out == [] and again.note() == ""
    pd.testing.assert_frame_equal(load_candles(res.dataset), real_btc.iloc[:2500], check_freq=False,
                                  check_names=False)


def test_closed_candles_are_judged_by_bybits_clock(server, real_btc):
    t0 = real_btc.index[0]
    bybit_now = t0 + pd.Timedelta(hours=100, minutes=30)  # on Bybit the 100:00 candle is still forming
    server.time_ms = int(bybit_now.value // 1_000_000)
    local_now = bybit_now + pd.Timedelta(minutes=31)      # this machine's clock runs ahead
    res = fetch_candles("BTC/USDT", "1h", t0, None, "linear", exchange=_exchange(server), retry=NO_WAIT,
                        now=lambda: local_now)
    assert load_candles(res.dataset).index[-1] == t0 + pd.Timedelta(hours=99)
    assert dataset_info(res.dataset).ranges == [(t0, t0 + pd.Timedelta(hours=100))]
    # An hour later, without Bybit's time, the local clock decides: the 100:00 candle was left to fetch.
    server.time_ms = None
    server.requests.clear()
    res = fetch_candles("BTC/USDT", "1h", t0, None, "linear", exchange=_exchange(server), retry=NO_WAIT,
                        now=lambda: bybit_now + pd.Timedelta(hours=1))
    assert server.klines_asked()[0][0] == int((t0 + pd.Timedelta(hours=100)).value // 1_000_000)
    pd.testing.assert_frame_equal(load_candles(res.dataset), real_btc.iloc[:101], check_freq=False,
                                  check_names=False)


class _CancelDuringWait(CancelToken):
    """A token whose user presses Cancel as soon as anything waits on it (no real waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.cancel()
        return True


def test_cancel_ends_a_retry_backoff_wait(server, real_btc):
    server.fail_after_klines = 0  # every kline request fails: the fetch waits before each retry
    token = _CancelDuringWait()
    start = real_btc.index[0]
    with pytest.raises(Cancelled):
        fetch_candles("BTC/USDT", "1h", start, start + pd.Timedelta(hours=50), "linear", exchange=_exchange(server),
                      cancel=token, retry=RetryConfig(retries=1), now=lambda: NOW)
    assert token.waits == [1.0] and len(server.klines_asked()) == 1  # no retry after Cancel


def test_cancel_keeps_saved_pages(server, real_btc):
    token = CancelToken()

    def cancel_after_first(p):
        if p.stage == "fetch" and p.done == 1:
            token.cancel()

    start = real_btc.index[0]
    with pytest.raises(Cancelled):
        fetch_candles("BTC/USDT", "1h", start, start + pd.Timedelta(hours=2500), "linear",
                      exchange=_exchange(server), progress=cancel_after_first, cancel=token, retry=NO_WAIT,
                      now=lambda: NOW)
    assert len(load_candles("bybit_linear-BTCUSDT-1h")) == 1000


def test_unknown_symbol_is_a_clear_error(server):
    with pytest.raises(DataError, match="no USDT linear perpetual market 'DOGE/USDT'"):
        fetch_candles("DOGE/USDT", "1h", "2024-01-01", "2024-01-02", "linear", exchange=_exchange(server),
                      retry=NO_WAIT, now=lambda: NOW)


def test_unreachable_exchange_says_so():
    ex = make_exchange("linear", timeout=1000)
    ex.urls["api"] = {k: "http://127.0.0.1:9" for k in ex.urls["api"]}  # nothing listens on port 9
    with pytest.raises(ExchangeUnavailable) as err:
        fetch_candles("BTC/USDT", "1h", "2024-01-01", "2024-01-02", "linear", exchange=ex, retry=NO_WAIT)
    assert str(err.value) == "no connection to Bybit: use the offline market or import a file"


def test_order_book_snapshots_are_recorded(server):
    clock = iter(range(100))
    waits = []
    info = record_order_book("BTC/USDT", "linear", levels=10, interval_s=2, duration_s=4,
                             exchange=_exchange(server), retry=NO_WAIT, sleep=waits.append,
                             clock=lambda: float(next(clock)))
    book = load_order_book(info.id)
    assert info.snapshots == 3 and [b.id for b in list_order_books()] == [info.id]
    assert set(book["side"]) == {"bid", "ask"} and book["level"].max() == 10
    first = book[book["timestamp"] == book["timestamp"].min()]
    bids = first[first.side == "bid"].sort_values("level")
    asks = first[first.side == "ask"].sort_values("level")
    assert bids["price"].iloc[0] == 42544.7 and asks["price"].iloc[0] == 42548.0
    assert bids["price"].is_monotonic_decreasing and asks["price"].is_monotonic_increasing
    assert bids["price"].iloc[0] < asks["price"].iloc[0]
    assert waits and all(w > 0 for w in waits)


def test_no_api_keys_anywhere():
    ex = make_exchange("linear")
    assert not ex.apiKey and not ex.secret
    assert ex.enableRateLimit is True
    src = Path(bybit.__file__).read_text()
    assert "apiKey" not in src and "secret" not in src.lower()


def test_cancelling_an_order_book_recording_is_prompt_and_keeps_what_was_recorded(server):
    import threading
    import time

    from core.progress import CancelToken

    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p.done)
        if p.done == 1:  # cancel while the recorder waits for its next (long) interval
            threading.Timer(0.2, token.cancel).start()

    t0 = time.monotonic()
    info = record_order_book("BTC/USDT", "linear", levels=5, interval_s=30, duration_s=300,
                             exchange=_exchange(server), retry=NO_WAIT, cancel=token, progress=progress)
    assert time.monotonic() - t0 < 10  # did not sleep out the 30 s interval
    assert info.snapshots == 1 and seen == [1]
    assert load_order_book(info.id)["level"].max() == 5


def test_order_book_with_a_repeated_stamp_is_not_recorded_twice(server):
    server.book_ts = 1706803948569  # Bybit serves the same book (same stamp) three times
    clock = iter(range(100))
    info = record_order_book("BTC/USDT", "linear", levels=5, interval_s=1, duration_s=2, exchange=_exchange(server),
                             retry=NO_WAIT, sleep=lambda s: None, clock=lambda: float(next(clock)))
    book = load_order_book(info.id)
    assert len([p for p, _ in server.requests if p.endswith("/orderbook")]) == 3
    assert info.snapshots == 1 and len(book) == 10  # one snapshot of 5 bids and 5 asks, not levels tripled
    assert not book.duplicated(["timestamp", "side", "level"]).any()


def test_order_books_without_a_stamp_are_stamped_in_order(server, monkeypatch):
    import core.data.bybit as bybit

    server.book_ts = -1
    monkeypatch.setattr(bybit.time, "time", lambda: 1706803948.0)  # a clock that does not move (or lags)
    clock = iter(range(100))
    info = record_order_book("BTC/USDT", "linear", levels=5, interval_s=1, duration_s=2, exchange=_exchange(server),
                             retry=NO_WAIT, sleep=lambda s: None, clock=lambda: float(next(clock)))
    book = load_order_book(info.id)
    assert info.snapshots == 3 and book["timestamp"].nunique() == 3  # none taken for a repeat


def test_order_book_connection_lost_says_what_was_kept(server):
    server.faults = ["ok", "drop", "drop", "drop", "drop"]  # one snapshot arrives, then the connection goes
    clock = iter(range(100))
    with pytest.raises(ExchangeUnavailable) as err:
        record_order_book("BTC/USDT", "linear", levels=5, interval_s=1, duration_s=2, exchange=_exchange(server),
                          retry=NO_WAIT, sleep=lambda s: None, clock=lambda: float(next(clock)), book_id="ob-test")
    assert str(err.value) == "connection to Bybit lost after 1 order-book snapshot (kept in ob-test)"
    assert [b.id for b in list_order_books()] == ["ob-test"] and load_order_book("ob-test")["level"].max() == 5
    # Cancel while waiting to retry: stopped cleanly with what was recorded, as between snapshots
    server.faults = ["ok", "drop", "drop", "drop"]
    clock = iter(range(100))
    info = record_order_book("BTC/USDT", "linear", levels=5, interval_s=1, duration_s=2, exchange=_exchange(server),
                             retry=RetryConfig(retries=3), cancel=_CancelDuringWait(), sleep=lambda s: None,
                             clock=lambda: float(next(clock)), book_id="ob-test-2")
    assert info.snapshots == 1 and load_order_book("ob-test-2")["level"].max() == 5
