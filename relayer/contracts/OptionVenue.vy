# pragma version ~=0.4.3
"""
@title OptionVenue
@notice A minimal European options venue trading at premiums its owner quotes per series
        (underlying, strike, expiry, call or put). Per trader it keeps the book and one
        storage word, `commitment[trader]` = keccak256(abi_encode(trader, collateral,
        positions)), announced with the whole book in `OptionPositionChanged`, so the
        relayer proves it with one storage proof as for the other venues.
        Buying pays the premium out of the trader's cash here. Writing (adding short
        contracts) is new risk checked against *global* margin: `initial_margin_bps` of
        the added notional must fit in the free collateral the MarginOracle attests for
        the trader on this chain, less what earlier draws since that attestation took.
@dev Exercise and settlement at expiry are out of scope: an expired series cannot trade.
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

event OptionPositionChanged:
    trader: indexed(address)
    collateral: uint256
    positions: DynArray[OptionPosition, MAX_POSITIONS]
    commitment: bytes32

commitment: public(HashMap[address, bytes32])
collateral: public(HashMap[address, uint256])
books: HashMap[address, DynArray[OptionPosition, MAX_POSITIONS]]
feeds: public(HashMap[bytes32, address])
premiums: public(HashMap[bytes32, uint256])  # series id → quoted premium per contract
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


@pure
@external
def series(market: bytes32, strike: uint256, expiry: uint64, is_call: bool) -> bytes32:
    return keccak256(abi_encode(market, strike, expiry, is_call))


@external
def list_market(market: bytes32, feed: address):
    assert msg.sender == self.owner, "only owner"
    self.feeds[market] = feed


@external
def quote(market: bytes32, strike: uint256, expiry: uint64, is_call: bool, premium: uint256):
    assert msg.sender == self.owner, "only owner"
    assert self.feeds[market] != empty(address), "unknown market"
    assert strike > 0 and convert(expiry, uint256) > block.timestamp, "bad series"
    self.premiums[keccak256(abi_encode(market, strike, expiry, is_call))] = premium


@external
def deposit(amount: uint256):
    self.collateral[msg.sender] += amount
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
    cost: uint256 = convert(abs(size_delta), uint256) * premium // 10**18
    if size_delta > 0:
        assert self.collateral[msg.sender] >= cost, "premium exceeds cash"
        self.collateral[msg.sender] -= cost
    else:
        self.collateral[msg.sender] += cost
    updated: DynArray[OptionPosition, MAX_POSITIONS] = []
    old: int256 = 0
    for p: OptionPosition in self.books[msg.sender]:
        if p.market == market and p.strike == strike and p.expiry == expiry and p.is_call == is_call:
            old = p.size
        else:
            updated.append(p)
    new: int256 = old + size_delta
    if new != 0:
        updated.append(OptionPosition(market=market, size=new, entry_price=premium, strike=strike,
                                      expiry=expiry, is_call=is_call))
    written: int256 = max(-new, 0) - max(-old, 0)
    if written > 0:
        spot: uint256 = credit.price_wad(self.feeds[market])
        notional: uint256 = convert(written, uint256) * spot // 10**18
        credit.draw(msg.sender, notional * self.initial_margin_bps // 10000)
    self.books[msg.sender] = updated
    self._commit(msg.sender)


@view
@external
def positions(trader: address) -> DynArray[OptionPosition, MAX_POSITIONS]:
    return self.books[trader]


@internal
def _commit(trader: address):
    book: DynArray[OptionPosition, MAX_POSITIONS] = self.books[trader]
    c: bytes32 = empty(bytes32)
    if self.collateral[trader] != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, self.collateral[trader], book))
    self.commitment[trader] = c
    log OptionPositionChanged(trader=trader, collateral=self.collateral[trader], positions=book, commitment=c)
