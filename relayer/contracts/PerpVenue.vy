# pragma version ~=0.4.3
"""
@title PerpVenue
@notice A perpetual-futures venue that holds real collateral: an ERC-20 (the local nets
        use a 6-decimal stablecoin), taken with `transferFrom` on deposit and paid out
        with `transfer`. The venue is every trader's counterparty; its own liquidity is
        `house`, funded with tokens like everything else, so at all times

            token.balanceOf(venue) == Σ cash + house + insurance_fund + liquidator_reserve

        (cash is signed: a debt a liquidation left uncovered stays as negative cash and
        as recorded bad debt, never silently absorbed).
        Per trader: `cash` (token units) and positions at their average entry price.
        Every reduce, close, flip and liquidation realizes P&L into cash, taken from or
        paid by the house. Commitment: `commitment[trader]` =
        keccak256(abi_encode(trader, cash × unit_wad, positions)) — cash in 18 decimals
        (exact: scaling up loses nothing) — proven by the relayer with one storage proof.
        Risk is checked against *global* margin: a trade that adds exposure draws
        `initial_margin_bps` of the added notional, and a withdrawal draws its value, from
        the chain's CreditLedger (the free collateral the MarginOracle attests, less
        what was drawn since the block the attestation has seen). Unrealized profit is
        not cash: only cash can be withdrawn, and while positions are open what stays
        must cover max(initial margin, 10 % of notional) with unrealized losses counted
        and unrealized profit not.
        Rounding, always against the trader: a realized P&L converts to token units
        toward minus infinity; an average entry rounds up for a long and down for a
        short; a credit draw and a penalty round up.
        Liquidation: only while the oracle flags the trader on an attestation that has
        not expired; closes up to the size named at the feed price and charges the
        caller's reward and the penalty of the shared `credit` module (never more than
        the cash the trader has here: the effective price of the close never passes the
        bankruptcy price); liquidated notional per market is capped per block and per
        window except for approved liquidators. A trader left with no position here and negative cash
        is a bad debt: the insurance fund covers it, then the liquidator reserve (at most
        `reserve_cap` per event), and what remains is recorded (`BadDebt`, `bad_debt_of`).
        Funding payments are not charged.
@dev `commitment` is declared first so that its mapping base slot is 0.
"""

import credit

struct Position:
    market: bytes32
    size: int256
    entry_price: uint256

MAX_POSITIONS: constant(uint256) = 8
BPS: constant(uint256) = 10000
WAD: constant(uint256) = 10**18
WITHDRAW_HOLDBACK_BPS: constant(uint256) = 1000  # 10 % of notional, as Hyperliquid keeps

event PositionChanged:
    trader: indexed(address)
    collateral: int256
    positions: DynArray[Position, MAX_POSITIONS]
    commitment: bytes32

event Deposited:
    trader: indexed(address)
    amount: uint256

event Withdrawn:
    trader: indexed(address)
    amount: uint256

event Realized:
    trader: indexed(address)
    market: bytes32
    closed: int256
    price: uint256
    pnl: int256  # token units

event Liquidated:
    trader: indexed(address)
    liquidator: indexed(address)
    market: bytes32
    size: int256
    price: uint256
    pnl: int256
    reward: uint256
    penalty: uint256
    to_liquidator: uint256  # reward + the caller's share of the penalty

event BadDebt:
    trader: indexed(address)
    deficit: uint256
    from_insurance: uint256
    from_reserve: uint256
    uncovered: uint256

commitment: public(HashMap[address, bytes32])
cash: public(HashMap[address, int256])
books: HashMap[address, DynArray[Position, MAX_POSITIONS]]
owner: public(address)
initial_margin_bps: public(uint256)
house: public(int256)
liquidator_reserve: public(uint256)
reserve_cap: public(uint256)
bad_debt: public(uint256)
bad_debt_of: public(HashMap[address, uint256])
block_cap: public(uint256)   # liquidated notional (USD, 18 decimals) per market and block
window_s: public(uint256)
window_cap: public(uint256)  # ... per market and window of `window_s`
window_start: public(HashMap[bytes32, uint256])
window_total: public(HashMap[bytes32, uint256])
block_total: public(HashMap[bytes32, HashMap[uint256, uint256]])
approved_liquidator: public(HashMap[address, bool])
vault: public(address)  # the chain's ClearingVault: settles cash across chains
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


