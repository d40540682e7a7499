"""Portfolio margin for whole books, under three offset modes.

Axes: ``positions`` (P), ``scenarios`` (S), ``groups`` (G, the offset groups of a
mode), ``traders`` (T), ``underlyings`` (U). A mode is a choice of offset group:

======================  ==========================================================
isolated                every position alone
protocol_cross          (trader, account, underlying): nets inside one venue
portfolio               (trader, underlying), then across underlyings with stressed
                        correlations, K = √(Σₖₗ ρₖₗ WSₖ WSₗ) (ISDA SIMM form)
======================  ==========================================================

A group's requirement is its worst weighted scenario loss plus add-ons: the minimum
delta charge ``(net · |net Δ| + hedged · hedged Δ) · S``, a charge per net short option
contract, and a concentration charge on net exposure above a threshold. Linear
instruments enter the scan through their dollar delta (one multiply per group);
options are revalued with Black-76 in every scenario.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engine.instruments import Book, FloatArray, IntArray, Kind, Market
from engine.params import MarginParams
from engine.pricing import black76, black76_greeks, black76_on_grid
from engine.scenarios import (
    VOL_DOWN,
    VOL_FLAT,
    VOL_UP,
    Scenarios,
    build_scenarios,
    scan_ranges,
    shocked_vol,
)

# Plain ints: enum attribute look-ups cost more than the arrays they compare on small books.
SPOT, PERP, FUTURE, CALL, PUT, SUPPLY, BORROW = (int(k) for k in Kind)


@dataclass(frozen=True)
class MarginResult:
    """Per-trader results (length T) and per trader × underlying Greeks (T × U)."""

    params_version: int
    equity_usd: FloatArray
    maintenance_margin_usd: FloatArray
    initial_margin_usd: FloatArray
    health: FloatArray
    free_collateral_usd: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    worst_scenario: IntArray  # T × U, −1 where the trader holds nothing in the underlying
    scenarios: Scenarios
    isolated_mm_usd: FloatArray
    protocol_cross_mm_usd: FloatArray


@dataclass(frozen=True)
class Exposure:
    """Per-position quantities every mode needs (axis ``positions``)."""

    spot: FloatArray
    linear_delta_usd: FloatArray  # dollar delta of the linear part
    delta_usd: FloatArray         # total dollar delta (options through Black-76 delta)
    option_rows: IntArray         # positions that are options
    option_pnl: FloatArray        # scenarios × options, P&L in USD
    option_size: FloatArray       # signed contracts of every position (0 for non-options)
    option_value: FloatArray      # value now of every position (0 for non-options)
    gamma_units: FloatArray       # gamma × size of every position (0 for non-options)
    perp_notional_usd: FloatArray  # |size| · S of perpetuals, 0 elsewhere
    future_delta_usd: FloatArray   # dollar delta of dated futures, 0 elsewhere
    stable_holding_usd: FloatArray  # long holdings of stablecoin underlyings, 0 elsewhere
    vega_units: FloatArray        # vega × size of every position (0 for non-options)


def sum_by(index: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Sums of ``values`` per index (length n)."""
    return np.bincount(index, values, minlength=n).astype(np.float64, copy=False)


def linear_units(book: Book, rate: float) -> FloatArray:
    """Signed units of underlying exposure of every non-option position."""
    sign = np.select([book.kind == BORROW, book.is_option], [-1.0, 0.0], 1.0)
    forward = np.where(book.kind == FUTURE, np.exp(rate * book.expiry_years), 1.0)
    return sign * book.size * forward


def option_pnl(book: Book, market: Market, rows: IntArray, sc: Scenarios,
               params: MarginParams) -> tuple[FloatArray, FloatArray]:
    """(value now, P&L scenarios × options) of the options at ``rows``.

    The two halves of the options are revalued on two threads: numpy and scipy release
    the GIL inside their loops, and each option's numbers do not depend on the split.
    """
    if rows.size < 20_000:
        return _option_pnl(book, market, rows, sc, params)
    halves = np.array_split(rows, 2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(lambda r: _option_pnl(book, market, r, sc, params), halves))
    return (np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts], axis=1))


