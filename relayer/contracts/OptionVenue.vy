# pragma version ~=0.4.3
"""
@title OptionVenue
@notice A European options venue that holds real collateral (the stablecoin, as cash
        per trader) and trades at premiums its owner quotes per series (underlying,
        strike, expiry, call or put). The venue is every trader's counterparty: premiums
        and settlements move between the trader's cash and `house`, so

            token.balanceOf(venue) == Σ cash + house + insurance_fund.

        Per trader it keeps the book and one storage word, `commitment[trader]` =
        keccak256(abi_encode(trader, cash × unit_wad, positions)), announced with the whole
        book in `OptionPositionChanged`, so the relayer proves it with one storage proof.
        Buying pays the premium out of cash (rounded up); writing credits it (rounded
        down). Writing (adding short contracts) is new risk checked against *global*
        margin: `initial_margin_bps` of the added notional is drawn from the chain's
        CreditLedger. A withdrawal draws its value from the same ledger.
        Once a series has expired anyone may settle it for a trader in cash at the feed
        price (intrinsic value × contracts: a long is paid, rounded down; a writer pays,
        rounded up). Liquidation (only on an unexpired flag) closes up to the contracts
        named at the quoted premium and charges the caller's reward and the penalty of
        the shared `credit` module on the underlying's notional (at most the trader's
        cash).
"""

import credit

struct OptionPosition:
    market: bytes32
    size: int256          # contracts (18 decimals), > 0 long, < 0 written
    entry_price: uint256  # premium per contract at the last change (18 decimals, USD)
    strike: uint256       # USD, 18 decimals
    expiry: uint64        # unix seconds
    is_call: bool

MAX_POSITIONS: constant(uint256) = 8
BPS: constant(uint256) = 10000
WAD: constant(uint256) = 10**18

event OptionPositionChanged:
    trader: indexed(address)
    collateral: int256
    positions: DynArray[OptionPosition, MAX_POSITIONS]
    commitment: bytes32

event Settled:
    trader: indexed(address)
    series: bytes32
    size: int256
    price: uint256
    payoff: int256  # token units, to the trader

event Liquidated:
    trader: indexed(address)
    liquidator: indexed(address)
    series: bytes32
    size: int256
    premium: uint256
    reward: uint256
    penalty: uint256
    to_liquidator: uint256  # reward + the caller's share of the penalty

commitment: public(HashMap[address, bytes32])
cash: public(HashMap[address, int256])
books: HashMap[address, DynArray[OptionPosition, MAX_POSITIONS]]
premiums: public(HashMap[bytes32, uint256])  # series id → quoted premium per contract
owner: public(address)
initial_margin_bps: public(uint256)
house: public(int256)
initializes: credit
exports: (credit.ledger, credit.oracle, credit.token, credit.unit_wad, credit.feeds,
          credit.max_price_age, credit.insurance_fund, credit.penalty_bps,
          credit.liquidator_share_bps, credit.maintenance_bps, credit.keeper_gas,
          credit.min_keeper_reward, credit.gas_market)


@deploy
def __init__(ledger: address, token: address, initial_margin_bps: uint256,
             maintenance_bps: uint256, penalty_bps: uint256, liquidator_share_bps: uint256):
    assert initial_margin_bps > 0 and initial_margin_bps <= BPS, "bad margin rate"
    credit.__init__(ledger, token)
    credit.set_penalty(maintenance_bps, penalty_bps, liquidator_share_bps)
    self.owner = msg.sender
    self.initial_margin_bps = initial_margin_bps


@pure
@external
def series(market: bytes32, strike: uint256, expiry: uint64, is_call: bool) -> bytes32:
    return keccak256(abi_encode(market, strike, expiry, is_call))


@external
def list_market(market: bytes32, feed: address, max_price_age: uint256):
    assert msg.sender == self.owner, "only owner"
    credit.list(market, feed, max_price_age)


@external
def set_keeper_reward(keeper_gas: uint256, min_keeper_reward: uint256, gas_market: bytes32):
    assert msg.sender == self.owner, "only owner"
    credit.set_keeper_reward(keeper_gas, min_keeper_reward, gas_market)


@external
def quote(market: bytes32, strike: uint256, expiry: uint64, is_call: bool, premium: uint256):
    assert msg.sender == self.owner, "only owner"
    assert credit.feeds[market] != empty(address), "unknown market"
    assert strike > 0 and convert(expiry, uint256) > block.timestamp, "bad series"
    self.premiums[keccak256(abi_encode(market, strike, expiry, is_call))] = premium


@external
def fund_house(amount: uint256):
    credit.take(msg.sender, amount)
    self.house += convert(amount, int256)


@external
def deposit(amount: uint256):
    credit.take(msg.sender, amount)
    self.cash[msg.sender] += convert(amount, int256)
    self._commit(msg.sender)


@external
def withdraw(amount: uint256):
    assert amount > 0, "zero amount"
    left: int256 = self.cash[msg.sender] - convert(amount, int256)
    assert left >= 0, "withdraws more than cash"
    credit.draw(msg.sender, amount * credit.unit_wad)
    self.cash[msg.sender] = left
    credit.pay(msg.sender, amount)
    self._commit(msg.sender)


