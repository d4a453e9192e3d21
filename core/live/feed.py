"""Where live candles come from: Bybit through ccxt, or a replay of stored candles as if they were live.

Both feeds answer the same question, `latest(n)`: the last `n` *closed* candles (a candles DataFrame as in
core.data). A still-open candle is never returned: a model trained on closed bars must not see a bar whose
close is still moving.

- `BybitFeed` asks Bybit's public kline endpoint through ccxt (no keys), reusing core.data.bybit's client
  (`make_exchange`), symbol resolution, retry/backoff and error mapping, so an unreachable exchange is the
  same clear sentence as on the Data page (`ExchangeUnavailable`). `CNN_LAB_BYBIT_URL` points the client
  at another base URL (a proxy, or the tests' local fixture server).
- `ReplayFeed` walks a stored dataset (the offline market by default) bar by bar: its cursor is the
  position of the newest bar the "live" loop may see; `advance(k)` moves time forward by k bars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pandas as pd

from core.data.candles import bar_seconds, find_gaps, timeframe_seconds
from core.errors import DataError, UserError

BYBIT_URL_ENV = "CNN_LAB_BYBIT_URL"
MAX_LOOKBACK = 5000  # bars per live request; Bybit pages at 1000, so at most 5 requests a tick


class ReplayFeed:
    """Stored candles replayed as if live: `latest(n)` sees bars up to and including `cursor` only."""

    mode = "replay"

    def __init__(self, candles: pd.DataFrame, cursor: Optional[int] = None) -> None:
        if candles is None or len(candles) == 0:
            raise DataError("the dataset to replay has no candles")
        self.candles = candles
        self.cursor = len(candles) - 1 if cursor is None else int(cursor)
        if not 0 <= self.cursor < len(candles):
            raise UserError(f"the replay position {cursor} is outside the dataset (0 to {len(candles) - 1})")

    @property
    def source(self) -> str:
        a = self.candles.attrs
        return f"replay:{a.get('source', '')}-{a.get('symbol', '')}-{a.get('timeframe', '')}"

    @property
    def timeframe(self) -> str:
        return str(self.candles.attrs.get("timeframe", ""))

    @property
    def finished(self) -> bool:
        return self.cursor >= len(self.candles) - 1

    @property
    def now(self) -> pd.Timestamp:
        """The replayed clock: the close time of the newest visible bar."""
        return self.candles.index[self.cursor] + pd.Timedelta(seconds=bar_seconds(self.candles, default=3600))

    def position_of(self, when: Any) -> int:
        """The cursor that makes the bar opening at (or last before) `when` the newest visible one."""
        try:
            t = pd.Timestamp(when)
        except (ValueError, TypeError) as exc:
            raise UserError(f"'{when}' is not a date and time (e.g. 2025-06-01 or 2025-06-01T14:00)") from exc
        if pd.isna(t):
            raise UserError(f"'{when}' is not a date and time (e.g. 2025-06-01 or 2025-06-01T14:00)")
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        pos = int(self.candles.index.searchsorted(t, side="right")) - 1
        return max(0, min(pos, len(self.candles) - 1))

    def advance(self, k: int = 1) -> bool:
        """Move the replayed clock k bars forward; False (and no move) when the data has run out."""
        if self.finished:
            return False
        self.cursor = min(len(self.candles) - 1, self.cursor + max(1, int(k)))
        return True

    def latest(self, n: int) -> pd.DataFrame:
        out = self.candles.iloc[max(0, self.cursor + 1 - int(n)): self.cursor + 1]
        out.attrs.update(self.candles.attrs)
        return out


@dataclass
class BybitFeed:
    """The latest closed candles of one Bybit market (public endpoints, through ccxt)."""

    symbol: str
    timeframe: str
    market_type: str = "linear"
    exchange: Any = None
    retry: Any = None
    now: Callable[[], pd.Timestamp] = field(default=lambda: pd.Timestamp.now(tz="UTC"))
    mode: str = "live"
    requests: int = 0                 # kline requests the last `latest` made
    _unified: Optional[str] = None
    _held: Optional[pd.DataFrame] = None

    def __post_init__(self) -> None:
        from core.data.bybit import RetryConfig, make_exchange, source_name

        source_name(self.market_type)  # a clear error for an unknown market type
        timeframe_seconds(self.timeframe)
        if self.exchange is None:
            self.exchange = make_exchange(self.market_type, timeout=10_000)
            url = os.environ.get(BYBIT_URL_ENV)
            if url:
                self.exchange.urls["api"] = {k: url.rstrip("/") for k in self.exchange.urls["api"]}
        # A live loop must not hang for minutes on a dead connection: retry briefly, then say so; the
        # next tick tries again anyway.
        self.retry = self.retry or RetryConfig(retries=1, first_call_retries=1, backoff_s=0.5, max_backoff_s=2)

    @property
    def source(self) -> str:
        return f"bybit_{self.market_type}:{self.symbol}"

    def _resolve(self) -> str:
        from core.data.bybit import resolve_symbol, retrying

        if self._unified is None:
            retrying(lambda: self.exchange.load_markets(), self.retry, None, [0], first=True)
            self._unified = resolve_symbol(self.exchange, self.symbol, self.market_type)
        return self._unified

    def latest(self, n: int) -> pd.DataFrame:
        """The last `n` closed candles. Each window is asked with explicit since/until (so the answer does
        not depend on which end Bybit fills a page from, 1000 candles a request); candles already held from
        the previous tick are reused, so a steady loop asks only for the bars that closed since, and for the
        stretches the held ones lack (bars Bybit did not serve then), each tick until Bybit serves them."""
        from core.data.bybit import PAGE_LIMIT, exchange_time, ohlcv_to_frame, retrying
        from core.data.candles import invalid_candles, validate_candles

        n = int(n)
        if not 1 <= n <= MAX_LOOKBACK:
            raise UserError(f"ask for 1 to {MAX_LOOKBACK} candles at a time")
        unified = self._resolve()
        step = pd.Timedelta(seconds=timeframe_seconds(self.timeframe))
        now = pd.Timestamp(self.now())
        now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
        bybit_now = exchange_time(self.exchange, [0])
        if bybit_now is not None:  # closed on Bybit: a local clock running ahead would pass a forming candle
            now = min(now, bybit_now)
        end = now.floor(step)           # open time of the still-open candle: excluded
        start = end - n * step
        held = self._held
        reuse = held is not None and len(held) > 0 and held.index[0] <= start <= held.index[-1] + step
        if reuse:
            kept = held[held.index >= start]
            reuse = len(kept) > 0 and kept.index[0] == start
        # what to ask: a bar Bybit skipped on an earlier tick is asked again (only its stretch, not the whole
        # window), then the bars that closed since; the last held bar is asked again: cheap, and it's closed
        spans = [(pd.Timestamp(g["start"]), pd.Timestamp(g["end"]) + step)
                 for g in find_gaps(kept.index, self.timeframe)] if reuse else []
        spans.append((held.index[-1] if reuse else start, end))
        frames = [held] if reuse else []
        counter = [0]
        for win, stop in spans:
            while win < stop:
                win_end = min(win + PAGE_LIMIT * step, stop)
                since_ms = int(win.value // 1_000_000)
                until_ms = int((win_end - step).value // 1_000_000)
                rows = retrying(lambda: self.exchange.fetch_ohlcv(unified, self.timeframe, since=since_ms,
                                                                   limit=int((win_end - win) / step),
                                                                   params={"until": until_ms}),
                                 self.retry, None, counter)
                frames.append(ohlcv_to_frame(rows))
                win = win_end
        self.requests = counter[0]
        df = pd.concat(frames) if frames else ohlcv_to_frame([])
        df = df[(df.index >= start) & (df.index + step <= now)]
        df = df[~df.index.duplicated(keep="last")].sort_index()
        plain = unified.split(":")[0]
        df.attrs.update(source=f"bybit_{self.market_type}", symbol=plain, timeframe=self.timeframe)
        if len(df) == 0:
            raise DataError(f"Bybit returned no closed {self.timeframe} candles for {plain} just now")
        bad = invalid_candles(df)
        if bad:  # the model's window would hold it: no signal while it does, and the sentence says which bar
            raise DataError(f"Bybit served an invalid {plain} candle at {bad[0][0]:%Y-%m-%d %H:%M} UTC ({bad[0][1]}): "
                            f"no signal while it is inside the last {n:,} bars")
        out = validate_candles(df)
        self._held = out
        return out