def _option_pnl(book: Book, market: Market, rows: IntArray, sc: Scenarios,
                params: MarginParams) -> tuple[FloatArray, FloatArray]:
    u = book.underlying[rows]
    is_call = book.kind[rows] == CALL
    strike, t, size = book.strike_usd[rows], book.expiry_years[rows], book.size[rows]
    forward = market.spot_usd[u] * np.exp(market.rate * t)
    discount = np.exp(-market.rate * t)
    vol = market.vol[u]
    now = size * black76(is_call, forward, strike, t, vol, market.rate)
    growth = 1.0 + sc.move  # underlyings × scenarios
    log_growth = np.log(growth)
    pnl = np.empty((sc.n, rows.shape[0]))
    for shock in (VOL_UP, VOL_FLAT, VOL_DOWN):
        cols = np.flatnonzero(sc.vol_shock == shock)
        value = black76_on_grid(is_call, forward, strike, t, shocked_vol(vol, t, shock, params),
                                discount, growth[:, cols].T[:, u], log_growth[:, cols].T[:, u])
        value *= size
        value -= now
        pnl[cols] = value
    return now, pnl


def scan(group: IntArray, n_groups: int, group_underlying: IntArray, ex: Exposure,
         sc: Scenarios) -> tuple[FloatArray, IntArray]:
    """(worst weighted scenario loss, its scenario) per group.

    A group of linear positions only loses |Δ$| · R at the edge of the scan (an extended
    move's weight R/|move| gives the same), so only groups holding options need the
    groups × scenarios matrix.
    """
    lin = sum_by(group, ex.linear_delta_usd, n_groups)
    ranges = np.abs(sc.move[group_underlying, 0])
    loss = np.abs(lin) * ranges
    # Same loss at every edge: report the scan's own −R (longs) or +R (shorts) column.
    plus_r = int(np.argmax(sc.move[0] >= -sc.move[0, 0] - 1e-12))
    worst = np.where(lin < 0, plus_r, 0).astype(np.int64)
    if ex.option_rows.size == 0:
        return loss, worst
    # Per scenario, one bincount over the options' groups: exact sums in row order, so a
    # trader's figures do not depend on who else is in the book.
    option_groups = group[ex.option_rows]
    holders, compact = np.unique(option_groups, return_inverse=True)
    if holders.size == compact.size:  # one option per group: work in option order
        weighted, columns = ex.option_pnl.copy(), option_groups
    else:
        weighted = np.stack([np.bincount(compact, ex.option_pnl[s], minlength=holders.size)
                             for s in range(sc.n)])
        columns = holders
    # Outer products with the scan's unit steps and the extended moves (the same for every
    # underlying) instead of gathering a scenarios × groups matrix of moves.
    exposure = lin[columns]
    ranges = np.abs(sc.move[group_underlying[columns], 0])
    weighted[: sc.n_grid] += sc.unit[:, None] * (exposure * ranges)[None, :]
    extended = sc.move[0, sc.n_grid :, None]
    weighted[sc.n_grid :] += extended * exposure[None, :]
    weighted[sc.n_grid :] *= np.minimum(1.0, ranges[None, :] / np.abs(extended))
    worst_c = np.argmin(weighted, axis=0)
    loss[columns] = -weighted[worst_c, np.arange(columns.size)]
    worst[columns] = worst_c
    return np.maximum(loss, 0.0), worst


