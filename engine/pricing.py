"""Black-76 on the forward, vectorised (Black 1976; Hull, ch. 18).

For a forward F, strike K, time T (years), volatility σ and rate r:

    d1 = (ln(F/K) + σ²T/2) / (σ√T),   d2 = d1 − σ√T
    call = e^{−rT} (F N(d1) − K N(d2)),  put = e^{−rT} (K N(−d2) − F N(−d1))

With F = S e^{rT}, the spot Greeks are delta = N(d1) (call) or N(d1) − 1 (put),
gamma = N'(d1) / (S σ √T), vega = S N'(d1) √T (per 1.00 of volatility).
All inputs broadcast; expired options (T ≤ 0) are worth their intrinsic value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
MIN_T = 1e-9


def _d1_d2(forward: FloatArray, strike: FloatArray, t: FloatArray,
           vol: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    t_eff = np.maximum(t, MIN_T)
    sd = np.maximum(vol, 1e-12) * np.sqrt(t_eff)
    d1 = (np.log(forward / strike) + 0.5 * sd * sd) / sd
    return d1, d1 - sd, sd


def black76(is_call: BoolArray, forward: FloatArray, strike: FloatArray, t: FloatArray,
            vol: FloatArray, rate: FloatArray | float = 0.0) -> FloatArray:
    """Option values (USD per unit of underlying); puts by put-call parity."""
    d1, d2, _ = _d1_d2(forward, strike, t, vol)
    discount = np.exp(-np.asarray(rate) * np.maximum(t, 0.0))
    call = discount * (forward * ndtr(d1) - strike * ndtr(d2))
    value = np.where(is_call, call, call - discount * (forward - strike))
    intrinsic = np.where(is_call, np.maximum(forward - strike, 0.0),
                         np.maximum(strike - forward, 0.0))
    return np.where(t > 0, value, intrinsic)


def black76_greeks(is_call: BoolArray, spot: FloatArray, strike: FloatArray, t: FloatArray,
                   vol: FloatArray, rate: FloatArray | float = 0.0
                   ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(delta, gamma, vega) with respect to spot, per unit of underlying."""
    forward = spot * np.exp(np.asarray(rate) * np.maximum(t, 0.0))
    d1, _, sd = _d1_d2(forward, strike, t, vol)
    pdf = INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    delta = np.where(is_call, ndtr(d1), ndtr(d1) - 1.0)
    gamma = pdf / (spot * sd)
    vega = spot * pdf * np.sqrt(np.maximum(t, MIN_T))
    live = t > 0
    return (np.where(live, delta, np.where(is_call, 1.0 * (spot > strike), -1.0 * (spot < strike))),
            np.where(live, gamma, 0.0), np.where(live, vega, 0.0))


def black76_on_grid(is_call: BoolArray, forward: FloatArray, strike: FloatArray,
                    t: FloatArray, vol: FloatArray, discount: FloatArray,
                    growth: FloatArray, log_growth: FloatArray) -> FloatArray:
    """Values at shocked forwards F·γ for every row γ of ``growth`` (scenarios × options;
    ``log_growth`` = ln γ), with one volatility per option: scenarios × options.

    ln F' = ln F + ln γ, so the logarithm is taken once per option and once per move,
    not once per scenario and option; puts follow by put-call parity.
    """
    sd = np.maximum(vol, 1e-12) * np.sqrt(np.maximum(t, MIN_T))
    base = np.log(forward / strike) / sd + 0.5 * sd
    d1 = log_growth / sd
    d1 += base
    shocked = growth * forward
    n2 = ndtr(d1 - sd)
    n2 *= strike
    call = ndtr(d1)
    call *= shocked
    call -= n2
    call *= discount
    # Puts by parity: put = call − D·(F' − K).
    parity = (shocked - strike) * (discount * ~is_call)
    value = call - parity
    if np.all(t > 0):
        return value
    intrinsic = np.where(is_call, np.maximum(shocked - strike, 0.0),
                         np.maximum(strike - shocked, 0.0))
    return np.where(t > 0, value, intrinsic)
