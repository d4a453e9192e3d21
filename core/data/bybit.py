"""Bybit candles and order books through ccxt (public endpoints only: no API keys anywhere).

`fetch_candles` pulls spot or USDT-linear-perpetual candles for any listed symbol, 1m to 1d, over a date
range. Bybit answers at most 1000 candles a request, so the range is cut into windows of 1000 candles,
each asked for with both `since` and `until` (so the answer is the same whichever end Bybit fills from).
ccxt's rate limiter is on; network errors, rate limits and exchange-unavailable answers are retried with
exponential backoff (Cancel ends a backoff wait at once). The fetch is incremental: the dataset's metadata
remembers the ranges already covered, and a second fetch asks only for the rest. The still-open last candle
is never stored (closed by Bybit's clock, not only this machine's). Each page is checked as it arrives: a
candle the store would refuse is left out as a gap (said in `FetchResult.note()`) and asked for again by the
next fetch. The dataset is saved (atomically) as the fetch goes, so an interrupted fetch keeps what came
before and the next fetch resumes where it stopped.

`record_order_book` takes `fetch_order_book` snapshots (top N levels, every S seconds, for a duration)
into the workspace (core.data.orderbook), saving as it goes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import pandas as pd

from core.data.candles import (COLUMNS, MIN_CANDLES, TIMEFRAMES, empty_candles, invalid_candles, timeframe_seconds,
                               too_few_candles)
from core.errors import DataError, ExchangeUnavailable
from core.progress import CancelToken, ProgressCallback, check, report

MarketType = Literal["spot", "linear"]
MARKET_TYPES: tuple[str, ...] = ("spot", "linear")
SAVE_EVERY_S = 2.0  # how often a long fetch writes what it has fetched so far
PAGE_LIMIT = 1000  # Bybit's maximum candles per kline request
UNREACHABLE = "no connection to Bybit: use the offline market or import a file"


@dataclass
class RetryConfig:
    """Exponential backoff: wait backoff_s, 2*backoff_s, ... (capped) between attempts."""

    retries: int = 5
    # Before anything has answered, a dead connection is most likely no internet at all: say so quickly.
    first_call_retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    sleep: Callable[[float], None] | None = None  # None: the cancel token's wait (or time.sleep without one)


@dataclass
class FetchResult:
    dataset: str
    rows: int
    rows_added: int
    requests: int
    pages: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    ranges_fetched: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # invalid candles from Bybit, left out as gaps (when, why)

    def note(self) -> str:
        """What was left out, in a sentence ("" when nothing was)."""
        if not self.left_out:
            return ""
        return (f"Bybit served {_count(len(self.left_out), 'invalid candle')}, left out as gaps and asked for "
                f"again on the next fetch: {', '.join(self.left_out[:3])}{' ...' if len(self.left_out) > 3 else ''}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "rows": self.rows, "rows_added": self.rows_added,
            "requests": self.requests, "pages": self.pages, "left_out": list(self.left_out),
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "ranges_fetched": [[a.isoformat(), b.isoformat()] for a, b in self.ranges_fetched],
        }


def source_name(market_type: str) -> str:
    if market_type not in MARKET_TYPES:
        raise DataError(f"unknown Bybit market type {market_type!r}: use 'spot' or 'linear'")
    return f"bybit_{market_type}"


def make_exchange(market_type: str = "linear", **config: Any) -> Any:
    """A public ccxt.bybit client with the rate limiter on, loading only the markets of `market_type`."""
    import ccxt

    source_name(market_type)
    opts = {
        "enableRateLimit": True,
        "timeout": 15_000,
        "options": {"defaultType": "spot" if market_type == "spot" else "swap",
                    "fetchMarkets": {"types": [market_type]}},
    }
    opts.update(config)
    return ccxt.bybit(opts)


def retrying(call: Callable[[], Any], retry: RetryConfig, cancel: CancelToken | None,
              counter: list[int], first: bool = False) -> Any:
    """Run `call`, retrying network errors, rate limits and exchange-unavailable with backoff."""
    import ccxt

    delay = retry.backoff_s
    attempt = 0
    while True:
        check(cancel)
        counter[0] += 1
        try:
            return call()
        except ccxt.BadSymbol as exc:
            raise DataError(f"Bybit does not list that market: {exc}") from None
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:
            # RateLimitExceeded and DDoSProtection are NetworkErrors in ccxt's hierarchy. A rate limit
            # means Bybit is there: always worth the full backoff.
            limited = isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection))
            limit = retry.retries if (limited or not first) else min(retry.retries, retry.first_call_retries)
            if attempt >= limit:
                if limited:
                    raise ExchangeUnavailable(
                        "Bybit keeps refusing requests (rate limit); wait a minute and fetch again - "
                        "what was fetched so far is kept") from exc
                raise ExchangeUnavailable(UNREACHABLE) from exc
            wait = min(delay, retry.max_backoff_s)
            if retry.sleep is not None:
                retry.sleep(wait)
            elif cancel is not None:
                cancel.wait(wait)  # wakes at once on Cancel; the check at the top of the loop then stops
            else:
                time.sleep(wait)
            delay *= 2
            attempt += 1
        except ccxt.ExchangeError as exc:
            raise DataError(f"Bybit refused the request: {exc}") from None


def resolve_symbol(exchange: Any, symbol: str, market_type: str) -> str:
    """The unified ccxt symbol for user input like 'BTC/USDT', 'BTCUSDT' or 'BTC/USDT:USDT'."""
    s = symbol.strip().upper()
    want_spot = market_type == "spot"
    candidates = []
    for m in exchange.markets.values():
        if bool(m.get("spot")) != want_spot:
            continue
        if not want_spot and not (m.get("linear") and m.get("swap")):
            continue
        if s in (m["symbol"].upper(), m["id"].upper(), m["symbol"].split(":")[0].upper(),
                 (m.get("base", "") + m.get("quote", "")).upper()):
            candidates.append(m["symbol"])
    if not candidates:
        kind = "spot" if want_spot else "USDT linear perpetual"
        raise DataError(f"Bybit has no {kind} market {symbol!r}")
    return candidates[0]


def _to_ts(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def exchange_time(exchange: Any, counter: list[int]) -> pd.Timestamp | None:
    """Bybit's clock (/v5/market/time), or None when it does not answer: asked once, never retried."""
    import ccxt

    counter[0] += 1
    try:
        return pd.Timestamp(int(exchange.fetch_time()), unit="ms", tz="UTC")
    except (ccxt.BaseError, TypeError, ValueError):
        return None