def group_requirement(group: IntArray, n_groups: int, group_underlying: IntArray,
                      ex: Exposure, sc: Scenarios, book: Book,
                      params: MarginParams) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """(scan loss, add-ons, signed scan loss, worst scenario) per group."""
    scan_loss, worst = scan(group, n_groups, group_underlying, ex, sc)
    # A loss found on a falling price is a long exposure, on a rising one a short one.
    sign = np.where(sc.move[group_underlying, worst] <= 0.0, 1.0, -1.0)
    addons = add_ons(group, n_groups, ex, params)
    # A book whose payoff can never go below zero cannot lose more than it is worth now
    # (a debit spread, a long option): cap its requirement at that value.
    cap = bounded_value(group, n_groups, ex, book)
    scan_loss = np.minimum(scan_loss, cap)
    addons = np.minimum(addons, np.maximum(cap - scan_loss, 0.0))
    return scan_loss, addons, sign * scan_loss, worst


def add_ons(group: IntArray, n_groups: int, ex: Exposure, params: MarginParams) -> FloatArray:
    """Per group: minimum delta charge, short options, concentration, perp funding,
    basis / calendar between futures and other linear legs, stablecoin depeg."""
    def total(values: FloatArray) -> FloatArray:
        return sum_by(group, values, n_groups)

    long_usd = total(np.maximum(ex.delta_usd, 0.0))
    short_usd = total(np.maximum(-ex.delta_usd, 0.0))
    net = np.abs(long_usd - short_usd)
    spot_g = total(ex.spot) / np.maximum(np.bincount(group, minlength=n_groups), 1)
    net_short_options = np.maximum(0.0, -total(ex.option_size))
    fut = ex.future_delta_usd
    other = ex.linear_delta_usd - fut
    fut_long, fut_short = total(np.maximum(fut, 0.0)), total(np.maximum(-fut, 0.0))
    other_long, other_short = total(np.maximum(other, 0.0)), total(np.maximum(-other, 0.0))
    # Futures hedged by other expiries, perps or spot still carry the basis between them.
    basis = (np.minimum(fut_long, other_short) + np.minimum(fut_short, other_long)
             + np.minimum(fut_long, fut_short))
    return (params.net_delta_charge * net
            + params.hedged_delta_charge * np.minimum(long_usd, short_usd)
            + params.short_option_charge * net_short_options * spot_g
            + params.concentration_charge
            * np.maximum(0.0, net - params.concentration_threshold_usd)
            + params.funding_provision * total(ex.perp_notional_usd)
            + params.basis_charge * basis
            + params.stablecoin_depeg_charge * total(ex.stable_holding_usd))


def bounded_value(group: IntArray, n_groups: int, ex: Exposure, book: Book) -> FloatArray:
    """Per group, its value now if its expiry payoff is ≥ 0 at every price, else +inf.

    Only option-only groups qualify: their payoff is piecewise linear with kinks at the
    strikes, so checking S = 0, every strike and the slope beyond the last strike is
    exact; a non-negative terminal payoff has a non-negative Black-76 value before
    expiry too.
    """
    cap = np.full(n_groups, np.inf)
    rows = ex.option_rows
    if rows.size == 0:
        return cap
    has_linear = sum_by(group, np.abs(ex.linear_delta_usd), n_groups) > 0
    rows = rows[~has_linear[group[rows]]]
    if rows.size == 0:
        return cap
    g = group[rows]
    order = np.argsort(g, kind="stable")
    rows, g = rows[order], g[order]
    counts = np.bincount(g, minlength=n_groups)[g]
    starts = np.r_[0, np.cumsum(np.bincount(g, minlength=n_groups))][g]
    # Every (evaluation strike i, contributing option j) pair inside a group.
    i = np.repeat(np.arange(rows.size), counts)
    j = starts[i] + (np.arange(i.size) - np.repeat(np.cumsum(counts) - counts, counts))
    k_eval, k_j = book.strike_usd[rows][i], book.strike_usd[rows][j]
    is_call = book.kind[rows][j] == CALL
    size = book.size[rows][j]
    payoff = size * np.where(is_call, np.maximum(k_eval - k_j, 0.0), np.maximum(k_j - k_eval, 0.0))
    at_strikes = np.zeros(rows.size)
    np.add.at(at_strikes, i, payoff)
    lowest = np.full(n_groups, np.inf)
    np.minimum.at(lowest, g, at_strikes)
    is_put = book.kind[rows] == PUT
    at_zero = sum_by(g, np.where(is_put, book.size[rows] * book.strike_usd[rows], 0.0), n_groups)
    slope = sum_by(g, np.where(is_put, 0.0, book.size[rows]), n_groups)
    value = sum_by(g, ex.option_value[rows], n_groups)
    safe = (~has_linear) & (lowest >= 0) & (at_zero >= 0) & (slope >= 0)
    safe &= np.bincount(g, minlength=n_groups) > 0
    cap[safe] = np.maximum(value[safe], 0.0)
    return cap