@external
def list_market(market: bytes32, feed: address, max_price_age: uint256):
    assert msg.sender == self.owner, "only owner"
    credit.list(market, feed, max_price_age)


@external
def set_liquidation_limits(block_cap: uint256, window_s: uint256, window_cap: uint256,
                           reserve_cap: uint256):
    """Caps of 0 mean no cap."""
    assert msg.sender == self.owner, "only owner"
    self.block_cap = block_cap
    self.window_s = window_s
    self.window_cap = window_cap
    self.reserve_cap = reserve_cap


@external
def set_keeper_reward(keeper_gas: uint256, min_keeper_reward: uint256, gas_market: bytes32):
    assert msg.sender == self.owner, "only owner"
    credit.set_keeper_reward(keeper_gas, min_keeper_reward, gas_market)


@external
def approve_liquidator(liquidator: address, approved: bool):
    assert msg.sender == self.owner, "only owner"
    self.approved_liquidator[liquidator] = approved


@external
def fund_house(amount: uint256):
    credit.take(msg.sender, amount)
    self.house += convert(amount, int256)


@external
def fund_insurance(amount: uint256):
    credit.take(msg.sender, amount)
    credit.insurance_fund += amount


@external
def fund_reserve(amount: uint256):
    credit.take(msg.sender, amount)
    self.liquidator_reserve += amount


@external
def deposit(amount: uint256):
    """Take `amount` token units into the trader's cash (repaying recorded bad debt first)."""
    credit.take(msg.sender, amount)
    self.cash[msg.sender] += convert(amount, int256)
    self._repay_bad_debt(msg.sender, amount)
    log Deposited(trader=msg.sender, amount=amount)
    self._commit(msg.sender)


@external
def withdraw(amount: uint256):
    """Pay out `amount` token units of cash; its value is drawn from the global credit."""
    assert amount > 0, "zero amount"
    left: int256 = self.cash[msg.sender] - convert(amount, int256)
    assert left >= 0, "withdraws more than cash"
    self._hold_back(msg.sender, left)
    credit.draw(msg.sender, amount * credit.unit_wad)
    self.cash[msg.sender] = left
    credit.pay(msg.sender, amount)
    log Withdrawn(trader=msg.sender, amount=amount)
    self._commit(msg.sender)


@external
def set_vault(vault: address):
    assert msg.sender == self.owner, "only owner"
    self.vault = vault


@external
def settle_out(trader: address, amount: uint256):
    """
    @notice The clearing vault takes `amount` token units of the trader's cash to pay a
            loss realized on another chain (a settlement order the signer threshold
            signed against the global portfolio). The cash left must still cover what a
            withdrawal would have to leave for the open positions here.
    """
    assert msg.sender == self.vault and msg.sender != empty(address), "only the clearing vault"
    assert amount > 0, "zero amount"
    left: int256 = self.cash[trader] - convert(amount, int256)
    assert left >= 0, "settles more than cash"
    self._hold_back(trader, left)
    self.cash[trader] = left
    credit.pay(msg.sender, amount)
    self._commit(trader)


@external
def settle_in(trader: address, amount: uint256):
    """The clearing vault pays `amount` token units into the trader's cash here
    (repaying recorded bad debt first, as a deposit does)."""
    assert msg.sender == self.vault and msg.sender != empty(address), "only the clearing vault"
    credit.take(msg.sender, amount)
    self.cash[trader] += convert(amount, int256)
    self._repay_bad_debt(trader, amount)
    self._commit(trader)


