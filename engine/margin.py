"""Portfolio margin for whole books, under three offset modes.

Axes: ``positions`` (P), ``scenarios`` (S), ``groups`` (G, the offset groups of all
three modes side by side), ``traders`` (T), ``underlyings`` (U). A mode is a choice of
offset group:

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

The three modes are worked in one pass: every position contributes a row of terms
(``TERMS``) and, for options, a row of scenario P&L; a group's figures are the sums of
its members' rows taken in position order. A trader's numbers therefore depend only on
its own rows — margining it alone or inside any batch gives the same bits, which the
attestation digests rely on. Large books are cut into chunks of whole traders and the
chunks worked on two threads (numpy and scipy release the GIL inside their loops).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engine.instruments import Book, FloatArray, IntArray, Kind, Market
from engine.params import MarginParams, PerParams
from engine.pricing import black76, black76_on_grid, greeks_from_d1
from engine.scenarios import Scenarios, scenarios_for, shocked_vols

# Plain ints: enum attribute look-ups cost more than the arrays they compare on small books.
SPOT, PERP, FUTURE, CALL, PUT, SUPPLY, BORROW = (int(k) for k in Kind)

# Columns of the per-position terms, summed per offset group. The long / short pairs and
# the Greeks sit side by side so that each is filled by one array operation.
(LINEAR_USD, SPOT_USD, COUNT, LINEAR_ABS_USD, PERP_NOTIONAL_USD, STABLE_USD, OPTION_SIZE,
 OPTION_VALUE_USD, PUT_STRIKE_SIZE, CALL_SIZE,
 LONG_DELTA_USD, FUTURE_LONG_USD, OTHER_LONG_USD,
 SHORT_DELTA_USD, FUTURE_SHORT_USD, OTHER_SHORT_USD,
 DELTA, GAMMA, VEGA) = range(19)
N_TERMS = 19

# Per kind (index = Kind): the sign of its linear exposure (borrowing is short the
# underlying; options are revalued instead), and whether it is valued as a P&L against
# its entry price (perps, futures) rather than held at spot.
LINEAR_SIGN = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0])
MARKED_TO_ENTRY = np.array([False, True, True, False, False, False, False])

# Books above this many positions are cut into chunks of whole traders.
CHUNK_POSITIONS = 4096


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
    # The options' share of equity_usd (Black-76 values): the one part of equity that has
    # no exact form in integers, so a caller can add the rest exactly.
    option_value_usd: FloatArray


@dataclass(frozen=True)
class PositionTerms:
    """What every offset group needs from its members (axis ``positions``)."""

    value: FloatArray        # value now of every position (for equity)
    terms: FloatArray        # positions × N_TERMS
    option_rows: IntArray    # positions that are options
    option_pnl: FloatArray   # options × scenarios, P&L in USD


@dataclass(frozen=True)
class Groups:
    """The offset groups of all three modes: ``P`` isolated groups (group p is position
    p), then the protocol-cross groups, then the portfolio groups."""

    n: int
    n_isolated: int
    n_cross: int
    trader: IntArray       # per group
    underlying: IntArray   # per group
    terms: FloatArray      # groups × N_TERMS, summed over members
    option_group: IntArray  # per (group, option member) pair, ascending group
    option_row: IntArray    # the member's position
    option_pnl: FloatArray  # groups holding options × scenarios (summed)
    option_holder: IntArray  # the groups of option_pnl's rows


def sum_by(index: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Sums of ``values`` per index (length n), added in row order."""
    return np.bincount(index, values, minlength=n).astype(np.float64, copy=False)


def linear_units(book: Book, rate: float) -> FloatArray:
    """Signed units of underlying exposure of every non-option position (0 for options)."""
    units = book.size * LINEAR_SIGN[book.kind]
    if rate:
        units *= np.where(book.kind == FUTURE, np.exp(rate * book.expiry_years), 1.0)
    return units


