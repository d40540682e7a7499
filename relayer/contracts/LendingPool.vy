# pragma version ~=0.4.3
"""
@title LendingPool
@notice A lending market that holds real tokens. Each listed market is an asset with
        its own ERC-20 and price feed; per trader and market the pool keeps one signed
        balance, supplied (> 0) or borrowed (< 0), beside cash in the collateral token
        (the stablecoin). Supply, withdraw, borrow and repay move the asset's tokens;
        deposit and withdraw_cash move the stablecoin.
        Interest accrues by index per market: the borrow rate is utilisation-based
        (`base_rate` + `slope` × borrowed / supplied, per second, 18 decimals); the supply
        index grows by the borrow rate × utilisation, so suppliers earn what borrowers
        owe. A balance is stored scaled by its index; rounding goes against the trader
        (a debt rounds up, a supply down).
        The book is committed and announced exactly as PerpVenue does it (same struct,
        same event, `commitment` at mapping slot 0): each leg's size is its balance in 18
        decimals *with interest accrued to the block of the change*, the entry price the
        price then. Interest accrued since is not in the proven book until the book is
        touched again; `poke(trader)` (anyone) re-commits it.
        Withdrawing a supply or borrowing takes value out of the margin system, so it
        draws on the chain's CreditLedger: the value withdrawn, or the value borrowed plus
        `borrow_margin_bps` of it. Supplying and repaying always pass.
        Liquidation (only on an unexpired flag): a debt is repaid by the caller in the
        asset's tokens, who is paid its value out of the trader's cash here (which must
        cover it: a debt backed by collateral elsewhere is settled across chains); a
        supply is sold to the caller at the feed price into the trader's cash. Either
        way the caller's reward and the penalty of the shared `credit` module are then
        charged on the value, out of what cash is left.
@dev Token balances: Σ supplied − Σ borrowed (plus interest repaid) of each asset, and
     Σ cash + insurance_fund of the stablecoin.
"""

import credit
from ethereum.ercs import IERC20Detailed

struct Position:
    market: bytes32
    size: int256
    entry_price: uint256

struct Market:
    token: address
    unit_wad: uint256          # 10 ** (18 - the asset token's decimals)
    base_rate: uint256         # per second, 18 decimals
    slope: uint256             # per second at 100 % utilisation, 18 decimals
    supply_index: uint256      # 18 decimals, starts at 1
    borrow_index: uint256
    supplied_scaled: uint256
    borrowed_scaled: uint256
    accrued_at: uint256

MAX_POSITIONS: constant(uint256) = 8
BPS: constant(uint256) = 10000
WAD: constant(uint256) = 10**18

event PositionChanged:
    trader: indexed(address)
    collateral: int256
    positions: DynArray[Position, MAX_POSITIONS]
    commitment: bytes32

event Liquidated:
    trader: indexed(address)
    liquidator: indexed(address)
    market: bytes32
    size: int256
    price: uint256
    reward: uint256
    penalty: uint256
    to_liquidator: uint256  # reward + the caller's share of the penalty

commitment: public(HashMap[address, bytes32])
cash: public(HashMap[address, int256])
scaled: public(HashMap[address, HashMap[bytes32, int256]])
held: HashMap[address, DynArray[bytes32, MAX_POSITIONS]]
entry: HashMap[address, HashMap[bytes32, uint256]]
markets: public(HashMap[bytes32, Market])
owner: public(address)
borrow_margin_bps: public(uint256)
initializes: credit
exports: (credit.ledger, credit.oracle, credit.token, credit.unit_wad, credit.feeds,
          credit.max_price_age, credit.insurance_fund, credit.penalty_bps,
          credit.liquidator_share_bps, credit.maintenance_bps, credit.keeper_gas,
          credit.min_keeper_reward, credit.gas_market)


@deploy
def __init__(ledger: address, token: address, borrow_margin_bps: uint256,
             maintenance_bps: uint256, penalty_bps: uint256, liquidator_share_bps: uint256):
    assert borrow_margin_bps <= BPS, "bad margin rate"
    credit.__init__(ledger, token)
    credit.set_penalty(maintenance_bps, penalty_bps, liquidator_share_bps)
    self.owner = msg.sender
    self.borrow_margin_bps = borrow_margin_bps


@external
def set_keeper_reward(keeper_gas: uint256, min_keeper_reward: uint256, gas_market: bytes32):
    assert msg.sender == self.owner, "only owner"
    credit.set_keeper_reward(keeper_gas, min_keeper_reward, gas_market)


@external
def list_market(market: bytes32, feed: address, max_price_age: uint256, asset: address,
                base_rate: uint256, slope: uint256):
    assert msg.sender == self.owner, "only owner"
    credit.list(market, feed, max_price_age)
    decimals: uint256 = convert(staticcall IERC20Detailed(asset).decimals(), uint256)
    assert decimals <= 18, "token has more than 18 decimals"
    self.markets[market] = Market(token=asset, unit_wad=10 ** (18 - decimals), base_rate=base_rate,
                                  slope=slope, supply_index=WAD, borrow_index=WAD,
                                  supplied_scaled=0, borrowed_scaled=0, accrued_at=block.timestamp)