@view
@internal
def _hold_back(trader: address, left: int256):
    """Cash that leaves must leave max(initial margin, 10 %) of the open notional, with
    unrealized losses counted and unrealized profit not."""
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    if len(book) == 0:
        return
    notional: uint256 = 0
    losses: int256 = 0
    notional, losses = self._mark(book)
    hold: uint256 = notional * max(self.initial_margin_bps, WITHDRAW_HOLDBACK_BPS) // BPS
    assert left * convert(credit.unit_wad, int256) + losses >= convert(hold, int256), \
        "unrealized profit is not cash"


@internal
def _repay_bad_debt(trader: address, amount: uint256):
    debt: uint256 = self.bad_debt_of[trader]
    if debt > 0:
        repaid: uint256 = min(debt, amount)
        self.bad_debt_of[trader] = debt - repaid
        self.bad_debt -= repaid


@external
def trade(market: bytes32, size_delta: int256):
    """
    @notice Change the trader's position in `market` by `size_delta` (18 decimals) at
            the feed's latest price, realizing the P&L of whatever part is closed.
    """
    assert size_delta != 0, "zero size"
    price: uint256 = credit.price_wad(market)
    old: int256 = self._size(msg.sender, market)
    added: uint256 = self._added_exposure(old, old + size_delta)
    self._resize(msg.sender, market, old + size_delta, price)
    if added > 0:
        credit.draw(msg.sender, credit.ceil_div(credit.ceil_div(added * price, WAD) * self.initial_margin_bps, BPS))
    self._commit(msg.sender)


@external
def liquidate(trader: address, market: bytes32, size: uint256):
    """
    @notice Close up to `size` (18 decimals, unsigned) of `trader`'s position in `market`
            at the feed price, only while the MarginOracle flags the trader on an
            attestation that has not expired.
    """
    assert credit.flagged(trader), "trader is not flagged"
    assert size > 0, "zero size"
    old: int256 = self._size(trader, market)
    assert old != 0, "no such position"
    price: uint256 = credit.price_wad(market)
    close: uint256 = min(size, convert(abs(old), uint256))
    notional: uint256 = credit.ceil_div(close * price, WAD)
    self._count_against_caps(market, notional)
    closed: int256 = convert(close, int256)
    if old < 0:
        closed = -closed
    pnl: int256 = self._resize(trader, market, old - closed, price)
    reward: uint256 = 0
    share: uint256 = 0
    to_insurance: uint256 = 0
    reward, share, to_insurance = credit.liquidation_charges(self.cash[trader], notional)
    self.cash[trader] -= convert(reward + share + to_insurance, int256)
    if self.cash[trader] < 0 and len(self.books[trader]) == 0:
        self._cover_bad_debt(trader)
    credit.pay(msg.sender, reward + share)
    log Liquidated(trader=trader, liquidator=msg.sender, market=market, size=closed,
                   price=price, pnl=pnl, reward=reward, penalty=share + to_insurance,
                   to_liquidator=reward + share)
    self._commit(trader)


@view
@external
def positions(trader: address) -> DynArray[Position, MAX_POSITIONS]:
    return self.books[trader]


@internal
def _count_against_caps(market: bytes32, notional: uint256):
    if self.approved_liquidator[msg.sender]:
        return
    in_block: uint256 = self.block_total[market][block.number] + notional
    assert self.block_cap == 0 or in_block <= self.block_cap, "block liquidation cap"
    self.block_total[market][block.number] = in_block
    if self.window_s == 0:
        return
    if block.timestamp >= self.window_start[market] + self.window_s:
        self.window_start[market] = block.timestamp
        self.window_total[market] = 0
    in_window: uint256 = self.window_total[market] + notional
    assert self.window_cap == 0 or in_window <= self.window_cap, "window liquidation cap"
    self.window_total[market] = in_window