def option_terms(book: Book, market: Market, rows: IntArray, sc: Scenarios,
                 params: MarginParams, terms: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(value now, P&L options × scenarios) of the options at ``rows``: one Black-76
    evaluation per option and scenario at the volatility of the scenario's shock. Fills
    the options' columns of ``terms``.

    The value now is the grid's own no-move, flat-volatility column (so that scenario's
    P&L is exactly zero), and the Greeks come from that column's d1.
    """
    u = book.underlying[rows]
    is_call = book.kind[rows] == CALL
    strike, t, size = book.strike_usd[rows], book.expiry_years[rows], book.size[rows]
    spot = market.spot_usd[u]
    vols = shocked_vols(market.vol[u], t, params,
                        None if market.vol_stale is None else market.vol_stale[u])
    if market.rate:
        growth_t = np.exp(market.rate * t)
        forward, discount = spot * growth_t, (1.0 / growth_t)[:, None]
    else:
        forward, discount = spot, None
    # Book rejects expired options, so every option here is live (T > 0).
    value, d1 = black76_on_grid(is_call[:, None], forward[:, None], strike[:, None],
                                t[:, None], vols[:, sc.vol_column], discount,
                                sc.growth[u], sc.log_growth[u])
    value *= size[:, None]
    now = value[:, sc.centre].copy()
    value -= now[:, None]
    flat_sd = np.maximum(vols[:, 1], 1e-12) * np.sqrt(t)
    delta, gamma, vega = greeks_from_d1(is_call, spot, d1[:, sc.centre], flat_sd, t)
    block = np.zeros((rows.shape[0], N_TERMS - OPTION_SIZE))
    block[:, 0] = size
    block[:, OPTION_VALUE_USD - OPTION_SIZE] = now
    np.multiply(size * strike, ~is_call, out=block[:, PUT_STRIKE_SIZE - OPTION_SIZE])
    np.multiply(size, is_call, out=block[:, CALL_SIZE - OPTION_SIZE])
    np.multiply(delta * size, spot, out=block[:, LONG_DELTA_USD - OPTION_SIZE])
    block[:, GAMMA - OPTION_SIZE] = gamma
    block[:, VEGA - OPTION_SIZE] = vega
    block[:, GAMMA - OPTION_SIZE :] *= size[:, None]
    terms[rows, OPTION_SIZE:] = block
    return now, value


def position_terms(book: Book, market: Market, sc: Scenarios,
                   params: MarginParams) -> PositionTerms:
    kind = book.kind
    spot = market.spot_usd[book.underlying]
    units = linear_units(book, market.rate)
    linear = units * spot
    rows = ((kind == CALL) | (kind == PUT)).nonzero()[0]
    terms = np.zeros((kind.shape[0], N_TERMS))
    value = linear_value(book, market, linear, spot)
    if rows.shape[0]:
        value[rows], pnl = option_terms(book, market, rows, sc, params, terms)
    else:
        pnl = np.zeros((0, sc.n))
    # Dollar delta: the options' own from option_terms, the linear part here.
    terms[:, LONG_DELTA_USD] += linear
    terms[:, DELTA] = terms[:, LONG_DELTA_USD] / spot
    terms[:, LINEAR_USD] = linear
    terms[:, SPOT_USD] = spot
    terms[:, COUNT] = 1.0
    np.abs(linear, out=terms[:, LINEAR_ABS_USD])
    np.multiply(terms[:, LINEAR_ABS_USD], kind == PERP, out=terms[:, PERP_NOTIONAL_USD])
    if market.stablecoin is not None:
        holding = ((kind == SPOT) | (kind == SUPPLY)) & market.stablecoin[book.underlying]
        terms[:, STABLE_USD] = np.where(holding, np.maximum(linear, 0.0), 0.0)
    # Signed dollar delta, futures and other linear legs, then their long and short parts.
    np.multiply(linear, kind == FUTURE, out=terms[:, FUTURE_LONG_USD])
    np.subtract(linear, terms[:, FUTURE_LONG_USD], out=terms[:, OTHER_LONG_USD])
    np.negative(terms[:, LONG_DELTA_USD : OTHER_LONG_USD + 1],
                out=terms[:, SHORT_DELTA_USD : OTHER_SHORT_USD + 1])
    np.maximum(terms[:, LONG_DELTA_USD : OTHER_SHORT_USD + 1], 0.0,
               out=terms[:, LONG_DELTA_USD : OTHER_SHORT_USD + 1])
    return PositionTerms(value=value, terms=terms, option_rows=rows, option_pnl=pnl)


def offset_groups(book: Book, pt: PositionTerms) -> Groups:
    """All three modes' groups and their summed terms and option P&L."""
    n_p = book.trader.shape[0]
    n_u = len(book.underlyings)
    n_a = int(book.account.max()) + 1
    portfolio_key = book.trader * n_u + book.underlying
    cross_key = (book.trader * n_a + book.account) * n_u + book.underlying
    # Portfolio keys sort after every cross key: one stable sort groups both modes.
    key = np.concatenate([cross_key, portfolio_key + book.n_traders * n_a * n_u])
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new = np.empty(order.shape[0], dtype=bool)
    new[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new[1:])
    starts = new.nonzero()[0]
    member = order % n_p
    group = np.cumsum(new) + (n_p - 1)  # member → group, after the P isolated groups
    n_cross = int(group[n_p - 1]) - n_p + 1  # the first n_p sorted members are cross ones
    terms = np.concatenate([pt.terms, np.add.reduceat(pt.terms[member], starts, axis=0)])
    first = member[starts]
    trader = np.concatenate([book.trader, book.trader[first]])
    underlying = np.concatenate([book.underlying, book.underlying[first]])
    rows = pt.option_rows
    if rows.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Groups(terms.shape[0], n_p, n_cross, trader, underlying, terms, empty, empty,
                      pt.option_pnl, empty)
    option_index = np.full(n_p, -1, dtype=np.int64)
    option_index[rows] = np.arange(rows.size)
    held = option_index[member] >= 0
    o_member, o_group = member[held], group[held]
    o_new = np.empty(o_group.shape[0], dtype=bool)
    o_new[0] = True
    np.not_equal(o_group[1:], o_group[:-1], out=o_new[1:])
    o_starts = o_new.nonzero()[0]
    summed = np.add.reduceat(pt.option_pnl[option_index[o_member]], o_starts, axis=0)
    return Groups(
        n=terms.shape[0], n_isolated=n_p, n_cross=n_cross, trader=trader,
        underlying=underlying, terms=terms,
        option_group=np.concatenate([rows, o_group]),
        option_row=np.concatenate([rows, o_member]),
        option_pnl=np.concatenate([pt.option_pnl, summed]),
        option_holder=np.concatenate([rows, o_group[o_starts]]))


