# pragma version ~=0.4.3
"""
@title PerpVenue
@notice A minimal perpetual-futures venue. Per trader it keeps the book (collateral and
        positions) and one storage word, `commitment[trader]`, equal to
        keccak256(abi_encode(trader, collateral, positions)). The relayer proves that word
        with an EIP-1186 storage proof and checks the event data against it, so one proof
        covers the trader's whole book on this venue.
@dev `commitment` is declared first so that its mapping base slot is 0.
"""

interface PriceFeed:
    def latestAnswer() -> int256: view
    def decimals() -> uint8: view

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


@deploy
def __init__():
    self.owner = msg.sender


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
    price: uint256 = self._price_wad(feed)
    book: DynArray[Position, MAX_POSITIONS] = self.books[msg.sender]
    updated: DynArray[Position, MAX_POSITIONS] = []
    found: bool = False
    for p: Position in book:
        if p.market == market:
            found = True
            new_size: int256 = p.size + size_delta
            if new_size != 0:
                updated.append(Position(market=market, size=new_size, entry_price=price))
        else:
            updated.append(p)
    if not found:
        updated.append(Position(market=market, size=size_delta, entry_price=price))
    self.books[msg.sender] = updated
    self._commit(msg.sender)


@view
@external
def positions(trader: address) -> DynArray[Position, MAX_POSITIONS]:
    return self.books[trader]


@view
@internal
def _price_wad(feed: address) -> uint256:
    answer: int256 = staticcall PriceFeed(feed).latestAnswer()
    assert answer > 0, "bad price"
    decimals: uint8 = staticcall PriceFeed(feed).decimals()
    return convert(answer, uint256) * 10 ** (18 - convert(decimals, uint256))


@internal
def _commit(trader: address):
    book: DynArray[Position, MAX_POSITIONS] = self.books[trader]
    c: bytes32 = empty(bytes32)
    if self.collateral[trader] != 0 or len(book) != 0:
        c = keccak256(abi_encode(trader, self.collateral[trader], book))
    self.commitment[trader] = c
    log PositionChanged(trader=trader, collateral=self.collateral[trader], positions=book, commitment=c)
