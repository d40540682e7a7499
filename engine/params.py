"""Versioned, validated margin parameters.

Every result carries ``MarginParams.version`` so an attestation can say which model
produced it. Defaults follow ``margin-model.md``: a ±16% scan in 9 steps with
volatility up / flat / down (Deribit / Paradex shape), extended moves from −66% to
+500% weighted R/|move|, vega shocks +40% / −22% scaled by (30 / days)^p, a minimum
delta charge of 2% of net plus 1% of hedged delta, 1% of spot per net short option,
a funding provision on perps, 1% basis on offset futures, 2% depeg on stablecoin
holdings, and IM = 1.25 × MM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from engine.errors import ParamsError

# ``xmargin backtest`` prints these from ../shared/data/prices (Binance daily closes,
# 2019-01-01 → 2024-12-31, 2-day horizon, 99%); tests/engine/test_correlation.py
# recomputes them.
PAIR_LOSS_FLOOR = {"BTC/ETH": 0.1120, "BTC/SOL": 0.2980, "ETH/SOL": 0.2775}


@dataclass(frozen=True)
class MarginParams:
    version: int = 1
    scan_range: float = 0.16
    scan_steps: int = 9
    scan_range_by_underlying: dict[str, float] = field(default_factory=dict)
    extended_moves: tuple[float, ...] = (-0.66, -0.5, -0.33, 0.33, 0.5, 1.0, 2.0, 5.0)
    vol_up: float = 0.40
    vol_down: float = 0.22
    vol_scale_days: float = 30.0
    vol_power_short: float = 0.30  # p under 30 days to expiry
    vol_power_long: float = 0.13   # p beyond
    net_delta_charge: float = 0.02
    hedged_delta_charge: float = 0.01
    short_option_charge: float = 0.01
    concentration_threshold_usd: float = 5_000_000.0
    concentration_charge: float = 0.02
    stale_range_multiplier: float = 1.5
    stale_vol_multiplier: float = 1.5  # the vega shocks on a stale implied volatility
    stablecoin_depeg_charge: float = 0.02
    funding_provision: float = 0.0006  # 2 days of 0.01% per 8 h, on gross perp notional
    basis_charge: float = 0.01         # of futures offset by other expiries, perps or spot
    # Weight s in [0, 1] moving each trader's correlations towards the signs that hurt
    # its book (+1 same direction, −1 across a spread): never lowers a requirement.
    correlation_stress: float = 0.0
    default_correlation: float = 0.5
    # Per pair of underlyings ("BTC/ETH", either order): the historical 99% loss over the
    # margin period of $1 long one and $1 short the other, the worse direction
    # (``engine.backtest.pair_loss_floor`` on 2019–2024 closes, rounded up). Correlation
    # credit across a spread stops where an equal-notional spread would be margined
    # below it (``spread_caps``): worked case 6.
    pair_loss_floor: dict[str, float] = field(default_factory=lambda: dict(PAIR_LOSS_FLOOR))
    initial_to_maintenance: float = 1.25

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("version", self.version >= 1, "must be ≥ 1"),
            ("scan_range", 0.0 < self.scan_range < 1.0, "must lie in (0, 1)"),
            ("scan_steps", self.scan_steps >= 3 and self.scan_steps % 2 == 1,
             "must be odd and ≥ 3 so that 0 is a scenario"),
            ("extended_moves", all(m > -1.0 and m != 0.0 for m in self.extended_moves),
             "moves must be > −100% and non-zero"),
            ("vol_up", self.vol_up >= 0.0, "must be ≥ 0"),
            ("vol_down", 0.0 <= self.vol_down < 1.0, "must lie in [0, 1)"),
            ("net_delta_charge", self.net_delta_charge >= 0.0, "must be ≥ 0"),
            ("hedged_delta_charge", self.hedged_delta_charge >= 0.0, "must be ≥ 0"),
            ("short_option_charge", self.short_option_charge >= 0.0, "must be ≥ 0"),
            ("concentration_charge", self.concentration_charge >= 0.0, "must be ≥ 0"),
            ("stablecoin_depeg_charge", self.stablecoin_depeg_charge >= 0.0, "must be ≥ 0"),
            ("funding_provision", self.funding_provision >= 0.0, "must be ≥ 0"),
            ("basis_charge", self.basis_charge >= 0.0, "must be ≥ 0"),
            ("stale_range_multiplier", self.stale_range_multiplier >= 1.0, "must be ≥ 1"),
            ("stale_vol_multiplier", self.stale_vol_multiplier >= 1.0, "must be ≥ 1"),
            ("correlation_stress", 0.0 <= self.correlation_stress <= 1.0, "must lie in [0, 1]"),
            ("default_correlation", -1.0 <= self.default_correlation <= 1.0,
             "must lie in [−1, 1]"),
            ("initial_to_maintenance", self.initial_to_maintenance >= 1.0, "must be ≥ 1"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ParamsError(name, message)
        for name, r in self.scan_range_by_underlying.items():
            if not 0.0 < r < 1.0:
                raise ParamsError(f"scan_range_by_underlying.{name}", "must lie in (0, 1)")
        for pair, f in self.pair_loss_floor.items():
            names = pair.split("/")
            if len(names) != 2 or not all(names) or names[0] == names[1]:
                raise ParamsError(f"pair_loss_floor.{pair}", "expected two underlyings as A/B")
            if not 0.0 <= f < 2.0:
                raise ParamsError(f"pair_loss_floor.{pair}", "must lie in [0, 2)")

    def floor_for(self, a: str, b: str) -> float:
        """The pair's loss floor (0: none configured)."""
        floors = self.pair_loss_floor
        return floors.get(f"{a}/{b}", floors.get(f"{b}/{a}", 0.0))

    def range_for(self, underlying: str) -> float:
        return self.scan_range_by_underlying.get(underlying, self.scan_range)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> MarginParams:
        """Parameters from a parsed TOML / JSON table; an unknown key is a ``ParamsError``."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ParamsError(key, "unknown parameter")
        if "extended_moves" in values:
            values = {**values, "extended_moves": tuple(values["extended_moves"])}
        try:
            return cls(**values)
        except TypeError as e:
            raise ParamsError("params", str(e)) from e


T = TypeVar("T")


class PerParams(Generic[T]):
    """Values derived from a key and one parameter object, memoised: a stream margining
    one trader at a time asks for the same few again and again. An entry holds its
    parameter object, so its ``id`` is never reused while the entry is kept; at most
    256 entries (then it starts again)."""

    def __init__(self) -> None:
        self._held: dict[tuple[object, ...], tuple[MarginParams, T]] = {}

    def get(self, key: tuple[object, ...], params: MarginParams, build: Callable[[], T]) -> T:
        full = (*key, id(params))
        hit = self._held.get(full)
        if hit is not None and hit[0] is params:
            return hit[1]
        value = build()
        if len(self._held) > 256:
            self._held.clear()
        self._held[full] = (params, value)
        return value
