# pragma version ~=0.4.3
"""
@title credit
@notice What every venue shares: new risk drawn from the free collateral the
        MarginOracle attests for a trader on this chain, less what earlier draws since
        that attestation took (a newer attestation counts them, and the window restarts),
        and prices read from round-based feeds in 18 decimals.
@dev A module: a venue `initializes:` it (after its `commitment` mapping, which must
     keep base slot 0) and exports the getters it wants.
"""

interface PriceFeed:
    def latestAnswer() -> int256: view
    def decimals() -> uint8: view

interface MarginOracle:
    def free_collateral(trader: address) -> uint256: view
    def is_liquidatable(trader: address) -> bool: view
    def latest(trader: address) -> (address, uint64, int256, uint256, uint256, uint256, uint32, bytes32, uint64): view

oracle: public(address)
drawn: public(HashMap[address, uint256])
drawn_at_sequence: public(HashMap[address, uint64])


@deploy
def __init__(oracle: address):
    assert oracle != empty(address), "no oracle"
    self.oracle = oracle


@internal
def draw(trader: address, required: uint256):
    """Take `required` (USD, 18 decimals) from the trader's attested free collateral."""
    sequence: uint64 = (staticcall MarginOracle(self.oracle).latest(trader))[1]
    if sequence != self.drawn_at_sequence[trader]:
        self.drawn[trader] = 0
        self.drawn_at_sequence[trader] = sequence
    free: uint256 = staticcall MarginOracle(self.oracle).free_collateral(trader)
    assert self.drawn[trader] + required <= free, "insufficient free collateral"
    self.drawn[trader] += required


@view
@internal
def flagged(trader: address) -> bool:
    return staticcall MarginOracle(self.oracle).is_liquidatable(trader)


@view
@internal
def price_wad(feed: address) -> uint256:
    assert feed != empty(address), "unknown market"
    answer: int256 = staticcall PriceFeed(feed).latestAnswer()
    assert answer > 0, "bad price"
    decimals: uint8 = staticcall PriceFeed(feed).decimals()
    return convert(answer, uint256) * 10 ** (18 - convert(decimals, uint256))
