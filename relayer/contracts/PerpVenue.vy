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

interface PriceFeed:
    def latestAnswer() -> int256: view
    def decimals() -> uint8: view

interface MarginOracle:
    def free_collateral(trader: address) -> uint256: view
    def is_liquidatable(trader: address) -> bool: view
    def latest(trader: address) -> (address, uint64, int256, uint256, uint256, uint256, uint32, bytes32, uint64): view

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
oracle: public(address)
initial_margin_bps: public(uint256)
# Credit drawn by risk-increasing trades since the attestation of `drawn_at_sequence`.
drawn: public(HashMap[address, uint256])
drawn_at_sequence: public(HashMap[address, uint64])


@deploy
def __init__(oracle: address, initial_margin_bps: uint256):
    assert oracle != empty(address), "no oracle"
    assert initial_margin_bps > 0 and initial_margin_bps <= 10000, "bad margin rate"
    self.owner = msg.sender
    self.oracle = oracle
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
    price: uint256 = self._price_wad(feed)
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
    assert staticcall MarginOracle(self.oracle).is_liquidatable(trader), "trader is healthy"
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
    required: uint256 = notional * self.initial_margin_bps // 10000
    sequence: uint64 = (staticcall MarginOracle(self.oracle).latest(trader))[1]
    if sequence != self.drawn_at_sequence[trader]:
        # A newer attestation already counts the positions traded before it.
        self.drawn[trader] = 0
        self.drawn_at_sequence[trader] = sequence
    free: uint256 = staticcall MarginOracle(self.oracle).free_collateral(trader)
    assert self.drawn[trader] + required <= free, "insufficient free collateral"
    self.drawn[trader] += required


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