def scan(groups: Groups, sc: Scenarios) -> tuple[FloatArray, IntArray]:
    """(worst weighted scenario loss, its scenario) per group.

    A group of linear positions only loses |Δ$| · R at the edge of the scan (an extended
    move's weight R/|move| gives the same), so only groups holding options need their
    scenarios revalued.
    """
    lin = groups.terms[:, LINEAR_USD]
    ranges = sc.ranges[groups.underlying]
    loss = np.abs(lin) * ranges
    # Same loss at every edge: report the scan's own −R (longs) or +R (shorts) column.
    worst = np.where(lin < 0, sc.plus_r, 0)
    holders = groups.option_holder
    if holders.size == 0:
        return loss, worst
    weighted = groups.option_pnl  # a fresh sum per call: weighted in place
    exposure = lin[holders]
    r = ranges[holders]
    weighted[:, : sc.n_grid] += (exposure * r)[:, None] * sc.unit[None, :]
    weighted[:, sc.n_grid :] += exposure[:, None] * sc.extended[None, :]
    weighted[:, sc.n_grid :] *= np.minimum(1.0, r[:, None] / np.abs(sc.extended)[None, :])
    worst_h = np.argmin(weighted, axis=1)
    loss[holders] = -weighted[np.arange(holders.size), worst_h]
    worst[holders] = worst_h
    return np.maximum(loss, 0.0), worst


def add_ons(s: FloatArray, params: MarginParams) -> FloatArray:
    """Per group, from its summed terms ``s``: minimum delta charge, short options,
    concentration, perp funding, basis / calendar between futures and other linear
    legs, stablecoin depeg."""
    long_usd, short_usd = s[:, LONG_DELTA_USD], s[:, SHORT_DELTA_USD]
    net = np.abs(long_usd - short_usd)
    spot = s[:, SPOT_USD] / np.maximum(s[:, COUNT], 1.0)
    net_short_options = np.maximum(0.0, -s[:, OPTION_SIZE])
    fut_long, fut_short = s[:, FUTURE_LONG_USD], s[:, FUTURE_SHORT_USD]
    other_long, other_short = s[:, OTHER_LONG_USD], s[:, OTHER_SHORT_USD]
    # Futures hedged by other expiries, perps or spot still carry the basis between them.
    basis = (np.minimum(fut_long, other_short) + np.minimum(fut_short, other_long)
             + np.minimum(fut_long, fut_short))
    return (params.net_delta_charge * net
            + params.hedged_delta_charge * np.minimum(long_usd, short_usd)
            + params.short_option_charge * net_short_options * spot
            + params.concentration_charge
            * np.maximum(0.0, net - params.concentration_threshold_usd)
            + params.funding_provision * s[:, PERP_NOTIONAL_USD]
            + params.basis_charge * basis
            + params.stablecoin_depeg_charge * s[:, STABLE_USD])