@external
def trade(market: bytes32, strike: uint256, expiry: uint64, is_call: bool, size_delta: int256):
    """
    @notice Buy (`size_delta` > 0) or write (< 0) contracts of a quoted series.
    """
    assert convert(expiry, uint256) > block.timestamp, "expired series"
    assert size_delta != 0, "zero size"
    premium: uint256 = self.premiums[keccak256(abi_encode(market, strike, expiry, is_call))]
    assert premium > 0, "no quote"
    if size_delta > 0:
        cost: int256 = convert(credit.units_up(credit.ceil_div(convert(size_delta, uint256) * premium, WAD)), int256)
        assert self.cash[msg.sender] >= cost, "premium exceeds cash"
        self._move_cash(msg.sender, -cost)
    else:
        self._move_cash(msg.sender, credit.units_down(-size_delta * convert(premium, int256) // convert(WAD, int256)))
    old: int256 = self._resize(msg.sender, market, strike, expiry, is_call, size_delta, premium)
    new: int256 = old + size_delta
    written: int256 = max(-new, 0) - max(-old, 0)
    if written > 0:
        spot: uint256 = credit.price_wad(market)
        notional: uint256 = credit.ceil_div(convert(written, uint256) * spot, WAD)
        credit.draw(msg.sender, credit.ceil_div(notional * self.initial_margin_bps, BPS))
    self._commit(msg.sender)


@external
def settle(trader: address, market: bytes32, strike: uint256, expiry: uint64, is_call: bool):
    """Cash-settle an expired series of `trader` at the feed price; anyone may call."""
    assert convert(expiry, uint256) <= block.timestamp, "series has not expired"
    size: int256 = self._size(trader, market, strike, expiry, is_call)
    assert size != 0, "no such position"
    price: uint256 = credit.price_wad(market)
    intrinsic: uint256 = 0
    if is_call and price > strike:
        intrinsic = price - strike
    elif not is_call and strike > price:
        intrinsic = strike - price
    payoff: int256 = credit.units_down(size * convert(intrinsic, int256) // convert(WAD, int256))
    if size < 0:
        # What a writer pays rounds up: floor of the negative product, not truncation.
        payoff = credit.floor_div(size * convert(intrinsic, int256), convert(WAD * credit.unit_wad, int256))
    self._move_cash(trader, payoff)
    self._resize(trader, market, strike, expiry, is_call, -size, 0)
    log Settled(trader=trader, series=keccak256(abi_encode(market, strike, expiry, is_call)),
                size=size, price=price, payoff=payoff)
    self._commit(trader)


@external
def liquidate(trader: address, market: bytes32, strike: uint256, expiry: uint64, is_call: bool,
              size: uint256):
    """
    @notice Close up to `size` contracts of one series of `trader` at the quoted premium,
            only while the MarginOracle flags the trader on an unexpired attestation.
    """
    assert credit.flagged(trader), "trader is not flagged"
    assert size > 0, "zero size"
    held: int256 = self._size(trader, market, strike, expiry, is_call)
    assert held != 0, "no such position"
    series_id: bytes32 = keccak256(abi_encode(market, strike, expiry, is_call))
    premium: uint256 = self.premiums[series_id]
    spot: uint256 = credit.price_wad(market)
    close: int256 = convert(min(size, convert(abs(held), uint256)), int256)
    if held < 0:
        close = -close
        # Buying back written contracts costs the premium, rounded up.
        self._move_cash(trader, -convert(credit.units_up(credit.ceil_div(convert(-close, uint256) * premium, WAD)), int256))
    else:
        self._move_cash(trader, credit.units_down(close * convert(premium, int256) // convert(WAD, int256)))
    self._resize(trader, market, strike, expiry, is_call, -close, premium)
    notional: uint256 = credit.ceil_div(convert(abs(close), uint256) * spot, WAD)
    reward: uint256 = 0
    share: uint256 = 0
    to_insurance: uint256 = 0
    reward, share, to_insurance = credit.liquidation_charges(self.cash[trader], notional)
    self.cash[trader] -= convert(reward + share + to_insurance, int256)
    credit.pay(msg.sender, reward + share)
    log Liquidated(trader=trader, liquidator=msg.sender, series=series_id, size=close,
                   premium=premium, reward=reward, penalty=share + to_insurance,
                   to_liquidator=reward + share)
    self._commit(trader)


@view
@external
def positions(trader: address) -> DynArray[OptionPosition, MAX_POSITIONS]:
    return self.books[trader]


@internal
def _move_cash(trader: address, amount: int256):
    """Between the trader's cash and the house (the counterparty)."""
    self.cash[trader] += amount
    self.house -= amount


@view
@internal
def _size(trader: address, market: bytes32, strike: uint256, expiry: uint64, is_call: bool) -> int256:
    for p: OptionPosition in self.books[trader]:
        if p.market == market and p.strike == strike and p.expiry == expiry and p.is_call == is_call:
            return p.size
    return 0


@internal
def _resize(trader: address, market: bytes32, strike: uint256, expiry: uint64, is_call: bool,
            size_delta: int256, premium: uint256) -> int256:
    """Add `size_delta` contracts of a series; returns the size before."""
    updated: DynArray[OptionPosition, MAX_POSITIONS] = []
    old: int256 = 0
    for p: OptionPosition in self.books[trader]:
        if p.market == market and p.strike == strike and p.expiry == expiry and p.is_call == is_call:
            old = p.size
        else:
            updated.append(p)
    new: int256 = old + size_delta
    if new != 0:
        updated.append(OptionPosition(market=market, size=new, entry_price=premium, strike=strike,
                                      expiry=expiry, is_call=is_call))
    self.books[trader] = updated
    return old



@internal
def _commit(trader: address):
    book: DynArray[OptionPosition, MAX_POSITIONS] = self.books[trader]
    cash_wad: int256 = self.cash[trader] * convert(credit.unit_wad, int256)
    c: bytes32 = empty(bytes32)
    if cash_wad != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, cash_wad, book))
    self.commitment[trader] = c
    log OptionPositionChanged(trader=trader, collateral=cash_wad, positions=book, commitment=c)
