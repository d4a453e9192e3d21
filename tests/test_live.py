"""Live signals in core: features exactly as in training, replay stepping without look-ahead, the signal rules
against core.backtest's, the append-only log, and the Bybit feed through ccxt against the local fixture server
(closed candles only; server down -> an error sentence and the loop carries on)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, UserError
from core.live.feed import BybitFeed, ReplayFeed
from core.live.log import append_signal, read_signals
from core.live.signals import (decide, levels, load_live_model, predict_probabilities, signal_config,
                               suggested_size, tick)

DATASET = "synthetic-BTCUSDT-1h"
TINY_DATA = dict(preset="chapter6", window=16, horizon=4, threshold=0.002)
TINY_TRAIN = dict(epochs=1, batch_size=64, lr=3e-3, patience=0, n_boot=100, baselines=["majority"])


def synthetic_candles(periods: int = 1500, seed: int = 7, end: pd.Timestamp | None = None) -> pd.DataFrame:
    from core.data.synthetic import generate_market

    c = next(iter(generate_market("BTC/USDT", "1h", periods=periods, seed=seed).values()))
    if end is not None:  # the same prices, moved in time so the last bar opens at `end`
        c = c.copy()
        c.index = pd.DatetimeIndex(c.index + (end - c.index[-1]), name="timestamp")
    return c


_TRAINED: dict = {}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One tiny run trained once per session (in its own workspace), also for the page tests that import
    this fixture; tests copy its folder into their own workspace."""
    from core.train.trainer import train_run

    if _TRAINED:
        return _TRAINED
    ws = tmp_path_factory.mktemp("live_train_ws")
    mp = pytest.MonkeyPatch()
    mp.setenv("CNN_LAB_WORKSPACE", str(ws))
    try:
        candles = synthetic_candles()
        res = train_run(DATASET, "cnn1d", {}, TINY_DATA, TINY_TRAIN, candles=candles, name="live test run")
    finally:
        mp.undo()
    _TRAINED.update(run_id=res.run_id, folder=ws / "runs" / res.run_id, candles=candles)
    return _TRAINED


def install_run(trained, workspace) -> str:
    """Put the trained run and its dataset into this test's workspace."""
    from core.data.store import save_candles

    shutil.copytree(trained["folder"], workspace / "runs" / trained["run_id"])
    save_candles(trained["candles"], "synthetic", "BTC/USDT", "1h")
    return trained["run_id"]


@pytest.fixture
def run_id(trained, workspace) -> str:
    return install_run(trained, workspace)


# ------------------------------------------------------------------------------------- exactly as trained

