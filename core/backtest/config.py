"""`BacktestConfig`: every knob of a backtest (signals, sizing, costs, risk rules), with the source documents'
values as defaults, validation with sentences a user can act on, and `--set` style overrides.

Fee defaults are Bybit's published non-VIP rates for USDT linear perpetuals (taker 0.055 %, maker 0.02 %
per side, as of 2024-2025); fee schedules change and VIP tiers pay less, so both are editable.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping, Optional

from core.errors import UserError

BYBIT_TAKER_FEE = 0.00055   # 0.055 % per side, USDT perpetuals, non-VIP (as of 2024-2025)
BYBIT_MAKER_FEE = 0.0002    # 0.02 % per side
FEE_NOTE = ("Bybit USDT-perpetual non-VIP rates as of 2024-2025: taker 0.055 %, maker 0.02 % per side. "
            "Market orders (entries, signal/time exits, stops) pay taker; take-profit limit orders pay maker. "
            "Perpetual funding is not charged (often 0.01 % per 8 h; the default rules hold at most 12 h).")

LEVERAGE_HELP = ("Above 1 is leverage (up to 10×). The account can lose all its equity and no more: a position "
                 "is liquidated at the price where equity reaches zero.")

SIZINGS = ("fixed", "confidence", "kelly", "half_kelly")
SIZING_HELP = ("fixed: a fraction of equity; confidence: base × (confidence − 0.5) × 2; kelly: p − (1 − p)/b capped "
               "at the cap; half_kelly: half of that.")
FRACTION_HELP = ("fixed: every position takes this fraction of equity; confidence: this base × (confidence − 0.5) "
                 "× 2; kelly and half_kelly: not used (the Kelly formula and its cap set the size). ")


def uses_base_fraction(sizing: str) -> bool:
    """Whether a sizing reads the fixed/base fraction (the Kelly sizings size from the confidence, the win/loss
    ratio and the Kelly cap)."""
    return not str(sizing).endswith("kelly")
STOP_KINDS = ("none", "fixed", "atr")
TAKE_PROFIT_KINDS = ("none", "fixed")
SIGNAL_EXITS = ("reversal", "weak", "none")


@dataclass
class BacktestConfig:
    # signals
    threshold: float = 0.6            # long when P(up) > threshold, short when P(down) > threshold (doc 000)
    long_only: bool = False
    # sizing (fraction of equity put into a new position)
    sizing: str = "fixed"             # fixed | confidence | kelly | half_kelly
    fixed_fraction: float = 1.0       # fixed: this fraction; confidence: base x (confidence - 0.5) x 2
    kelly_cap: float = 0.25           # Kelly and half-Kelly fractions are capped here (doc 000: 25 %)
    win_loss_ratio: float = 1.5       # b in f = p - (1 - p) / b (doc 001 uses 1.5)
    max_position: float = 1.0         # hard cap on any position, in equity (1.0 = no leverage; above 1 a
    #                                   position is liquidated when the account's equity reaches zero)
    # costs
    fee_taker: float = BYBIT_TAKER_FEE
    fee_maker: float = BYBIT_MAKER_FEE
    slippage_bps: float = 1.0         # adverse slippage on market fills, basis points of price
    slippage_vol_k: float = 0.0       # plus k x ATR/close (volatility-scaled part), 0 = off
    # risk rules (doc 000)
    stop_loss: str = "atr"            # none | fixed | atr
    stop_loss_pct: float = 0.02       # fixed stop: 2 % from entry
    stop_atr_k: float = 2.0           # ATR stop: 2 x ATR(14) from entry
    trailing_atr_k: float = 1.5       # trailing stop: 1.5 x ATR(14) from the peak; 0 = off
    take_profit: str = "fixed"        # none | fixed
    take_profit_pct: float = 0.03     # +3 % from entry (1.5:1 against the 2 % stop)
    signal_exit: str = "reversal"     # reversal: exit on the opposite signal; weak: exit when the signal no
    #                                   longer supports the position (confidence drops); none
    max_hold_hours: float = 12.0      # time exit; 0 = off (converted to bars of the timeframe)
    daily_dd_halve: float = 0.03      # new positions at half size for the rest of the UTC day after the
    #                                   equity fell this far from the day's peak; 0 = off
    weekly_dd_halt: float = 0.10      # flat and no new trades for the rest of the ISO week (Mon 00:00 UTC)
    #                                   after the equity fell this far from the week's peak; 0 = off
    atr_window: int = 14
    initial_capital: float = 10_000.0
    # rule baselines
    ma_fast: int = 20
    ma_slow: int = 50

    def validate(self) -> "BacktestConfig":
        def frac(name: str, lo: float = 0.0, hi: float = 1.0, lo_open: bool = False) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
                raise UserError(f"{name} must be a number, got {v!r}")
            if v < lo or v > hi or (lo_open and v <= lo):
                raise UserError(f"{name} must be {'above' if lo_open else 'at least'} {lo} and at most {hi}, "
                                f"got {v}")

        frac("threshold", 0.0, 1.0)
        if self.sizing not in SIZINGS:
            raise UserError(f"unknown sizing {self.sizing!r}; choose one of {', '.join(SIZINGS)}")
        if self.stop_loss not in STOP_KINDS:
            raise UserError(f"unknown stop_loss {self.stop_loss!r}; choose one of {', '.join(STOP_KINDS)}")
        if self.take_profit not in TAKE_PROFIT_KINDS:
            raise UserError(f"unknown take_profit {self.take_profit!r}; choose none or fixed")
        if self.signal_exit not in SIGNAL_EXITS:
            raise UserError(f"unknown signal_exit {self.signal_exit!r}; choose one of {', '.join(SIGNAL_EXITS)}")
        frac("fixed_fraction", 0.0, 10.0, lo_open=True)
        frac("max_position", 0.0, 10.0, lo_open=True)
        frac("kelly_cap", 0.0, 1.0, lo_open=True)
        if self.sizing == "fixed" and self.fixed_fraction > self.max_position:
            raise UserError(f"fixed_fraction {self.fixed_fraction:g} is above max_position {self.max_position:g}, "
                            "the cap on any position (1 = no leverage): raise max_position to trade with leverage")
        frac("win_loss_ratio", 0.0, 100.0, lo_open=True)
        frac("fee_taker", 0.0, 0.05)
        frac("fee_maker", -0.01, 0.05)   # some venues pay a maker rebate
        frac("slippage_bps", 0.0, 1000.0)
        frac("slippage_vol_k", 0.0, 10.0)
        frac("stop_loss_pct", 0.0, 0.99, lo_open=True)
        frac("stop_atr_k", 0.0, 100.0, lo_open=True)
        frac("trailing_atr_k", 0.0, 100.0)
        frac("take_profit_pct", 0.0, 100.0, lo_open=True)
        frac("max_hold_hours", 0.0, 1e6)
        frac("daily_dd_halve", 0.0, 1.0)
        frac("weekly_dd_halt", 0.0, 1.0)
        frac("initial_capital", 0.0, 1e15, lo_open=True)
        for name in ("atr_window", "ma_fast", "ma_slow"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UserError(f"{name} must be a whole number of bars, at least 1, got {v!r}")
        if self.ma_fast >= self.ma_slow:
            raise UserError("the fast moving average must be shorter than the slow one (ma_fast < ma_slow)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stop_note(self) -> Optional[str]:
        """Says when the ATR stop can never fire: the trailing stop starts `trailing_atr_k` ATR from the entry
        price (the peak at entry) and only tightens, so an ATR stop as far or further is always behind it
        (the defaults, 2 and 1.5, are the source document's)."""
        if self.stop_loss == "atr" and 0 < self.trailing_atr_k <= self.stop_atr_k:
            return (f"The trailing stop starts {self.trailing_atr_k:g} ATR from the entry and only tightens, so the "
                    f"{self.stop_atr_k:g} ATR stop behind it never fires: here the trailing stop is the stop. The ATR "
                    "stop acts with a multiple below the trailing one, or with the trailing stop off.")
        return None


def leverage_cap(fraction: float) -> float:
    """The `max_position` of the pages: the chosen (base) fraction of equity, at least 1, so a fraction above
    1 is the leverage asked for, not silently capped at 1."""
    return max(1.0, float(fraction))


def make_config(config: "BacktestConfig | Mapping[str, Any] | None" = None, **overrides: Any) -> BacktestConfig:
    """A validated BacktestConfig from a config, a dict (e.g. parsed `--set` pairs) or None, plus overrides.

    Unknown keys are refused with the list of known ones; whole numbers given for float settings are fine.
    """
    if isinstance(config, BacktestConfig):
        base, data = config, dict(overrides)
    else:
        base, data = BacktestConfig(), {**dict(config or {}), **overrides}
    known = {f.name: f for f in fields(BacktestConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise UserError(f"unknown backtest setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
    clean: dict[str, Any] = {}
    for k, v in data.items():
        default = getattr(BacktestConfig, k, None)
        if isinstance(default, bool):
            if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
                v = v.lower() in ("true", "1", "yes")
            elif not isinstance(v, bool):
                raise UserError(f"{k} must be true or false, got {v!r}")
        elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif isinstance(default, int) and isinstance(v, float) and v.is_integer():
            v = int(v)
        clean[k] = v
    return replace(base, **clean).validate()