def bounded_value(groups: Groups, book: Book) -> FloatArray:
    """Per group, its value now if its expiry payoff is ≥ 0 at every price, else +inf.

    Only option-only groups qualify: their payoff is piecewise linear with kinks at the
    strikes, so checking S = 0, every strike and the slope beyond the last strike is
    exact; a non-negative terminal payoff has a non-negative Black-76 value before
    expiry too.
    """
    s = groups.terms
    option_only = s[:, LINEAR_ABS_USD] == 0.0
    lowest = np.full(groups.n, -np.inf)  # lowest payoff at the group's strikes
    # A lone option pays nothing at its own strike; netted groups need every pair.
    k = int(np.searchsorted(groups.option_group, groups.n_isolated))
    lowest[groups.option_group[:k]] = 0.0
    g, rows = groups.option_group[k:], groups.option_row[k:]
    keep = option_only[g]
    g, rows = g[keep], rows[keep]
    if g.size:
        i, j, group_start = same_group_pairs(g)
        strike = book.strike_usd[rows]
        # A call pays (K − Kⱼ)⁺ at strike K, a put (Kⱼ − K)⁺.
        direction = np.where(book.kind[rows] == CALL, 1.0, -1.0)
        payoff = np.maximum((strike[i] - strike[j]) * direction[j], 0.0)
        payoff *= book.size[rows][j]
        at_strikes = np.bincount(i, payoff, minlength=g.shape[0])
        lowest[g[group_start]] = np.minimum.reduceat(at_strikes, group_start)
    safe = option_only & (lowest >= 0) & (s[:, PUT_STRIKE_SIZE] >= 0) & (s[:, CALL_SIZE] >= 0)
    return np.where(safe, np.maximum(s[:, OPTION_VALUE_USD], 0.0), np.inf)