def test_live_probabilities_equal_the_runs_own_test_predictions(run_id, trained):
    """The live path (feed tail of window + warm-up bars, the run's saved scaler) reproduces the
    probabilities the training saved for its test split, bar for bar."""
    from core.train.runs import load_run

    lm = load_live_model(run_id)
    preds = load_run(run_id).predictions.set_index("timestamp")
    feed = ReplayFeed(trained["candles"])
    cols = [f"prob_{c}" for c in lm.class_names]
    for t in preds.index[[0, len(preds) // 2, -1]]:
        feed.cursor = feed.position_of(t)
        got = predict_probabilities(lm, feed.latest(lm.lookback), last=1)
        assert got.index[-1] == t
        np.testing.assert_allclose(got[cols].iloc[-1].to_numpy(), preds.loc[t, cols].to_numpy(float), atol=1e-5)


def test_the_scaler_is_the_runs_not_refitted(run_id, trained):
    """Shifting every live feature's scale must change the output: the saved scaler is applied as it is."""
    lm = load_live_model(run_id)
    candles = trained["candles"].iloc[-lm.lookback:]
    base = predict_probabilities(lm, candles, last=5)
    lm.scaler.mean = lm.scaler.mean + 3 * lm.scaler.scale  # a different scaler -> different inputs
    shifted = predict_probabilities(lm, candles, last=5)
    assert not np.allclose(base.to_numpy(), shifted.to_numpy())


def test_too_little_history_is_a_clear_error(run_id, trained):
    lm = load_live_model(run_id)
    with pytest.raises(UserError, match="warm-up"):
        predict_probabilities(lm, trained["candles"].iloc[:40])


# ----------------------------------------------------------------------------------------------- replay

def test_replay_steps_through_time_and_never_sees_the_future(run_id, trained):
    lm = load_live_model(run_id)
    candles = trained["candles"]
    feed = ReplayFeed(candles, cursor=1200)
    r1 = tick(lm, feed, advance=3)
    assert r1.error is None and feed.cursor == 1203
    assert r1.signal.timestamp == candles.index[1203] and r1.candles.index[-1] == candles.index[1203]
    assert len(r1.candles) == lm.lookback
    # bars after the replayed clock are changed: the decision at the clock is unchanged
    future = candles.copy()
    future.iloc[1204:, :4] *= 1.5
    again = decide(lm, ReplayFeed(future, cursor=1203).latest(lm.lookback), mode="replay")
    assert again.probabilities == r1.signal.probabilities and again.stop == r1.signal.stop
    # the end of the data ends the replay
    feed.cursor = len(candles) - 2
    assert tick(lm, feed).finished is False
    end = tick(lm, feed)
    assert end.finished is True and feed.cursor == len(candles) - 1


def test_replay_position_of_and_bad_cursor(trained):
    candles = trained["candles"]
    feed = ReplayFeed(candles)
    assert feed.position_of(candles.index[100]) == 100
    assert feed.position_of(candles.index[100] + pd.Timedelta(minutes=30)) == 100
    with pytest.raises(UserError, match="outside the dataset"):
        ReplayFeed(candles, cursor=len(candles))


# ------------------------------------------------------------------------------------- signal, size, levels

def test_signal_rules_follow_the_backtest():
    from core.backtest.sizing import position_fractions

    cfg = signal_config(stop_loss="atr", stop_atr_k=2.0, take_profit="fixed", take_profit_pct=0.03)
    assert levels(1, 100.0, 2.0, cfg) == (96.0, pytest.approx(103.0))
    assert levels(-1, 100.0, 2.0, cfg) == (104.0, pytest.approx(97.0))
    assert levels(0, 100.0, 2.0, cfg) == (None, None)
    fixed = signal_config(stop_loss="fixed", stop_loss_pct=0.05, take_profit="none")
    assert levels(1, 200.0, 9.0, fixed) == (pytest.approx(190.0), None)
    for sizing in ("fixed", "confidence", "kelly", "half_kelly"):
        c = signal_config(sizing=sizing)
        want = float(position_fractions(1, np.array([0.72]), c)[0])
        assert suggested_size(1, 0.72, c) == pytest.approx(want)
        assert suggested_size(0, 0.72, c) == 0.0
    assert suggested_size(1, 0.72, signal_config(sizing="kelly")) <= 0.25  # the Kelly cap
    with pytest.raises(UserError):
        signal_config(threshold=1.5)


def test_decide_gives_a_consistent_signal(run_id, trained):
    lm = load_live_model(run_id)
    candles = trained["candles"].iloc[:1300]
    probs = predict_probabilities(lm, candles).iloc[-1]
    p_up, p_down = probs["prob_up"], probs["prob_down"]
    thr = float(min(p_up, p_down) + abs(p_up - p_down) / 2) if p_up != p_down else 0.3
    sig = decide(lm, candles, signal_config(threshold=thr, sizing="fixed", fixed_fraction=0.5,
                                           initial_capital=2000))
    want = "long" if p_up > p_down else "short"
    assert sig.action == want and sig.size == 0.5 and sig.notional == 1000
    assert sig.confidence == pytest.approx(max(p_up, p_down))
    assert (sig.stop < sig.price < sig.target) if want == "long" else (sig.target < sig.price < sig.stop)
    flat = decide(lm, candles, signal_config(threshold=0.99))
    assert flat.action == "flat" and flat.size == 0 and flat.stop is None and flat.target is None


# -------------------------------------------------------------------------------------------------- log

def test_log_is_append_only_once_per_bar_and_in_the_workspace(run_id, trained, workspace):
    lm = load_live_model(run_id)
    feed = ReplayFeed(trained["candles"], cursor=1300)
    first = tick(lm, feed, advance=0)
    assert first.logged is True
    assert tick(lm, feed, advance=0).logged is False       # the same bar again: not logged twice
    files = list((workspace / "live" / "signals" / run_id).glob("*.jsonl"))
    assert len(files) == 1
    before = files[0].read_bytes()
    second = tick(lm, feed, advance=1)
    assert second.logged is True
    after = files[0].read_bytes() if files[0].exists() else b""
    if second.signal.timestamp.date() == first.signal.timestamp.date():
        assert after.startswith(before) and after.count(b"\n") == 2  # earlier lines kept byte for byte
    other = tick(lm, feed, signal_config(threshold=0.35), advance=0)
    assert other.logged is True  # other settings on the same bar are another decision
    log = read_signals(run_id)
    assert len(log) == 3 and log["timestamp"].is_monotonic_decreasing
    assert set(log["action"]) <= {"long", "short", "flat"}
    assert json.loads(before.splitlines()[0])["timestamp"] == first.signal.timestamp.isoformat()
    assert not list(workspace.parent.glob("*.jsonl"))  # nothing written outside the workspace


def test_log_refuses_unsafe_run_ids_and_reads_empty():
    assert read_signals().empty
    with pytest.raises(UserError, match="not a valid run id"):
        append_signal({"run_id": "../escape", "timestamp": "2025-01-01T00:00:00+00:00"})


def test_signal_table_says_what_was_done_and_how_close_a_flat_bar_came(workspace):
    """The log table a trader reads: P(action) is the probability of the side traded (long: P(up)), empty for
    a flat bar (a P(flat) of 0.18 beside "flat" read as 18 % sure of doing nothing), and the strongest side
    shows how close a flat bar came to a trade - the page's headline for a flat signal. The raw log (the CSV
    download) keeps its own `confidence` column."""
    from core.live.signals import Signal
    from core.viz.live import signal_table

    t0 = pd.Timestamp("2025-03-01 10:00", tz="UTC")
    common = dict(run_id="r1", source="replay:synthetic-BTCUSDT-1h", mode="replay", atr=1.5)
    flat = Signal(timestamp=t0, price=100.0, action="flat", confidence=0.47,
                  probabilities={"down": 0.14, "flat": 0.47, "up": 0.39}, size=0.0, notional=0.0, stop=None,
                  target=None, **common)
    long = Signal(timestamp=t0 + pd.Timedelta(hours=1), price=101.0, action="long", confidence=0.62,
                  probabilities={"down": 0.10, "flat": 0.28, "up": 0.62}, size=0.1, notional=1000.0, stop=98.0,
                  target=104.0, **common)
    short_flat = Signal(timestamp=t0 + pd.Timedelta(hours=2), price=99.0, action="flat", confidence=0.18,
                        probabilities={"down": 0.71, "flat": 0.18, "up": 0.11}, size=0.0, notional=0.0, stop=None,
                        target=None, **common)  # long only: a strong down side stays flat
    for sig in (flat, long, short_flat):
        assert append_signal(sig)
    raw = read_signals("r1")
    assert "confidence" in raw and "P(action)" not in raw  # the CSV download stays the raw log
    table = signal_table(raw)
    assert list(table.columns[:4]) == ["timestamp", "action", "P(action)", "strongest side"]
    assert "confidence" not in table
    rows = table.set_index("timestamp")
    f, lg, sf = rows.loc[flat.timestamp], rows.loc[long.timestamp], rows.loc[short_flat.timestamp]
    assert f["action"] == "flat" and pd.isna(f["P(action)"]) and f["prob_flat"] == 0.47
    assert f["strongest side"] == "up 0.39"
    assert lg["action"] == "long" and lg["P(action)"] == 0.62 == lg["prob_up"] and lg["strongest side"] == "up 0.62"
    assert sf["strongest side"] == "down 0.71" and pd.isna(sf["P(action)"])
    assert list(table["timestamp"]) == [short_flat.timestamp, long.timestamp, flat.timestamp]  # newest first
    assert str(table["logged_at"].dt.tz) == "UTC"  # a time the page formats, not the log's ISO text
    empty = signal_table(read_signals("nothing-logged"))
    assert empty.empty and list(empty.columns[:4]) == ["timestamp", "action", "P(action)", "strongest side"]


# ----------------------------------------------------------------------------------------------- bybit

NOW_OPEN_MINUTES = 25


@pytest.fixture
def bybit_server():
    from tests.test_data_bybit import FakeBybit

    end = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    candles = synthetic_candles(periods=1500, end=end)  # the last one (12:00) is still open at 12:25
    fake = FakeBybit(candles)
    yield fake, candles, end + pd.Timedelta(minutes=NOW_OPEN_MINUTES)
    fake.close()


def _point(feed: BybitFeed, url: str) -> None:
    feed.exchange.urls["api"] = {k: url for k in feed.exchange.urls["api"]}


def test_bybit_feed_gives_the_latest_closed_candles(bybit_server):
    from core.data.bybit import RetryConfig, make_exchange

    fake, candles, now = bybit_server
    ex = make_exchange("linear", timeout=3000)
    feed = BybitFeed("BTCUSDT", "1h", "linear", exchange=ex, now=lambda: now,
                     retry=RetryConfig(retries=1, backoff_s=0.01, sleep=lambda s: None))
    _point(feed, fake.url)
    got = feed.latest(1200)
    assert len(got) == 1200 and got.index[-1] == candles.index[-2]  # the open 12:00 candle is left out
    pd.testing.assert_frame_equal(got, candles.iloc[-1201:-1], check_freq=False, check_names=False,
                                  check_exact=False, rtol=1e-12)
    assert len(fake.klines_asked()) == 2  # 1200 candles = two pages of at most 1000
    assert got.attrs["source"] == "bybit_linear" and got.attrs["timeframe"] == "1h"
    # the next tick, an hour later: the candles held are reused, one request asks for what closed since
    fake.requests.clear()
    feed.now = lambda: now + pd.Timedelta(hours=1)
    later = feed.latest(1200)
    asked = fake.klines_asked()
    assert len(asked) == 1 and asked[0][0] == int(candles.index[-2].value // 1_000_000)
    assert later.index[-1] == candles.index[-1] and len(later) == 1200
    pd.testing.assert_frame_equal(later, candles.iloc[-1200:], check_freq=False, check_names=False,
                                  check_exact=False, rtol=1e-12)
    # a local clock an hour ahead of Bybit's: the bar still forming on Bybit is not passed off as closed
    fresh = BybitFeed("BTCUSDT", "1h", "linear", exchange=make_exchange("linear", timeout=3000),
                      now=lambda: now + pd.Timedelta(hours=1), retry=feed.retry)
    _point(fresh, fake.url)
    fake.time_ms = int((now.value // 1_000_000))
    assert fresh.latest(10).index[-1] == candles.index[-2]
    # an invalid candle from Bybit inside the window: the sentence names the bar (not "1 candles have ...")
    broken = candles.copy()
    broken.iloc[-5, broken.columns.get_loc("low")] = broken.iloc[-5]["high"] + 10
    fake.candles = broken
    with pytest.raises(DataError, match=f"invalid BTC/USDT candle at {candles.index[-5]:%Y-%m-%d %H:%M} UTC "
                                        r"\(high below low\): no signal while it is inside the last 10 bars"):
        BybitFeed("BTCUSDT", "1h", "linear", exchange=ex, now=lambda: now, retry=feed.retry).latest(10)


def test_fetch_failure_is_reported_and_the_loop_carries_on(bybit_server, run_id):
    from core.data.bybit import RetryConfig, make_exchange
    from tests.test_data_bybit import FakeBybit

    fake, candles, now = bybit_server
    lm = load_live_model(run_id)
    feed = BybitFeed("BTC/USDT", "1h", "linear", exchange=make_exchange("linear", timeout=2000),
                     now=lambda: now, retry=RetryConfig(retries=1, backoff_s=0.01, sleep=lambda s: None))
    _point(feed, fake.url)
    ok = tick(lm, feed)
    assert ok.error is None and ok.signal.mode == "live" and ok.signal.timestamp == candles.index[-2]
    fake.close()                                        # the server goes down
    down = tick(lm, feed)
    assert down.signal is None and down.error == "no connection to Bybit: use the offline market or import a file"
    back = FakeBybit(candles)                           # and comes back
    try:
        _point(feed, back.url)
        again = tick(lm, feed)
        assert again.error is None and again.signal.timestamp == ok.signal.timestamp
    finally:
        back.close()
    log = read_signals(run_id)
    assert len(log) == 1 and log.loc[0, "mode"] == "live"  # one bar, logged once; the failure logged nothing


def test_unknown_symbol_is_a_sentence(bybit_server, run_id):
    from core.data.bybit import RetryConfig, make_exchange

    fake, _, now = bybit_server
    feed = BybitFeed("NOPE/USDT", "1h", "linear", exchange=make_exchange("linear", timeout=2000), now=lambda: now,
                     retry=RetryConfig(retries=1, backoff_s=0.01, sleep=lambda s: None))
    _point(feed, fake.url)
    res = tick(load_live_model(run_id), feed)
    assert res.error and "no USDT linear perpetual market 'NOPE/USDT'" in res.error


def test_cli_replay_json(run_id, capsys):
    from core.cli import main

    assert main(["live", "--run", run_id, "--ticks", "3", "--json", "--set", "threshold=0.4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["signals"]) == 3 and out["source"].startswith("replay:")
    ts = [pd.Timestamp(s["timestamp"]) for s in out["signals"]]
    assert ts == sorted(ts) and ts[1] - ts[0] == pd.Timedelta(hours=1)
    assert len(read_signals(run_id)) == 3


def test_multitask_run_goes_live_with_its_regression_outputs(workspace):
    """A multi-task run (direction + magnitude + volatility) predicts live like its saved test predictions,
    the regression heads back in the targets' own units."""
    from core.train.runs import load_run
    from core.train.trainer import train_run

    candles = synthetic_candles(1300)
    small = {"channels": 8, "skip_channels": 8, "hidden": 8, "layers": 4}
    res = train_run(DATASET, "wavenet_multitask", small, dict(preset="dilated5", window=32, horizon=4,
                                                              label="multitask"), dict(TINY_TRAIN), candles=candles)
    lm = load_live_model(res.run_id)
    preds = load_run(res.run_id).predictions.set_index("timestamp")
    t = preds.index[-1]
    feed = ReplayFeed(candles, cursor=int(candles.index.get_loc(t)))
    cols = ["prob_down", "prob_flat", "prob_up", "pred_magnitude", "pred_volatility"]
    got = predict_probabilities(lm, feed.latest(lm.lookback))
    np.testing.assert_allclose(got[cols].iloc[-1].to_numpy(), preds.loc[t, cols].to_numpy(float), atol=1e-5)
    sig = tick(lm, feed, advance=0).signal
    assert set(sig.extra) == {"magnitude", "volatility"} and "pred_volatility" in read_signals(res.run_id)


def test_a_run_that_cannot_go_live_says_why(run_id, workspace):
    """An indicator-image run's encoding is scaled on its training windows: refused with a sentence."""
    cfg_path = workspace / "runs" / run_id / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["input_kind"] = "indicator_image"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="live signals work with sequence and chart-image models"):
        load_live_model(run_id)
    with pytest.raises(UserError, match="there is no run"):
        load_live_model("no-such-run")


def test_probability_bars_keep_the_threshold_readable():
    """The threshold line must show on the dark theme and its label must not sit on a bar's value."""
    from core.viz.live import probability_bars

    fig = probability_bars({"probabilities": {"down": 0.44, "flat": 0.07, "up": 0.50}}, threshold=0.6)
    (line,) = [s for s in fig.layout.shapes if s.y0 == 0.6]
    assert line.line.color not in ("#444", "black", "#000", "#000000")
    assert not fig.layout.annotations  # no label beside the line to print over a bar's value
    assert fig.layout.title.text == "dashed: threshold 0.60" and fig.data[0].textposition == "outside"


def test_live_chart_titles_read_and_its_legend_stays_off_the_prices():
    from core.viz.live import live_figure, source_title

    assert source_title("replay:synthetic-BTC/USDT-1h") == "replay of synthetic BTC/USDT 1h"
    assert source_title("bybit_linear:BTCUSDT") == "Bybit linear BTCUSDT (live)"
    idx = pd.date_range("2025-01-01", periods=30, freq="h", tz="UTC")
    c = pd.DataFrame({"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 1.0}, index=idx)
    fig = live_figure(c, title="t")
    # above the plot area (y > 1 in paper units, anchored at its bottom), not over the top of the price panel
    assert fig.layout.legend.y > 1 and fig.layout.legend.yanchor == "bottom"


# ------------------------------------------------------------------------- gaps, timeframes, start, races

class _MemoryBybit:
    """An in-memory exchange for BybitFeed (no sockets): serves `candles` up to its clock, minus `missing`."""

    markets = {"BTC/USDT:USDT": {"symbol": "BTC/USDT:USDT", "id": "BTCUSDT", "base": "BTC", "quote": "USDT",
                                 "spot": False, "linear": True, "swap": True}}

    def __init__(self, candles, clock):
        self.candles, self.clock, self.missing = candles, clock, set()
        self.asked: list[int] = []  # the bars each kline request asked for (its limit)

    def load_markets(self):
        return self.markets

    def fetch_time(self):
        return int(self.clock.value // 1_000_000)

    def fetch_ohlcv(self, sym, tf, since=None, limit=None, params=None):
        self.asked.append(limit)
        c = self.candles
        s, u = pd.Timestamp(since, unit="ms", tz="UTC"), pd.Timestamp(params["until"], unit="ms", tz="UTC")
        rows = c[(c.index >= s) & (c.index <= u) & (c.index <= self.clock) & ~c.index.isin(list(self.missing))]
        return [[int(t.value // 1_000_000), *r] for t, r in
                zip(rows.index, rows[["open", "high", "low", "close", "volume"]].to_numpy())][:limit]


def test_a_bar_bybit_skipped_once_is_asked_again_and_the_signal_says_it_had_a_hole(run_id):
    end = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    candles = synthetic_candles(periods=1500, end=end)
    ex = _MemoryBybit(candles, end - pd.Timedelta(hours=2) + pd.Timedelta(minutes=10))
    gap = end - pd.Timedelta(hours=30)
    ex.missing = {gap}
    lm = load_live_model(run_id)
    feed = BybitFeed("BTCUSDT", "1h", "linear", exchange=ex, now=lambda: ex.clock)
    holed = tick(lm, feed, log=False)
    assert holed.error is None and gap not in holed.candles.index
    assert len(holed.notes) == 1 and "1 bar is missing from the last" in holed.notes[0]
    assert f"{gap:%Y-%m-%d %H:%M} UTC" in holed.notes[0]
    ex.missing, ex.asked = set(), []  # Bybit serves it again: the next tick's window is whole, as a fresh feed's
    ex.clock += pd.Timedelta(hours=1)
    whole = tick(lm, feed, log=False)
    assert gap in whole.candles.index and len(whole.candles) == lm.lookback and whole.notes == []
    assert ex.asked == [1, 2]  # the hole's bar, then the last held bar and the one closed since: not the window
    fresh = tick(lm, BybitFeed("BTCUSDT", "1h", "linear", exchange=ex, now=lambda: ex.clock), log=False)
    assert whole.signal.probabilities == fresh.signal.probabilities


def test_a_run_on_another_timeframe_is_warned_about_in_replay_and_live(run_id, capsys):
    from core.cli import main
    from core.data.store import load_candles, save_candles
    from core.data.synthetic import generate_market

    c4 = next(iter(generate_market("BTC/USDT", "4h", periods=1300, seed=5).values()))
    ds = save_candles(c4, "synthetic", "BTC/USDT", "4h")
    ds = getattr(ds, "id", ds)
    lm = load_live_model(run_id)
    feed = ReplayFeed(load_candles(ds))
    res = tick(lm, feed, log=False)
    assert res.error is None
    assert res.notes == ["The run was trained on 1h candles; its signals on 4h bars are out of its training "
                         "distribution."]
    own = tick(lm, ReplayFeed(load_candles(DATASET)), log=False)
    assert own.error is None and own.notes == []
    assert main(["live", "--run", run_id, "--dataset", ds, "--ticks", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: The run was trained on 1h candles; its signals on 4h bars") == 1  # said once


def test_cli_live_start_is_checked_the_first_signal_is_at_the_start_and_warm_up_is_skipped(run_id, capsys):
    from core.cli import main

    assert main(["live", "--run", run_id, "--start", "garbage", "--ticks", "1"]) == 2
    assert "error: 'garbage' is not a date and time" in capsys.readouterr().err
    test_start = pd.Timestamp(load_live_model(run_id).config["test_start"])
    for step in (1, 3):
        assert main(["live", "--run", run_id, "--ticks", "2", "--step", str(step), "--json"]) == 0
        ts = [pd.Timestamp(s["timestamp"]) for s in json.loads(capsys.readouterr().out)["signals"]]
        assert ts == [test_start, test_start + pd.Timedelta(hours=step)]
    # a start inside the window + warm-up: the replay starts at the first bar that has them, and says so
    first = pd.Timestamp(synthetic_candles().index[load_live_model(run_id).lookback - 1])
    assert main(["live", "--run", run_id, "--start", "2000-01-01", "--ticks", "2", "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)["signals"]
    assert all("error" not in s for s in out) and pd.Timestamp(out[0]["timestamp"]) == first
    assert f"the replay starts at {first:%Y-%m-%d %H:%M} UTC instead" in cap.err


def _append_many(args):
    import os

    ws, k, n = args
    os.environ["CNN_LAB_WORKSPACE"] = ws
    from core.live.log import append_signal

    return sum(append_signal({"run_id": "racerun", "source": f"proc{k}", "mode": "replay", "config_key": "x",
                              "timestamp": f"2025-12-01T00:{i:02d}:00+00:00", "action": "flat"})
               for i in range(n))


def test_two_processes_appending_to_one_log_lose_no_line(workspace):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        ok = sum(pool.map(_append_many, [(str(workspace), 0, 40), (str(workspace), 1, 40)]))
    assert ok == 80 and len(read_signals("racerun", limit=None)) == 80


def test_a_live_session_decides_at_its_start_then_steps_and_stops_at_the_end(run_id, trained):
    """The loop's state between ticks (the Live page keeps one per source, the CLI one per command): the first
    tick decides where the clock was put, later ones move it `step` bars; a replay that runs out stops the loop;
    a feed that cannot be made is counted and said, not raised; Reset starts the same source again."""
    from core.live.session import LiveSession

    lm = load_live_model(run_id)
    candles = trained["candles"]
    made = []

    def make():
        feed = ReplayFeed(candles, cursor=len(candles) - 4)
        made.append(feed)
        return feed, "moved out of the warm-up"
    s = LiveSession(key=("replay", run_id))
    s.toggle()
    assert s.running and s.due(60)  # started: the first tick is due at once
    s.tick(lm, make, step=2)
    assert len(made) == 1 and s.start_note == "moved out of the warm-up"
    assert s.ticks == 1 and s.last.timestamp == candles.index[-4] and not s.due(60)
    s.tick(lm, make, step=2)
    assert len(made) == 1 and s.last.timestamp == candles.index[-2]  # the same feed, 2 bars on
    s.tick(lm, make, step=2)  # to the last bar (a step never jumps past it)
    assert s.last.timestamp == candles.index[-1] and s.running and not s.finished
    s.tick(lm, make, step=2)  # no bar left: the replay has run out
    assert s.finished and not s.running and s.ticks == 4
    s.reset()
    assert s.key == ("replay", run_id) and (s.ticks, s.feed, s.last, s.finished, s.notes) == (0, None, None, False, [])

    def broken():
        raise UserError("there is no market 'NOPE/USDT' on Bybit")
    assert s.tick(lm, broken) is None
    assert (s.errors, s.ticks, s.last_error) == (1, 0, "there is no market 'NOPE/USDT' on Bybit") and s.error_at
    s.tick(lm, make)
    assert s.last_error is None and s.errors == 1 and s.last is not None  # a good tick clears the error


def test_the_signal_and_the_loop_in_words():
    """A flat bar shows how far its strongest side is from trading (not P(flat)), a trade the probability of its
    side; the loop's line says running or paused and counts; a failed tick says when and what happens next."""
    from types import SimpleNamespace

    from core.live.session import LiveSession
    from core.viz.live import heads_caption, loop_error, loop_status, signal_figures

    flat = SimpleNamespace(action="flat", probabilities={"down": 0.41, "flat": 0.17, "up": 0.42}, confidence=0.17,
                           size=0.0, notional=0.0, stop=None, target=None, atr=132.5, extra={})
    figures = signal_figures(flat, 0.6, "fixed")
    assert figures[0] == ("Strongest side", "up 0.42", "below the 0.60 threshold, so no trade")
    assert [f[:2] for f in figures[1:]] == [("Suggested size", "0.0 %"), ("Stop", "-"), ("Target", "-"),
                                            ("ATR(14)", "132.50")]
    long = SimpleNamespace(**{**vars(flat), "action": "long", "confidence": 0.66, "size": 0.5, "notional": 5000.0,
                              "stop": 99.5, "extra": {"magnitude": 0.012}})
    assert signal_figures(long, 0.6, "fixed")[0][:2] == ("Confidence", "0.66")
    assert signal_figures(long, 0.6, "fixed")[1] == ("Suggested size", "50.0 %", "fixed sizing: 5,000 USDT")
    assert heads_caption(long) == "predicted magnitude over the horizon: +1.20 %" and heads_caption(flat) is None
    s = LiveSession(ticks=1, errors=0)
    assert loop_status(s, True, 2) == "paused · replay · 1 tick, 0 failed"
    s.toggle()
    assert loop_status(s, False, 30) == ":green[running] · Bybit · a tick every 30 s · 1 tick, 0 failed"
    assert loop_error(s, "offline") is None
    s.last_error, s.error_at = "offline", "12:00:00"
    said = loop_error(s, "offline")
    assert said.startswith("offline (at 12:00:00; the loop carries on and tries again at the next tick)")
    assert "choose Source: replay" in said and "choose Source" not in loop_error(s, "another sentence")