def dense_key(*columns: IntArray) -> tuple[IntArray, IntArray]:
    """(group of every row, first row of every group) for the combined key columns."""
    key = np.zeros(columns[0].shape[0], dtype=np.int64)
    for c in columns:
        key = key * (int(c.max()) + 1 if c.size else 1) + c
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    return group.reshape(-1), first


def correlated(ws: FloatArray, market: Market, params: MarginParams) -> FloatArray:
    """K per trader from signed unit requirements ``ws`` (T × U), stablecoins apart."""
    rho = market.correlation + params.correlation_stress * (1.0 - market.correlation)
    stable = market.stablecoin if market.stablecoin is not None else np.zeros(ws.shape[1], bool)
    risky = np.where(stable[None, :], 0.0, ws)
    k2 = np.einsum("tu,uv,tv->t", risky, rho, risky)
    return np.sqrt(np.maximum(k2, 0.0)) + np.abs(np.where(stable[None, :], ws, 0.0)).sum(axis=1)


def linear_value(book: Book, market: Market, units: FloatArray, spot: FloatArray) -> FloatArray:
    """Value now of every non-option position: holdings at spot, futures at their P&L."""
    return np.where(np.isin(book.kind, (PERP, FUTURE)),
                    book.size * (spot * np.where(book.kind == FUTURE,
                                                 np.exp(market.rate * book.expiry_years), 1.0)
                                 - book.entry_price_usd),
                    units * spot)


def mark_to_market(book: Book, market: Market) -> FloatArray:
    """Value now of every position (options by Black-76), per position."""
    spot = market.spot_usd[book.underlying]
    value = linear_value(book, market, linear_units(book, market.rate), spot)
    rows = np.flatnonzero(book.is_option)
    u = book.underlying[rows]
    t = book.expiry_years[rows]
    value[rows] = book.size[rows] * black76(
        book.kind[rows] == CALL, market.spot_usd[u] * np.exp(market.rate * t),
        book.strike_usd[rows], t, market.vol[u], market.rate)
    return value


def stable_holdings(book: Book, market: Market, linear_usd: FloatArray) -> FloatArray:
    if market.stablecoin is None:
        return np.zeros(book.trader.size)
    holding = np.isin(book.kind, (SPOT, SUPPLY)) & market.stablecoin[book.underlying]
    return np.where(holding, np.maximum(linear_usd, 0.0), 0.0)


def exposures(book: Book, market: Market, sc: Scenarios,
              params: MarginParams) -> tuple[Exposure, FloatArray]:
    """Per-position exposures, and the value now of every position (for equity)."""
    spot = market.spot_usd[book.underlying]
    units = linear_units(book, market.rate)
    rows = np.flatnonzero(book.is_option)
    now_opt, pnl = option_pnl(book, market, rows, sc, params)
    delta_units = units.copy()
    gamma_units = np.zeros(book.trader.size)
    vega_units = np.zeros(book.trader.size)
    if rows.size:
        d, g, v = black76_greeks(book.kind[rows] == CALL, spot[rows], book.strike_usd[rows],
                                 book.expiry_years[rows], market.vol[book.underlying[rows]],
                                 market.rate)
        delta_units[rows] = d * book.size[rows]
        gamma_units[rows] = g * book.size[rows]
        vega_units[rows] = v * book.size[rows]
    option_size = np.where(book.is_option, book.size, 0.0)
    value = linear_value(book, market, units, spot)
    value[rows] = now_opt
    option_value = np.zeros(book.trader.size)
    option_value[rows] = now_opt
    ex = Exposure(spot=spot, linear_delta_usd=units * spot, delta_usd=delta_units * spot,
                  option_rows=rows, option_pnl=pnl, option_size=option_size,
                  option_value=option_value, gamma_units=gamma_units, vega_units=vega_units,
                  perp_notional_usd=np.where(book.kind == PERP, np.abs(units * spot), 0.0),
                  future_delta_usd=np.where(book.kind == FUTURE, units * spot, 0.0),
                  stable_holding_usd=stable_holdings(book, market, units * spot))
    return ex, value


