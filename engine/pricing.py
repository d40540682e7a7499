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
    delta, gamma, vega = greeks_from_d1(is_call, spot, d1, sd, t)
    live = t > 0
    return (np.where(live, delta, np.where(is_call, 1.0 * (spot > strike), -1.0 * (spot < strike))),
            np.where(live, gamma, 0.0), np.where(live, vega, 0.0))


def greeks_from_d1(is_call: BoolArray, spot: FloatArray, d1: FloatArray, sd: FloatArray,
                   t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(delta, gamma, vega) of live options from their d1 and σ√T."""
    pdf = np.exp(-0.5 * d1 * d1)
    pdf *= INV_SQRT_2PI
    n1 = ndtr(d1)
    delta = np.where(is_call, n1, n1 - 1.0)
    return delta, pdf / (spot * sd), spot * pdf * np.sqrt(np.maximum(t, MIN_T))


def black76_on_grid(is_call: BoolArray, forward: FloatArray, strike: FloatArray,
                    t: FloatArray, vol: FloatArray, discount: FloatArray | None,
                    growth: FloatArray, log_growth: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(values, d1) of live options (T > 0) at shocked forwards F·γ for every γ of
    ``growth`` (options × scenarios; ``log_growth`` = ln γ) with the volatilities ``vol``
    (options × scenarios); ``discount`` None means a zero rate.

    ln F' = ln F + ln γ, so the logarithm of F/K is taken once per option and that of γ
    once per move, not once per scenario and option; puts follow by put-call parity.
    """
    sd = np.maximum(vol, 1e-12)
    sd *= np.sqrt(t)
    d1 = np.log(forward / strike) + log_growth
    d1 /= sd
    d1 += 0.5 * sd
    shocked = growth * forward
    n2 = ndtr(d1 - sd)
    n2 *= strike
    value = ndtr(d1)
    value *= shocked
    value -= n2
    # Puts by parity: put = call − D·(F' − K).
    shocked -= strike
    shocked *= ~is_call
    value -= shocked
    if discount is not None:
        value *= discount
    return value, d1