@external
def deposit(amount: uint256):
    """Cash collateral in the stablecoin (token units)."""
    credit.take(msg.sender, amount)
    self.cash[msg.sender] += convert(amount, int256)
    self._commit(msg.sender)


@external
def withdraw_cash(amount: uint256):
    assert amount > 0, "zero amount"
    left: int256 = self.cash[msg.sender] - convert(amount, int256)
    assert left >= 0, "withdraws more than cash"
    credit.draw(msg.sender, amount * credit.unit_wad)
    self.cash[msg.sender] = left
    credit.pay(msg.sender, amount)
    self._commit(msg.sender)


@external
def supply(market: bytes32, amount: uint256):
    """Supply `amount` of the asset (its token's units)."""
    m: Market = self._accrue(market)
    credit.take_token(m.token, msg.sender, amount)
    self._move(msg.sender, market, m, convert(amount * m.unit_wad, int256), credit.price_wad(market))
    self._commit(msg.sender)


@external
def repay(market: bytes32, amount: uint256):
    """Repay up to `amount` token units; an amount at or above the debt clears it (the
    last unit rounds up)."""
    m: Market = self._accrue(market)
    balance: int256 = self._balance(msg.sender, market, m)
    assert balance < 0, "nothing borrowed"
    debt: uint256 = convert(-balance, uint256)
    paid: uint256 = min(amount, credit.ceil_div(debt, m.unit_wad))
    credit.take_token(m.token, msg.sender, paid)
    self._move(msg.sender, market, m, convert(min(paid * m.unit_wad, debt), int256), credit.price_wad(market))
    self._commit(msg.sender)


@external
def withdraw(market: bytes32, amount: uint256):
    """Withdraw up to `amount` token units of a supply; an amount at or above the supply
    closes it (what is below one token unit stays with the pool)."""
    m: Market = self._accrue(market)
    balance: int256 = self._balance(msg.sender, market, m)
    assert balance > 0, "nothing supplied"
    held: uint256 = convert(balance, uint256) // m.unit_wad
    paid: uint256 = min(amount, held)
    assert paid > 0, "zero amount"
    delta: int256 = -convert(paid * m.unit_wad, int256)
    if paid == held:
        delta = -balance
    price: uint256 = credit.price_wad(market)
    credit.draw(msg.sender, credit.ceil_div(paid * m.unit_wad * price, WAD))
    self._move(msg.sender, market, m, delta, price)
    credit.pay_token(m.token, msg.sender, paid)
    self._commit(msg.sender)


@external
def borrow(market: bytes32, amount: uint256):
    m: Market = self._accrue(market)
    assert self._balance(msg.sender, market, m) <= 0, "withdraw the supply first"
    price: uint256 = credit.price_wad(market)
    value: uint256 = credit.ceil_div(amount * m.unit_wad * price, WAD)
    credit.draw(msg.sender, credit.ceil_div(value * (BPS + self.borrow_margin_bps), BPS))
    self._move(msg.sender, market, m, -convert(amount * m.unit_wad, int256), price)
    credit.pay_token(m.token, msg.sender, amount)
    self._commit(msg.sender)


@external
def poke(trader: address):
    """Accrue every market the trader holds and commit the book with that interest."""
    for market: bytes32 in self.held[trader]:
        self._accrue(market)
    self._commit(trader)


