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
from engine.params import MarginParams

VOL_UP, VOL_FLAT, VOL_DOWN = 1, 0, -1


@dataclass(frozen=True)
class Scenarios:
    move: FloatArray       # underlyings × scenarios: relative price move
    weight: FloatArray     # underlyings × scenarios: weight applied to losses
    vol_shock: IntArray    # scenarios: +1 up, 0 flat, −1 down
    n_grid: int            # the first n_grid scenarios are the scan (weight 1)
    unit: FloatArray       # n_grid: the scan's moves as fractions of R (−1 … 1)

    @property
    def n(self) -> int:
        return int(self.vol_shock.shape[0])

    def describe(self, u: int, s: int) -> dict[str, float | str]:
        shock = {VOL_UP: "up", VOL_FLAT: "flat", VOL_DOWN: "down"}[int(self.vol_shock[s])]
        return {"move": float(self.move[u, s]), "vol": shock, "weight": float(self.weight[u, s])}


_built: dict[tuple[bytes, int], tuple[MarginParams, Scenarios]] = {}


def build_scenarios(ranges: FloatArray, params: MarginParams) -> Scenarios:
    """Scenarios for underlyings whose scan ranges are ``ranges`` (memoised per
    parameter object: a stream recomputing one trader at a time reuses them)."""
    key = (ranges.tobytes(), id(params))
    hit = _built.get(key)
    if hit is not None and hit[0] is params:
        return hit[1]
    if len(_built) > 256:
        _built.clear()
    scenarios = _build(ranges, params)
    _built[key] = (params, scenarios)
    return scenarios


def _build(ranges: FloatArray, params: MarginParams) -> Scenarios:
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
    return Scenarios(move=move, weight=weight, vol_shock=shock, n_grid=grid.shape[0], unit=grid)


def scan_ranges(underlyings: tuple[str, ...], stale: BoolArray | None,
                params: MarginParams) -> FloatArray:
    """R per underlying, widened for underlyings whose price is stale."""
    ranges = np.array([params.range_for(u) for u in underlyings], dtype=np.float64)
    if stale is not None:
        ranges = np.where(stale, np.minimum(ranges * params.stale_range_multiplier, 0.95), ranges)
    return ranges


def shocked_vol(vol: FloatArray, expiry_years: FloatArray, shock: int,
                params: MarginParams) -> FloatArray:
    """Volatility after a shock, scaled by (30 / days to expiry)^p (p by tenor)."""
    if shock == VOL_FLAT:
        return vol
    days = np.maximum(expiry_years * 365.0, 1.0)
    power = np.where(days < params.vol_scale_days, params.vol_power_short,
                     params.vol_power_long)
    scale = (params.vol_scale_days / days) ** power
    size = params.vol_up if shock == VOL_UP else -params.vol_down
    return np.maximum(vol * (1.0 + size * scale), 0.01)
