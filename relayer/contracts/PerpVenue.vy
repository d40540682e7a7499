# pragma version ~=0.4.3
"""
@title PerpVenue
@notice A minimal perpetual-futures venue. Per trader it keeps the book (collateral and
        positions) and one storage word, `commitment[trader]`, equal to
        keccak256(abi_encode(trader, collateral, positions)). The relayer proves that word
        with an EIP-1186 storage proof and checks the event data against it, so one proof
        covers the trader's whole book on this venue.
        Risk is checked against *global* margin: a trade that adds exposure needs
        initial margin (`initial_margin_bps` of the added notional) out of the trader's
        free collateral on this chain as the MarginOracle last attested it, less what
        earlier trades since that attestation already drew; reducing exposure is always
        allowed. Liquidation is open to anyone, only for a trader the oracle flags, and
        closes only the leg named.
@dev `commitment` is declared first so that its mapping base slot is 0.
"""

import credit

struct Position:
    market: bytes32
    size: int256
    entry_price: uint256

MAX_POSITIONS: constant(uint256) = 8

event Liquidated:
    trader: indexed(address)
    liquidator: indexed(address)
    market: bytes32
    size: int256

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
initial_margin_bps: public(uint256)
initializes: credit
exports: (credit.oracle, credit.drawn, credit.drawn_at_sequence)


@deploy
def __init__(oracle: address, initial_margin_bps: uint256):
    assert initial_margin_bps > 0 and initial_margin_bps <= 10000, "bad margin rate"
    credit.__init__(oracle)
    self.owner = msg.sender
    self.initial_margin_bps = initial_margin_bps


@external
def list_market(market: bytes32, feed: address):
    assert msg.sender == self.owner, "only owner"
    self.feeds[market] = feed


@external
def deposit(amount: uint256):
    """
    @notice Credit USD collateral (18 decimals). The skeleton venue keeps collateral as
            an accounting entry; token custody comes with the full venue.
    """
    self.collateral[msg.sender] += amount
    self._commit(msg.sender)


@external
def trade(market: bytes32, size_delta: int256):
    """
    @notice Change the trader's position in `market` by `size_delta` (18 decimals) at
            the feed's latest price; a position that reaches zero is removed.
    """
    feed: address = self.feeds[market]
    assert feed != empty(address), "unknown market"
    assert size_delta != 0, "zero size"
    price: uint256 = credit.price_wad(feed)
    book: DynArray[Position, MAX_POSITIONS] = self.books[msg.sender]
    updated: DynArray[Position, MAX_POSITIONS] = []
    old_size: int256 = 0
    for p: Position in book:
        if p.market == market:
            old_size = p.size
        else:
            updated.append(p)
    new_size: int256 = old_size + size_delta
    if new_size != 0:
        updated.append(Position(market=market, size=new_size, entry_price=price))
    self._draw_credit(msg.sender, self._added_exposure(old_size, new_size) * price // 10**18)
    self.books[msg.sender] = updated
    self._commit(msg.sender)


@external
def liquidate(trader: address, market: bytes32):
    """
    @notice Close `trader`'s position in `market`, only while the MarginOracle flags the
            trader (equity below maintenance margin on the global book).
    """
    assert credit.flagged(trader), "trader is healthy"
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    updated: DynArray[Position, MAX_POSITIONS] = []
    closed: int256 = 0
    for p: Position in book:
        if p.market == market:
            closed = p.size
        else:
            updated.append(p)
    assert closed != 0, "no such position"
    self.books[trader] = updated
    log Liquidated(trader=trader, liquidator=msg.sender, market=market, size=closed)
    self._commit(trader)


@view
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
def _draw_credit(trader: address, notional: uint256):
    if notional == 0:
        return  # reducing risk needs no credit
    credit.draw(trader, notional * self.initial_margin_bps // 10000)


@view
@external
def positions(trader: address) -> DynArray[Position, MAX_POSITIONS]:
    return self.books[trader]


@internal
def _commit(trader: address):
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    c: bytes32 = empty(bytes32)
    if self.collateral[trader] != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, self.collateral[trader], book))
    self.commitment[trader] = c
    log PositionChanged(trader=trader, collateral=self.collateral[trader], positions=book, commitment=c)