def same_group_pairs(g: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """(i, j, group starts) for every pair of rows in the same group of the ascending
    ``g``, ordered by i then j."""
    new = np.empty(g.shape[0], dtype=bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    group_start = new.nonzero()[0]
    if g.shape[0] <= 256:  # small: the equality matrix is cheaper than index arithmetic
        i, j = np.equal.outer(g, g).nonzero()
        return i, j, group_start
    run = np.empty(group_start.shape[0], dtype=np.int64)
    run[:-1] = group_start[1:] - group_start[:-1]
    run[-1] = g.shape[0] - group_start[-1]
    counts = np.repeat(run, run)
    # Pair q of row i is row first[i] + q − block[i].
    block = np.cumsum(counts) - counts
    i = np.repeat(np.arange(g.shape[0]), counts)
    j = np.repeat(np.repeat(group_start, run) - block, counts) + np.arange(i.shape[0])
    return i, j, group_start


_caps: PerParams[FloatArray | None] = PerParams()


def spread_caps(underlyings: tuple[str, ...], ranges: FloatArray,
                params: MarginParams) -> FloatArray | None:
    """The highest correlation credited across a spread, per pair (U × U), or ``None``
    when no pair has a floor. Memoised per parameter object (as ``scenarios_for``): the
    array returned is shared and read-only.

    An equal-notional spread with unit requirements N·Rₖ and −N·Rₗ gets
    K = N·√(Rₖ² + Rₗ² − 2ρRₖRₗ), which falls as ρ rises; it stays at or above the pair's
    historical loss f·N while ρ ≤ (Rₖ² + Rₗ² − f²) / (2RₖRₗ), clipped to [−1, 1].
    """
    return _caps.get((underlyings, ranges.tobytes()), params,
                     lambda: _spread_caps(underlyings, ranges, params))


def _spread_caps(underlyings: tuple[str, ...], ranges: FloatArray,
                 params: MarginParams) -> FloatArray | None:
    n = len(underlyings)
    floor = np.array([[params.floor_for(a, b) if a != b else 0.0 for b in underlyings]
                      for a in underlyings]).reshape(n, n)
    if not floor.any():
        return None
    rk, rl = ranges[:, None], ranges[None, :]
    caps = np.clip((rk * rk + rl * rl - floor * floor) / (2.0 * rk * rl), -1.0, 1.0)
    caps = np.where(floor > 0.0, caps, 1.0)
    np.fill_diagonal(caps, 1.0)
    caps.flags.writeable = False  # shared by every caller (``spread_caps``)
    return caps


def correlated(ws: FloatArray, market: Market, params: MarginParams,
               caps: FloatArray | None = None) -> FloatArray:
    """K per trader from signed unit requirements ``ws`` (T × U), stablecoins apart.

    K² = (1 − s) · Σₖₗ ρ'ₖₗ WSₖ WSₗ + s · (Σₖ |WSₖ|)², s = ``correlation_stress``: each
    trader's correlations are stressed towards the sign that hurts its own book (+1
    between same-direction exposures, −1 across a spread), i.e. towards σσᵀ with σ the
    signs of its WS. Across a spread (WSₖ WSₗ < 0) ρ' = min(ρ, ``caps``) (see
    ``spread_caps``), elsewhere ρ' = ρ: a lower ρ across a spread only adds to K², so
    K² ≥ Σ ρₖₗ WSₖ WSₗ ≥ 0 (``Market.validate`` refuses a ρ that is not positive
    semi-definite) but for rounding; and since (Σ|WSₖ|)² bounds every such sum, stress
    never lowers a requirement.

    Elementwise products, then one sum per row: a row's bits do not depend on how many
    rows there are (einsum and matmul pick their loops by shape, and did differ).
    """
    rho = market.correlation
    risky = ws
    if market.stablecoin is not None and market.stablecoin.any():
        risky = np.where(market.stablecoin[None, :], 0.0, ws)
    terms = risky[:, :, None] * risky[:, None, :]
    if caps is not None:
        terms *= np.where(terms < 0.0, np.minimum(rho, caps)[None, :, :], rho[None, :, :])
    else:
        terms *= rho[None, :, :]
    k2 = terms.reshape(ws.shape[0], -1).sum(axis=1)
    stress = params.correlation_stress
    if stress:
        k2 = (1.0 - stress) * k2 + stress * np.abs(risky).sum(axis=1) ** 2
    k = np.sqrt(np.maximum(k2, 0.0))  # a negative K² here is rounding: ρ is PSD
    if risky is not ws:
        k += np.abs(np.where(market.stablecoin[None, :], ws, 0.0)).sum(axis=1)  # type: ignore[index]
    return k


def linear_value(book: Book, market: Market, linear_usd: FloatArray,
                 spot: FloatArray) -> FloatArray:
    """Value now of every non-option position from its dollar exposure ``linear_usd``:
    holdings at spot, perps and futures at their P&L against entry."""
    kind = book.kind
    if market.rate:
        spot = spot * np.where(kind == FUTURE, np.exp(market.rate * book.expiry_years), 1.0)
    return np.where(MARKED_TO_ENTRY[kind], book.size * (spot - book.entry_price_usd), linear_usd)


def mark_to_market(book: Book, market: Market) -> FloatArray:
    """Value now of every position (options by Black-76), per position."""
    spot = market.spot_usd[book.underlying]
    value = linear_value(book, market, linear_units(book, market.rate) * spot, spot)
    rows = np.flatnonzero(book.is_option)
    u = book.underlying[rows]
    t = book.expiry_years[rows]
    value[rows] = book.size[rows] * black76(
        book.kind[rows] == CALL, market.spot_usd[u] * np.exp(market.rate * t),
        book.strike_usd[rows], t, market.vol[u], market.rate)
    return value


def compute_margin(book: Book, market: Market, params: MarginParams) -> MarginResult:
    """Equity, MM, IM, health, free collateral, Greeks and the three modes per trader."""
    market.validate(len(book.underlyings))
    sc = scenarios_for(book.underlyings, market.stale, params)
    if book.trader.shape[0] <= CHUNK_POSITIONS:
        return _compute(book, market, params, sc)
    chunks = trader_chunks(book)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(lambda c: _compute(c, market, params, sc), chunks))
    return MarginResult(
        params_version=params.version, scenarios=sc,
        **{name: np.concatenate([getattr(p, name) for p in parts])
           for name in ("equity_usd", "maintenance_margin_usd", "initial_margin_usd", "health",
                        "free_collateral_usd", "delta", "gamma", "vega", "worst_scenario",
                        "isolated_mm_usd", "protocol_cross_mm_usd", "option_value_usd")})


def trader_chunks(book: Book) -> list[Book]:
    """The book cut into books of consecutive traders of about CHUNK_POSITIONS rows."""
    order = np.argsort(book.trader, kind="stable")
    traders = book.trader[order]
    n_chunks = -(-traders.shape[0] // CHUNK_POSITIONS)
    bounds = np.unique(np.r_[0, traders[np.arange(1, n_chunks) * CHUNK_POSITIONS],
                             book.n_traders])
    c_order = np.argsort(book.collateral_trader, kind="stable")
    c_traders = book.collateral_trader[c_order]
    chunks = []
    for lo, hi in itertools.pairwise(bounds.tolist()):
        rows = order[np.searchsorted(traders, lo):np.searchsorted(traders, hi)]
        c_rows = c_order[np.searchsorted(c_traders, lo):np.searchsorted(c_traders, hi)]
        chunks.append(Book(
            n_traders=hi - lo, underlyings=book.underlyings, trader=book.trader[rows] - lo,
            account=book.account[rows], underlying=book.underlying[rows],
            kind=book.kind[rows], size=book.size[rows],
            entry_price_usd=book.entry_price_usd[rows], strike_usd=book.strike_usd[rows],
            expiry_years=book.expiry_years[rows],
            collateral_trader=book.collateral_trader[c_rows] - lo,
            collateral_usd=book.collateral_usd[c_rows]))
    return chunks


def _compute(book: Book, market: Market, params: MarginParams, sc: Scenarios) -> MarginResult:
    n_t, n_u = book.n_traders, len(book.underlyings)
    equity = sum_by(book.collateral_trader, book.collateral_usd, n_t)
    option_value = np.zeros(n_t)
    portfolio = np.zeros(n_t)
    isolated, cross = portfolio, portfolio
    greeks = np.zeros((3, n_t, n_u))
    worst_cell = np.empty((n_t, n_u), dtype=np.int64)
    worst_cell.fill(-1)
    if book.trader.shape[0]:
        pt = position_terms(book, market, sc, params)
        equity += sum_by(book.trader, pt.value, n_t)
        option_value = sum_by(book.trader[pt.option_rows], pt.value[pt.option_rows], n_t)
        groups = offset_groups(book, pt)
        scan_loss, worst = scan(groups, sc)
        addons = add_ons(groups.terms, params)
        # A book whose payoff can never go below zero cannot lose more than it is worth
        # now (a debit spread, a long option): cap its requirement at that value.
        cap = bounded_value(groups, book)
        scan_loss = np.minimum(scan_loss, cap)
        addons = np.minimum(addons, np.maximum(cap - scan_loss, 0.0))
        total = scan_loss + addons
        c = slice(groups.n_isolated, groups.n_isolated + groups.n_cross)
        p = slice(c.stop, groups.n)
        isolated = sum_by(book.trader, total[: c.start], n_t)
        # Netting never costs: a mode is capped by the one that nets less. (A long
        # option capped at its value alone loses that cap in a group with linear legs.)
        cross = np.minimum(sum_by(groups.trader[c], total[c], n_t), isolated)
        t, u = groups.trader[p], groups.underlying[p]
        # A loss found on a falling price is a long exposure, on a rising one a short one.
        w = worst[p]
        signed = np.where(sc.move[u, w] <= 0.0, scan_loss[p], -scan_loss[p])
        ws = np.zeros((n_t, n_u))
        ws[t, u] = signed
        worst_cell[t, u] = w
        caps = spread_caps(book.underlyings, sc.ranges, params)
        portfolio = np.minimum(correlated(ws, market, params, caps)
                               + sum_by(t, addons[p], n_t), cross)
        greeks[:, t, u] = groups.terms[p, DELTA : VEGA + 1].T
    initial = params.initial_to_maintenance * portfolio
    # A book with no requirement is infinitely healthy, whatever its equity.
    health = np.divide(equity, portfolio, out=np.full_like(equity, np.inf),
                       where=portfolio > 1e-9)
    return MarginResult(
        params_version=params.version, equity_usd=equity, maintenance_margin_usd=portfolio,
        initial_margin_usd=initial, health=health,
        free_collateral_usd=np.maximum(0.0, equity - initial), delta=greeks[0],
        gamma=greeks[1], vega=greeks[2], worst_scenario=worst_cell, scenarios=sc,
        isolated_mm_usd=isolated, protocol_cross_mm_usd=cross, option_value_usd=option_value,
    )
