"""The scenario grid per underlying (axes ``underlyings × scenarios``).

Scenarios are the 9-step price scan ±R crossed with volatility up / flat / down, then
the extended moves with volatility up. Losses in an extended move count at R / |move|
(the Deribit / Paradex weighting), so a far out-of-the-money short option is charged
for the crash it insures without the scan's full weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instruments import BoolArray, FloatArray, IntArray
from engine.params import MarginParams, PerParams

VOL_UP, VOL_FLAT, VOL_DOWN = 1, 0, -1


@dataclass(frozen=True)
class Scenarios:
    move: FloatArray       # underlyings × scenarios: relative price move
    weight: FloatArray     # underlyings × scenarios: weight applied to losses
    vol_shock: IntArray    # scenarios: +1 up, 0 flat, −1 down
    vol_column: IntArray   # scenarios: the shock's column in ``shocked_vols`` (up, flat, down)
    n_grid: int            # the first n_grid scenarios are the scan (weight 1)
    unit: FloatArray       # n_grid: the scan's moves as fractions of R (−1 … 1)
    ranges: FloatArray     # underlyings: R
    centre: int            # the scenario with no move and flat volatility
    extended: FloatArray   # the extended moves (the same for every underlying)
    plus_r: int            # the first scan column at +R
    growth: FloatArray     # underlyings × scenarios: 1 + move
    log_growth: FloatArray  # ln(1 + move)

    @property
    def n(self) -> int:
        return int(self.vol_shock.shape[0])

    def describe(self, u: int, s: int) -> dict[str, float | str]:
        shock = {VOL_UP: "up", VOL_FLAT: "flat", VOL_DOWN: "down"}[int(self.vol_shock[s])]
        return {"move": float(self.move[u, s]), "vol": shock, "weight": float(self.weight[u, s])}


_built: PerParams[Scenarios] = PerParams()


def scenarios_for(underlyings: tuple[str, ...], stale: BoolArray | None,
                  params: MarginParams) -> Scenarios:
    """The scenarios of a book's underlyings, memoised per parameter object: a stream
    recomputing one trader at a time reuses them."""
    return _built.get((underlyings, None if stale is None else stale.tobytes()), params,
                      lambda: build_scenarios(scan_ranges(underlyings, stale, params), params))


def build_scenarios(ranges: FloatArray, params: MarginParams) -> Scenarios:
    """Scenarios for underlyings whose scan ranges are ``ranges``."""
    unit = np.linspace(-1.0, 1.0, params.scan_steps)
    grid = np.tile(unit, 3)
    shocks = np.repeat(np.array([VOL_UP, VOL_FLAT, VOL_DOWN]), params.scan_steps)
    extended = np.array(params.extended_moves, dtype=np.float64)
    move = np.concatenate([ranges[:, None] * grid[None, :],
                           np.broadcast_to(extended, (ranges.shape[0], extended.shape[0]))],
                          axis=1)
    weight = np.concatenate([np.ones((ranges.shape[0], grid.shape[0])),
                             np.minimum(1.0, ranges[:, None] / np.abs(extended)[None, :])],
                            axis=1)
    shock = np.concatenate([shocks, np.full(extended.shape[0], VOL_UP)])
    growth = 1.0 + move
    return Scenarios(vol_column=np.select([shock == VOL_UP, shock == VOL_FLAT], [0, 1], 2),
                     move=move, weight=weight, vol_shock=shock, n_grid=grid.shape[0], unit=grid,
                     ranges=ranges, extended=extended, plus_r=params.scan_steps - 1,
                     centre=params.scan_steps + params.scan_steps // 2,
                     growth=growth, log_growth=np.log(growth))


def scan_ranges(underlyings: tuple[str, ...], stale: BoolArray | None,
                params: MarginParams) -> FloatArray:
    """R per underlying, widened for underlyings whose price is stale."""
    ranges = np.array([params.range_for(u) for u in underlyings], dtype=np.float64)
    if stale is not None:
        ranges = np.where(stale, np.minimum(ranges * params.stale_range_multiplier, 0.95), ranges)
    return ranges


def vol_shock_scale(expiry_years: FloatArray, params: MarginParams) -> FloatArray:
    """How much of a volatility shock applies at each expiry: (30 / days)^p, p by tenor."""
    days = np.maximum(expiry_years * 365.0, 1.0)
    power = np.where(days < params.vol_scale_days, params.vol_power_short,
                     params.vol_power_long)
    scale: FloatArray = (params.vol_scale_days / days) ** power
    return scale


def shocked_vol(vol: FloatArray, expiry_years: FloatArray, shock: int,
                params: MarginParams) -> FloatArray:
    """Volatility after a shock, scaled by (30 / days to expiry)^p (p by tenor)."""
    if shock == VOL_FLAT:
        return vol
    size = params.vol_up if shock == VOL_UP else -params.vol_down
    return np.maximum(vol * (1.0 + size * vol_shock_scale(expiry_years, params)), 0.01)


def shocked_vols(vol: FloatArray, expiry_years: FloatArray, params: MarginParams,
                 stale: BoolArray | None = None) -> FloatArray:
    """``shocked_vol`` for every option at once: options × (up, flat, down). An option
    whose implied volatility is ``stale`` has both shocks widened by
    ``stale_vol_multiplier`` (the down shock at most to −95%)."""
    scale = vol_shock_scale(expiry_years, params)
    if stale is not None and stale.any():
        scale = scale * np.where(stale, params.stale_vol_multiplier, 1.0)
        out = np.empty((vol.shape[0], 3))
        np.maximum(vol * (1.0 + params.vol_up * scale), 0.01, out=out[:, 0])
        out[:, 1] = vol
        np.maximum(vol * np.maximum(1.0 - params.vol_down * scale, 0.05), 0.01, out=out[:, 2])
        return out
    out = np.empty((vol.shape[0], 3))
    np.maximum(vol * (1.0 + params.vol_up * scale), 0.01, out=out[:, 0])
    out[:, 1] = vol
    np.maximum(vol * (1.0 - params.vol_down * scale), 0.01, out=out[:, 2])
    return out