@internal
def _cover_bad_debt(trader: address):
    """The backstop order: insurance fund, then the capped liquidator reserve, then a
    recorded bad debt (the trader's cash stays negative by that much)."""
    deficit: uint256 = convert(-self.cash[trader], uint256)
    from_insurance: uint256 = min(deficit, credit.insurance_fund)
    credit.insurance_fund -= from_insurance
    rest: uint256 = deficit - from_insurance
    from_reserve: uint256 = min(rest, self.liquidator_reserve)
    if self.reserve_cap > 0:
        from_reserve = min(from_reserve, self.reserve_cap)
    self.liquidator_reserve -= from_reserve
    uncovered: uint256 = rest - from_reserve
    self.cash[trader] += convert(from_insurance + from_reserve, int256)
    self.bad_debt += uncovered
    self.bad_debt_of[trader] += uncovered
    log BadDebt(trader=trader, deficit=deficit, from_insurance=from_insurance,
                from_reserve=from_reserve, uncovered=uncovered)


@view
@internal
def _size(trader: address, market: bytes32) -> int256:
    for p: Position in self.books[trader]:
        if p.market == market:
            return p.size
    return 0


@internal
def _resize(trader: address, market: bytes32, new: int256, price: uint256) -> int256:
    """Set the trader's position in `market` to `new` at `price`; realize into cash the
    P&L of what is closed. Returns that P&L in token units."""
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    updated: DynArray[Position, MAX_POSITIONS] = []
    old: int256 = 0
    entry: uint256 = 0
    for p: Position in book:
        if p.market == market:
            old = p.size
            entry = p.entry_price
        else:
            updated.append(p)
    flip: bool = old != 0 and new != 0 and (old > 0) != (new > 0)
    closed: int256 = 0  # signed like `old`
    if old != 0 and (new == 0 or flip):
        closed = old
    elif old != 0 and abs(new) < abs(old):
        closed = old - new
    pnl: int256 = 0
    if closed != 0:
        pnl = credit.floor_div(closed * (convert(price, int256) - convert(entry, int256)),
                               convert(WAD * credit.unit_wad, int256))
        self.cash[trader] += pnl
        self.house -= pnl
        log Realized(trader=trader, market=market, closed=closed, price=price, pnl=pnl)
    if new != 0:
        if old == 0 or flip:
            entry = price
        elif abs(new) > abs(old):
            entry = self._average_entry(old, entry, new, price)
        updated.append(Position(market=market, size=new, entry_price=entry))
    self.books[trader] = updated
    return pnl


@pure
@internal
def _average_entry(old: int256, entry: uint256, new: int256, price: uint256) -> uint256:
    """Size-weighted entry of a grown position: up for a long, down for a short."""
    a: uint256 = convert(abs(old), uint256)
    b: uint256 = convert(abs(new), uint256)
    total: uint256 = a * entry + (b - a) * price
    if new > 0:
        return credit.ceil_div(total, b)
    return total // b


@view
@internal
def _mark(book: DynArray[Position, MAX_POSITIONS]) -> (uint256, int256):
    """(notional, unrealized losses ≤ 0) of a book at the feed prices, 18 decimals."""
    notional: uint256 = 0
    losses: int256 = 0
    for p: Position in book:
        price: uint256 = credit.price_wad(p.market)
        notional += convert(abs(p.size), uint256) * price // WAD
        pnl: int256 = credit.floor_div(p.size * (convert(price, int256) - convert(p.entry_price, int256)),
                                       convert(WAD, int256))
        losses += min(pnl, 0)
    return notional, losses


@pure
@internal
def _added_exposure(old_size: int256, new_size: int256) -> uint256:
    """Units of new exposure: growth on the same side, or the whole new side on a flip."""
    if new_size == 0:
        return 0
    if old_size == 0 or (old_size > 0) != (new_size > 0):
        return convert(abs(new_size), uint256)
    if abs(new_size) > abs(old_size):
        return convert(abs(new_size) - abs(old_size), uint256)
    return 0



@internal
def _commit(trader: address):
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    cash_wad: int256 = self.cash[trader] * convert(credit.unit_wad, int256)
    c: bytes32 = empty(bytes32)
    if cash_wad != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, cash_wad, book))
    self.commitment[trader] = c
    log PositionChanged(trader=trader, collateral=cash_wad, positions=book, commitment=c)
