# pragma version ~=0.4.3
"""
@title LendingPool
@notice A minimal lending market. Per trader and asset it keeps one signed balance:
        supplied minus borrowed units (18 decimals), beside USD cash collateral. The
        book is committed and announced exactly as PerpVenue does it (same struct, same
        event, `commitment` at mapping slot 0), so the relayer proves it the same way;
        the relayer knows from its configuration that these balances are held assets
        and debts, not futures.
        Withdrawing a supply or borrowing takes value out of the margin system, so it
        draws on the trader's free collateral on this chain as the MarginOracle last
        attested it (less what earlier draws since that attestation took): the value
        withdrawn, or the value borrowed plus `borrow_margin_bps` of it. Supplying and
        repaying always pass.
@dev Token custody is left out: balances are accounting entries, like PerpVenue's cash.
"""

import credit

struct Position:
    market: bytes32
    size: int256
    entry_price: uint256

MAX_POSITIONS: constant(uint256) = 8

event PositionChanged:
    trader: indexed(address)
    collateral: uint256
    positions: DynArray[Position, MAX_POSITIONS]
    commitment: bytes32

commitment: public(HashMap[address, bytes32])
collateral: public(HashMap[address, uint256])
books: HashMap[address, DynArray[Position, MAX_POSITIONS]]
feeds: public(HashMap[bytes32, address])
owner: public(address)
borrow_margin_bps: public(uint256)
initializes: credit
exports: (credit.oracle, credit.drawn, credit.drawn_at_sequence)


@deploy
def __init__(oracle: address, borrow_margin_bps: uint256):
    assert borrow_margin_bps <= 10000, "bad margin rate"
    credit.__init__(oracle)
    self.owner = msg.sender
    self.borrow_margin_bps = borrow_margin_bps


@external
def list_market(market: bytes32, feed: address):
    assert msg.sender == self.owner, "only owner"
    self.feeds[market] = feed


@external
def deposit(amount: uint256):
    self.collateral[msg.sender] += amount
    self._commit(msg.sender)


@external
def supply(market: bytes32, amount: uint256):
    self._move(market, convert(amount, int256), 0)


@external
def repay(market: bytes32, amount: uint256):
    balance: int256 = self._balance(msg.sender, market)
    assert balance < 0 and convert(amount, int256) <= -balance, "repays more than borrowed"
    self._move(market, convert(amount, int256), 0)


@external
def withdraw(market: bytes32, amount: uint256):
    balance: int256 = self._balance(msg.sender, market)
    assert balance > 0 and convert(amount, int256) <= balance, "withdraws more than supplied"
    self._move(market, -convert(amount, int256), 10000)


@external
def borrow(market: bytes32, amount: uint256):
    assert self._balance(msg.sender, market) <= 0, "withdraw the supply first"
    self._move(market, -convert(amount, int256), 10000 + self.borrow_margin_bps)


@view
@external
def positions(trader: address) -> DynArray[Position, MAX_POSITIONS]:
    return self.books[trader]


@view
@internal
def _balance(trader: address, market: bytes32) -> int256:
    for p: Position in self.books[trader]:
        if p.market == market:
            return p.size
    return 0


@internal
def _move(market: bytes32, delta: int256, credit_bps: uint256):
    """Add `delta` units to the trader's balance in `market`; when `credit_bps` > 0, draw
    that share of the moved value from the attested free collateral."""
    price: uint256 = credit.price_wad(self.feeds[market])  # reverts on an unknown market
    assert delta != 0, "zero amount"
    if credit_bps > 0:
        value: uint256 = convert(abs(delta), uint256) * price // 10**18
        credit.draw(msg.sender, value * credit_bps // 10000)
    updated: DynArray[Position, MAX_POSITIONS] = []
    old: int256 = 0
    for p: Position in self.books[msg.sender]:
        if p.market == market:
            old = p.size
        else:
            updated.append(p)
    if old + delta != 0:
        updated.append(Position(market=market, size=old + delta, entry_price=price))
    self.books[msg.sender] = updated
    self._commit(msg.sender)


@internal
def _commit(trader: address):
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    c: bytes32 = empty(bytes32)
    if self.collateral[trader] != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, self.collateral[trader], book))
    self.commitment[trader] = c
    log PositionChanged(trader=trader, collateral=self.collateral[trader], positions=book, commitment=c)