def greeks(book: Book, ex: Exposure) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Delta (units), gamma and vega per trader × underlying."""
    n_u = len(book.underlyings)
    cell = book.trader * n_u + book.underlying
    shape = (book.n_traders, n_u)
    size = book.n_traders * n_u
    return (sum_by(cell, ex.delta_usd / ex.spot, size).reshape(shape),
            sum_by(cell, ex.gamma_units, size).reshape(shape),
            sum_by(cell, ex.vega_units, size).reshape(shape))


def compute_margin(book: Book, market: Market, params: MarginParams) -> MarginResult:
    """Equity, MM, IM, health, free collateral, Greeks and the three modes per trader."""
    n_u = len(book.underlyings)
    market.validate(n_u)
    sc = build_scenarios(scan_ranges(book.underlyings, market.stale, params), params)
    ex, value = exposures(book, market, sc, params)
    n_t = book.n_traders

    def mode(*columns: IntArray) -> tuple[FloatArray, FloatArray, FloatArray, IntArray,
                                          IntArray]:
        group, first = dense_key(*columns)
        scan, addons, signed, worst = group_requirement(
            group, first.shape[0], book.underlying[first], ex, sc, book, params)
        return scan, addons, signed, worst, first

    isolated = np.zeros(n_t)
    cross = np.zeros(n_t)
    portfolio = np.zeros(n_t)
    worst_cell = np.full((n_t, n_u), -1, dtype=np.int64)
    if book.trader.size:
        positions = np.arange(book.trader.size, dtype=np.int64)
        keys = [(book.trader, positions), (book.trader, book.account, book.underlying),
                (book.trader, book.underlying)]
        if book.trader.size >= 100_000:  # independent: overlap them on the second core
            with ThreadPoolExecutor(max_workers=2) as pool:
                modes = list(pool.map(lambda k: mode(*k), keys))
        else:
            modes = [mode(*k) for k in keys]
        scan, addons, _, _, first = modes[0]
        isolated = sum_by(book.trader[first], scan + addons, n_t)
        scan, addons, _, _, first = modes[1]
        cross = sum_by(book.trader[first], scan + addons, n_t)
        scan, addons, signed, worst, first = modes[2]
        t, u = book.trader[first], book.underlying[first]
        ws = np.zeros((n_t, n_u))
        ws[t, u] = signed
        worst_cell[t, u] = worst
        portfolio = correlated(ws, market, params) + sum_by(t, addons, n_t)

    collateral = sum_by(book.collateral_trader, book.collateral_usd, n_t)
    equity = collateral + sum_by(book.trader, value, n_t)
    initial = params.initial_to_maintenance * portfolio
    # A book with no requirement is infinitely healthy, whatever its equity.
    health = np.divide(equity, portfolio, out=np.full_like(equity, np.inf),
                       where=portfolio > 1e-9)
    delta, gamma, vega = greeks(book, ex)
    return MarginResult(
        params_version=params.version, equity_usd=equity, maintenance_margin_usd=portfolio,
        initial_margin_usd=initial, health=health,
        free_collateral_usd=np.maximum(0.0, equity - initial), delta=delta, gamma=gamma,
        vega=vega, worst_scenario=worst_cell, scenarios=sc, isolated_mm_usd=isolated,
        protocol_cross_mm_usd=cross,
    )