@external
def liquidate(trader: address, market: bytes32, size: uint256):
    """
    @notice Close up to `size` (asset token units) of `trader`'s balance in `market`,
            only while the MarginOracle flags the trader on an unexpired attestation.
    """
    assert credit.flagged(trader), "trader is not flagged"
    assert size > 0, "zero size"
    m: Market = self._accrue(market)
    balance: int256 = self._balance(trader, market, m)
    assert balance != 0, "no such position"
    price: uint256 = credit.price_wad(market)
    close: uint256 = min(size, convert(abs(balance), uint256) // m.unit_wad)
    assert close > 0, "below one token unit"
    value_wad: uint256 = close * m.unit_wad * price // WAD
    value: uint256 = 0
    if balance < 0:
        # The caller repays the debt and is paid its value (rounded up) from the cash.
        value = credit.units_up(value_wad)
        # Only cash held here pays a liquidator here; a debt backed by collateral on
        # other chains is settled across chains, not by this pool's other traders' cash.
        assert self.cash[trader] >= convert(value, int256), "cash here does not cover the repaid debt"
        credit.take_token(m.token, msg.sender, close)
        self._move(trader, market, m, convert(close * m.unit_wad, int256), price)
        self.cash[trader] -= convert(value, int256)
    else:
        # The caller buys the supply at the feed price (the trader's proceeds round down).
        value = convert(credit.units_down(convert(value_wad, int256)), uint256)
        credit.take(msg.sender, value)
        self._move(trader, market, m, -convert(close * m.unit_wad, int256), price)
        self.cash[trader] += convert(value, int256)
        credit.pay_token(m.token, msg.sender, close)
    reward: uint256 = 0
    share: uint256 = 0
    to_insurance: uint256 = 0
    reward, share, to_insurance = credit.liquidation_charges(self.cash[trader], value_wad)
    self.cash[trader] -= convert(reward + share + to_insurance, int256)
    if balance < 0:
        credit.pay(msg.sender, value + reward + share)
    else:
        credit.pay(msg.sender, reward + share)
    log Liquidated(trader=trader, liquidator=msg.sender, market=market,
                   size=convert(close * m.unit_wad, int256), price=price, reward=reward,
                   penalty=share + to_insurance, to_liquidator=reward + share)
    self._commit(trader)


@view
@external
def positions(trader: address) -> DynArray[Position, MAX_POSITIONS]:
    return self._book(trader)


@view
@external
def borrow_rate(market: bytes32) -> uint256:
    return self._borrow_rate(self.markets[market])


@view
@internal
def _borrow_rate(m: Market) -> uint256:
    supplied: uint256 = m.supplied_scaled * m.supply_index // WAD
    if supplied == 0:
        return m.base_rate
    borrowed: uint256 = m.borrowed_scaled * m.borrow_index // WAD
    return m.base_rate + m.slope * min(borrowed, supplied) // supplied


@internal
def _accrue(market: bytes32) -> Market:
    m: Market = self.markets[market]
    assert m.token != empty(address), "unknown market"
    dt: uint256 = block.timestamp - m.accrued_at
    if dt > 0:
        rate: uint256 = self._borrow_rate(m)
        supplied: uint256 = m.supplied_scaled * m.supply_index // WAD
        borrowed: uint256 = m.borrowed_scaled * m.borrow_index // WAD
        m.borrow_index += credit.ceil_div(m.borrow_index * rate * dt, WAD)
        if supplied > 0:
            # Suppliers earn the borrowers' interest, rounded down.
            m.supply_index += m.supply_index * rate * dt * min(borrowed, supplied) // supplied // WAD
        m.accrued_at = block.timestamp
        self.markets[market] = m
    return m


@view
@internal
def _balance(trader: address, market: bytes32, m: Market) -> int256:
    s: int256 = self.scaled[trader][market]
    if s >= 0:
        return convert(convert(s, uint256) * m.supply_index // WAD, int256)
    return -convert(credit.ceil_div(convert(-s, uint256) * m.borrow_index, WAD), int256)


@internal
def _move(trader: address, market: bytes32, m: Market, delta: int256, price: uint256):
    """Add `delta` (18 decimals) to the trader's balance in `market`."""
    assert delta != 0, "zero amount"
    old: int256 = self._balance(trader, market, m)
    new: int256 = old + delta
    assert old == 0 or new == 0 or (old > 0) == (new > 0), "crosses zero"
    mm: Market = self.markets[market]
    s: int256 = self.scaled[trader][market]
    if s > 0:
        mm.supplied_scaled -= convert(s, uint256)
    elif s < 0:
        mm.borrowed_scaled -= convert(-s, uint256)
    if new > 0:
        s = convert(convert(new, uint256) * WAD // mm.supply_index, int256)
        mm.supplied_scaled += convert(s, uint256)
    elif new < 0:
        s = -convert(credit.ceil_div(convert(-new, uint256) * WAD, mm.borrow_index), int256)
        mm.borrowed_scaled += convert(-s, uint256)
    else:
        s = 0
    self.markets[market] = mm
    self.scaled[trader][market] = s
    self.entry[trader][market] = price
    held: DynArray[bytes32, MAX_POSITIONS] = []
    for h: bytes32 in self.held[trader]:
        if h != market:
            held.append(h)
    if new != 0:
        held.append(market)
    self.held[trader] = held


@view
@internal
def _book(trader: address) -> DynArray[Position, MAX_POSITIONS]:
    book: DynArray[Position, MAX_POSITIONS] = []
    for market: bytes32 in self.held[trader]:
        book.append(Position(market=market, size=self._balance(trader, market, self.markets[market]),
                             entry_price=self.entry[trader][market]))
    return book


@internal
def _commit(trader: address):
    book: DynArray[Position, MAX_POSITIONS] = self._book(trader)
    cash_wad: int256 = self.cash[trader] * convert(credit.unit_wad, int256)
    c: bytes32 = empty(bytes32)
    if cash_wad != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, cash_wad, book))
    self.commitment[trader] = c
    log PositionChanged(trader=trader, collateral=cash_wad, positions=book, commitment=c)
