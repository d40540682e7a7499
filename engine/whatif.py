"""The what-if book format: plain data (already parsed JSON) to arrays, results to data.

    {"market": {"rate": 0.0,
                "underlyings": {"BTC": {"spot": 60000, "vol": 0.5, "range": 0.21},
                                "USDC": {"spot": 1.0, "stablecoin": true}},
                "correlations": {"BTC/ETH": 0.8}},
     "traders": [{"id": "alice", "collateral_usd": 10000,
                  "positions": [{"chain": "1", "venue": "perp-dex", "underlying": "BTC",
                                 "kind": "perp", "size": 1.0, "entry_price": 60000},
                                {"chain": "10", "venue": "options", "underlying": "BTC",
                                 "kind": "call", "size": -1.0, "strike": 65000,
                                 "expiry_days": 30}]}]}

An underlying's ``range`` (optional) is its scan range, as the node's adaptive model
gives it (``xmargin market`` writes such a market block from the node's price log).
``kind`` is one of spot, perp, future, call, put, supply, borrow. Dated kinds need
``expiry_days`` > 0, options a positive ``strike`` and a ``vol`` for their underlying.
A bad value raises ``BookError`` naming the trader, the position and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.errors import BookError
from engine.instruments import DATED_KINDS, OPTION_KINDS, Book, Kind, Market
from engine.margin import MarginResult
from engine.params import MarginParams

KINDS = {k.name.lower(): k for k in Kind}


@dataclass(frozen=True)
class ParsedBook:
    book: Book
    market: Market
    trader_ids: tuple[str, ...]
    params: MarginParams  # the parameters with the market's scan ranges in


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise BookError(where, f"expected a finite number, got {value!r}")
    return float(value)


def parse_market(doc: Mapping[str, Any], params: MarginParams) -> tuple[tuple[str, ...], Market,
                                                                         set[str]]:
    underlyings = doc.get("underlyings")
    if not isinstance(underlyings, Mapping) or not underlyings:
        raise BookError("market.underlyings", "expected a non-empty table of underlyings")
    names = tuple(underlyings)
    spot = np.array([_number(underlyings[n].get("spot"), f"market.underlyings.{n}.spot")
                     for n in names])
    with_vol = {n for n in names if underlyings[n].get("vol") is not None}
    vol = np.array([_number(underlyings[n]["vol"], f"market.underlyings.{n}.vol")
                    if n in with_vol else 0.0 for n in names])
    rho = np.full((len(names), len(names)), params.default_correlation)
    np.fill_diagonal(rho, 1.0)
    for pair, value in (doc.get("correlations") or {}).items():
        a, _, b = pair.partition("/")
        if a not in names or b not in names:
            raise BookError(f"market.correlations.{pair}", "names an unknown underlying")
        i, j = names.index(a), names.index(b)
        rho[i, j] = rho[j, i] = _number(value, f"market.correlations.{pair}")
    market = Market(
        spot_usd=spot, vol=vol, correlation=rho, rate=float(doc.get("rate", 0.0)),
        stale=np.array([bool(underlyings[n].get("stale", False)) for n in names]),
        stablecoin=np.array([bool(underlyings[n].get("stablecoin", False)) for n in names]),
    )
    market.validate(len(names))
    return names, market, with_vol


def scan_ranges_of(doc: Mapping[str, Any], params: MarginParams) -> MarginParams:
    """``params`` with the scan ranges the market block names (``range`` per underlying)."""
    ranges = {}
    for name, u in (doc.get("underlyings") or {}).items():
        if isinstance(u, Mapping) and u.get("range") is not None:
            r = _number(u["range"], f"market.underlyings.{name}.range")
            if not 0.0 < r < 1.0:
                raise BookError(f"market.underlyings.{name}.range", "must lie in (0, 1)")
            ranges[name] = r
    if not ranges:
        return params
    return replace(params, scan_range_by_underlying={**params.scan_range_by_underlying,
                                                     **ranges})


def parse_book(doc: Mapping[str, Any], params: MarginParams) -> ParsedBook:
    names, market, with_vol = parse_market(doc.get("market") or {}, params)
    params = scan_ranges_of(doc.get("market") or {}, params)
    traders = doc.get("traders")
    if not isinstance(traders, Sequence) or not traders:
        raise BookError("traders", "expected a non-empty list of traders")
    rows: dict[str, list[float]] = {k: [] for k in (
        "trader", "account", "underlying", "kind", "size", "entry", "strike", "expiry")}
    accounts: dict[tuple[str, str], int] = {}
    coll_t, coll = [], []
    ids = []
    for t, trader in enumerate(traders):
        tid = str(trader.get("id", t))
        ids.append(tid)
        coll_t.append(t)
        coll.append(_number(trader.get("collateral_usd", 0.0), f"traders[{tid}].collateral_usd"))
        for p, pos in enumerate(trader.get("positions", [])):
            where = f"traders[{tid}].positions[{p}]"
            parse_position(pos, where, names, with_vol, accounts, rows, t)
    return ParsedBook(
        book=Book(
            n_traders=len(traders), underlyings=names,
            trader=np.array(rows["trader"], dtype=np.int64),
            account=np.array(rows["account"], dtype=np.int64),
            underlying=np.array(rows["underlying"], dtype=np.int64),
            kind=np.array(rows["kind"], dtype=np.int64),
            size=np.array(rows["size"], dtype=np.float64),
            entry_price_usd=np.array(rows["entry"], dtype=np.float64),
            strike_usd=np.array(rows["strike"], dtype=np.float64),
            expiry_years=np.array(rows["expiry"], dtype=np.float64),
            collateral_trader=np.array(coll_t, dtype=np.int64),
            collateral_usd=np.array(coll, dtype=np.float64),
        ),
        market=market, trader_ids=tuple(ids), params=params,
    )


def parse_position(pos: Mapping[str, Any], where: str, names: tuple[str, ...],
                   with_vol: set[str], accounts: dict[tuple[str, str], int],
                   rows: dict[str, list[float]], t: int) -> None:
    underlying = pos.get("underlying")
    if underlying not in names:
        raise BookError(f"{where}.underlying", f"unknown underlying {underlying!r}")
    kind = KINDS.get(str(pos.get("kind", "")).lower())
    if kind is None:
        raise BookError(f"{where}.kind", f"expected one of {sorted(KINDS)}")
    strike = expiry_days = 0.0
    if kind in OPTION_KINDS:
        strike = _number(pos.get("strike"), f"{where}.strike")
        if strike <= 0:
            raise BookError(f"{where}.strike", "must be positive")
        if underlying not in with_vol:
            raise BookError(f"{where}.vol", f"no volatility given for {underlying}")
    if kind in DATED_KINDS:
        expiry_days = _number(pos.get("expiry_days"), f"{where}.expiry_days")
        if expiry_days <= 0:
            raise BookError(f"{where}.expiry_days", "expired (must be > 0)")
    size = _number(pos.get("size"), f"{where}.size")
    if kind in (Kind.SUPPLY, Kind.BORROW) and size < 0:
        raise BookError(f"{where}.size", "supply and borrow amounts are positive")
    account = (str(pos.get("chain", "")), str(pos.get("venue", "")))
    rows["trader"].append(t)
    rows["account"].append(accounts.setdefault(account, len(accounts)))
    rows["underlying"].append(names.index(underlying))
    rows["kind"].append(int(kind))
    rows["size"].append(size)
    rows["entry"].append(_number(pos.get("entry_price", 0.0), f"{where}.entry_price"))
    rows["strike"].append(strike)
    rows["expiry"].append(expiry_days / 365.0)


def results(parsed: ParsedBook, result: MarginResult) -> dict[str, Any]:
    """Per trader: equity, margins, health, free collateral, Greeks and the three modes."""
    out: dict[str, Any] = {"params_version": result.params_version, "traders": {}}
    for t, tid in enumerate(parsed.trader_ids):
        greeks = {}
        for u, name in enumerate(parsed.book.underlyings):
            s = int(result.worst_scenario[t, u])
            if s < 0 and result.delta[t, u] == 0:
                continue
            greeks[name] = {
                "delta": float(result.delta[t, u]), "gamma": float(result.gamma[t, u]),
                "vega": float(result.vega[t, u]),
                "worst_scenario": result.scenarios.describe(u, s) if s >= 0 else None,
            }
        health = float(result.health[t])
        out["traders"][tid] = {
            "equity": float(result.equity_usd[t]),
            "maintenance_margin": float(result.maintenance_margin_usd[t]),
            "initial_margin": float(result.initial_margin_usd[t]),
            "health": health if np.isfinite(health) else None,
            "free_collateral": float(result.free_collateral_usd[t]),
            "greeks": greeks,
            "modes": {
                "isolated": {"maintenance_margin": float(result.isolated_mm_usd[t])},
                "protocol_cross": {"maintenance_margin": float(result.protocol_cross_mm_usd[t])},
                "portfolio": {"maintenance_margin": float(result.maintenance_margin_usd[t])},
            },
        }
    return out