def ohlcv_to_frame(rows: list[list[Any]]) -> pd.DataFrame:
    if not rows:
        return empty_candles()
    df = pd.DataFrame(rows, columns=["ts", *COLUMNS])
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("ts").astype("int64"), unit="ms", utc=True),
                                name="timestamp").as_unit("ns")
    return df.astype("float64")


def fetch_candles(
    symbol: str,
    timeframe: str,
    start: Any,
    end: Any | None = None,
    market_type: MarketType = "linear",
    exchange: Any | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    retry: RetryConfig | None = None,
    now: Callable[[], pd.Timestamp] | None = None,
) -> FetchResult:
    """Fetch Bybit candles for [start, end) into the store, asking only for ranges not yet held.

    `now` is this machine's clock (injectable for tests); Bybit's own clock, when it answers, caps it.
    """
    from core.data.store import (dataset_id, dataset_info, exists, load_candles, merge_ranges,
                                 missing_ranges, save_candles)

    source = source_name(market_type)
    step_s = timeframe_seconds(timeframe)
    step = pd.Timedelta(seconds=step_s)
    retry = retry or RetryConfig()
    exchange = exchange or make_exchange(market_type)
    counter = [0]

    report(progress, "fetch", 0, None, "loading Bybit markets")
    retrying(lambda: exchange.load_markets(), retry, cancel, counter, first=True)
    unified = resolve_symbol(exchange, symbol, market_type)
    plain = unified.split(":")[0]
    ds_id = dataset_id(source, plain, timeframe)

    local_now = (now or (lambda: pd.Timestamp.now(tz="UTC")))()
    bybit_now = exchange_time(exchange, counter)
    # Closed means closed on Bybit. A local clock running ahead would store the candle still forming there
    # as closed and mark its range covered for good; the earlier clock is used, so one running behind only
    # leaves the newest candles to the next fetch. Without Bybit's time the local clock decides.
    now_ts = local_now if bybit_now is None else min(local_now, bybit_now)
    # Only closed candles: the last one we may store opened at least one timeframe before now.
    last_closed_end = now_ts.floor(step) if step_s <= 86400 else now_ts
    start_ts = _to_ts(start).ceil(step)
    end_ts = min(_to_ts(end).floor(step) if end is not None else last_closed_end, last_closed_end)
    if end_ts <= start_ts:
        raise DataError(f"nothing to fetch between {start_ts} and {end_ts} (only closed candles are stored)")

    if exists(ds_id):
        held_df = load_candles(ds_id)
        held_ranges = dataset_info(ds_id).ranges
    else:
        held_df, held_ranges = empty_candles(source, plain, timeframe), []
    rows_before = len(held_df)
    todo = missing_ranges(start_ts, end_ts, held_ranges)
    total_pages = sum(-(-int((b - a) / step) // PAGE_LIMIT) for a, b in todo)
    pages = 0
    fetched: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    merged = held_df
    pending: list[pd.DataFrame] = []           # pages fetched since the last save
    pending_ranges: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    base_meta = {"exchange": "bybit", "market_type": market_type, "ccxt_symbol": unified}
    saved = 0  # candles this fetch has stored
    left_out: list[str] = []  # invalid candles from Bybit, left out as gaps

    def save_pending() -> None:
        """Merge the pages fetched since the last save into the stored dataset (one atomic write)."""
        nonlocal merged, held_ranges, saved
        if not pending:
            return
        candidate = pd.concat([merged, *pending]) if len(merged) else pd.concat(pending)
        candidate = candidate[~candidate.index.duplicated(keep="last")].sort_index()
        if len(candidate) < MIN_CANDLES:
            return  # too few to store yet (the store refuses a lone candle): kept pending
        merged = candidate
        merged.attrs.update(source=source, symbol=plain, timeframe=timeframe)
        held_ranges = merge_ranges([*held_ranges, *pending_ranges])
        save_candles(merged, source, plain, timeframe, meta={**base_meta, "ranges": held_ranges})
        saved += sum(len(f) for f in pending)
        pending.clear()
        pending_ranges.clear()

    last_save = time.monotonic()
    try:
        for a, b in todo:
            win = a
            while win < b:
                check(cancel)
                win_end = min(win + PAGE_LIMIT * step, b)
                since_ms = int(win.value // 1_000_000)
                until_ms = int((win_end - step).value // 1_000_000)  # open time of the window's last candle
                n_win = int((win_end - win) / step)
                rows = retrying(
                    lambda: exchange.fetch_ohlcv(unified, timeframe, since=since_ms, limit=n_win,
                                                 params={"until": until_ms}),
                    retry, cancel, counter,
                )
                page = ohlcv_to_frame(rows)
                page = page[(page.index >= win) & (page.index < win_end) & (page.index + step <= now_ts)]
                # A candle the store would refuse (Bybit has served low above high) is left out: a gap the
                # quality report shows, not covered, so the next fetch asks for that bar again. The rest goes on.
                spans, edge = [], win
                for when, why in invalid_candles(page):
                    left_out.append(f"{when:%Y-%m-%d %H:%M} UTC ({why})")
                    page = page.drop(when)
                    spans.append((edge, when))
                    edge = when + step
                spans = [(a, b) for a, b in [*spans, (edge, win_end)] if b > a]
                pending.append(page)
                pending_ranges.extend(spans)
                fetched.extend(spans)
                pages += 1
                # Saved every few seconds rather than after every page (a rewrite of everything held so far
                # per 1,000 candles would grow with the square of the history); the `finally` below saves
                # what is pending when the fetch is cancelled or fails, so an interruption loses nothing.
                if time.monotonic() - last_save >= SAVE_EVERY_S:
                    save_pending()
                    last_save = time.monotonic()
                n_rows = len(merged) + sum(len(f) for f in pending)
                report(progress, "fetch", pages, total_pages,
                       f"{plain} {timeframe}: {n_rows:,} candles up to {win_end:%Y-%m-%d %H:%M}",
                       {"rows": n_rows, "requests": counter[0]})
                win = win_end
    except ExchangeUnavailable as exc:
        save_pending()
        if str(exc) != UNREACHABLE or not saved:
            raise
        raise ExchangeUnavailable(f"connection to Bybit lost after {_count(saved, 'candle')} (kept in {ds_id}): "
                                  "fetch again to resume") from exc
    finally:
        save_pending()

    info = dataset_info(ds_id) if exists(ds_id) else None
    if info is None:  # nothing stored: an empty answer, or a single candle (too few for a dataset)
        n = sum(len(f) for f in pending)
        if n:
            raise too_few_candles(n, f"Bybit returned {n} for that range: fetch a longer span")
        raise DataError("Bybit returned no candles for that range")
    return FetchResult(
        dataset=ds_id, rows=info.rows, rows_added=info.rows - rows_before, requests=counter[0],
        pages=pages, start=info.start, end=info.end, ranges_fetched=fetched, left_out=left_out,
    )


def record_order_book(
    symbol: str,
    market_type: MarketType = "linear",
    levels: int = 50,
    interval_s: float = 1.0,
    duration_s: float = 60.0,
    exchange: Any | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    retry: RetryConfig | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    book_id: str | None = None,
) -> "Any":
    """Record `fetch_order_book` snapshots of the top `levels` every `interval_s` for `duration_s`.

    Saved into the workspace after every new snapshot (a repeated exchange stamp is skipped); returns the
    BookInfo. Cancel stops it cleanly with what was recorded so far kept.
    """
    from core.data.orderbook import save_order_book, snapshot_rows
    from core.data.store import symbol_slug
    from core.progress import Cancelled

    if not 1 <= levels <= (200 if market_type == "spot" else 500):
        raise DataError("Bybit books have 1 to 200 levels for spot and 1 to 500 for linear markets")
    if interval_s <= 0 or duration_s <= 0:
        raise DataError("the interval and the duration must be positive")
    source = source_name(market_type)
    retry = retry or RetryConfig()
    exchange = exchange or make_exchange(market_type)
    counter = [0]
    retrying(lambda: exchange.load_markets(), retry, cancel, counter, first=True)
    unified = resolve_symbol(exchange, symbol, market_type)
    plain = unified.split(":")[0]
    n_total = max(1, int(duration_s // interval_s) + 1)
    book_id = book_id or f"{source}-{symbol_slug(plain)}-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}"
    frames: list[pd.DataFrame] = []
    info = None
    last_stamp = None
    t0 = clock()
    for i in range(n_total):
        try:
            check(cancel)
        except Cancelled:
            break
        try:
            ob = retrying(lambda: exchange.fetch_order_book(unified, levels), retry, cancel, counter)
        except Cancelled:  # (during a retry's wait) stopped cleanly, like a Cancel between snapshots
            if info is None:
                raise
            break
        except ExchangeUnavailable as exc:
            if str(exc) != UNREACHABLE or info is None:
                raise
            raise ExchangeUnavailable(f"connection to Bybit lost after {_count(info.snapshots, 'order-book snapshot')} "
                                      f"(kept in {book_id})") from exc
        stamp = ob.get("timestamp")
        if not stamp:  # no exchange stamp: this one was taken now, after the previous (whatever this clock says)
            stamp = max(int(time.time() * 1000), (last_stamp or 0) + 1)
        # A stamp not after the previous one is the same (or an older) book served again: stored under its
        # stamp it would merge into the previous snapshot (levels doubled), and under the local time it would
        # claim a new observation Bybit never made. It is skipped.
        if last_stamp is None or stamp > last_stamp:
            last_stamp = stamp
            frames.append(snapshot_rows(ob, levels, stamp))
            info = save_order_book(pd.concat(frames, ignore_index=True), book_id, source, plain,
                                   meta={"market_type": market_type, "interval_s": interval_s,
                                         "requested_levels": levels, "ccxt_symbol": unified})
        report(progress, "orderbook", i + 1, n_total, f"{plain}: {len(frames)} snapshots")
        if i + 1 < n_total:
            wait = t0 + (i + 1) * interval_s - clock()
            if wait > 0:
                if cancel is not None and sleep is time.sleep:
                    cancel.wait(wait)  # wakes at once on cancel instead of sleeping the whole interval
                else:
                    sleep(wait)
    if info is None:
        raise DataError("no order-book snapshot was recorded")
    return info


__all__ = ["FetchResult", "MARKET_TYPES", "PAGE_LIMIT", "RetryConfig", "UNREACHABLE", "exchange_time", "fetch_candles",
           "make_exchange", "ohlcv_to_frame", "record_order_book", "resolve_symbol", "retrying", "source_name",
           "TIMEFRAMES"]
